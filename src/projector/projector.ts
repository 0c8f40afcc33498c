// The projector service: folds kseip.cluster-events.v1 through the pure projection
// (./projection.ts) and writes what it decides (kseip.decisions.v1), the node rules that changed
// (kseip.node-rules.v1, key = node) and the records it could not decode or refused
// (kseip.dead-letter.v1, e.g. a forged term, see cluster-view.ts) in ONE Kafka
// transaction together with the consumed offset. Effectful: owns one transactional producer, one
// consumer in the projector's group, and short-lived admin/replay clients at start.
//
// Exactly once (docs/projector.md):
// - Outputs and the consumer offset commit or abort together (transaction.sendOffsets to the
//   projector's group), and readers use read_committed, so each output appears once even if the
//   process dies anywhere.
// - State is never stored: at start the projector reads the group's committed offset C, folds
//   cluster-events [0, C) WITHOUT producing (replay), and from C on folds, produces and commits.
//   The fold is deterministic, so the replayed state is the one the outputs up to C came from,
//   and the outputs from C on are exactly those of a single uninterrupted run.
// - It fetches in a consumer group of its own (unique per process, never committed to), reading
//   from offset 0: no seek, and a restart never waits for the killed process's membership to
//   expire. Its position lives only in the projector group, written by the transactions.
// - A failed transaction is aborted and retried with the SAME outputs (they are kept until a
//   commit succeeds; the fold never runs twice over an event). Errors Kafka calls permanent (a
//   newer producer with our transactional id: we are a zombie) end the service; the process
//   exits and its restart replays.
// - One active projector: the transactional id is fixed, so a second instance fences the first.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Partitioners,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type Kafka,
  type KafkaMessage,
  type Message,
  type Producer,
  type Transaction,
} from 'kafkajs';
import { decodeClusterEvent } from '../contracts/cluster-events.ts';
import { decisionKey } from '../contracts/decisions.ts';
import { TOPICS, topicSpecs } from '../contracts/topics.ts';
import { backoffDelay } from '../lib/backoff.ts';
import { renderDeadLetterMessage } from '../lib/dead-letter.ts';
import { CLIENT_RETRY, OWN_GROUP_CONSUMER } from '../lib/kafka.ts';
import type { Logger } from '../lib/log.ts';
import * as metrics from './metrics.ts';
import { evolve, initialState, type State } from '../projection/projection.ts';

/** Where the crash-injection hook can fire: after the outputs went out, before the commit. */
export type CrashPoint = 'after-produce' | 'after-offsets';

export interface ProjectorOptions {
  kafka: Kafka;
  log: Logger;
  /** Consumer group whose committed offset is the projector's position. */
  groupId?: string;
  /** Fixed per deployment: a restarted or second instance fences the previous one. */
  transactionalId?: string;
  topics?: { clusterEvents: string; decisions: string; nodeRules: string; deadLetter: string };
  /** Create the output topics (topicSpecs settings) when missing. Default true. */
  createTopics?: boolean;
  replicationFactor?: number;
  /** Broker-side limit for an open transaction; a crashed projector's is aborted after it. */
  transactionTimeoutMs?: number;
  /** Cluster events folded per transaction at most (catch-up after an outage). */
  maxEventsPerTransaction?: number;
  /** Attempts per transaction before the service gives up (retriable errors only). */
  maxTransactionAttempts?: number;
  /** Test hook: call `act` at `point` in the first transaction that covers `atOffset` or later. */
  crash?: { point: CrashPoint; atOffset: number; act: (point: CrashPoint) => void };
}

export interface Projector {
  /** Connects and starts consuming; the replay to the committed offset runs first (see ready()). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Replay done and the last batch reached the high watermark. */
  ready(): boolean;
  /** Rejects when the service stops for good (e.g. fenced); the process should exit then. */
  readonly failed: Promise<never>;
  /** The next cluster-events offset to fold (everything before it is in the state). */
  nextOffset(): number;
}

/** Output records of one transaction, kept until it commits. */
interface Pending {
  decisions: Message[];
  nodeRules: Message[];
  deadLetters: Message[];
  events: number;
}

const emptyPending = (): Pending => ({ decisions: [], nodeRules: [], deadLetters: [], events: 0 });

/** kafkajs puts a topic's records of one send in one record batch; keep it under message.max.bytes. */
const MAX_SEND_BYTES = 512 * 1024;

/** Between attempts at one transaction: 200 ms doubling to 5 s (jittered, src/lib/backoff.ts). */
const TRANSACTION_BACKOFF = { initialMs: 200, maxMs: 5_000 };

function* chunksBySize(messages: Message[]): Generator<Message[]> {
  let chunk: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = (m.value?.length ?? 0) + 64;
    if (chunk.length > 0 && bytes + size > MAX_SEND_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

function isRetriable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { retriable?: unknown }).retriable === true;
}

export function createProjector(opts: ProjectorOptions): Projector {
  const { kafka, log } = opts;
  const topics = opts.topics ?? {
    clusterEvents: TOPICS.clusterEvents,
    decisions: TOPICS.decisions,
    nodeRules: TOPICS.nodeRules,
    deadLetter: TOPICS.deadLetter,
  };
  const groupId = opts.groupId ?? 'kseip-projector';
  const maxEvents = opts.maxEventsPerTransaction ?? 2_000;
  const maxAttempts = opts.maxTransactionAttempts ?? 8;

  const state: State = initialState();
  let next = 0;
  let replayed = false;
  let caughtUp = false;
  let stopping = false;
  /** Set on a permanent failure: no batch is folded any more (kafkajs may still call us). */
  let dead = false;
  let producer: Producer | undefined;
  let consumer: Consumer | undefined;
  let pending = emptyPending();
  let fail: (err: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // Callers that never await `failed` must not see an unhandled rejection.
  failed.catch(() => undefined);

  /** Set the record aside on the dead-letter topic, in the same transaction as the outputs. */
  function deadLetter(message: KafkaMessage, partition: number, reason: string, what: string): void {
    metrics.deadLetters.inc();
    log.warn({ offset: Number(message.offset), reason }, what);
    pending.deadLetters.push(
      renderDeadLetterMessage('projector', {
        sourceTopic: topics.clusterEvents,
        partition,
        offset: message.offset,
        key: message.key,
        value: message.value,
        reason,
      }),
    );
  }

  /**
   * Fold one record at `offset`; with `live`, collect what it emits. A record that does not
   * decode, or that the fold refuses, is dead-lettered (only live: the replay below the
   * committed offset re-folds records whose dead letters went out with their transaction).
   */
  function fold(message: KafkaMessage, partition: number, live: boolean): void {
    const offset = Number(message.offset);
    const decoded = decodeClusterEvent(message.value);
    if (decoded._tag === 'Left') {
      if (live)
        deadLetter(message, partition, decoded.left.reason, 'cluster event does not decode; dead-lettered');
    } else {
      const out = evolve(state, decoded.right, offset);
      if (live && out.refused !== undefined)
        deadLetter(message, partition, out.refused, 'cluster event refused by the projection; dead-lettered');
      else if (live) {
        const headers: IHeaders = { 'kseip-source-offset': message.offset };
        for (const d of out.decisions)
          pending.decisions.push({ key: decisionKey(d), value: JSON.stringify(d), headers });
        for (const r of out.nodeRules)
          pending.nodeRules.push({ key: r.node, value: JSON.stringify(r), headers });
      }
    }
    metrics.eventsProcessed.inc({ phase: live ? 'live' : 'replay' });
    next = offset + 1;
    if (live) pending.events++;
  }

  async function send(tx: Transaction, topic: string, messages: Message[]): Promise<void> {
    for (const chunk of chunksBySize(messages)) await tx.send({ topic, messages: chunk });
  }

  function maybeCrash(point: CrashPoint): void {
    const c = opts.crash;
    if (c !== undefined && c.point === point && next - 1 >= c.atOffset) c.act(point);
  }

  /** Commit the pending outputs with offset `next`, retrying the same outputs on failure. */
  async function commit(partition: number): Promise<void> {
    const p = producer as Producer;
    for (let attempt = 1; ; attempt++) {
      const timer = metrics.batchDuration.startTimer();
      const tx = await p.transaction();
      try {
        await send(tx, topics.decisions, pending.decisions);
        await send(tx, topics.nodeRules, pending.nodeRules);
        await send(tx, topics.deadLetter, pending.deadLetters);
        maybeCrash('after-produce');
        await tx.sendOffsets({
          consumerGroupId: groupId,
          topics: [{ topic: topics.clusterEvents, partitions: [{ partition, offset: String(next) }] }],
        });
        maybeCrash('after-offsets');
        await tx.commit();
        timer();
        metrics.outputsProduced.inc({ topic: topics.decisions }, pending.decisions.length);
        metrics.outputsProduced.inc({ topic: topics.nodeRules }, pending.nodeRules.length);
        metrics.outputsProduced.inc({ topic: topics.deadLetter }, pending.deadLetters.length);
        metrics.committedOffset.set(next);
        pending = emptyPending();
        return;
      } catch (err) {
        metrics.transactionFailures.inc();
        await tx.abort().catch((abortErr: unknown) => log.warn({ err: abortErr }, 'abort failed'));
        if (!isRetriable(err) || attempt >= maxAttempts || stopping) {
          log.error({ err, attempt, next }, 'transaction failed for good');
          throw err;
        }
        const retryInMs = backoffDelay(TRANSACTION_BACKOFF, attempt - 1);
        log.warn({ err, attempt, next, retryInMs }, 'transaction failed; retrying with the same outputs');
        await sleep(retryInMs);
      }
    }
  }

  /** The committed offset read at start: below it the fold replays, from it on it produces. */
  let resumeAt = 0;
  let replayStarted = 0;

  function markReplayed(): void {
    if (replayed || next < resumeAt) return;
    replayed = true;
    const seconds = (performance.now() - replayStarted) / 1000;
    metrics.replaySeconds.set(seconds);
    log.info(
      { events: resumeAt, seconds: Number(seconds.toFixed(3)) },
      'replayed to the committed offset; live',
    );
  }

  async function eachBatch(payload: EachBatchPayload) {
    const { batch } = payload;
    if (dead) throw new Error('projector stopped after a permanent failure');
    const messages = batch.messages;
    let i = 0;
    while (i < messages.length) {
      if (!payload.isRunning() || payload.isStale() || stopping) return;
      let last: KafkaMessage | undefined;
      // Events already folded (a batch fetched again after a kafkajs restart) are skipped; if
      // their outputs are pending, they go out with the next commit.
      while (i < messages.length && pending.events < maxEvents) {
        const m = messages[i++] as KafkaMessage;
        last = m;
        const offset = Number(m.offset);
        if (offset < next) continue;
        fold(m, batch.partition, offset >= resumeAt);
      }
      if (last === undefined) break;
      markReplayed();
      if (pending.events > 0) await commit(batch.partition);
      payload.resolveOffset(last.offset);
      await payload.heartbeat();
    }
    // The last offsets before the committed one may be control records, never delivered.
    if (Number(batch.lastOffset()) + 1 >= resumeAt) {
      next = Math.max(next, resumeAt);
      markReplayed();
    }
    const lagNow = Math.max(0, Number(batch.highWatermark) - next);
    metrics.lag.set(lagNow);
    caughtUp = lagNow === 0;
  }

  async function committedOffset(): Promise<number> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [entry] = await admin.fetchOffsets({ groupId, topics: [topics.clusterEvents] });
      const offsets = (entry?.partitions ?? []).map((p) => Number(p.offset)).filter((o) => o >= 0);
      if ((entry?.partitions.length ?? 0) > 1)
        throw new Error(`${topics.clusterEvents} must have exactly one partition (total order)`);
      return offsets[0] ?? 0;
    } finally {
      await admin.disconnect();
    }
  }

  async function ensureTopics(): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const wanted = new Map([
        [TOPICS.decisions, topics.decisions],
        [TOPICS.nodeRules, topics.nodeRules],
        [TOPICS.deadLetter, topics.deadLetter],
        // The agents write these two but create no topics (they hold no admin rights); without
        // them liveness and the status writer have nothing to subscribe to on a fresh install.
        [TOPICS.heartbeats, TOPICS.heartbeats],
        [TOPICS.nodeStatus, TOPICS.nodeStatus],
      ]);
      const specs = topicSpecs(opts.replicationFactor ?? 1)
        .filter((s) => wanted.has(s.topic as never))
        .map((s) => ({ ...s, topic: wanted.get(s.topic as never) as string }))
        .filter((s) => !existing.has(s.topic));
      if (specs.length > 0) {
        await admin.createTopics({ topics: specs, waitForLeaders: true, timeout: 30_000 });
        log.info({ topics: specs.map((s) => s.topic) }, 'topics created');
      }
    } finally {
      await admin.disconnect();
    }
  }

  return {
    failed,
    ready: () => replayed && caughtUp,
    nextOffset: () => next,

    async start() {
      if (opts.createTopics ?? true) await ensureTopics();
      resumeAt = await committedOffset();
      metrics.committedOffset.set(resumeAt);
      replayStarted = performance.now();
      replayed = resumeAt === 0;
      log.info({ committed: resumeAt, groupId }, 'starting: replay up to the committed offset, then live');

      producer = kafka.producer({
        transactionalId: opts.transactionalId ?? 'kseip-projector',
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: opts.transactionTimeoutMs ?? 60_000,
        // The agents find their node's partition with this very partitioner (murmur2 of the key).
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      // Connecting initializes the transactional id: it fences a previous instance and aborts
      // the transaction it left open.
      await producer.connect();

      consumer = kafka.consumer({
        groupId: `${groupId}-fetch-${randomUUID()}`,
        // Retried every second through a broker restart, and a session short enough that a
        // consumer kafkajs restarts itself (same group, new member) waits 10 s at most for the
        // old member to expire (docs/kafka.md, "Broker restart").
        retry: CLIENT_RETRY,
        sessionTimeout: OWN_GROUP_CONSUMER.sessionTimeout,
        heartbeatInterval: OWN_GROUP_CONSUMER.heartbeatInterval,
        readUncommitted: false,
        maxWaitTimeInMs: 100,
        maxBytesPerPartition: 4 * 1024 * 1024,
      });
      consumer.on(consumer.events.CRASH, (e) => {
        if (e.payload.restart || stopping) return;
        log.fatal({ err: e.payload.error }, 'consumer stopped for good');
        fail(e.payload.error);
      });
      await consumer.connect();
      await consumer.subscribe({ topic: topics.clusterEvents, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async (payload) => {
          try {
            await eachBatch(payload);
          } catch (err) {
            // Never let kafkajs re-run the batch on its own: the fold has advanced and the
            // outputs are pending; a permanent failure ends the service (restart = replay).
            if (!stopping && !dead) {
              dead = true;
              log.fatal({ err, next }, 'projector stops');
              fail(err);
            }
            throw err;
          }
        },
      });
      log.info({ groupId, committed: resumeAt }, 'projector consuming');
    },

    async stop() {
      stopping = true;
      await consumer?.disconnect().catch((err: unknown) => log.warn({ err }, 'consumer disconnect failed'));
      await producer?.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
    },
  };
}
