// The liveness service's effectful shell: consumes kseip.heartbeats.v1, runs the pure detector
// (./detector.ts) on its own clock (a tick every ~50 ms), and, while it leads, publishes the
// verdicts as NodeLost / NodeBack to kseip.cluster-events.v1 — the only place where the passing
// of time enters the log. Owns one consumer, one admin client, one idempotent producer.
//
// - Every replica consumes and judges (a warm standby); only the leader publishes. A new leader
//   first writes LeadershipAcquired{term}, then the current verdict of every node it knows
//   (the previous leader may have died before writing its last ones; both verdicts are
//   idempotent for the projector). Without an elector the service leads at once with a fixed term.
// - Verdicts are sent in order, one request in flight, retried until sent or leadership ends
//   (then the queue is dropped: the next leader re-publishes current verdicts).
// - Seeding: at start the consumer re-reads the last seedWindowMs of heartbeats; nodes seen there
//   are given lostAfterMs to heartbeat before they are declared lost (see the detector).
// - Records that do not decode go to the dead-letter topic; the consumer never stops on them.
import { randomUUID } from 'node:crypto';
import type { Admin, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterEvent, Producer as EventProducer } from '../contracts/cluster-events.ts';
import { decodeHeartbeat } from '../contracts/node-reports.ts';
import { TOPICS } from '../contracts/topics.ts';
import { createBackoff, sleepFor } from '../lib/backoff.ts';
import { every, systemClock, type Clock, type TimerHandle } from '../lib/clock.ts';
import { decodeNodeKeyed, type DeadLetterSink } from '../lib/dead-letter.ts';
import { OWN_GROUP_CONSUMER } from '../lib/kafka.ts';
import { keepConsumer } from '../lib/kept-consumer.ts';
import type { LeaderElector, Leadership } from '../lib/leader-election.ts';
import type { Logger } from '../lib/log.ts';
import { buildEvent, eventKey } from '../watcher/envelope.ts';
import {
  evolveDetector,
  initialDetectorState,
  selectCurrentVerdicts,
  type DetectorInput,
  type DetectorThresholds,
  type Verdict,
} from './detector.ts';

export interface LivenessOptions {
  kafka: Kafka;
  thresholds: DetectorThresholds;
  /** Judgement cadence. Default 50 ms. */
  tickMs?: number;
  /** Re-read this much heartbeat history at start (0: none). Default 30 s. */
  seedWindowMs?: number;
  /** Without an elector, lead at once with this term. */
  elector?: LeaderElector;
  standaloneTerm?: number;
  /** Names the Lease in LeadershipAcquired (object) when an elector is used. */
  lease?: { namespace: string; name: string };
  identity: string;
  deadLetter: DeadLetterSink;
  registry: Registry;
  log: Logger;
  clock?: Clock;
  heartbeatsTopic?: string;
  clusterEventsTopic?: string;
  /** Called with every event published (tests observe timing through it). */
  onPublished?: (event: ClusterEvent) => void;
}

export interface Liveness {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Consumer running, seeding done, not blind. */
  ready(): boolean;
  leading(): boolean;
}

interface Metrics {
  verdicts: Counter<'type'>;
  heartbeats: Counter;
  deadLetters: Counter;
  publishFailures: Counter;
  leader: Gauge;
  blind: Gauge;
  consumerRestarts: Counter;
  consumerRejoins: Counter;
}

/** Exported for the naming rules test (test/metric-names.unit.test.ts). */
export function createLivenessMetrics(registry: Registry, nodes: () => Record<string, number>): Metrics {
  const registers = [registry];
  new Gauge({
    name: 'kseip_liveness_nodes',
    help: 'Nodes by liveness status (alive, lost, seeded)',
    labelNames: ['status'],
    registers,
    collect() {
      for (const [status, count] of Object.entries(nodes())) this.set({ status }, count);
    },
  });
  return {
    verdicts: new Counter({
      name: 'kseip_liveness_verdicts_total',
      help: 'NodeLost / NodeBack events published',
      labelNames: ['type'],
      registers,
    }),
    heartbeats: new Counter({ name: 'kseip_liveness_heartbeats_total', help: 'Heartbeats read', registers }),
    deadLetters: new Counter({
      name: 'kseip_liveness_dead_letters_total',
      help: 'Heartbeat records that did not decode',
      registers,
    }),
    publishFailures: new Counter({
      name: 'kseip_liveness_publish_errors_total',
      help: 'Failed attempts to publish liveness events (retried)',
      registers,
    }),
    consumerRestarts: new Counter({
      name: 'kseip_liveness_kafka_consumer_restarts_total',
      help: 'Heartbeat consumers made again after kafkajs gave up on one (a broker away for longer than its retries)',
      registers,
    }),
    consumerRejoins: new Counter({
      name: 'kseip_liveness_kafka_consumer_rejoins_total',
      help: 'Re-joins of the heartbeat consumer group after the first (a membership lost in a broker outage)',
      registers,
    }),
    leader: new Gauge({ name: 'kseip_liveness_leader', help: '1 while this replica publishes', registers }),
    blind: new Gauge({
      name: 'kseip_liveness_blind',
      help: '1 while liveness cannot fetch heartbeats (no verdicts are given then)',
      registers,
    }),
  };
}

export function createLiveness(opts: LivenessOptions): Liveness {
  const { kafka, thresholds, log } = opts;
  const clock = opts.clock ?? systemClock;
  const tickMs = opts.tickMs ?? 50;
  const seedWindowMs = opts.seedWindowMs ?? 30_000;
  const heartbeatsTopic = opts.heartbeatsTopic ?? TOPICS.heartbeats;
  const clusterEventsTopic = opts.clusterEventsTopic ?? TOPICS.clusterEvents;
  const detector = initialDetectorState();
  const metrics = createLivenessMetrics(opts.registry, () => {
    const counts: Record<string, number> = { alive: 0, lost: 0, seeded: 0 };
    for (const track of detector.nodes.values()) counts[track.status] = (counts[track.status] ?? 0) + 1;
    return counts;
  });
  const lifetime = new AbortController();
  const timers: TimerHandle[] = [];

  let admin: Admin | undefined;
  let producer: Producer | undefined;

  // ---- seeding: history = offsets below the end seen at start, per partition ----
  const historyEnd = new Map<number, bigint>();
  const historyStarted = new Set<number>();
  const maxLiveOffset = new Map<number, bigint>();
  const seedNodes = new Map<string, string>();
  let seeded = false;

  // ---- leadership and publishing ----
  let leadership: { term: number; epoch: number } | undefined;
  let leadershipEpoch = 0;
  let queue: ClusterEvent[] = [];
  let wake: (() => void) | undefined;

  function step(input: DetectorInput): void {
    const verdicts = evolveDetector(detector, input, thresholds);
    metrics.blind.set(detector.blind ? 1 : 0);
    for (const v of verdicts) {
      log.info({ node: v.node, verdict: v.type, leading: leadership !== undefined }, 'liveness verdict');
      publishVerdict(v);
    }
  }

  function envelope(
    term: number,
    observedAt: string,
  ): { producer: EventProducer; id: string; observedAt: string } {
    return { producer: { component: 'liveness', term }, id: randomUUID(), observedAt };
  }

  function publishVerdict(v: Verdict): void {
    if (leadership === undefined) return;
    const ref = { kind: 'Node' as const, name: v.node };
    const ctx = envelope(leadership.term, clock.wallTime());
    const event =
      v.type === 'NodeBack'
        ? buildEvent('NodeBack', ref, { heartbeatAt: v.heartbeatAt }, ctx)
        : buildEvent('NodeLost', ref, { lastHeartbeatAt: v.lastHeartbeatAt, silenceMs: v.silenceMs }, ctx);
    enqueue(event);
  }

  function enqueue(event: ClusterEvent): void {
    queue.push(event);
    wake?.();
  }

  async function sendLoop(): Promise<void> {
    const backoff = createBackoff({ initialMs: 50, maxMs: 2_000 });
    while (!lifetime.signal.aborted) {
      if (queue.length === 0 || leadership === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const epoch = leadership.epoch;
      const batch = queue.slice(0, 100);
      try {
        producer ??= kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
        });
        await producer.connect();
        await producer.send({
          topic: clusterEventsTopic,
          messages: batch.map((e) => ({ key: eventKey(e.object), value: JSON.stringify(e) })),
        });
        backoff.reset();
        if (leadership?.epoch === epoch) queue = queue.slice(batch.length);
        for (const e of batch) {
          if (e.type === 'NodeLost' || e.type === 'NodeBack') metrics.verdicts.inc({ type: e.type });
          opts.onPublished?.(e);
        }
      } catch (err) {
        if (lifetime.signal.aborted) return;
        metrics.publishFailures.inc();
        const retryInMs = backoff.next();
        log.warn({ err, pending: queue.length, retryInMs }, 'publishing liveness events failed; retrying');
        await sleepFor(clock, retryInMs, lifetime.signal);
      }
    }
  }

  function lead(term: number, object: { namespace: string; name: string } | undefined): void {
    leadershipEpoch++;
    leadership = { term, epoch: leadershipEpoch };
    queue = [];
    metrics.leader.set(1);
    log.info({ term }, 'leading: publishing liveness verdicts');
    if (object !== undefined) {
      enqueue(
        buildEvent(
          'LeadershipAcquired',
          { kind: 'Node', namespace: object.namespace, name: object.name },
          { holder: opts.identity },
          envelope(term, clock.wallTime()),
        ),
      );
    }
    for (const v of selectCurrentVerdicts(detector)) publishVerdict(v);
  }

  function follow(reason: string): void {
    if (leadership === undefined) return;
    log.warn({ term: leadership.term, reason }, 'no longer leading: verdicts are judged but not published');
    leadership = undefined;
    queue = [];
    metrics.leader.set(0);
  }

  async function campaign(elector: LeaderElector): Promise<void> {
    const backoff = createBackoff({ initialMs: 1_000, maxMs: 1_000 });
    while (!lifetime.signal.aborted) {
      let won: Leadership;
      try {
        won = await elector.acquire(lifetime.signal);
        backoff.reset();
      } catch (err) {
        if (lifetime.signal.aborted) return;
        const retryInMs = backoff.next();
        log.warn({ err, retryInMs }, 'leader election failed; retrying');
        await sleepFor(clock, retryInMs, lifetime.signal);
        continue;
      }
      lead(won.term, opts.lease);
      const reason = await won.lost;
      follow(reason);
    }
  }

  function eachBatch({ batch }: EachBatchPayload): Promise<void> {
    const end = historyEnd.get(batch.partition);
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      const history = end !== undefined && offset < end;
      if (!history) {
        // The first fetch can run before the seek to the seed window; its records come again.
        const seen = maxLiveOffset.get(batch.partition);
        if (seen !== undefined && offset <= seen) continue;
        maxLiveOffset.set(batch.partition, offset);
      }
      const heartbeat = decodeNodeKeyed(
        message,
        { topic: heartbeatsTopic, partition: batch.partition, what: 'heartbeat' },
        decodeHeartbeat,
        opts.deadLetter,
      );
      if (heartbeat === undefined) {
        metrics.deadLetters.inc();
        continue;
      }
      if (history) {
        if (!seeded) seedNodes.set(heartbeat.node, new Date(Number(message.timestamp)).toISOString());
        continue;
      }
      metrics.heartbeats.inc();
      step({ type: 'HeartbeatArrived', node: heartbeat.node, at: clock.now(), wall: clock.wallTime() });
    }
    return Promise.resolve();
  }

  function finishSeeding(why: string): void {
    if (seeded) return;
    seeded = true;
    log.info({ nodes: seedNodes.size, why }, 'seeded from recent heartbeats');
    step({
      type: 'Seeded',
      nodes: [...seedNodes].map(([node, lastWall]) => ({ node, lastWall })),
      at: clock.now(),
    });
    seedNodes.clear();
  }

  function historyProgress(partition: number, first: string | null, last: string): void {
    const end = historyEnd.get(partition);
    if (end === undefined || seeded) return;
    if (first !== null && BigInt(first) < end) historyStarted.add(partition);
    if (historyStarted.has(partition) && BigInt(last) >= end - 1n) historyEnd.delete(partition);
    if (historyEnd.size === 0) finishSeeding('history read');
  }

  // A consumer made again after kafkajs gave up starts at the end of the topic: heartbeats missed
  // in the outage are stale anyway, and blindness (no fetch) kept verdicts back meanwhile.
  const kept = keepConsumer({
    groupIdBase: `kseip-liveness-${randomUUID().slice(0, 8)}`,
    what: 'heartbeat consumer',
    log,
    clock,
    counters: { restarts: metrics.consumerRestarts, rejoins: metrics.consumerRejoins },
    make: (groupId) => {
      const c = kafka.consumer({
        ...OWN_GROUP_CONSUMER,
        groupId,
        // Short long-polls: a completed fetch is how liveness knows it can see (blindness).
        maxWaitTimeInMs: 50,
      });
      c.on(c.events.FETCH, () => step({ type: 'Sighted', at: clock.now() }));
      c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.topic === heartbeatsTopic)
          historyProgress(payload.partition, payload.firstOffset, payload.lastOffset);
      });
      c.on(c.events.CRASH, () => finishSeeding('consumer restarted'));
      return c;
    },
    run: async (c) => {
      await c.connect();
      await c.subscribe({ topic: heartbeatsTopic, fromBeginning: false });
      await c.run({ autoCommit: false, eachBatchAutoResolve: true, eachBatch });
    },
  });

  async function startConsumer(): Promise<void> {
    admin ??= kafka.admin();
    await admin.connect();
    const seekTo = new Map<number, string>();
    if (seedWindowMs > 0) {
      const ends = await admin.fetchTopicOffsets(heartbeatsTopic);
      const starts = await admin.fetchTopicOffsetsByTimestamp(heartbeatsTopic, Date.now() - seedWindowMs);
      for (const { partition, high } of ends) {
        const start = starts.find((s) => s.partition === partition)?.offset ?? high;
        if (BigInt(start) < BigInt(high)) {
          historyEnd.set(partition, BigInt(high));
          seekTo.set(partition, start);
        }
      }
    }
    await kept.start();
    for (const [partition, offset] of seekTo)
      kept.current()?.seek({ topic: heartbeatsTopic, partition, offset });
    if (historyEnd.size === 0) finishSeeding('no recent history');
  }

  return {
    async start() {
      void sendLoop();
      timers.push(every(clock, tickMs, () => step({ type: 'Tick', now: clock.now() })));
      // History must not take forever to read; after this the seed is whatever was read.
      timers.push(
        clock.setTimeout(() => finishSeeding('seed deadline'), Math.max(5_000, thresholds.lostAfterMs * 10)),
      );
      const backoff = createBackoff({ initialMs: 200, maxMs: 5_000 });
      for (;;) {
        lifetime.signal.throwIfAborted();
        try {
          await startConsumer();
          break;
        } catch (err) {
          if (lifetime.signal.aborted) throw err;
          const retryInMs = backoff.next();
          log.warn({ err, retryInMs }, 'heartbeat consumer could not start; retrying');
          await sleepFor(clock, retryInMs, lifetime.signal);
        }
      }
      if (opts.elector !== undefined) void campaign(opts.elector);
      else lead(opts.standaloneTerm ?? 0, undefined);
    },

    async stop() {
      lifetime.abort();
      wake?.();
      for (const t of timers) t.cancel();
      follow('stopping');
      await opts.elector?.release();
      await kept.stop().catch((err: unknown) => log.warn({ err }, 'consumer disconnect failed'));
      await producer?.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
      await admin?.disconnect().catch((err: unknown) => log.warn({ err }, 'admin disconnect failed'));
    },

    ready: () => kept.current() !== undefined && !kept.restarting() && seeded && !detector.blind,
    leading: () => leadership !== undefined,
  };
}
