// Reads this node's desired state from kseip.node-rules.v1. Effectful: owns one kafkajs consumer
// (in a group of its own) and one admin client; the catch-up and generation rules are the pure
// follower in ./node-rules-follower.ts.
//
// Why a group per process with a custom assigner: kafkajs has no manual partition assignment, and
// an agent needs exactly the partition its key lands on. The producer (projector) uses kafkajs'
// default partitioner (murmur2 of the key, modulo the partition count), so computeNodePartition
// runs that very partitioner. The group is unique per agent process (`kseip-agent-<node>-<boot>`):
// a restarted agent then never waits for the coordinator to expire the killed process's
// membership (up to a session timeout) before it gets its partition. Nothing is committed: the
// topic is compacted and every start reads the partition from the beginning anyway. Within a
// process, a consumer made again after kafkajs gave up (a long broker outage) joins a group of its
// own (nextGroupId: the crashed member's session would hold up a join of the old group) and seeks
// to just after what was read, so nothing is read, or dead-lettered, twice.
//
// Records of other nodes' keys are skipped without decoding. Records of this node that do not
// decode go to the dead-letter topic and are otherwise ignored; the consumer never stops on them.
import { randomUUID } from 'node:crypto';
import {
  AssignerProtocol,
  Partitioners,
  type Admin,
  type EachBatchPayload,
  type Kafka,
  type PartitionAssigner,
  type PartitionMetadata,
} from 'kafkajs';
import { decodeNodeRules, type NodeRules } from '../contracts/node-rules.ts';
import { TOPICS } from '../contracts/topics.ts';
import { createBackoff, sleepFor } from '../lib/backoff.ts';
import { systemClock } from '../lib/clock.ts';
import { decodeNodeKeyed, type DeadLetterSink } from '../lib/dead-letter.ts';
import { OWN_GROUP_CONSUMER, type ConsumerCounters } from '../lib/kafka.ts';
import { keepConsumer, type KeptConsumer } from '../lib/kept-consumer.ts';
import type { Logger } from '../lib/log.ts';
import {
  evolveFollower,
  isCaughtUp,
  startFollower,
  type FollowerInput,
  type FollowerState,
} from './node-rules-follower.ts';

/** The partition kafkajs' default partitioner (the projector's) puts `node`'s records in. */
export function computeNodePartition(node: string, partitions: number): number {
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  return Partitioners.DefaultPartitioner()({
    topic: TOPICS.nodeRules,
    partitionMetadata,
    message: { key: node, value: null },
  });
}

const ASSIGNER_NAME = 'KseipSinglePartitionAssigner';

/** Gives every member of the group exactly `partition` of `topic` (one member in practice). */
export function singlePartitionAssigner(topic: string, partition: number): PartitionAssigner {
  return () => ({
    name: ASSIGNER_NAME,
    version: 0,
    assign({ members }) {
      return Promise.resolve(
        members.map(({ memberId }) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 0,
            assignment: { [topic]: [partition] },
            userData: Buffer.alloc(0),
          }),
        })),
      );
    },
    protocol({ topics }) {
      return {
        name: ASSIGNER_NAME,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
      };
    },
  });
}

export interface NodeRulesConsumerOptions {
  kafka: Kafka;
  node: string;
  /** Partition count the projector produces with; the broker's actual count wins if they differ. */
  partitions: number;
  topic?: string;
  /** Called with every full desired state to apply: once after catch-up, then on each newer one. */
  onDesired: (rules: NodeRules) => void;
  deadLetter: DeadLetterSink;
  log: Logger;
  /** Counts records of this node read (decoded or not), consumer restarts and re-joins. */
  counters?: ConsumerCounters & { readonly recordsRead: { inc(): void } };
  /** Consumer group (of the first consumer; see nextGroupId); default unique per process (see the header). */
  groupId?: string;
}

/** What the agent needs from its feed of desired state (a fake implements it in unit tests). */
export interface NodeRulesFeed {
  /** Resolves once the consumer runs (retrying until the broker answers); not when caught up. */
  start(): Promise<void>;
  stop(): Promise<void>;
  caughtUp(): boolean;
  /** Highest generation seen in any record for this node, delivered or not. */
  latestSeenGeneration(): number | undefined;
  /** The last delivered desired state. */
  current(): NodeRules | undefined;
  /**
   * Resolves once everything written to the partition before this call has been read (and so
   * delivered, if newer). Used before a fenced gateway takes its egress IPs back, so it acts on
   * what the projector decided while it was cut off, not on what it knew before.
   */
  syncToEnd(signal?: AbortSignal): Promise<void>;
}

export interface NodeRulesConsumer extends NodeRulesFeed {
  /** The partition this node's key lives in (known after start). */
  partition(): number | undefined;
}

export function createNodeRulesConsumer(opts: NodeRulesConsumerOptions): NodeRulesConsumer {
  const { kafka, node, log } = opts;
  const topic = opts.topic ?? TOPICS.nodeRules;
  const groupIdBase = opts.groupId ?? `kseip-agent-${node}-${randomUUID().slice(0, 8)}`;
  const lifetime = new AbortController();

  let admin: Admin | undefined;
  let kept: KeptConsumer | undefined;
  let partition: number | undefined;
  let follower: FollowerState | undefined;
  let delivered: NodeRules | undefined;
  /** Highest offset known read (inclusive); -1 before anything. */
  let consumedThrough = -1n;
  let waiters: { target: bigint; resolve: () => void }[] = [];

  function deliver(rules: NodeRules): void {
    delivered = rules;
    opts.onDesired(rules);
  }

  function step(input: FollowerInput): void {
    if (follower === undefined) return;
    const wasCaughtUp = isCaughtUp(follower);
    const next = evolveFollower(follower, input);
    follower = next.state;
    if (!wasCaughtUp && isCaughtUp(next.state))
      log.info({ node, partition, topic }, 'caught up with node-rules');
    if (next.deliver !== undefined) deliver(next.deliver);
  }

  function positionReached(offset: bigint): void {
    if (offset > consumedThrough) consumedThrough = offset;
    step({ type: 'PositionReached', offset });
    const ready = waiters.filter((w) => consumedThrough >= w.target - 1n);
    waiters = waiters.filter((w) => consumedThrough < w.target - 1n);
    for (const w of ready) w.resolve();
  }

  function eachBatch({ batch }: EachBatchPayload): Promise<void> {
    for (const message of batch.messages) {
      if (message.key === null || message.key.toString('utf8') !== node) continue;
      opts.counters?.recordsRead.inc();
      const offset = BigInt(message.offset);
      if (message.value === null) {
        step({ type: 'RecordRead', record: { offset, rules: null } });
        continue;
      }
      const rules = decodeNodeKeyed(
        message,
        { topic, partition: batch.partition, what: 'node-rules record' },
        decodeNodeRules,
        opts.deadLetter,
      );
      if (rules === undefined) continue;
      step({ type: 'RecordRead', record: { offset, rules } });
    }
    return Promise.resolve();
  }

  async function resolvePartition(a: Admin): Promise<number> {
    const metadata = await a.fetchTopicMetadata({ topics: [topic] });
    const actual = metadata.topics[0]?.partitions.length ?? 0;
    if (actual === 0) throw new Error(`topic ${topic} has no partitions (does it exist?)`);
    if (actual !== opts.partitions) {
      log.warn(
        { topic, configured: opts.partitions, actual },
        "node-rules partition count differs from configuration; using the broker's, which the producer uses too",
      );
    }
    return computeNodePartition(node, actual);
  }

  async function fetchEnd(a: Admin, p: number): Promise<{ low: bigint; high: bigint }> {
    const offsets = await a.fetchTopicOffsets(topic);
    const mine = offsets.find((o) => o.partition === p);
    if (mine === undefined) throw new Error(`no offsets for ${topic}/${p}`);
    return { low: BigInt(mine.low), high: BigInt(mine.high) };
  }

  /** The kept consumer of partition p (made once the partition is known). */
  function keepConsumerOf(p: number): KeptConsumer {
    return keepConsumer({
      groupIdBase,
      what: 'node-rules consumer',
      log,
      ...(opts.counters === undefined ? {} : { counters: opts.counters }),
      make: (groupId) => {
        const c = kafka.consumer({
          ...OWN_GROUP_CONSUMER,
          groupId,
          partitionAssigners: [singlePartitionAssigner(topic, p)],
          // Short long-polls so stop() and new records are prompt; the partition is small anyway.
          maxWaitTimeInMs: 250,
        });
        // Batch events also fire for batches that held only transaction markers (which eachBatch
        // never sees): the projector writes transactionally, so the end offset can be a marker.
        c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
          if (payload.topic === topic && payload.partition === p) positionReached(BigInt(payload.lastOffset));
        });
        // Every (re-)join after the first, of this consumer or of one made again after a crash,
        // goes on after what was read rather than from the beginning (nothing is committed):
        // nothing is read, or dead-lettered, twice. The event fires before the first fetch of the
        // new generation, which applies the seek.
        c.on(c.events.GROUP_JOIN, () => {
          if (consumedThrough >= 0n) c.seek({ topic, partition: p, offset: String(consumedThrough + 1n) });
        });
        return c;
      },
      run: async (c) => {
        await c.connect();
        await c.subscribe({ topic, fromBeginning: true });
        await c.run({ autoCommit: false, eachBatchAutoResolve: true, eachBatch });
      },
    });
  }

  /** The first successful look fixes the partition and the catch-up target; retries keep them. */
  async function initialize(a: Admin): Promise<number> {
    if (partition !== undefined && follower !== undefined) return partition;
    const p = await resolvePartition(a);
    const { low, high } = await fetchEnd(a, p);
    partition = p;
    log.info(
      { node, topic, partition: p, groupId: groupIdBase, low: String(low), high: String(high) },
      'catching up',
    );
    const started = startFollower(node, low, high);
    follower = started.state;
    if (high <= low) consumedThrough = high - 1n;
    if (started.deliver !== undefined) {
      log.info({ node, partition: p, topic }, 'caught up with node-rules (partition empty)');
      deliver(started.deliver);
    }
    return p;
  }

  return {
    partition: () => partition,
    caughtUp: () => follower !== undefined && isCaughtUp(follower),
    latestSeenGeneration: () => follower?.latestGeneration,
    current: () => delivered,

    async start() {
      const backoff = createBackoff({ initialMs: 100, maxMs: 5_000 });
      for (;;) {
        lifetime.signal.throwIfAborted();
        try {
          admin ??= kafka.admin({ retry: { retries: 3, initialRetryTime: 100 } });
          await admin.connect();
          const p = await initialize(admin);
          kept ??= keepConsumerOf(p);
          await kept.start();
          return;
        } catch (err) {
          if (lifetime.signal.aborted) throw err;
          const retryInMs = backoff.next();
          log.warn({ err, retryInMs }, 'node-rules consumer could not start; retrying');
          await sleepFor(systemClock, retryInMs, lifetime.signal);
        }
      }
    },

    async syncToEnd(signal) {
      const p = partition;
      if (admin === undefined || p === undefined) throw new Error('node-rules consumer not started');
      const { high } = await fetchEnd(admin, p);
      if (consumedThrough >= high - 1n) return;
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const waiter = { target: high, resolve };
        waiters.push(waiter);
        signal?.addEventListener(
          'abort',
          () => {
            waiters = waiters.filter((w) => w !== waiter);
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          },
          { once: true },
        );
      });
    },

    async stop() {
      lifetime.abort();
      await kept?.stop().catch((err: unknown) => log.warn({ err }, 'consumer disconnect failed'));
      await admin?.disconnect().catch((err: unknown) => log.warn({ err }, 'admin disconnect failed'));
    },
  };
}
