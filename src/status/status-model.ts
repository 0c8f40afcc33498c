// The status writer's read model: folds the projector's decisions (kseip.decisions.v1), the
// per-node desired state (kseip.node-rules.v1) and the agents' apply acks (kseip.node-status.v1)
// into the `.status` object of every StaticEgressIP / ClusterStaticEgressIP / StaticEgressIPPool
// (a pool's from its PoolStatusComputed alone: it needs no acks), and derives the
// Kubernetes Events that decisions call for. Pure: no I/O, no clock. The state is a linear value
// (evolve mutates it in place and returns it, see src/projection/model.ts for the discipline).
//
// Status is derived from the log only. Every input carries `at`, the Kafka timestamp of the record
// it came from, and a condition's lastTransitionTime is the `at` of the input that flipped it: the
// same log gives the same times, whatever the writer's clock says and however often it restarts.
//
// programmedNodes ("which nodes applied this rule"), the definition:
// - A node's *contribution* to a rule is what its latest NodeRules record holds for it: the steers
//   whose `sources` name the rule (director role), and for the egress IP it holds the HeldEgressIP
//   entry (gateway role, keyed by the IP: a gateway record does not name rules).
// - `since(node, contribution)` is the generation of the first record, in the current unbroken run
//   of the node's records, in which that contribution had its present content. Unrelated changes
//   to the node (another policy's pods) do not move it; any change to this rule's part does.
// - The node has programmed the contribution when its latest ack is `ok` with
//   `generation >= since`. The agent applies whole records atomically and generations only grow,
//   so such an ack means the kernel holds exactly this contribution (a later record that changed
//   it would have reset `since`). A failed latest ack means "not programmed" until an ok one.
// - A rule expects its directors (the decision's `selectedNodes`, of which the node-rules must
//   name as many) and, when it has an active gateway, that gateway holding its IP. A rule that is
//   not Accepted or lost its IP to another policy programs nothing and expects nothing.
//   programmedNodes = programmed directors + (gateway programmed ? 1 : 0).
// - An ok ack may list rules the agent left out because that node cannot program them
//   (`unprogrammable`: an IPv6 egress IP, a slot out of range; the rest of the record was applied).
//   A contribution listed there, in an ack with `generation >= since`, is *not programmable* on
//   that node: not programmed, with the agent's reason (the steer's `sources` name the rule; a
//   held IP is matched by its IP).
// - Programmed=True when every rule has all it expects programmed (vacuously for a policy with
//   nothing to program). Otherwise False with the first of: ApplyFailed (a node's last apply
//   failed), NotProgrammable (every such rule, its egress IP, nodes and reason), Pending.
//   Ready = Accepted && PodsSelected && Assigned && Programmed && !Conflict.
// - PodsSelected comes from the decision. A decision written by a projector from before issue 12
//   has none: the status then leaves the condition out and Ready does not wait for it, so an
//   upgrade does not turn every policy not-Ready. (A restarted projector replays to its committed
//   offset without re-emitting, so such a decision stays the latest until the policy's status
//   changes for another reason.)
import type {
  Condition as DecisionCondition,
  Decision,
  PolicyRef,
  RuleStatus,
} from '../contracts/decisions.ts';
import type { NodeApplyStatus } from '../contracts/node-reports.ts';
import type { NodeRules } from '../contracts/node-rules.ts';
import { compare } from '../lib/compare.ts';

type PolicyStatusComputed = Extract<Decision, { type: 'PolicyStatusComputed' }>;
type PoolStatusComputed = Extract<Decision, { type: 'PoolStatusComputed' }>;

export type StatusInput =
  | { readonly kind: 'decision'; readonly decision: Decision; readonly at: string }
  | { readonly kind: 'nodeRules'; readonly rules: NodeRules; readonly at: string }
  | { readonly kind: 'ack'; readonly ack: NodeApplyStatus; readonly at: string };

export const conditionOrder = [
  'Accepted',
  'PodsSelected',
  'Assigned',
  'Programmed',
  'Conflict',
  'Ready',
] as const;
export type ConditionType = (typeof conditionOrder)[number];

/** metav1.Condition as the CRD stores it. */
export interface StatusCondition {
  readonly type: ConditionType;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration: number;
}

export interface RuleStatusView {
  readonly egressip: string;
  /** Absent while no node holds the egress IP (the CRD says so). */
  readonly activeGateway?: string;
  readonly standbyGateways: string[];
  readonly selectedPods: number;
  readonly selectedNodes: number;
  readonly programmedNodes: number;
}

/** The `.status` object written to the policy's status subresource. */
export interface PolicyStatusView {
  readonly observedGeneration: number;
  readonly egressIPs: string;
  readonly activeGateways: string;
  readonly rules: RuleStatusView[];
  readonly conditions: StatusCondition[];
}

interface Contribution {
  readonly sig: string;
  readonly since: number;
}

interface PolicyEntry {
  /** The latest decision; its policy ref names the object (with its uid) the status is for. */
  computed: PolicyStatusComputed;
  status: PolicyStatusView | undefined;
}

/** The `.status` object written to a StaticEgressIPPool's status subresource (docs/api.md). */
export interface PoolStatusView {
  readonly observedGeneration: number;
  readonly allocated: number;
  readonly allocations: { readonly egressip: string; readonly policy: string }[];
  readonly conditions: StatusCondition[];
}

interface PoolEntry {
  computed: PoolStatusComputed;
  status: PoolStatusView | undefined;
}

export interface StatusState {
  readonly policies: Map<string, PolicyEntry>;
  /** Pool name → its latest decision and status. */
  readonly pools: Map<string, PoolEntry>;
  /** node → contribution key (rule id, or "ip:<egressIP>" for a held IP) → content and since. */
  readonly contributions: Map<string, Map<string, Contribution>>;
  readonly acks: Map<string, NodeApplyStatus>;
}

export function initialStatusState(): StatusState {
  return { policies: new Map(), pools: new Map(), contributions: new Map(), acks: new Map() };
}

/** "ns/name" for a StaticEgressIP, "cluster/name" for a ClusterStaticEgressIP: the prefix of
 *  the projector's rule ids (src/projection/rules.ts ruleId). */
export function policyKey(ref: PolicyRef): string {
  return ref.namespace === undefined ? `cluster/${ref.name}` : `${ref.namespace}/${ref.name}`;
}

/** The policy a rule id ("ns/name#0", "cluster/name#1") belongs to; undefined for "". */
export function parseRuleOwner(ruleId: string): PolicyRef | undefined {
  const m = /^([^/]+)\/([^#]+)#\d+$/.exec(ruleId);
  if (m === null) return undefined;
  return m[1] === 'cluster'
    ? { kind: 'ClusterStaticEgressIP', name: m[2]! }
    : { kind: 'StaticEgressIP', namespace: m[1]!, name: m[2]! };
}

function ruleIdOf(ref: PolicyRef, index: number): string {
  return `${policyKey(ref)}#${index}`;
}

/** A node's contributions in one NodeRules record: rule id → the content of its steers. */
function selectContributions(rules: NodeRules): Map<string, string> {
  const parts = new Map<string, string[]>();
  for (const s of rules.steers) {
    const text = JSON.stringify([
      s.slot,
      s.egressIP,
      s.gatewayNode,
      s.gatewayIP,
      s.podIPs,
      s.destinations,
      s.exceptions,
    ]);
    for (const src of s.sources) parts.set(src, [...(parts.get(src) ?? []), text]);
  }
  const out = new Map<string, string>();
  for (const [k, v] of parts) out.set(k, JSON.stringify([rules.nodeIP, ...v.sort()]));
  for (const h of rules.egressIPs) out.set(`ip:${h.egressIP}`, JSON.stringify([rules.nodeIP, h.slot]));
  return out;
}

/**
 * Where a node stands with one contribution: `programmed`, `notProgrammable` (its latest ok ack,
 * covering the contribution, left it out: the reason), or undefined (pending or failed).
 * `key` is a rule id for a steer, `ip:<egressIP>` for a held egress IP.
 */
function selectProgramming(
  state: StatusState,
  node: string,
  key: string,
): { readonly programmed: true } | { readonly programmed: false; readonly reason: string } | undefined {
  const c = state.contributions.get(node)?.get(key);
  const ack = state.acks.get(node);
  if (c === undefined || ack === undefined || !ack.ok || ack.generation < c.since) return undefined;
  const ip = key.startsWith('ip:') ? key.slice(3) : undefined;
  const left = ack.unprogrammable?.find((u) =>
    ip === undefined
      ? u.role === 'steer' && u.sources.includes(key)
      : u.role === 'gateway' && u.egressIP === ip,
  );
  return left === undefined ? { programmed: true } : { programmed: false, reason: left.reason };
}

function ruleCondition(r: RuleStatus, type: DecisionCondition['type']): DecisionCondition | undefined {
  return r.conditions.find((c) => c.type === type);
}

/** Whether a rule programs anything at all (accepted and owning its egress IP). */
function programsAnything(r: RuleStatus): boolean {
  if (ruleCondition(r, 'Accepted')?.status !== 'True') return false;
  return ruleCondition(r, 'Assigned')?.reason !== 'ConflictLost';
}

interface RuleProgress {
  readonly expected: number;
  readonly programmed: number;
  readonly failed: string[];
  /** Nodes that left this rule out, with the agent's reason. */
  readonly notProgrammable: { readonly node: string; readonly reason: string }[];
}

function selectRuleProgress(state: StatusState, ref: PolicyRef, r: RuleStatus): RuleProgress {
  if (!programsAnything(r)) return { expected: 0, programmed: 0, failed: [], notProgrammable: [] };
  const id = ruleIdOf(ref, r.index);
  const failed: string[] = [];
  const notProgrammable: { node: string; reason: string }[] = [];
  const count = (node: string, key: string): number => {
    const p = selectProgramming(state, node, key);
    if (p?.programmed === true) return 1;
    if (p !== undefined) notProgrammable.push({ node, reason: p.reason });
    else if (state.acks.get(node)?.ok === false) failed.push(node);
    return 0;
  };
  let directors = 0;
  for (const [node, contribs] of state.contributions) if (contribs.has(id)) directors += count(node, id);
  const gateway = r.active === '' ? 0 : count(r.active, `ip:${r.egressIP}`);
  return {
    expected: r.selectedNodes + (r.active !== '' ? 1 : 0),
    programmed: Math.min(directors, r.selectedNodes) + gateway,
    failed,
    notProgrammable,
  };
}

/** "not programmable on node1, node2: egress IP is not IPv4", one part per distinct reason. */
function describeNotProgrammable(r: RuleStatus, p: RuleProgress): string {
  const byReason = new Map<string, Set<string>>();
  for (const { node, reason } of p.notProgrammable)
    byReason.set(reason, (byReason.get(reason) ?? new Set<string>()).add(node));
  const parts = [...byReason]
    .sort((a, b) => compare(a[0], b[0]))
    .map(([reason, nodes]) => `not programmable on ${[...nodes].sort(compare).join(', ')}: ${reason}`);
  return `rule ${r.index} (egress IP ${r.egressIP}): ${parts.join('; ')}`;
}

type Draft = Omit<StatusCondition, 'lastTransitionTime' | 'observedGeneration'>;

function fromDecision(c: DecisionCondition | undefined, type: ConditionType): Draft {
  return c === undefined
    ? { type, status: 'Unknown', reason: 'Pending', message: 'not computed yet' }
    : { type, status: c.status, reason: c.reason, message: c.message };
}

function programmedCondition(rules: readonly RuleStatus[], progress: readonly RuleProgress[]): Draft {
  const expected = progress.reduce((n, p) => n + p.expected, 0);
  const programmed = progress.reduce((n, p) => n + p.programmed, 0);
  if (expected === 0)
    return {
      type: 'Programmed',
      status: 'True',
      reason: 'NothingToProgram',
      message: 'no node has rules for this policy',
    };
  const failedAt = progress.findIndex((p) => p.failed.length > 0);
  if (failedAt !== -1) {
    const nodes = [...new Set(progress[failedAt]!.failed)].sort();
    return {
      type: 'Programmed',
      status: 'False',
      reason: 'ApplyFailed',
      message: `rule ${rules[failedAt]!.index}: the last apply failed on ${nodes.join(', ')}`,
    };
  }
  const notProgrammable = progress.flatMap((p, i) =>
    p.notProgrammable.length > 0 ? [describeNotProgrammable(rules[i]!, p)] : [],
  );
  if (notProgrammable.length > 0)
    return {
      type: 'Programmed',
      status: 'False',
      reason: 'NotProgrammable',
      message: notProgrammable.join('; '),
    };
  const pendingAt = progress.findIndex((p) => p.programmed < p.expected);
  if (pendingAt !== -1) {
    const p = progress[pendingAt]!;
    return {
      type: 'Programmed',
      status: 'False',
      reason: 'Pending',
      message: `rule ${rules[pendingAt]!.index}: ${p.programmed} of ${p.expected} nodes applied its rules`,
    };
  }
  return {
    type: 'Programmed',
    status: 'True',
    reason: 'Programmed',
    message: `${programmed} of ${expected} nodes applied their rules`,
  };
}

/** Conditions a decision of an older projector may lack: then absent, and not waited for. */
const absentFromOlderDecisions: ReadonlySet<ConditionType> = new Set(['PodsSelected']);

function readyCondition(byType: ReadonlyMap<ConditionType, Draft>): Draft {
  const blockers: [ConditionType, 'True' | 'False', string][] = [
    ['Accepted', 'True', 'NotAccepted'],
    ['PodsSelected', 'True', 'NoPodsSelected'],
    ['Assigned', 'True', 'NotAssigned'],
    ['Programmed', 'True', 'NotProgrammed'],
    ['Conflict', 'False', 'Conflict'],
  ];
  for (const [type, want, reason] of blockers) {
    const c = byType.get(type);
    if (c === undefined && absentFromOlderDecisions.has(type)) continue;
    if (c?.status !== want) return { type: 'Ready', status: 'False', reason, message: c?.message ?? '' };
  }
  return { type: 'Ready', status: 'True', reason: 'Ready', message: 'traffic leaves with the egress IPs' };
}

/** The status of one policy from the latest decision and the node state, before timestamps. */
export function computePolicyStatusView(
  state: StatusState,
  computed: PolicyStatusComputed,
  previous: PolicyStatusView | undefined,
  at: string,
): PolicyStatusView {
  const progress = computed.rules.map((r) => selectRuleProgress(state, computed.policy, r));
  const byType = new Map<ConditionType, Draft>();
  for (const type of ['Accepted', 'PodsSelected', 'Assigned', 'Conflict'] as const) {
    const c = computed.conditions.find((x) => x.type === type);
    if (c !== undefined || !absentFromOlderDecisions.has(type)) byType.set(type, fromDecision(c, type));
  }
  byType.set('Programmed', programmedCondition(computed.rules, progress));
  byType.set('Ready', readyCondition(byType));
  const conditions = conditionOrder.flatMap((type): StatusCondition[] => {
    const c = byType.get(type);
    return c === undefined ? [] : [withTransition(c, previous?.conditions, at, computed.observedGeneration)];
  });
  return {
    observedGeneration: computed.observedGeneration,
    egressIPs: computed.rules.map((r) => r.egressIP).join(','),
    activeGateways: computed.rules.map((r) => (r.active === '' ? '<none>' : r.active)).join(','),
    rules: computed.rules.map((r, i) => ({
      egressip: r.egressIP,
      ...(r.active === '' ? {} : { activeGateway: r.active }),
      standbyGateways: r.standbys,
      selectedPods: r.selectedPods,
      selectedNodes: r.selectedNodes,
      programmedNodes: progress[i]!.programmed,
    })),
    conditions,
  };
}

export const poolConditionOrder = ['Accepted', 'Conflict', 'Ready'] as const;

/** A condition's lastTransitionTime: kept while its status stays, else the input's time. */
function withTransition(
  c: Draft,
  previous: readonly StatusCondition[] | undefined,
  at: string,
  observedGeneration: number,
): StatusCondition {
  const before = previous?.find((p) => p.type === c.type);
  const lastTransitionTime =
    before !== undefined && before.status === c.status ? before.lastTransitionTime : at;
  return { ...c, lastTransitionTime, observedGeneration };
}

/**
 * The status of one pool from its latest decision. Ready: Accepted and no Conflict, like a
 * policy's, so `kubectl get seippool` shows a pool that needs its administrator's attention.
 */
export function computePoolStatusView(
  computed: PoolStatusComputed,
  previous: PoolStatusView | undefined,
  at: string,
): PoolStatusView {
  const accepted = fromDecision(
    computed.conditions.find((c) => c.type === 'Accepted'),
    'Accepted',
  );
  const conflict = fromDecision(
    computed.conditions.find((c) => c.type === 'Conflict'),
    'Conflict',
  );
  const ready: Draft =
    accepted.status !== 'True'
      ? { type: 'Ready', status: 'False', reason: 'NotAccepted', message: accepted.message }
      : conflict.status !== 'False'
        ? { type: 'Ready', status: 'False', reason: 'Conflict', message: conflict.message }
        : {
            type: 'Ready',
            status: 'True',
            reason: 'Ready',
            message: 'policies of the namespaces it admits can use its addresses',
          };
  return {
    observedGeneration: computed.observedGeneration,
    allocated: computed.allocations.length,
    allocations: computed.allocations.map((a) => ({ egressip: a.egressIP, policy: a.policy })),
    conditions: [accepted, conflict, ready].map((c) =>
      withTransition(c, previous?.conditions, at, computed.observedGeneration),
    ),
  };
}

/** Policies whose status may depend on this node. */
function policiesTouching(state: StatusState, node: string, keys: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const k of keys) {
    if (k.startsWith('ip:')) continue;
    const ref = parseRuleOwner(k);
    if (ref !== undefined) out.add(policyKey(ref));
  }
  for (const [key, p] of state.policies) if (p.computed.rules.some((r) => r.active === node)) out.add(key);
  return out;
}

function refresh(state: StatusState, keys: Iterable<string>, at: string): void {
  for (const key of keys) {
    const p = state.policies.get(key);
    if (p === undefined) continue;
    p.status = computePolicyStatusView(state, p.computed, p.status, at);
  }
}

/**
 * Folds one input. Returns the keys of the policies (`touched`) and the names of the pools
 * (`touchedPools`) whose status may have changed (the writer coalesces them and writes each
 * one's latest status).
 */
export function evolveStatus(
  state: StatusState,
  input: StatusInput,
): { state: StatusState; touched: string[]; touchedPools?: string[] } {
  switch (input.kind) {
    case 'decision': {
      const d = input.decision;
      if (d.type === 'PoolStatusComputed') {
        const entry = state.pools.get(d.pool.name);
        // A re-created pool (another uid) is another object: its conditions start afresh.
        const previous =
          entry !== undefined && entry.computed.pool.uid === d.pool.uid ? entry.status : undefined;
        state.pools.set(d.pool.name, { computed: d, status: computePoolStatusView(d, previous, input.at) });
        return { state, touched: [], touchedPools: [d.pool.name] };
      }
      if (d.type !== 'PolicyStatusComputed') return { state, touched: [] };
      const key = policyKey(d.policy);
      const entry = state.policies.get(key);
      if (entry === undefined) state.policies.set(key, { computed: d, status: undefined });
      else {
        // A re-created policy (another uid) is another object: its conditions start afresh.
        if (entry.computed.policy.uid !== d.policy.uid) entry.status = undefined;
        entry.computed = d;
      }
      refresh(state, [key], input.at);
      return { state, touched: [key] };
    }
    case 'nodeRules': {
      const r = input.rules;
      const before = state.contributions.get(r.node) ?? new Map<string, Contribution>();
      const after = new Map<string, Contribution>();
      for (const [k, sig] of selectContributions(r)) {
        const old = before.get(k);
        after.set(k, old !== undefined && old.sig === sig ? old : { sig, since: r.generation });
      }
      const changed = new Set<string>();
      for (const [k, c] of after) if (before.get(k) !== c) changed.add(k);
      for (const k of before.keys()) if (!after.has(k)) changed.add(k);
      if (after.size === 0) state.contributions.delete(r.node);
      else state.contributions.set(r.node, after);
      const touched = policiesTouching(state, r.node, changed);
      refresh(state, touched, input.at);
      return { state, touched: [...touched].sort() };
    }
    case 'ack': {
      const a = input.ack;
      const previous = state.acks.get(a.node);
      // Acks of one node arrive in order on its partition; an older generation after a newer one
      // can only be a restarted agent re-reporting, which is still its latest word.
      state.acks.set(a.node, a);
      if (
        previous !== undefined &&
        previous.ok === a.ok &&
        previous.generation === a.generation &&
        JSON.stringify(previous.unprogrammable ?? []) === JSON.stringify(a.unprogrammable ?? [])
      )
        return { state, touched: [] };
      const touched = policiesTouching(state, a.node, state.contributions.get(a.node)?.keys() ?? []);
      refresh(state, touched, input.at);
      return { state, touched: [...touched].sort() };
    }
    default: {
      const _exhaustive: never = input;
      return _exhaustive;
    }
  }
}

export function selectPolicyStatus(
  state: StatusState,
  key: string,
): { ref: PolicyRef; status: PolicyStatusView } | undefined {
  const p = state.policies.get(key);
  return p?.status === undefined ? undefined : { ref: p.computed.policy, status: p.status };
}

export function selectPoolStatus(
  state: StatusState,
  name: string,
): { ref: PoolStatusComputed['pool']; status: PoolStatusView } | undefined {
  const p = state.pools.get(name);
  return p?.status === undefined ? undefined : { ref: p.computed.pool, status: p.status };
}

/** A Kubernetes Event to record against a policy, named deterministically from its decision so
 *  that re-emitting it after a restart is an AlreadyExists, not a duplicate. */
export interface PolicyEvent {
  readonly policy: PolicyRef;
  /** Unique per (decision, policy): "<decision id>". */
  readonly decisionId: string;
  readonly type: 'Normal' | 'Warning';
  readonly reason: 'GatewayAssigned' | 'GatewayFailedOver' | 'ConflictDetected';
  readonly message: string;
  /** The decision record's timestamp (from the log). */
  readonly at: string;
}

const list = (xs: readonly string[]): string => (xs.length === 0 ? 'none' : xs.join(', '));

/** The Events a decision calls for (none for most). Pure. */
export function selectPolicyEvents(d: Decision, at: string): PolicyEvent[] {
  switch (d.type) {
    case 'GatewayAssigned': {
      const policy = parseRuleOwner(d.owner);
      if (policy === undefined) return [];
      const message =
        d.previous === ''
          ? `egress IP ${d.egressIP} is now held by ${d.active} (standbys: ${list(d.standbys)})`
          : `egress IP ${d.egressIP} stays on ${d.active}; standbys now ${list(d.standbys)} (were ${list(d.previousStandbys)})`;
      return [{ policy, decisionId: d.id, type: 'Normal', reason: 'GatewayAssigned', message, at }];
    }
    case 'GatewayFailedOver': {
      const policy = parseRuleOwner(d.owner);
      if (policy === undefined) return [];
      return [
        {
          policy,
          decisionId: d.id,
          type: 'Warning',
          reason: 'GatewayFailedOver',
          message: `egress IP ${d.egressIP} moved from ${d.from} to ${d.to} (${d.reason}); standbys: ${list(d.standbys)}`,
          at,
        },
      ];
    }
    case 'ConflictDetected':
      return [
        {
          policy: d.loserPolicy,
          decisionId: d.id,
          type: 'Warning',
          reason: 'ConflictDetected',
          message: `${d.conflict}: ${d.message}`,
          at,
        },
      ];
    case 'GatewayReleased':
    case 'ConflictResolved':
    case 'PolicyStatusComputed':
    case 'PoolStatusComputed':
      return [];
    default: {
      const _exhaustive: never = d;
      return _exhaustive;
    }
  }
}
