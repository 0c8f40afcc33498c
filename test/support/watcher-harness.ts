// Test and benchmark support for the watcher: run it as a child process, follow a topic in the
// background, fold the log the way the cluster-events contract says readers must, and list what
// the API server holds in the same terms. Effectful (processes, Kafka reads, API lists); the
// fold itself (foldClusterEvents) is pure.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { startComponent } from '../../src/devenv/control-plane.ts';
import { freePort } from '../../src/devenv/free-port.ts';
import type { KafkaBroker } from '../../src/devenv/kafka.ts';
import { followRecords } from '../../src/devenv/stack.ts';
import { decodeClusterEvent, type ClusterEvent } from '../../src/contracts/cluster-events.ts';
import { eventKey } from '../../src/watcher/envelope.ts';
import { listAll } from '../../src/watcher/informer.ts';
import { watchedKinds } from '../../src/watcher/kinds.ts';
import { canonicalJson } from '../../src/watcher/parse.ts';
import { evolveClusterView } from '../../src/projection/cluster-view.ts';
import { initialState } from '../../src/projection/model.ts';

export { freePort };

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 90_000,
  diagnostics?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${diagnostics ? `\n${diagnostics()}` : ''}`,
      );
    }
    await sleep(100);
  }
}

// ---- the watcher as a child process ---------------------------------------------------------------

export interface WatcherProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly healthPort: number;
  readonly logPath: string;
  /** Resolves with the exit code or signal once the process has exited. */
  readonly exited: Promise<string>;
  logTail(lines?: number): string;
  /** Scrapes /metrics and returns the value of one sample line (labels in Prometheus syntax). */
  metric(name: string, labels?: string): Promise<number | undefined>;
  kill(signal: NodeJS.Signals): Promise<string>;
}

export interface WatcherProcessOptions {
  kubeconfigPath: string;
  brokers: string[];
  topic: string;
  leaseName: string;
  args?: readonly string[];
}

const running = new Set<WatcherProcess>();

export async function startWatcherProcess(opts: WatcherProcessOptions): Promise<WatcherProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kseip-watcher-test-'));
  const component = await startComponent(
    'watcher',
    'src/watcher/main.ts',
    [
      '--kubeconfig',
      opts.kubeconfigPath,
      '--brokers',
      opts.brokers.join(','),
      '--topic',
      opts.topic,
      '--lease-namespace',
      'default',
      '--lease-name',
      opts.leaseName,
      '--lease-duration',
      '3s',
      '--renew-deadline',
      '2s',
      '--retry-period',
      '250ms',
      ...(opts.args ?? []),
    ],
    { logDir: dir },
  );
  const proc: WatcherProcess = {
    child: component.child,
    pid: component.pid,
    healthPort: component.healthPort,
    logPath: component.logFile,
    exited: component.exited.finally(() => running.delete(proc)),
    logTail: (lines = 40) => component.logTail(lines),
    metric: (name, labels) => component.metric(name, labels),
    async kill(signal) {
      component.kill(signal);
      return component.exited;
    },
  };
  running.add(proc);
  return proc;
}

/** Ends every watcher process still running (for `after` hooks). */
export async function killAllWatcherProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
}

// ---- following a topic --------------------------------------------------------------------------------

export interface LoggedEvent {
  readonly offset: number;
  readonly key: string | null;
  readonly event: ClusterEvent;
}

export interface TopicFollower {
  readonly events: LoggedEvent[];
  /** Records that did not decode (must stay empty). */
  readonly undecodable: string[];
  stop(): Promise<void>;
  /** The last `n` events as one line each, for failure messages. */
  describe(n?: number): string;
}

/** Reads `topic` from the beginning, on and on, decoding every record (devenv's followRecords). */
export function followTopic(broker: KafkaBroker, topic: string): TopicFollower {
  const followed = followRecords({ kafka: broker }, topic, decodeClusterEvent);
  const events = (): LoggedEvent[] =>
    followed.records.map((r) => ({ offset: r.offset, key: r.key, event: r.value }));
  return {
    get events() {
      return events();
    },
    undecodable: followed.undecodable,
    async stop() {
      await followed.stop();
      const failure = followed.undecodable.find((u) => u.startsWith('the follower stopped'));
      if (failure !== undefined) throw new Error(failure);
    },
    describe(n = 40) {
      return events()
        .slice(-n)
        .map((e) => `${e.offset} ${e.event.type} ${eventKey(e.event.object)} term=${e.event.producer.term}`)
        .join('\n');
    },
  };
}

// ---- the fold readers must do, and the API server's truth -------------------------------------------

/**
 * The object state the log describes, by key kind/namespace/name → canonical payload JSON,
 * following the contract in src/contracts/cluster-events.ts: a watcher's events from a term older
 * than its newest LeadershipAcquired are ignored, Observed sets, Deleted removes, and
 * ListCompleted drops the objects of its kind not observed since the matching ListStarted. Pure.
 */
export function foldClusterEvents(events: readonly ClusterEvent[]): Map<string, string> {
  const objects = new Map<string, { kind: string; payload: string }>();
  const openLists = new Map<string, { kind: string; seen: Set<string> }>();
  let newestTerm = -1;
  for (const e of events) {
    if (e.producer.component === 'watcher') {
      if (e.producer.term < newestTerm) continue;
      newestTerm = Math.max(newestTerm, e.producer.term);
    }
    const key = eventKey(e.object);
    switch (e.type) {
      case 'LeadershipAcquired':
      case 'NodeLost':
      case 'NodeBack':
        break;
      case 'ListStarted':
        openLists.set(e.payload.listId, { kind: e.payload.kind, seen: new Set() });
        break;
      case 'ListCompleted': {
        const list = openLists.get(e.payload.listId);
        openLists.delete(e.payload.listId);
        if (list === undefined) break;
        for (const [k, o] of objects) if (o.kind === list.kind && !list.seen.has(k)) objects.delete(k);
        break;
      }
      case 'StaticEgressIPObserved':
      case 'ClusterStaticEgressIPObserved':
      case 'StaticEgressIPPoolObserved':
      case 'ServiceObserved':
      case 'EndpointSliceObserved':
      case 'PodObserved':
      case 'NodeObserved':
      case 'NamespaceObserved':
      case 'ServiceCIDRObserved':
        objects.set(key, { kind: e.object.kind, payload: canonicalJson(e.payload) });
        for (const list of openLists.values()) if (list.kind === e.object.kind) list.seen.add(key);
        break;
      case 'StaticEgressIPDeleted':
      case 'ClusterStaticEgressIPDeleted':
      case 'StaticEgressIPPoolDeleted':
      case 'ServiceDeleted':
      case 'EndpointSliceDeleted':
      case 'PodDeleted':
      case 'NodeDeleted':
      case 'NamespaceDeleted':
      case 'ServiceCIDRDeleted':
        objects.delete(key);
        break;
      default: {
        const _exhaustive: never = e;
        return _exhaustive;
      }
    }
  }
  return new Map([...objects].map(([k, o]) => [k, o.payload]));
}

/**
 * The same state as the projector's own cluster view sees it (src/projection/cluster-view.ts),
 * so the watcher's output is checked against the reader that matters, not only our own fold.
 */
export function selectProjectionView(events: readonly LoggedEvent[]): Map<string, string> {
  const state = initialState();
  for (const e of events) evolveClusterView(state, e.event, e.offset);
  const out = new Map<string, string>();
  const put = (kind: string, namespace: string | undefined, name: string, payload: unknown): void => {
    out.set(
      eventKey({
        kind: kind as LoggedEvent['event']['object']['kind'],
        name,
        ...(namespace ? { namespace } : {}),
      }),
      canonicalJson(payload),
    );
  };
  for (const r of state.pods.values()) put('Pod', r.namespace, r.name, r.p);
  for (const r of state.nodes.values()) put('Node', undefined, r.name, r.p);
  for (const r of state.services.values()) put('Service', r.namespace, r.name, r.p);
  for (const [key, r] of state.slices)
    put('EndpointSlice', r.namespace, key.slice(r.namespace.length + 1), r.p);
  for (const r of state.namespaces.values()) put('Namespace', undefined, r.name, r.p);
  for (const r of state.pools.values()) put('StaticEgressIPPool', undefined, r.name, r.p);
  for (const r of state.serviceCIDRs.values()) put('ServiceCIDR', undefined, r.name, r.p);
  for (const r of state.policies.values()) put(r.kind, r.namespace, r.name, r.p);
  return out;
}

/** What the API server holds now, in the fold's terms (objects that do not parse are left out). */
export async function selectApiServerState(kc: KubeConfig): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const signal = new AbortController().signal;
  for (const spec of watchedKinds) {
    const { items } = await listAll(kc, spec.path, 500, signal);
    for (const obj of items) {
      const parsed = spec.parse(obj);
      if (parsed._tag === 'Right')
        out.set(eventKey(parsed.right.object), canonicalJson(parsed.right.payload));
    }
  }
  return out;
}

/** The differences between two states, one line each (empty when equal). */
export function diffStates(log: Map<string, string>, api: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [k, v] of api) {
    const l = log.get(k);
    if (l === undefined) lines.push(`missing in log: ${k} ${v}`);
    else if (l !== v) lines.push(`differs: ${k}\n  log: ${l}\n  api: ${v}`);
  }
  for (const k of log.keys()) if (!api.has(k)) lines.push(`in log but gone from the API server: ${k}`);
  return lines.sort();
}
