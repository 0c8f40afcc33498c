// The watcher's way to Kafka: a bounded, in-order buffer drained by one sender into one topic
// partition through an idempotent kafkajs producer. Effectful: owns the producer and the buffer.
//
// - Order: exactly one send is in flight, and a failed batch is retried as the same batch in
//   front of everything else, so the topic receives events in the order they were offered.
// - Nothing is dropped silently: offer() always accepts. Callers check `full` (and listen to
//   onFull/onSpace) and stop producing while the buffer is full: the watcher pauses its informers,
//   and list publication awaits waitForSpace(). The buffer can therefore exceed its capacity only
//   if a caller ignores `full`; the only events ever thrown away are those still buffered when
//   leadership ends (discard()), which is logged and counted, and the next leader relists them.
// - A failed send (broker down, leader moving) is logged with the buffer depth, counted, and
//   retried with capped, jittered exponential backoff (src/lib/backoff.ts), forever, until it
//   succeeds or the publisher stops.
import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type ITopicConfig, type Kafka, type Producer } from 'kafkajs';
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import { createBackoff } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';
import {
  backpressureActive,
  bufferDepth,
  eventsDiscarded,
  eventsPublished,
  oldestUnackedSeconds,
  publishFailures,
  publishLatency,
} from './metrics.ts';

export interface Pending {
  readonly event: ClusterEvent;
  readonly key: string;
  /** performance.now() when offered (the buffer's age metric and stall warnings use it). */
  offeredAt?: number;
  /** performance.now() when the (last) send of its batch began: queueing vs round trip. */
  sentAt?: number;
  /** performance.now() when the watch event arrived; absent for list and marker events. */
  readonly receivedAt?: number;
}

export interface PublisherOptions {
  kafka: Kafka;
  topic: string;
  /** Most events held while Kafka does not acknowledge. */
  capacity: number;
  /** Most events per Kafka request. */
  maxBatch?: number;
  log: Logger;
  /** Backoff after a failed send: starts here, doubles, capped at maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Created (if missing) before the first send; creation failures are retried like sends. */
  ensureTopic?: ITopicConfig;
  /** Warn about unacknowledged events this old, and again this often. Default 5 s. */
  stallWarnMs?: number;
  /** Called after each acknowledged batch (benchmarks read exact latencies from it). */
  onAck?: (batch: readonly Pending[], ackedAt: number) => void;
}

export interface Publisher {
  offer(item: Pending): void;
  readonly depth: number;
  readonly full: boolean;
  /**
   * Offers `item` as soon as the buffer has room (at once if it has), so callers that can wait
   * (list publication) never overfill it. Rejects if `signal` aborts first.
   */
  offerWhenSpace(item: Pending, signal?: AbortSignal): Promise<void>;
  /** Called when an offer fills the buffer, and when it has drained to half its capacity. */
  onFull(cb: () => void): void;
  onSpace(cb: () => void): void;
  /** Resolves true once everything offered so far is acknowledged, false after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean>;
  /** Drops what is buffered (leadership ended); returns how many events that was. */
  discard(): number;
  /** Stops sending (after the in-flight request settles) and disconnects the producer. */
  stop(): Promise<void>;
}

/** Errors after which the producer's idempotence state (producer id, sequence) is unusable. */
const fatalProducerErrors = new Set([
  'UNKNOWN_PRODUCER_ID',
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'INVALID_PRODUCER_EPOCH',
  'INVALID_PRODUCER_ID_MAPPING',
]);

function errorType(err: unknown): string | undefined {
  for (
    let e: unknown = err;
    e instanceof Error;
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError
  ) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && type !== 'UNKNOWN') return type;
  }
  return undefined;
}

export function createPublisher(opts: PublisherOptions): Publisher {
  const { kafka, topic, capacity, log } = opts;
  const maxBatch = opts.maxBatch ?? 500;
  const initialBackoffMs = opts.initialBackoffMs ?? 100;
  const maxBackoffMs = opts.maxBackoffMs ?? 5_000;
  const lowWater = Math.max(0, Math.floor(capacity / 2));

  const queue: Pending[] = [];
  let head = 0; // queue[head..] is pending; compacted now and then
  let epoch = 0; // bumped by discard(), so an in-flight batch's ack does not shift the new queue
  let producer: Producer | undefined;
  let connected = false;
  let topicReady = false;
  let stopping = false;
  const stopped = new AbortController();
  let wake: (() => void) | undefined;
  let full = false;
  const fullListeners: (() => void)[] = [];
  const spaceListeners: (() => void)[] = [];
  let spaceWaiters: (() => void)[] = [];
  let flushWaiters: (() => void)[] = [];

  const depth = (): number => queue.length - head;

  function updateDepth(): void {
    bufferDepth.set(depth());
    if (!full && depth() >= capacity) {
      full = true;
      backpressureActive.set(1);
      log.warn({ depth: depth(), capacity }, 'event buffer full: pausing intake until Kafka catches up');
      for (const cb of fullListeners) cb();
    } else if (full && depth() <= lowWater) {
      full = false;
      backpressureActive.set(0);
      log.info({ depth: depth(), capacity }, 'event buffer drained: resuming intake');
      for (const cb of spaceListeners) cb();
    }
    if (depth() < capacity && spaceWaiters.length > 0 && !full) {
      const waiters = spaceWaiters;
      spaceWaiters = [];
      for (const w of waiters) w();
    }
    if (depth() === 0 && flushWaiters.length > 0) {
      const waiters = flushWaiters;
      flushWaiters = [];
      for (const w of waiters) w();
    }
  }

  function newProducer(): Producer {
    return kafka.producer({
      idempotent: true,
      // One request in flight: with retries, anything more could reorder the single partition.
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // One partition: the partitioner never matters; naming it silences kafkajs' v2 notice.
      createPartitioner: Partitioners.DefaultPartitioner,
      // Bounded here so a send fails visibly (logged, counted, retried by the loop below with the
      // same producer id and sequence numbers, which keeps the broker-side deduplication).
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
  }

  async function sendLoop(): Promise<void> {
    const backoff = createBackoff({ initialMs: initialBackoffMs, maxMs: maxBackoffMs });
    let failures = 0;
    while (!stopping) {
      if (depth() === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      try {
        if (!topicReady && opts.ensureTopic !== undefined) {
          await createTopicIfMissing(kafka, opts.ensureTopic, log);
          topicReady = true;
        }
        producer ??= newProducer();
        if (!connected) {
          await producer.connect();
          connected = true;
        }
        const sentEpoch = epoch;
        const batch = queue.slice(head, head + maxBatch);
        const sentAt = performance.now();
        for (const p of batch) p.sentAt = sentAt;
        await producer.send({
          topic,
          acks: -1,
          messages: batch.map((p) => ({ key: p.key, value: JSON.stringify(p.event) })),
        });
        const ackedAt = performance.now();
        if (sentEpoch !== epoch) continue; // discarded while in flight
        head += batch.length;
        if (head > 4096 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        for (const p of batch) {
          eventsPublished.inc({ type: p.event.type });
          if (p.receivedAt !== undefined) publishLatency.observe((ackedAt - p.receivedAt) / 1000);
        }
        opts.onAck?.(batch, ackedAt);
        if (failures > 0) log.info({ failures, depth: depth() }, 'Kafka accepts events again');
        failures = 0;
        backoff.reset();
        updateDepth();
      } catch (err) {
        failures++;
        publishFailures.inc();
        const type = errorType(err);
        const retryInMs = backoff.next();
        log.warn(
          { err, errorType: type, depth: depth(), capacity, failures, retryInMs },
          'publish failed; retrying',
        );
        if (type !== undefined && fatalProducerErrors.has(type)) {
          // A new producer id: duplicates of the failed batch become possible; they carry the
          // same event ids, which is how readers recognise them.
          log.warn({ errorType: type }, 'producer state invalid: starting a new idempotent producer');
          await producer?.disconnect().catch(() => undefined);
          producer = undefined;
          connected = false;
        }
        await sleep(retryInMs, undefined, { signal: stopped.signal }).catch(() => undefined);
      }
    }
  }

  function offer(item: Pending): void {
    item.offeredAt = performance.now();
    queue.push(item);
    updateDepth();
    wake?.();
  }

  // kafkajs may keep a send waiting for a broker for a long time (it retries connecting on its
  // own), so the age of the oldest event is watched here: a gauge every second, a warning every
  // stallWarnMs while nothing is acknowledged.
  let lastStallWarn = 0;
  const stallWarnMs = opts.stallWarnMs ?? 5_000;
  const ticker = setInterval(() => {
    const oldest = queue[head];
    const ageMs = oldest?.offeredAt === undefined ? 0 : performance.now() - oldest.offeredAt;
    oldestUnackedSeconds.set(ageMs / 1000);
    if (ageMs > stallWarnMs && performance.now() - lastStallWarn > stallWarnMs) {
      lastStallWarn = performance.now();
      log.warn(
        { depth: depth(), capacity, oldestMs: Math.round(ageMs) },
        'Kafka has not acknowledged events; they wait in the buffer',
      );
    }
  }, 1_000);
  ticker.unref();

  const loop = sendLoop().catch((err: unknown) => log.error({ err }, 'publisher loop crashed'));

  return {
    offer,
    get depth() {
      return depth();
    },
    get full() {
      return full;
    },
    async offerWhenSpace(item, signal) {
      // Check and push in one synchronous step, so concurrent waiters cannot overfill together.
      while (full || depth() >= capacity) {
        signal?.throwIfAborted();
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void =>
            reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
          signal?.addEventListener('abort', onAbort, { once: true });
          spaceWaiters.push(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          });
        });
      }
      signal?.throwIfAborted();
      offer(item);
    },
    onFull(cb) {
      fullListeners.push(cb);
    },
    onSpace(cb) {
      spaceListeners.push(cb);
    },
    async flush(timeoutMs) {
      if (depth() === 0) return true;
      const timeout = new AbortController();
      const drained = new Promise<boolean>((resolve) => flushWaiters.push(() => resolve(true)));
      const timer = sleep(timeoutMs, false, { signal: timeout.signal }).catch(() => false);
      const result = await Promise.race([drained, timer]);
      timeout.abort();
      return result;
    },
    discard() {
      const n = depth();
      if (n > 0) {
        eventsDiscarded.inc(n);
        log.warn({ discarded: n }, 'leadership ended: discarding unsent events (the next leader relists)');
      }
      queue.length = 0;
      head = 0;
      epoch++;
      updateDepth();
      return n;
    },
    async stop() {
      stopping = true;
      stopped.abort();
      clearInterval(ticker);
      oldestUnackedSeconds.set(0);
      wake?.();
      // A send in flight while Kafka is away can take kafkajs many seconds to give up; stopping
      // (shutdown, lost Lease) must not wait for that: after a short grace period,
      // disconnecting ends it (or it ends by itself later; the loop exits either way).
      const grace = new AbortController();
      await Promise.race([loop, sleep(2_000, undefined, { signal: grace.signal }).catch(() => undefined)]);
      grace.abort();
      await producer?.disconnect().catch(() => undefined);
      producer = undefined;
      connected = false;
    },
  };
}

async function createTopicIfMissing(kafka: Kafka, spec: ITopicConfig, log: Logger): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // Asking first: kafkajs logs an error line for every createTopics of an existing topic.
    if ((await admin.listTopics()).includes(spec.topic)) return;
    const created = await admin.createTopics({ topics: [spec], waitForLeaders: true, timeout: 30_000 });
    if (created) log.info({ topic: spec.topic, partitions: spec.numPartitions }, 'topic created');
  } finally {
    await admin.disconnect();
  }
}
