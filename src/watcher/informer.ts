// Supervises the list+watch of one Kubernetes kind: lists, watches, restarts, pauses, and
// watches itself for stalls. Effectful: owns the list requests and the one watch request
// (client-node's Watch) of its kind, and a small cache (object key → resourceVersion).
//
// Why not client-node's makeInformer (2.x): it hides its relists (it diffs a relist against its
// own cache and reports adds, updates and deletes), so the sink could not bracket each list with
// ListStarted and ListCompleted, which is how readers of the log learn about deletions that
// happened while no watch ran; it keeps whole objects where we keep only key → resourceVersion;
// and after an error other than 410 Gone or its timeout it stops and leaves the restart and the
// backoff to the caller anyway. (Its stop() keeps the resourceVersion and start() resumes the
// watch, so pausing it would not cost a relist: that is no reason any more.) This reflector, too,
// keeps its resourceVersion across a pause and resumes the watch where it stopped; it relists
// only when it must:
// - start, and every restart after an error (anything but 410 Gone, with capped exponential
//   backoff) or after the watchdog fired: the sink brackets every list with ListStarted and
//   ListCompleted, so readers learn about everything that happened while no watch ran;
// - 410 Gone (the resourceVersion was compacted away): an immediate relist.
// A watch that ends cleanly (server timeout, client-node's 30 s inactivity timeout) is simply
// reopened from the last resourceVersion.
//
// Backpressure: after every watch event the `full` gate is checked; when it reports a full buffer
// the watch is closed at once and events the closed stream still delivers are ignored without
// advancing the resourceVersion (the resumed watch delivers them again), so the buffer never
// grows past its capacity. A list in progress is not cut off: the sink waits for room.
//
// The watchdog has two checks:
// - silence: a healthy watch reconnects at least every 30 s even when idle, so no list, connect
//   or event for `stallMs` means the informer is wedged;
// - staleness: every `probeIntervalMs`, a list with limit=1 (one object plus remainingItemCount)
//   is compared with the cache: same count, same first object at the same resourceVersion. A
//   difference that persists across two probes while no watch event arrived in between means the
//   watch stopped delivering although the objects changed.
import { request, type RequestOptions } from 'node:https';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { ObjectKind } from '../contracts/primitives.ts';
import { createBackoff } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';
import { informerRestarts, watchPauses } from './metrics.ts';

export interface RawList {
  metadata?: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: KubernetesObject[];
}

/** What the supervisor reports to. Calls for one kind never overlap: a list completes first. */
export interface InformerSink {
  /**
   * A (re)list: publish every object of the list. May wait for room in the buffer; `signal`
   * aborts when this list is abandoned (restart, stop), and the sink then stops publishing it.
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
  /** True while the event buffer is full: no watch is read then. */
  full: () => boolean;
  log: Logger;
  /** Restart backoff after errors (src/lib/backoff.ts): from initialBackoffMs up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** No list, connect or event for this long restarts the informer. Default 90 s. */
  stallMs?: number;
  /** Staleness probe period; 0 disables it. Default 60 s. */
  probeIntervalMs?: number;
  /** Page size of lists. */
  pageSize?: number;
  /** Test hook: drop watch events (as a stalled watch would) while it returns true. */
  dropWatchEvents?: () => boolean;
}

export type RestartReason = 'error' | 'expired' | 'watchdog-silent' | 'watchdog-stale';

export interface SupervisedInformer {
  readonly kind: ObjectKind;
  start(): void;
  /** Closes the watch now (the buffer is full); the informer also pauses by itself on `full`. */
  pause(): void;
  /** Reopens a paused watch from where it stopped (no relist). */
  resume(): void;
  stop(): Promise<void>;
  /** Relists now (tests, watchdog). */
  restart(reason: RestartReason): void;
  /** True once the first list was published. */
  synced(): boolean;
}

type State = 'stopped' | 'running' | 'paused' | 'backoff';
type WatchEnd = 'closed' | 'expired' | 'paused' | 'aborted';

interface Session {
  readonly id: number;
  readonly abort: AbortController;
  listing: boolean;
  /** Closes the current watch request, if one is open. */
  closeWatch?: () => void;
}

class WatchError extends Error {}

export function superviseInformer(opts: InformerOptions): SupervisedInformer {
  const { kubeConfig, kind, path, sink } = opts;
  const log = opts.log.child({ kind });
  const backoff = createBackoff({
    initialMs: opts.initialBackoffMs ?? 500,
    maxMs: opts.maxBackoffMs ?? 30_000,
  });
  const stallMs = opts.stallMs ?? 90_000;
  const probeIntervalMs = opts.probeIntervalMs ?? 60_000;
  const pageSize = opts.pageSize ?? 500;
  const watch = new Watch(kubeConfig);

  let state: State = 'stopped';
  let session: Session | undefined;
  let nextId = 0;
  /** '' = the next session lists first. */
  let resourceVersion = '';
  /** key (namespace/name or name) → resourceVersion of every object the informer knows. */
  let cache = new Map<string, string>();
  let backoffTimer: NodeJS.Timeout | undefined;
  let lastActivity = performance.now();
  let lastEventAt = 0;
  let synced = false;
  let watchdog: NodeJS.Timeout | undefined;
  let probeTimer: NodeJS.Timeout | undefined;
  let probing = false;
  let previousProbe = { differed: false, at: 0 };

  /** Ends the current session (its list and watch) and starts a new one. */
  function launch(relist: boolean, reason?: RestartReason): void {
    endSession();
    clearTimeout(backoffTimer);
    if (relist) resourceVersion = '';
    if (reason !== undefined) {
      informerRestarts.inc({ kind, reason });
      log.info({ reason }, 'informer restarting');
    }
    const s: Session = { id: ++nextId, abort: new AbortController(), listing: false };
    session = s;
    state = 'running';
    lastActivity = performance.now();
    previousProbe = { differed: false, at: 0 };
    runSession(s).catch((err: unknown) => {
      if (session !== s || state !== 'running') return;
      endSession();
      state = 'backoff';
      const delay = backoff.next();
      log.warn({ err, retryInMs: delay }, 'informer failed; relisting after backoff');
      backoffTimer = setTimeout(() => {
        if (state === 'backoff') launch(true, 'error');
      }, delay);
    });
  }

  function endSession(): void {
    const s = session;
    session = undefined;
    if (!s) return;
    s.abort.abort(new Error('informer session ended'));
    s.closeWatch?.();
  }

  async function runSession(s: Session): Promise<void> {
    const current = (): boolean => session === s && state === 'running';
    while (current()) {
      if (resourceVersion === '') {
        s.listing = true;
        const list = await listAll(kubeConfig, path, pageSize, s.abort.signal);
        lastActivity = performance.now();
        if (!current()) return;
        const listId = randomUUID();
        await sink.list(kind, listId, list.items, s.abort.signal);
        if (!current()) return;
        cache = new Map(list.items.map((o) => [keyOf(o), o.metadata?.resourceVersion ?? '']));
        resourceVersion = list.resourceVersion;
        s.listing = false;
        synced = true;
        // A list that went out proves the API server and the sink work: errors are history.
        backoff.reset();
        lastActivity = performance.now();
      }
      if (opts.full()) {
        pauseSession(s);
        return;
      }
      const openedAt = performance.now();
      const eventsBefore = lastEventAt;
      const end = await watchOnce(s);
      if (!current()) return;
      switch (end) {
        case 'closed':
        case 'aborted':
          // A server that keeps closing new watches at once must not be hammered.
          if (performance.now() - openedAt < 1_000 && lastEventAt === eventsBefore) {
            await sleep(1_000, undefined, { signal: s.abort.signal }).catch(() => undefined);
          }
          break;
        case 'expired':
          informerRestarts.inc({ kind, reason: 'expired' });
          log.info({ resourceVersion }, 'resourceVersion expired (410): relisting');
          resourceVersion = '';
          break;
        case 'paused':
          pauseSession(s);
          return;
        default: {
          const _exhaustive: never = end;
          return _exhaustive;
        }
      }
    }
  }

  function pauseSession(s: Session): void {
    if (session !== s) return;
    session = undefined;
    state = 'paused';
    watchPauses.inc({ kind });
    log.debug({ resourceVersion }, 'watch paused: event buffer full');
  }

  /** One watch request from `resourceVersion`, until it ends; rejects on errors other than 410. */
  function watchOnce(s: Session): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      let ended = false;
      let expired = false;
      let statusError: string | undefined;
      let controller: AbortController | undefined;
      const finish = (end: WatchEnd | Error): void => {
        if (ended) return;
        ended = true;
        s.closeWatch = undefined;
        s.abort.signal.removeEventListener('abort', onAbort);
        controller?.abort();
        if (end instanceof Error) reject(end);
        else resolve(end);
      };
      const onAbort = (): void => finish('aborted');
      s.abort.signal.addEventListener('abort', onAbort, { once: true });
      s.closeWatch = () => finish('aborted');
      lastActivity = performance.now();
      const onEvent = (phase: string, obj: KubernetesObject & { code?: number; message?: string }): void => {
        // After a pause or an end, the dying stream may still deliver lines: ignored, and the
        // resourceVersion stays, so the next watch delivers them again.
        if (ended || session !== s) return;
        const receivedAt = performance.now();
        lastActivity = receivedAt;
        switch (phase) {
          case 'ADDED':
          case 'MODIFIED':
          case 'DELETED': {
            if (opts.dropWatchEvents?.()) return;
            const rv = obj.metadata?.resourceVersion ?? '';
            if (phase === 'DELETED') cache.delete(keyOf(obj));
            else cache.set(keyOf(obj), rv);
            resourceVersion = rv || resourceVersion;
            lastEventAt = receivedAt;
            sink.change(kind, obj, phase === 'DELETED', receivedAt);
            if (opts.full()) finish('paused');
            return;
          }
          case 'BOOKMARK':
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            return;
          case 'ERROR':
            // A Status object; the server closes the stream after it.
            if (obj.code === 410) expired = true;
            else statusError = `watch error ${obj.code ?? '?'}: ${obj.message ?? JSON.stringify(obj)}`;
            return;
          default:
            log.debug({ phase }, 'unknown watch event type ignored');
        }
      };
      const onDone = (err: unknown): void => {
        if (expired || (err as { statusCode?: number } | null)?.statusCode === 410) return finish('expired');
        if (statusError !== undefined) return finish(new WatchError(statusError));
        // client-node's inactivity timeout: the watch was idle for 30 s; just reopen it.
        if (err && (err as { name?: string }).name !== 'TimeoutError') {
          return finish(err instanceof Error ? err : new WatchError(JSON.stringify(err)));
        }
        finish('closed');
      };
      watch
        .watch(path, { resourceVersion, allowWatchBookmarks: true }, onEvent, onDone)
        .then((c) => {
          controller = c;
          if (ended) c.abort();
        })
        .catch((err: unknown) => finish(err instanceof Error ? err : new WatchError(String(err))));
    });
  }

  function checkSilence(): void {
    const s = session;
    if (state !== 'running' || s === undefined || s.listing) return;
    const silentMs = performance.now() - lastActivity;
    if (silentMs > stallMs) {
      log.warn({ silentMs: Math.round(silentMs), stallMs }, 'watch silent for too long; restarting informer');
      launch(true, 'watchdog-silent');
    }
  }

  async function probe(): Promise<void> {
    const s = session;
    if (probing || state !== 'running' || s === undefined || s.listing) return;
    probing = true;
    try {
      const server = await listPage(kubeConfig, path, { limit: '1' }, s.abort.signal);
      if (session !== s || state !== 'running' || s.listing) return;
      const local = selectCacheSummary(cache);
      const first = server.items[0];
      const remote = {
        count: server.items.length + (server.metadata?.remainingItemCount ?? 0),
        first:
          first === undefined
            ? undefined
            : { key: keyOf(first), resourceVersion: first.metadata?.resourceVersion ?? '' },
      };
      // Without remainingItemCount (older servers) only the first object can be compared.
      const countKnown = !server.metadata?.continue || server.metadata.remainingItemCount !== undefined;
      const differs =
        (countKnown && remote.count !== local.count) ||
        remote.first?.key !== local.first?.key ||
        remote.first?.resourceVersion !== local.first?.resourceVersion;
      const now = performance.now();
      if (differs && previousProbe.differed && lastEventAt < previousProbe.at) {
        log.warn(
          { local, remote },
          'watch delivers nothing although the objects changed; restarting informer',
        );
        launch(true, 'watchdog-stale');
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
      if (state !== 'stopped' || watchdog !== undefined) return;
      launch(true);
      watchdog = setInterval(checkSilence, Math.max(1_000, Math.min(stallMs / 3, 30_000)));
      if (probeIntervalMs > 0) probeTimer = setInterval(() => void probe(), probeIntervalMs);
    },
    pause() {
      // A watch in progress closes at once; a list in progress goes on (the sink waits for room)
      // and the session pauses before it opens its watch.
      if (state === 'running' && session !== undefined && !session.listing) session.closeWatch?.();
    },
    resume() {
      if (state === 'paused') launch(false);
    },
    restart(reason) {
      if (state === 'stopped') return;
      launch(true, reason);
    },
    synced: () => synced,
    stop() {
      state = 'stopped';
      clearTimeout(backoffTimer);
      clearInterval(watchdog);
      clearInterval(probeTimer);
      endSession();
      return Promise.resolve();
    },
  };
}

/** The cache key of an object: namespace/name, or name for cluster-scoped objects. */
function keyOf(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name ?? ''}` : (obj.metadata?.name ?? '');
}

/**
 * Count and first object of a cache in the API server's list order. Pure. etcd keys are
 * <prefix>/<namespace>/<name>, and the server lists in key order, which for these ASCII keys is
 * JavaScript's string order.
 */
export function selectCacheSummary(cache: ReadonlyMap<string, string>): {
  count: number;
  first: { key: string; resourceVersion: string } | undefined;
} {
  let first: string | undefined;
  for (const key of cache.keys()) if (first === undefined || key < first) first = key;
  return {
    count: cache.size,
    first: first === undefined ? undefined : { key: first, resourceVersion: cache.get(first)! },
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
    const query: Record<string, string> = { limit: String(pageSize) };
    if (cont !== undefined) query.continue = cont;
    const page = await listPage(kc, path, query, signal);
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

/** One GET of a collection with the kubeconfig's credentials; rejects on non-200 and after 60 s. */
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
  const options: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
  await kc.applyToHTTPSOptions(options);
  return new Promise<RawList>((resolve, reject) => {
    const req = request(url, { ...options, signal, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          const what = `GET ${url.pathname}${url.search}: ${res.statusCode} ${body.slice(0, 300)}`;
          reject(new HttpError(res.statusCode ?? 0, what));
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
