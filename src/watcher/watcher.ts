// The watcher: turns the API server's objects into cluster events on Kafka. Effectful: owns the
// Lease candidacy, one informer per watched kind, the event buffer and the Kafka producer.
//
// Only the Lease holder publishes. On winning a term it publishes LeadershipAcquired{term} and
// starts the informers; every event it writes carries producer {component: 'watcher', term}, so
// readers fence a deposed leader's late writes. Every informer (re)start publishes
// ListStarted, the Observed event of every listed object, then ListCompleted{count}: readers drop
// what was not seen in between, which is how deletions missed while no watcher ran get into the
// log. Watch events become Observed/Deleted events, except changes that leave the payload
// (what projections read) as it was. On losing the Lease it stops the informers and throws the
// unsent buffer away (logged and counted): the next leader relists everything anyway, and
// publishing after losing would only produce fenced events.
import { randomUUID } from 'node:crypto';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Kafka } from 'kafkajs';
import type { ClusterEventType, Producer } from '../contracts/cluster-events.ts';
import type { ObjectKind } from '../contracts/primitives.ts';
import { topicSpecs, TOPICS } from '../contracts/topics.ts';
import { createLeaderElector, type LeaderElector, type Leadership } from '../lib/leader-election.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { readTermFloor } from '../lib/term-floor.ts';
import { buildEvent, eventKey, objectRefOf } from './envelope.ts';
import { superviseInformer, type InformerSink, type SupervisedInformer } from './informer.ts';
import { watchedKinds, type KindSpec } from './kinds.ts';
import { changesSkipped, isLeader, parseFailures } from './metrics.ts';
import type { ParseError } from './parse.ts';
import { createPublisher, type Pending, type Publisher } from './publisher.ts';

export interface WatcherOptions {
  kubeConfig: KubeConfig;
  kafka: Kafka;
  /** Default kseip.cluster-events.v1. */
  topic?: string;
  /** Create the topic (with topicSpecs' settings) if it does not exist. Default true. */
  createTopic?: boolean;
  /** Replication factor when creating the topic. Default 1. */
  replicationFactor?: number;
  /** Unique per process. */
  identity: string;
  lease: {
    namespace: string;
    name: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Events held while Kafka does not acknowledge; beyond it the informers pause. Default 10000. */
  bufferCapacity?: number;
  /** Informer tunables (see informer.ts). */
  informer?: {
    stallMs?: number;
    probeIntervalMs?: number;
    initialBackoffMs?: number;
    maxBackoffMs?: number;
  };
  /** Which kinds to watch; default all of them (kinds.ts). */
  kinds?: readonly KindSpec[];
  log?: Logger;
  /** Benchmarks: called after every acknowledged batch. */
  onAck?: (batch: readonly Pending[], ackedAt: number) => void;
  /** Tests: drop watch events of a kind (a stalled watch) while this returns true. */
  dropWatchEvents?: (kind: ObjectKind) => boolean;
}

export interface Watcher {
  /** Runs until stop(): stands by, leads, stands by again after losing the Lease. */
  run(): Promise<void>;
  /** True while this replica leads and its informers have completed their first lists. */
  ready(): boolean;
  /** Current term while leading, else undefined. */
  term(): number | undefined;
  /** Graceful stop: stop the informers, flush the buffer (up to flushTimeoutMs), release the Lease. */
  stop(flushTimeoutMs?: number): Promise<void>;
  /** Tests: restart one kind's informer as the watchdog would. */
  restartInformer(kind: ObjectKind): void;
}

interface Published {
  readonly uid: string | undefined;
  readonly payload: unknown;
}

export function createWatcher(opts: WatcherOptions): Watcher {
  const log = opts.log ?? createLogger('watcher', { identity: opts.identity });
  const topic = opts.topic ?? TOPICS.clusterEvents;
  const kinds = opts.kinds ?? watchedKinds;
  const specByKind = new Map(kinds.map((k) => [k.kind, k]));
  const capacity = opts.bufferCapacity ?? 10_000;
  // The cluster-events settings (one partition, kept forever) also for a test's own topic name.
  const clusterEventsSpec = topicSpecs(opts.replicationFactor ?? 1).find(
    (s) => s.topic === TOPICS.clusterEvents,
  )!;
  const elector: LeaderElector = createLeaderElector({
    kubeConfig: opts.kubeConfig,
    namespace: opts.lease.namespace,
    name: opts.lease.name,
    identity: opts.identity,
    ...(opts.lease.leaseDurationMs === undefined ? {} : { leaseDurationMs: opts.lease.leaseDurationMs }),
    ...(opts.lease.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: opts.lease.renewDeadlineMs }),
    ...(opts.lease.retryPeriodMs === undefined ? {} : { retryPeriodMs: opts.lease.retryPeriodMs }),
    termFloor: () => readTermFloor({ kafka: opts.kafka, topic, component: 'watcher', log }),
    log,
  });
  const stopping = new AbortController();
  let stopRequested: Promise<void> | undefined;
  let flushTimeoutMs = 10_000;
  let term: { leadership: Leadership; informers: SupervisedInformer[]; listed: Set<ObjectKind> } | undefined;
  let running: Promise<void> | undefined;

  async function lead(leadership: Leadership): Promise<void> {
    const producer: Producer = { component: 'watcher', term: leadership.term };
    const log2 = log.child({ term: leadership.term });
    const publisher: Publisher = createPublisher({
      kafka: opts.kafka,
      topic,
      capacity,
      log: log2,
      ...(opts.createTopic === false ? {} : { ensureTopic: { ...clusterEventsSpec, topic } }),
      ...(opts.onAck ? { onAck: opts.onAck } : {}),
    });
    // The last payload published per object key in this term: the baseline of "did it change?".
    const published = new Map<string, Published>();
    const listed = new Set<ObjectKind>();

    const offer = (
      type: ClusterEventType,
      ref: ReturnType<typeof objectRefOf>,
      payload: unknown,
      receivedAt?: number,
    ): Pending => {
      const event = buildEvent(type, ref, payload as never, {
        id: randomUUID(),
        observedAt: new Date().toISOString(),
        producer,
      });
      return receivedAt === undefined
        ? { event, key: eventKey(ref) }
        : { event, key: eventKey(ref), receivedAt };
    };

    const sink: InformerSink = {
      async list(kind, listId, items, signal) {
        const spec = specByKind.get(kind)!;
        const marker = { kind, name: '' };
        await publisher.offerWhenSpace(offer('ListStarted', marker, { kind, listId }), signal);
        const seen = new Set<string>();
        let count = 0;
        for (const obj of items) {
          const ref = objectRefOf(kind, obj);
          const key = eventKey(ref);
          const parsed = spec.parse(obj);
          if (parsed._tag === 'Left') {
            reportParseFailure(kind, ref, parsed.left);
            continue;
          }
          await publisher.offerWhenSpace(
            offer(spec.observed, parsed.right.object, parsed.right.payload),
            signal,
          );
          published.set(key, { uid: ref.uid, payload: parsed.right.payload });
          seen.add(key);
          count++;
        }
        // Readers drop what this list did not show; so does the baseline.
        const prefix = `${kind}/`;
        for (const key of published.keys())
          if (key.startsWith(prefix) && !seen.has(key)) published.delete(key);
        await publisher.offerWhenSpace(offer('ListCompleted', marker, { kind, listId, count }), signal);
        listed.add(kind);
        log2.info({ kind, listId, count }, 'list published');
      },

      change(kind, obj, deleted, receivedAt) {
        const spec = specByKind.get(kind)!;
        const ref = objectRefOf(kind, obj);
        const key = eventKey(ref);
        const last = published.get(key);
        if (deleted) {
          if (last === undefined) return; // never published (or already dropped by a list)
          published.delete(key);
          publisher.offer(offer(spec.deleted, ref, {}, receivedAt));
          return;
        }
        const parsed = spec.parse(obj);
        if (parsed._tag === 'Left') {
          reportParseFailure(kind, ref, parsed.left);
          return;
        }
        const { object, payload } = parsed.right;
        if (last !== undefined && last.uid === object.uid && spec.same(last.payload, payload)) {
          changesSkipped.inc({ kind });
          return;
        }
        published.set(key, { uid: object.uid, payload });
        publisher.offer(offer(spec.observed, object, payload, receivedAt));
      },
    };

    const informers = kinds.map((spec) =>
      superviseInformer({
        kubeConfig: opts.kubeConfig,
        kind: spec.kind,
        path: spec.path,
        sink,
        full: () => publisher.full,
        log: log2,
        ...opts.informer,
        ...(opts.dropWatchEvents ? { dropWatchEvents: () => opts.dropWatchEvents!(spec.kind) } : {}),
      }),
    );
    publisher.onFull(() => {
      for (const i of informers) i.pause();
    });
    publisher.onSpace(() => {
      for (const i of informers) i.resume();
    });

    term = { leadership, informers, listed };
    isLeader.set(1);
    const acquired = {
      kind: 'StaticEgressIP' as const,
      namespace: opts.lease.namespace,
      name: opts.lease.name,
    };
    publisher.offer(offer('LeadershipAcquired', acquired, { holder: opts.identity }));
    for (const i of informers) i.start();

    const ended = await Promise.race([
      leadership.lost.then((reason) => ({ lost: reason })),
      new Promise<{ lost?: undefined }>((resolve) => {
        if (stopping.signal.aborted) resolve({});
        stopping.signal.addEventListener('abort', () => resolve({}), { once: true });
      }),
    ]);
    isLeader.set(0);
    term = undefined;
    await Promise.all(informers.map((i) => i.stop()));
    if (ended.lost !== undefined) {
      publisher.discard();
    } else {
      const flushed = await publisher.flush(flushTimeoutMs);
      if (!flushed)
        log2.warn(
          { depth: publisher.depth },
          'stopping with unacknowledged events (the next leader relists)',
        );
      publisher.discard();
    }
    await publisher.stop();
  }

  function reportParseFailure(
    kind: ObjectKind,
    ref: { namespace?: string; name: string },
    err: ParseError,
  ): void {
    parseFailures.inc({ kind });
    log.warn(
      { kind, namespace: ref.namespace, name: ref.name, reason: err.reason },
      'object does not parse; not published',
    );
  }

  async function loop(): Promise<void> {
    while (!stopping.signal.aborted) {
      let leadership: Leadership;
      try {
        leadership = await elector.acquire(stopping.signal);
      } catch (err) {
        if (stopping.signal.aborted) return;
        throw err;
      }
      await lead(leadership);
      if (stopping.signal.aborted) return;
    }
  }

  return {
    run() {
      running ??= loop();
      return running;
    },
    ready() {
      return term !== undefined && term.listed.size === kinds.length;
    },
    term() {
      return term?.leadership.term;
    },
    stop(timeoutMs = 10_000) {
      stopRequested ??= (async () => {
        flushTimeoutMs = timeoutMs;
        stopping.abort(new Error('watcher stopping'));
        await running?.catch((err: unknown) => log.error({ err }, 'watcher loop failed'));
        await elector.release();
      })();
      return stopRequested;
    },
    restartInformer(kind) {
      term?.informers.find((i) => i.kind === kind)?.restart('watchdog-stale');
    },
  };
}

export type { KindSpec };
export type { Pending };
export type { KubernetesObject };
