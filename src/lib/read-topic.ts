// Reads a range of a topic (for the CLI, and for a leader's term floor, src/lib/term-floor.ts):
// every partition from a start position (beginning, last N records, or a timestamp) up to the end
// offsets seen at start, or on and on with follow.
// Effectful: owns one admin client and one consumer, both disconnected when done.
//
// Why a throwaway consumer group: kafkajs has no manual partition assignment. The group is unique
// per run and commits nothing, so reading never moves anybody's position and leaves nothing
// behind but an empty group, which the broker expires.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';

/** A record as read from Kafka (kafkajs' fields, decoded to strings where they are text). */
export interface TopicRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Milliseconds since the epoch, as Kafka stores it. */
  readonly timestamp: string;
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
}

export type StartAt =
  | { readonly kind: 'beginning' }
  /** The last `count` records of each partition. */
  | { readonly kind: 'last'; readonly count: number }
  /** The first record at or after this time (ms since the epoch). */
  | { readonly kind: 'time'; readonly ms: number };

export interface ReadTopicOptions {
  kafka: Kafka;
  topic: string;
  start: StartAt;
  /** Keep reading new records until `signal` aborts; otherwise stop at the end offsets seen at start. */
  follow: boolean;
  /** Stop each partition at the first record newer than this (ms since the epoch). */
  untilMs?: number;
  signal?: AbortSignal;
  /** Called once the topic's partitions are known, before any record. */
  onStart?: (shape: TopicShape) => void;
  onRecord: (record: TopicRecord) => void;
}

export interface TopicShape {
  partitions: number;
}

/** Reads as asked; resolves with the topic's shape once done (or once `signal` aborts in follow mode). */
export async function readTopic(opts: ReadTopicOptions): Promise<TopicShape> {
  const { kafka, topic } = opts;
  const admin = kafka.admin();
  await admin.connect();
  let offsets: { partition: number; low: string; high: string }[];
  let startOffsets: Map<number, bigint>;
  try {
    const topics = await admin.fetchTopicMetadata({ topics: [topic] }).catch((err: unknown) => {
      throw new Error(`topic ${topic} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
    });
    if (topics.topics[0] === undefined) throw new Error(`topic ${topic} does not exist`);
    offsets = (await admin.fetchTopicOffsets(topic)).map((o) => ({
      partition: o.partition,
      low: o.low,
      high: o.high,
    }));
    startOffsets = new Map();
    if (opts.start.kind === 'time') {
      const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, opts.start.ms);
      for (const o of offsets) {
        const found = byTime.find((b) => b.partition === o.partition)?.offset;
        // -1: no record at or after that time, so start at the end.
        startOffsets.set(o.partition, found === undefined || found === '-1' ? BigInt(o.high) : BigInt(found));
      }
    } else {
      const start = opts.start;
      for (const o of offsets) {
        const low = BigInt(o.low);
        const high = BigInt(o.high);
        const from =
          start.kind === 'beginning'
            ? low
            : high - BigInt(start.count) > low
              ? high - BigInt(start.count)
              : low;
        startOffsets.set(o.partition, from);
      }
    }
  } finally {
    await admin.disconnect();
  }
  const shape = { partitions: offsets.length };
  opts.onStart?.(shape);
  const endOffsets = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  const open = new Set(
    offsets
      .filter((o) => opts.follow || startOffsets.get(o.partition)! < BigInt(o.high))
      .map((o) => o.partition),
  );
  if (open.size === 0 || opts.signal?.aborted) return shape;

  // The next offset to deliver per partition; a new consumer after a crash continues from here.
  const next = new Map(startOffsets);
  for (;;) {
    try {
      await consume(opts, next, endOffsets, open);
      return shape;
    } catch (err) {
      // kafkajs gives up on some errors during a broker outage (no group coordinator) and does
      // not restart the consumer then; a follower starts a new one and goes on where it was.
      if (!opts.follow || opts.signal?.aborted) throw err;
      await sleep(1_000, undefined, { signal: opts.signal }).catch(() => undefined);
      if (opts.signal?.aborted) return shape;
    }
  }
}

/** One consumer's read, from `next` on; resolves when every partition is done or on abort. */
async function consume(
  opts: ReadTopicOptions,
  next: Map<number, bigint>,
  endOffsets: ReadonlyMap<number, bigint>,
  open: Set<number>,
): Promise<void> {
  const { kafka, topic } = opts;
  const consumer = kafka.consumer({ groupId: `kseip-cli-${randomUUID()}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await new Promise<void>((resolve, reject) => {
      const finish = (): void => resolve();
      if (opts.signal?.aborted) return finish();
      opts.signal?.addEventListener('abort', finish, { once: true });
      // kafkajs restarts the consumer itself after retriable errors (a broker still loading its
      // group coordinator, a leader moving); only a crash it gives up on ends this read.
      consumer.on(consumer.events.CRASH, (e) => {
        if (!e.payload.restart) reject(e.payload.error);
      });
      // A partition is done once the read has passed the end offset seen at start. The last
      // offsets of a transactionally written topic (decisions, node-rules: the projector's
      // transactions) are commit markers that no consumer ever receives as messages, so "done" is
      // judged on each batch's last offset, which counts them, not on the last message's offset.
      const passed = (partition: number, lastOffset: bigint): void => {
        if (lastOffset + 1n > next.get(partition)!) next.set(partition, lastOffset + 1n);
        if (!opts.follow && open.has(partition) && lastOffset + 1n >= endOffsets.get(partition)!) {
          open.delete(partition);
          if (open.size === 0) finish();
        }
      };
      // Batches of nothing but markers (or aborted records) never reach eachBatch; kafkajs still
      // reports them.
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
        if (e.payload.topic === topic && e.payload.batchSize === 0)
          passed(e.payload.partition, BigInt(e.payload.lastOffset));
      });
      // Seek on every join, not once after run(): the first join on a fresh broker can fail while
      // __consumer_offsets is created, and kafkajs then restarts the consumer, which has no group
      // until it joins again (a seek in between throws "Consumer group was not initialized").
      // After such a restart this also resumes just after what was read.
      consumer.on(consumer.events.GROUP_JOIN, () => {
        for (const [partition, offset] of next) consumer.seek({ topic, partition, offset: String(offset) });
      });
      consumer
        .subscribe({ topic, fromBeginning: true })
        .then(() =>
          consumer.run({
            autoCommit: false,
            eachBatch: async (payload) => {
              const { batch } = payload;
              const isStale = (): boolean => payload.isStale();
              const { partition } = batch;
              if (!open.has(partition)) return;
              const end = endOffsets.get(partition)!;
              for (const message of batch.messages) {
                // A seek is pending: this batch was fetched from before the start.
                if (isStale() || !open.has(partition)) return;
                const offset = BigInt(message.offset);
                // Before the start, or delivered already (a restarted consumer has no committed
                // offsets and reads from the beginning again).
                if (offset < next.get(partition)!) continue;
                const tooNew = opts.untilMs !== undefined && Number(message.timestamp) > opts.untilMs;
                if ((!opts.follow && offset >= end) || tooNew) {
                  open.delete(partition);
                  if (open.size === 0) finish();
                  return;
                }
                next.set(partition, offset + 1n);
                const headers: Record<string, string> = {};
                for (const [k, v] of Object.entries(message.headers ?? {})) {
                  if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(',') : v.toString();
                }
                opts.onRecord({
                  topic,
                  partition,
                  offset: message.offset,
                  timestamp: message.timestamp,
                  key: message.key === null ? null : message.key.toString('utf8'),
                  value: message.value,
                  headers,
                });
              }
              if (!isStale()) passed(partition, BigInt(batch.lastOffset()));
              return Promise.resolve();
            },
          }),
        )
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}
