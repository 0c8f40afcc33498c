// The status writer: reads kseip.decisions.v1, kseip.node-rules.v1 and kseip.node-status.v1 from
// the beginning, folds them with the pure model (status-model.ts), and writes the result to the
// status subresource of StaticEgressIP / ClusterStaticEgressIP / StaticEgressIPPool, plus
// Kubernetes Events for GatewayAssigned, GatewayFailedOver and ConflictDetected. Effectful: owns
// one Kafka consumer, the policies' and pools' `.status` and the core/v1 Events it creates,
// nothing else. Status is never read back as an input: the log alone decides it.
//
// - Start-up replays all three topics (their own consumer group per process, no commits: the fold
//   needs the whole history anyway, like the projector's replay). Nothing is written until the
//   fold has reached the high watermarks seen at start, so a restart writes each policy's current
//   status once instead of replaying history into the API server.
// - Bursts coalesce: inputs only mark policies and pools dirty; every --min-interval the latest
//   status of each dirty one is written once (JSON merge patch on /status), skipped when equal to what
//   this process last wrote to the same object: the memory is per uid (decisions name it), so a
//   policy deleted and re-created under the same name and spec gets its status at once. 404
//   means the policy is gone (deleted after the decision): ignored. Other errors keep the policy
//   dirty for the next round.
// - Events get a deterministic name (<policy>.kseip-<decision id>), so writing one twice after a
//   restart is a 409 AlreadyExists, not a duplicate. Decisions older than --event-max-age (the API
//   server's event TTL) are not turned into Events on replay: they would have expired already.
// - A broker restart is ridden out in this process (docs/kafka.md, "Broker restart"): the client
//   retries every second, and a consumer kafkajs gives up on is replaced by a new one in a new
//   group that seeks to where the fold is, so nothing is folded twice and the process never exits.
import type { EachBatchPayload, Kafka } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { Counter, Gauge } from 'prom-client';
import { GROUP, GROUP_VERSION, VERSION } from '../api/group.ts';
import { decodeDecision } from '../contracts/decisions.ts';
import { decodeNodeApplyStatus } from '../contracts/node-reports.ts';
import { decodeNodeRules } from '../contracts/node-rules.ts';
import type { PolicyRef } from '../contracts/decisions.ts';
import type { DeadLetterSink } from '../lib/dead-letter.ts';
import { OWN_GROUP_CONSUMER } from '../lib/kafka.ts';
import { keepConsumer } from '../lib/kept-consumer.ts';
import type { Logger } from '../lib/log.ts';
import {
  evolveStatus,
  initialStatusState,
  selectPolicyEvents,
  selectPolicyStatus,
  selectPoolStatus,
  type PolicyEvent,
  type StatusInput,
} from './status-model.ts';

const PLURAL = {
  StaticEgressIP: 'staticegressips',
  ClusterStaticEgressIP: 'clusterstaticegressips',
} as const;
const POOL_PLURAL = 'staticegressippools';
/** Where Events about cluster-scoped policies go (as Kubernetes does for Nodes). */
const CLUSTER_EVENTS_NAMESPACE = 'default';
const EVENT_ATTEMPTS = 5;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const writes = new Counter({
  name: 'kseip_status_writes_total',
  help: 'Status writes by result: written, unchanged (skipped), gone (policy deleted, 404)',
  labelNames: ['result'] as const,
});
const writeErrors = new Counter({
  name: 'kseip_status_write_errors_total',
  help: 'Status patches that failed (retried on the next round)',
});
const eventsTotal = new Counter({
  name: 'kseip_status_events_total',
  help: 'Kubernetes Events by result: created, duplicate (409), gone, failed',
  labelNames: ['reason', 'result'] as const,
});
const lagRecords = new Gauge({
  name: 'kseip_status_lag_records',
  help: 'High watermark minus the next offset to fold, per input topic',
  labelNames: ['topic'] as const,
});
const lagSeconds = new Gauge({
  name: 'kseip_status_lag_seconds',
  help: 'At the last status write: time since the newest folded input record was appended to the log',
});
const recordsTotal = new Counter({
  name: 'kseip_status_records_total',
  help: 'Input records folded, per topic',
  labelNames: ['topic'] as const,
});
const consumerRestarts = new Counter({
  name: 'kseip_status_kafka_consumer_restarts_total',
  help: 'Consumers made again after kafkajs gave up on one (a broker away for longer than its retries)',
});
const consumerRejoins = new Counter({
  name: 'kseip_status_kafka_consumer_rejoins_total',
  help: 'Re-joins of the consumer group after the first (a membership lost, e.g. in a broker outage longer than the session timeout)',
});
const deadLetters = new Counter({
  name: 'kseip_status_dead_letters_total',
  help: 'Input records that did not decode (sent to the dead-letter topic)',
  labelNames: ['topic'] as const,
});

export interface StatusWriterTopics {
  readonly decisions: string;
  readonly nodeRules: string;
  readonly nodeStatus: string;
}

export interface StatusWriterOptions {
  kafka: Kafka;
  kubeConfig: KubeConfig;
  topics: StatusWriterTopics;
  /** Minimum pause between two write rounds (the rate limit). */
  minIntervalMs: number;
  eventMaxAgeMs: number;
  identity: string;
  deadLetters: DeadLetterSink;
  log: Logger;
}

export interface StatusWriter {
  /** Consumes and writes until stop(); rejects only if it cannot start (the first connect). */
  run(): Promise<void>;
  /** Caught up with the log as it was at start. */
  ready(): boolean;
  stop(): Promise<void>;
}

const isApi = (err: unknown, code: number): boolean => err instanceof ApiException && err.code === code;

/** kubectl-style event name: the object's name plus the decision id (dots and digits only). */
export function renderEventName(e: PolicyEvent): string {
  return `${e.policy.name}.kseip-${e.decisionId}`;
}

export function createStatusWriter(opts: StatusWriterOptions): StatusWriter {
  const { log, topics } = opts;
  const state = initialStatusState();
  const dirty = new Set<string>();
  /** Pool names whose status may have changed. */
  const dirtyPools = new Set<string>();
  /** Per policy key: the object (uid) last written to and the status body it got. */
  const lastWritten = new Map<string, { readonly uid: string | undefined; readonly body: string }>();
  /** The same per pool name. */
  const lastWrittenPools = new Map<string, { readonly uid: string | undefined; readonly body: string }>();
  const pendingEvents: { event: PolicyEvent; attempts: number }[] = [];
  const custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = opts.kubeConfig.makeApiClient(CoreV1Api);
  /** Per topic/partition: its end offset when the writer started (caught up = every one reached). */
  const targets = new Map<string, bigint>();
  /** Per topic/partition: the offset after the last batch folded, where a re-join seeks to. */
  const resumeAt = new Map<string, { topic: string; partition: number; offset: bigint }>();
  let caughtUp = false;
  let newestRecordMs = 0;
  let stopping = false;

  function fold(
    topic: string,
    partition: number,
    offset: string,
    key: Buffer | null,
    value: Buffer | null,
    timestamp: string,
  ): void {
    const at = new Date(Number(timestamp)).toISOString();
    let input: StatusInput;
    const bad = (reason: string): void => {
      deadLetters.inc({ topic });
      opts.deadLetters.send({ sourceTopic: topic, partition, offset, key, value, reason });
    };
    if (topic === topics.decisions) {
      const d = decodeDecision(value);
      if (d._tag === 'Left') return bad(d.left.reason);
      input = { kind: 'decision', decision: d.right, at };
      if (Date.now() - Number(timestamp) <= opts.eventMaxAgeMs)
        for (const event of selectPolicyEvents(d.right, at)) pendingEvents.push({ event, attempts: 0 });
    } else if (topic === topics.nodeRules) {
      if (value === null) return; // a compaction tombstone: nothing to fold
      const r = decodeNodeRules(value);
      if (r._tag === 'Left') return bad(r.left.reason);
      input = { kind: 'nodeRules', rules: r.right, at };
    } else {
      const a = decodeNodeApplyStatus(value);
      if (a._tag === 'Left') return bad(a.left.reason);
      input = { kind: 'ack', ack: a.right, at };
    }
    newestRecordMs = Math.max(newestRecordMs, Number(timestamp));
    const { touched, touchedPools } = evolveStatus(state, input);
    for (const k of touched) dirty.add(k);
    for (const name of touchedPools ?? []) dirtyPools.add(name);
  }

  function checkCaughtUp(): void {
    if (caughtUp) return;
    for (const [at, target] of targets) if ((resumeAt.get(at)?.offset ?? 0n) < target) return;
    caughtUp = true;
    log.info({ policies: state.policies.size }, 'caught up with the log; writing status');
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    for (const m of batch.messages) {
      if (stopping) return;
      fold(batch.topic, batch.partition, m.offset, m.key, m.value, m.timestamp);
      payload.resolveOffset(m.offset);
      recordsTotal.inc({ topic: batch.topic });
    }
    await payload.heartbeat();
  }

  /**
   * Where a fetched batch ends. The projector writes transactionally: the last offsets of a batch
   * may be transaction markers, and a batch of nothing but markers or aborted records never
   * reaches eachBatch at all. Both count here, so an end offset taken at start is always reached
   * (a log that ended in an aborted transaction would otherwise keep the writer from ever writing).
   */
  function batchEnded(e: {
    topic: string;
    partition: number;
    lastOffset: string;
    highWatermark: string;
  }): void {
    if (stopping) return;
    const at = `${e.topic}/${e.partition}`;
    const offset = BigInt(e.lastOffset) + 1n;
    if (offset > (resumeAt.get(at)?.offset ?? 0n))
      resumeAt.set(at, { topic: e.topic, partition: e.partition, offset });
    lagRecords.set({ topic: e.topic }, Math.max(0, Number(BigInt(e.highWatermark) - offset)));
    checkCaughtUp();
  }

  function ref(policy: PolicyRef): {
    group: string;
    version: string;
    plural: string;
    name: string;
    namespace?: string;
  } {
    const base = { group: GROUP, version: VERSION, plural: PLURAL[policy.kind], name: policy.name };
    return policy.namespace === undefined ? base : { ...base, namespace: policy.namespace };
  }

  async function writeStatus(key: string): Promise<void> {
    const selected = selectPolicyStatus(state, key);
    if (selected === undefined) return;
    const body = JSON.stringify(selected.status);
    const uid = selected.ref.uid;
    const last = lastWritten.get(key);
    if (last !== undefined && last.uid === uid && last.body === body) {
      writes.inc({ result: 'unchanged' });
      return;
    }
    const r = ref(selected.ref);
    const patch = { status: selected.status };
    try {
      if (r.namespace === undefined)
        await custom.patchClusterCustomObjectStatus({ ...r, body: patch }, mergePatch);
      else
        await custom.patchNamespacedCustomObjectStatus(
          { ...r, namespace: r.namespace, body: patch },
          mergePatch,
        );
      lastWritten.set(key, { uid, body });
      writes.inc({ result: 'written' });
      lagSeconds.set(Math.max(0, (Date.now() - newestRecordMs) / 1000));
      log.debug({ policy: key }, 'status written');
    } catch (err) {
      if (isApi(err, 404)) {
        // Deleted after the decision; a re-created policy gets a new decision with its new uid.
        lastWritten.set(key, { uid, body });
        writes.inc({ result: 'gone' });
        return;
      }
      writeErrors.inc();
      dirty.add(key);
      log.warn({ policy: key, err }, 'status write failed; retrying next round');
    }
  }

  async function writePoolStatus(name: string): Promise<void> {
    const selected = selectPoolStatus(state, name);
    if (selected === undefined) return;
    const body = JSON.stringify(selected.status);
    const uid = selected.ref.uid;
    const last = lastWrittenPools.get(name);
    if (last !== undefined && last.uid === uid && last.body === body) {
      writes.inc({ result: 'unchanged' });
      return;
    }
    try {
      await custom.patchClusterCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: POOL_PLURAL, name, body: { status: selected.status } },
        mergePatch,
      );
      lastWrittenPools.set(name, { uid, body });
      writes.inc({ result: 'written' });
      lagSeconds.set(Math.max(0, (Date.now() - newestRecordMs) / 1000));
      log.debug({ pool: name }, 'pool status written');
    } catch (err) {
      if (isApi(err, 404)) {
        lastWrittenPools.set(name, { uid, body });
        writes.inc({ result: 'gone' });
        return;
      }
      writeErrors.inc();
      dirtyPools.add(name);
      log.warn({ pool: name, err }, 'pool status write failed; retrying next round');
    }
  }

  async function emitEvent(item: { event: PolicyEvent; attempts: number }): Promise<boolean> {
    const e = item.event;
    const r = ref(e.policy);
    let uid: string | undefined;
    try {
      const obj = (
        r.namespace === undefined
          ? await custom.getClusterCustomObject(r)
          : await custom.getNamespacedCustomObject({ ...r, namespace: r.namespace })
      ) as { metadata?: { uid?: string } };
      uid = obj.metadata?.uid;
    } catch (err) {
      if (isApi(err, 404)) {
        eventsTotal.inc({ reason: e.reason, result: 'gone' });
        return true;
      }
      throw err;
    }
    const namespace = e.policy.namespace ?? CLUSTER_EVENTS_NAMESPACE;
    const at = new Date(e.at);
    try {
      await core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: renderEventName(e), namespace },
          involvedObject: {
            apiVersion: GROUP_VERSION,
            kind: e.policy.kind,
            name: e.policy.name,
            ...(e.policy.namespace === undefined ? {} : { namespace: e.policy.namespace }),
            ...(uid === undefined ? {} : { uid }),
          },
          reason: e.reason,
          message: e.message,
          type: e.type,
          count: 1,
          firstTimestamp: at,
          lastTimestamp: at,
          source: { component: 'kseip-status-writer' },
          reportingComponent: 'kseip-status-writer',
          reportingInstance: opts.identity,
        },
      });
      eventsTotal.inc({ reason: e.reason, result: 'created' });
    } catch (err) {
      if (!isApi(err, 409)) throw err;
      eventsTotal.inc({ reason: e.reason, result: 'duplicate' });
    }
    return true;
  }

  async function round(): Promise<void> {
    const keys = [...dirty].sort();
    dirty.clear();
    for (const key of keys) await writeStatus(key);
    const pools = [...dirtyPools].sort();
    dirtyPools.clear();
    for (const name of pools) await writePoolStatus(name);
    const events = pendingEvents.splice(0);
    for (const item of events) {
      try {
        await emitEvent(item);
      } catch (err) {
        item.attempts++;
        if (item.attempts < EVENT_ATTEMPTS) pendingEvents.push(item);
        else eventsTotal.inc({ reason: item.event.reason, result: 'failed' });
        log.warn(
          { policy: item.event.policy, reason: item.event.reason, attempts: item.attempts, err },
          item.attempts < EVENT_ATTEMPTS ? 'event not recorded; retrying' : 'event not recorded; giving up',
        );
      }
    }
  }

  async function writeLoop(): Promise<void> {
    while (!stopping) {
      if (caughtUp && (dirty.size > 0 || dirtyPools.size > 0 || pendingEvents.length > 0)) await round();
      // The pause is the rate limit: everything that arrives meanwhile coalesces into one write.
      await sleep(opts.minIntervalMs);
    }
  }

  const kept = keepConsumer({
    groupIdBase: `kseip-status-writer-${randomUUID()}`,
    what: 'consumer',
    log,
    counters: { restarts: consumerRestarts, rejoins: consumerRejoins },
    make: (groupId) => {
      const c = opts.kafka.consumer({ ...OWN_GROUP_CONSUMER, groupId });
      // A re-join (a session lost in a long broker outage) or a new consumer after kafkajs gave
      // up goes on after what was folded instead of from the beginning, as nothing is committed:
      // no record is folded, or dead-lettered, twice. The event fires before the new
      // generation's first fetch.
      c.on(c.events.GROUP_JOIN, () => {
        for (const p of resumeAt.values())
          c.seek({ topic: p.topic, partition: p.partition, offset: String(p.offset) });
      });
      c.on(c.events.END_BATCH_PROCESS, ({ payload }) => batchEnded(payload));
      return c;
    },
    run: async (c) => {
      await c.connect();
      await c.subscribe({
        topics: [topics.decisions, topics.nodeRules, topics.nodeStatus],
        fromBeginning: true,
      });
      await c.run({ autoCommit: false, eachBatch });
    },
  });

  return {
    async run() {
      const admin = opts.kafka.admin();
      await admin.connect();
      try {
        for (const topic of [topics.decisions, topics.nodeRules, topics.nodeStatus]) {
          for (const o of await admin.fetchTopicOffsets(topic))
            targets.set(`${topic}/${o.partition}`, BigInt(o.high));
        }
      } finally {
        await admin.disconnect();
      }
      checkCaughtUp();
      await kept.start();
      await writeLoop();
    },
    // Not while a crashed consumer is being replaced: the status would be going stale.
    ready: () => caughtUp && !stopping && !kept.restarting(),
    async stop() {
      stopping = true;
      await kept.stop().catch((err: unknown) => log.warn({ err }, 'consumer disconnect failed'));
    },
  };
}
