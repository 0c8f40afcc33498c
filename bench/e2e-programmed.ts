// What "programmed" means for the e2e benchmarks (netns and real nodes alike), and where the time
// went: a node-rules record that contains a change for a node, and that node's first ok ack of at
// least its generation on kseip.node-status.v1. Effectful only in waiting on followed topics.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import type { NodeApplyStatus } from '../src/contracts/node-reports.ts';
import type { NodeRules } from '../src/contracts/node-rules.ts';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, GROUP_VERSION, VERSION } from '../src/api/group.ts';
import { computePercentile, SEED, type FollowedRecord, type FollowedTopic } from '../src/devenv/stack.ts';

export const say = (line = ''): void => void process.stdout.write(`${line}\n`);
export const ms = (v: number): string => (Number.isNaN(v) ? '—' : `${Math.round(v)} ms`);

export interface Timed {
  readonly samples: number[];
  readonly stages: Stages[];
}

export interface Followers {
  readonly events: FollowedTopic<ClusterEvent>;
  readonly rules: FollowedTopic<NodeRules>;
  readonly acks: FollowedTopic<NodeApplyStatus>;
}

export type RulesRecord = FollowedRecord<NodeRules>;

/**
 * Waits until, among node-rules records from index `from` on, every node that `complete` needs has
 * a first record satisfying `has`; returns node → that record.
 */
export async function waitRules(
  f: Followers,
  from: number,
  has: (r: NodeRules) => boolean,
  complete: (found: ReadonlyMap<string, NodeRules>) => boolean,
  what: string,
): Promise<Map<string, RulesRecord>> {
  const found = new Map<string, RulesRecord>();
  const deadline = Date.now() + 60_000;
  for (let i = from; ;) {
    for (; i < f.rules.records.length; i++) {
      const record = f.rules.records[i]!;
      if (!found.has(record.value.node) && has(record.value)) found.set(record.value.node, record);
    }
    if (complete(new Map([...found].map(([n, r]) => [n, r.value])))) return found;
    if (Date.now() > deadline)
      throw new Error(`no node-rules for ${what} after 60 s (have ${[...found.keys()].join(', ')})`);
    await sleep(10);
  }
}

/** Each node's first ok ack of at least the generation of its record. */
export async function waitAcks(
  f: Followers,
  records: ReadonlyMap<string, RulesRecord>,
): Promise<Map<string, NodeApplyStatus>> {
  const acked = new Map<string, NodeApplyStatus>();
  for (const [node, record] of records) {
    const generation = record.value.generation;
    const ack = await f.acks.waitFor(`ok ack of ${node} ≥ generation ${generation}`, (r) =>
      r.value.node === node && r.value.ok && r.value.generation >= generation ? r.value : undefined,
    );
    acked.set(node, ack);
  }
  return acked;
}

/** Where the time of one sample went, on the node that acked last. */
export interface Stages {
  /** t0 → the watcher's event in kseip.cluster-events.v1 (its Kafka timestamp). */
  readonly watcher: number;
  /** That event → the projector's node-rules record (its Kafka timestamp). */
  readonly projector: number;
  /** The node-rules record → the agent starts applying. */
  readonly pickup: number;
  /** The agent's apply (durationMs of its ack). */
  readonly apply: number;
}

export async function computeStages(
  f: Followers,
  t0: number,
  record: RulesRecord,
  ack: NodeApplyStatus,
): Promise<Stages> {
  // A node's generation is the cluster-events offset of the event that changed its rules.
  const eventAt = await f.events.waitFor(`event ${record.value.generation}`, (r) =>
    r.offset === record.value.generation ? r.timestamp : undefined,
  );
  const applyStart = Date.parse(ack.appliedAt) - ack.durationMs;
  return {
    watcher: eventAt - t0,
    projector: record.timestamp - eventAt,
    pickup: applyStart - record.timestamp,
    apply: ack.durationMs,
  };
}

export function lastAcked(acked: ReadonlyMap<string, NodeApplyStatus>): [string, NodeApplyStatus] {
  return [...acked].reduce((a, b) => (Date.parse(b[1].appliedAt) > Date.parse(a[1].appliedAt) ? b : a));
}

export function sayStages(stages: readonly Stages[]): void {
  const p50 = (pick: (s: Stages) => number): string => ms(computePercentile(stages.map(pick), 50));
  say(
    `    p50 by stage: watcher ${p50((s) => s.watcher)} · projector ${p50((s) => s.projector)} · ` +
      `agent pickup ${p50((s) => s.pickup)} · apply ${p50((s) => s.apply)}`,
  );
}

export const mentions = (r: NodeRules, ip: string): boolean =>
  r.steers.some((s) => s.egressIP === ip) || r.egressIPs.some((e) => e.egressIP === ip);

/** Creates and deletes StaticEgressIPs for the seed Service, through the API server. */
export interface PolicyRun {
  create(name: string, ip: string, cidr: string): Promise<void>;
  remove(name: string): Promise<void>;
}

export function seedServicePolicies(kubeConfig: KubeConfig): PolicyRun {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const where = { group: GROUP, version: VERSION, namespace: SEED.namespace, plural: 'staticegressips' };
  return {
    async create(name, ip, cidr) {
      await custom.createNamespacedCustomObject({
        ...where,
        body: {
          apiVersion: GROUP_VERSION,
          kind: 'StaticEgressIP',
          metadata: { name, namespace: SEED.namespace },
          spec: { rules: [{ egressip: ip, 'service-name': SEED.service, cidr }] },
        },
      });
    },
    async remove(name) {
      await custom.deleteNamespacedCustomObject({ ...where, name });
    },
  };
}

/**
 * Creates a policy, waits until the node-rules of every node in `directors` and of one gateway
 * mention its egress IP and those nodes acked them, records the time from just before the create
 * to the last ack, then deletes the policy and waits until those nodes acked its removal (two
 * policies with the same pods and destination would conflict).
 */
export async function measurePolicyRun(
  f: Followers,
  api: PolicyRun,
  directors: ReadonlySet<string>,
  run: { name: string; ip: string; cidr: string },
  out: Timed,
  /** Runs once the policy is applied everywhere, before it is deleted (e.g. a traffic check). */
  whileApplied?: () => Promise<void>,
): Promise<void> {
  const from = f.rules.records.length;
  const t0 = Date.now();
  await api.create(run.name, run.ip, run.cidr);
  const records = await waitRules(
    f,
    from,
    (r) => mentions(r, run.ip),
    (found) =>
      [...directors].every((n) => found.has(n)) &&
      [...found.values()].some((r) => r.egressIPs.some((e) => e.egressIP === run.ip)),
    `policy ${run.name}`,
  );
  const [last, ack] = lastAcked(await waitAcks(f, records));
  out.samples.push(Date.parse(ack.appliedAt) - t0);
  out.stages.push(await computeStages(f, t0, records.get(last)!, ack));
  await whileApplied?.();
  const beforeDelete = f.rules.records.length;
  await api.remove(run.name);
  const cleared = await waitRules(
    f,
    beforeDelete,
    (r) => !mentions(r, run.ip),
    (found) => [...records.keys()].every((n) => found.has(n)),
    `policy ${run.name} deleted`,
  );
  await waitAcks(f, cleared);
}
