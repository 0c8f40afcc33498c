// Supervises the informer of one Kubernetes kind: starts it, restarts it, pauses it, and watches
// it for stalls. Effectful: owns one @kubernetes/client-node informer at a time and its requests.
//
// Why a supervisor: a client-node informer stops for good on any error but 410 Gone (connection
// reset, API server restart, a failing list), and a watch can go quiet without an error. Every
// (re)start here is a fresh informer with a fresh list, reported to the sink as one "list" (which
// the watcher brackets with ListStarted/ListCompleted), so readers learn about everything that
// happened while no watch ran, deletions included. Callbacks of a replaced informer are ignored:
// its late events are covered by the new list.
//
// The watchdog has two checks:
// - silence: a healthy informer reconnects at least every 30 s even when idle (client-node's
//   watch inactivity timeout), so no connect, event or list for `stallMs` means it is wedged;
// - staleness: every `probeIntervalMs`, a list with limit=1 (one item, plus remainingItemCount)
//   is compared with the cache: same count, same first object at the same resourceVersion. A
//   difference that persists across two probes while no watch event arrived in between means the
//   watch stopped delivering although the objects changed.
import { request } from 'node:https';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { ObjectKind } from '../events/primitives.ts';
import type { Logger } from '../lib/log.ts';
import { informerRestarts } from './metrics.ts';

export interface RawList {
  metadata?: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: KubernetesObject[];
}

/** What the supervisor reports to. Calls for one kind never overlap: a list completes first. */
export interface InformerSink {
  /**
   * A (re)list: publish every object of the list. May wait (backpressure); `signal` aborts
   * when this informer is replaced, in which case the sink stops publishing this list.
   */
  list(
    kind: ObjectKind,
    listId: string,
    items: readonly KubernetesObject[],
    signal: AbortSignal,
  ): Promise<void>;
  /** A watch event: ADDED or MODIFIED (`deleted` false) or DELETED (`deleted` true). */
  change(kind: ObjectKind, obj: KubernetesObject, deleted: boolean, receivedAt: number): void;
}

export interface InformerOptions {
  kubeConfig: KubeConfig;
  kind: ObjectKind;
  /** Collection path without query, e.g. /api/v1/pods or /apis/g/v1/plural. */
  path: string;
  sink: InformerSink;
  log: Logger;
  /** Restart backoff after errors: doubles from initialBackoffMs up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** No connect, event or list for this long restarts the informer. Default 90 s. */
  stallMs?: number;
  /** Staleness probe period; 0 disables it. Default 60 s. */
  probeIntervalMs?: number;
  /** Page size of lists. */
  pageSize?: number;
  /** Test hook: drop watch events (as a stalled watch would) while it returns true. */
  dropWatchEvents?: () => boolean;
}

export type RestartReason = 'error' | 'watchdog-silent' | 'watchdog-stale' | 'backpressure';

export interface SupervisedInformer {
  readonly kind: ObjectKind;
  start(): void;
  /** Stops the informer until resume(); resume() relists (reason: backpressure). */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
  /** Forces a restart now (tests, watchdog). */
  restart(reason: RestartReason): void;
}

type State = 'stopped' | 'running' | 'paused' | 'backoff';

interface Generation {
  id: number;
  informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  abort: AbortController;
  listing: boolean;
}

export function superviseInformer(opts: InformerOptions): SupervisedInformer {
  const { kubeConfig, kind, path, sink } = opts;
  const log = opts.log.child({ kind });
  const initialBackoffMs = opts.initialBackoffMs ?? 500;
  const maxBackoffMs = opts.maxBackoffMs ?? 30_000;
  const stallMs = opts.stallMs ?? 90_000;
  const probeIntervalMs = opts.probeIntervalMs ?? 60_000;
  const pageSize = opts.pageSize ?? 500;

  let state: State = 'stopped';
  let gen: Generation | undefined;
  let nextId = 0;
  let backoffMs = initialBackoffMs;
  let backoffTimer: NodeJS.Timeout | undefined;
  let lastActivity = performance.now();
  let lastEventAt = 0;
  let started = false;
  let watchdog: NodeJS.Timeout | undefined;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;
  let previousProbe: { differed: boolean; at: number } = { differed: false, at: 0 };

  function launch(reason: RestartReason | 'start'): void {
    kill();
    if (reason !== 'start') informerRestarts.inc({ kind, reason });
    const id = ++nextId;
    const abort = new AbortController();
    const listFn = async (): Promise<RawList & { metadata: { resourceVersion: string } }> => {
      const current = gen;
      if (current?.id !== id) throw new Error('informer replaced');
      current.listing = true;
      try {
        const list = await listAll(kubeConfig, path, pageSize, abort.signal);
        lastActivity = performance.now();
        const listId = randomUUID();
        log.debug({ listId, count: list.items.length, resourceVersion: list.resourceVersion }, 'listed');
        await sink.list(kind, listId, list.items, abort.signal);
        // A list that completes proves the API server and the sink work: errors since are history.
        backoffMs = initialBackoffMs;
        lastActivity = performance.now();
        return { metadata: { resourceVersion: list.resourceVersion }, items: list.items };
      } finally {
        current.listing = false;
      }
    };
    const informer = makeInformer(kubeConfig, path, listFn);
    const live = (): boolean => gen?.id === id && state === 'running';
    const onObject = (deleted: boolean) => (obj: KubernetesObject) => {
      if (!live()) return;
      const receivedAt = performance.now();
      lastActivity = receivedAt;
      if (gen?.listing) return; // the list being published covers it (client-node replays list items)
      if (opts.dropWatchEvents?.()) return;
      lastEventAt = receivedAt;
      sink.change(kind, obj, deleted, receivedAt);
    };
    informer.on('add', onObject(false));
    informer.on('update', onObject(false));
    informer.on('delete', onObject(true));
    informer.on('connect', () => {
      if (live()) lastActivity = performance.now();
    });
    informer.on('error', (err: unknown) => {
      if (!live()) return;
      onError(err);
    });
    gen = { id, informer, abort, listing: false };
    state = 'running';
    lastActivity = performance.now();
    previousProbe = { differed: false, at: 0 };
    if (reason !== 'start') log.info({ reason }, 'informer restarting');
    informer.start().catch((err: unknown) => {
      if (gen?.id === id && state === 'running') onError(err);
    });
  }

  function kill(): void {
    const old = gen;
    gen = undefined;
    if (!old) return;
    old.abort.abort(new Error('informer replaced'));
    old.informer.stop().catch(() => undefined);
  }

  function onError(err: unknown): void {
    kill();
    state = 'backoff';
    log.warn({ err, retryInMs: backoffMs }, 'informer failed; restarting after backoff');
    const delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    backoffTimer = setTimeout(() => {
      backoffTimer = undefined;
      if (state === 'backoff') launch('error');
    }, delay);
  }

  function checkSilence(): void {
    if (state !== 'running' || gen === undefined || gen.listing) return;
    const silentMs = performance.now() - lastActivity;
    if (silentMs > stallMs) {
      log.warn({ silentMs: Math.round(silentMs), stallMs }, 'watch silent for too long; restarting informer');
      launch('watchdog-silent');
    }
  }

  async function probe(): Promise<void> {
    if (probing || state !== 'running' || gen === undefined || gen.listing) return;
    probing = true;
    const current = gen;
    try {
      const server = await listPage(kubeConfig, path, { limit: '1' }, current.abort.signal);
      if (gen !== current || state !== 'running' || current.listing) return;
      const local = selectCacheSummary(current.informer.list());
      const remote = {
        count: server.items.length + (server.metadata?.remainingItemCount ?? 0),
        first: server.items[0] === undefined ? undefined : summarize(server.items[0]),
        // Without remainingItemCount (older servers) only the first object can be compared.
        countKnown:
          server.metadata?.continue === undefined || server.metadata.remainingItemCount !== undefined,
      };
      const differs =
        (remote.countKnown && remote.count !== local.count) ||
        remote.first?.key !== local.first?.key ||
        remote.first?.resourceVersion !== local.first?.resourceVersion;
      const now = performance.now();
      if (differs && previousProbe.differed && lastEventAt < previousProbe.at) {
        log.warn(
          { local, remote },
          'watch delivers nothing although the objects changed; restarting informer',
        );
        launch('watchdog-stale');
        return;
      }
      previousProbe = { differed: differs, at: now };
    } catch (err) {
      log.debug({ err }, 'staleness probe failed');
    } finally {
      probing = false;
    }
  }

  return {
    kind,
    start() {
      if (started) return;
      started = true;
      launch('start');
      watchdog = setInterval(checkSilence, Math.max(1_000, Math.min(stallMs / 3, 30_000)));
      if (probeIntervalMs > 0) probeTimer = setInterval(() => void probe(), probeIntervalMs);
    },
    pause() {
      if (state === 'stopped' || state === 'paused') return;
      clearTimeout(backoffTimer);
      kill();
      state = 'paused';
    },
    resume() {
      if (state !== 'paused') return;
      launch('backpressure');
    },
    restart(reason) {
      if (state === 'stopped') return;
      launch(reason);
    },
    async stop() {
      state = 'stopped';
      clearTimeout(backoffTimer);
      clearInterval(watchdog);
      clearInterval(probeTimer);
      const old = gen;
      kill();
      // Give the aborted requests a moment to unwind so no socket outlives the watcher.
      if (old) await sleep(0);
    },
  };
}

/** Count and first object (in the API server's key order) of an informer cache. Pure. */
export function selectCacheSummary(items: readonly KubernetesObject[]): {
  count: number;
  first: { key: string; resourceVersion: string } | undefined;
} {
  let first: { key: string; resourceVersion: string } | undefined;
  for (const obj of items) {
    const s = summarize(obj);
    if (first === undefined || s.key < first.key) first = s;
  }
  return { count: items.length, first };
}

/** etcd keys are <prefix>/<namespace>/<name>, so the server lists in this order. */
function summarize(obj: KubernetesObject): { key: string; resourceVersion: string } {
  const ns = obj.metadata?.namespace;
  return {
    key: ns ? `${ns}/${obj.metadata?.name ?? ''}` : (obj.metadata?.name ?? ''),
    resourceVersion: obj.metadata?.resourceVersion ?? '',
  };
}

/**
 * A consistent list of every object under `path`, page by page (continue tokens keep the
 * snapshot of the first page). Objects are the API server's JSON as is, like watch events.
 */
export async function listAll(
  kc: KubeConfig,
  path: string,
  pageSize: number,
  signal: AbortSignal,
): Promise<{ items: KubernetesObject[]; resourceVersion: string }> {
  const items: KubernetesObject[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const page = await listPage(
      kc,
      path,
      cont === undefined ? { limit: String(pageSize) } : { limit: String(pageSize), continue: cont },
      signal,
    );
    items.push(...page.items);
    if (cont === undefined) resourceVersion = page.metadata?.resourceVersion ?? '';
    cont = page.metadata?.continue || undefined;
  } while (cont !== undefined);
  return { items, resourceVersion };
}

class HttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/** One GET of a collection, with the kubeconfig's credentials; rejects on non-200 and after 60 s. */
export async function listPage(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
): Promise<RawList> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const options: import('node:https').RequestOptions = {
    method: 'GET',
    headers: { accept: 'application/json' },
  };
  await kc.applyToHTTPSOptions(options);
  return new Promise<RawList>((resolve, reject) => {
    const req = request(url, { ...options, signal, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(
            new HttpError(
              res.statusCode ?? 0,
              `GET ${url.pathname}${url.search}: ${res.statusCode} ${body.slice(0, 300)}`,
            ),
          );
          return;
        }
        try {
          resolve(JSON.parse(body) as RawList);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: no answer within 60 s`)));
    req.on('error', reject);
    req.end();
  });
}
