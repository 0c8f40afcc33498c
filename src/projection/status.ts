// Policy status: per rule the egress IP, its gateways, how many pods and nodes it selects, and
// the Accepted / PodsSelected / Assigned / Conflict conditions; per policy the same conditions
// aggregated. Pool status: the egress IPs of the pool that policies use, Accepted (pools.ts) and
// Conflict (a StaticEgressIP asks for an address of the pool from a namespace the pool does not
// admit). Pure (mutates only the linear state, see model.ts). A PolicyStatusComputed /
// PoolStatusComputed is emitted only when the computed status differs from the last one emitted
// for the object; Programmed and Ready need agent acks (Ready for a pool: its conditions) and are
// the status writer's to add.
//
// Aggregation: Accepted, PodsSelected and Assigned are True when every rule's is (else False
// with the first failing rule's reason); Conflict is True when any rule's is (with the first such
// reason).
//
// PodsSelected (issue 12, finding 6: a policy that selects nothing must not look Ready) reads
// only the rule's own counters and one Service lookup, so it adds no per-event work that grows
// with the cluster. selection.ts names the policy as touched whenever its count crosses zero and,
// while it selects nothing, whenever the Service it names or its namespace scope changes.
//
// Stage 7, the last of a step (emitStatuses, emitPoolStatuses): the policies every earlier stage
// touched, and the nodes whose liveness changed (a rule's selectedNodes counts only live nodes),
// in; out go the PolicyStatusComputed decisions. For pools: every pool after a pool change,
// else the pools covering an egress IP whose claim was decided again (claims.ts), in; out go the
// PoolStatusComputed decisions. It owns the statuses as last emitted.
import type { Condition, DecisionDraft, PoolAllocation, RuleStatus } from '../contracts/decisions.ts';
import { DECISIONS_SCHEMA } from '../contracts/decisions.ts';
import { parseAddress, rangesCover } from './addresses.ts';
import {
  inOrder,
  isActive,
  type EgressIPRec,
  type PolicyRec,
  type PolicyStatus,
  type PoolStanding,
  type PoolStatus,
  type RuleRec,
  type State,
} from './model.ts';
import { jsonEqual } from './cluster-view.ts';
import { compare, compareBig } from '../lib/compare.ts';

function cond(type: Condition['type'], ok: boolean, reason: string, message: string): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message };
}

/** How a cluster rule's Accepted message names the namespaces its pool leaves out. */
const EXCLUDED_NAMED = 5;

function acceptedMessage(rule: RuleRec): string {
  if (rule.excluded.size === 0) return rule.acceptMessage;
  const names = [...rule.excluded].sort();
  const shown = names.slice(0, EXCLUDED_NAMED).join(', ');
  const more = names.length > EXCLUDED_NAMED ? ` and ${names.length - EXCLUDED_NAMED} more` : '';
  return `${rule.acceptMessage}; namespaces selected but not admitted by pool ${rule.pool?.name ?? ''}, left out: ${shown}${more}`;
}

/** Why a selection comes out empty, as the rule's PodsSelected message says it. */
function noPodsMessage(state: State, rule: RuleRec): { reason: string; message: string } {
  const ns = rule.policy.namespace;
  if (rule.serviceName !== undefined && ns !== undefined) {
    const service = `${ns}/${rule.serviceName}`;
    if (!state.services.has(service))
      return {
        reason: 'ServiceNotFound',
        message: `Service ${service} does not exist: the rule selects no pod until it is created (or service-name is corrected)`,
      };
    return {
      reason: 'NoPodsSelected',
      message: `Service ${service} selects no running pod (neither its selector nor its EndpointSlices name one): no traffic leaves with ${rule.egressIP}`,
    };
  }
  if (ns !== undefined)
    return {
      reason: 'NoPodsSelected',
      message: `podSelector matches no running pod in namespace ${ns}: no traffic leaves with ${rule.egressIP}`,
    };
  return {
    reason: 'NoPodsSelected',
    message:
      rule.scope.size === 0
        ? `no namespace is in scope (namespaceSelector selects none${rule.excluded.size > 0 ? ' that the pool admits' : ''}): no traffic leaves with ${rule.egressIP}`
        : `podSelector matches no running pod in the namespaces in scope: no traffic leaves with ${rule.egressIP}`,
  };
}

function podsSelectedCondition(state: State, rule: RuleRec): Condition {
  if (!rule.accepted) return cond('PodsSelected', false, 'NotAccepted', 'the rule is not accepted');
  const n = rule.selected.size;
  if (n === 0) {
    const { reason, message } = noPodsMessage(state, rule);
    return cond('PodsSelected', false, reason, message);
  }
  const pending =
    rule.unprogrammable > 0
      ? `, ${rule.unprogrammable} of them without a node or an IP of the egress IP's family yet`
      : '';
  return cond('PodsSelected', true, 'PodsSelected', `${n} pod(s) selected${pending}`);
}

function ruleConditions(state: State, rule: RuleRec): Condition[] {
  const accepted = cond('Accepted', rule.accepted, rule.acceptReason, acceptedMessage(rule));
  const ip = state.ips.get(rule.egressIP);
  let assigned: Condition;
  if (!rule.accepted) assigned = cond('Assigned', false, 'NotAccepted', 'the rule is not accepted');
  else if (!rule.winner)
    assigned = cond(
      'Assigned',
      false,
      'ConflictLost',
      `egress IP ${rule.egressIP} is used by ${rule.claimLostTo?.id ?? ''}`,
    );
  else if (ip === undefined || ip.emitted.active === '')
    assigned = cond(
      'Assigned',
      false,
      'NoEligibleGateway',
      `no node is eligible to hold ${rule.egressIP}; its selected traffic is dropped, never sent with a node IP`,
    );
  else
    assigned = cond('Assigned', true, 'GatewayAssigned', `${rule.egressIP} is held by ${ip.emitted.active}`);
  let conflict: Condition;
  if (rule.accepted && !rule.winner && rule.claimLostTo !== undefined)
    conflict = cond(
      'Conflict',
      true,
      'EgressIPClaimed',
      `egress IP ${rule.egressIP} is also claimed by ${rule.claimLostTo.id}, which was first seen earlier and keeps it`,
    );
  else if (rule.overlapLost.size > 0) {
    const winners = [...rule.overlapLost.entries()].sort(([a], [b]) => compare(a.id, b.id));
    const pods = winners.reduce((n, [, c]) => n + c, 0);
    conflict = cond(
      'Conflict',
      true,
      'SelectionOverlap',
      `${pods} selected pod(s) are also selected by ${winners.map(([w]) => w.id).join(', ')} with a different egress IP for overlapping destinations, which take precedence for them`,
    );
  } else conflict = cond('Conflict', false, 'NoConflict', 'no other rule competes with this one');
  return [accepted, podsSelectedCondition(state, rule), assigned, conflict];
}

export function computeRuleStatus(state: State, rule: RuleRec): RuleStatus {
  const ip = state.ips.get(rule.egressIP);
  const active = isActive(rule) && ip !== undefined ? ip.emitted.active : '';
  return {
    index: rule.index,
    egressIP: rule.egressIP,
    active,
    standbys: active !== '' && ip !== undefined ? ip.emitted.standbys : [],
    selectedPods: rule.selected.size,
    unprogrammablePods: rule.unprogrammable,
    // A node declared lost cannot send anything, so it is not waited for: Programmed and Ready
    // describe the traffic that can flow. It programs its rules when it is back.
    selectedNodes: countLiveNodes(state, rule.nodeCounts),
    conditions: ruleConditions(state, rule),
  };
}

/** How many of the nodes are not declared lost (a loop: this runs for every status recomputed). */
function countLiveNodes(state: State, nodes: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const node of nodes.keys()) if (state.liveness.get(node) !== false) n++;
  return n;
}

function aggregate(type: Condition['type'], rules: readonly RuleStatus[], anyTrue: boolean): Condition {
  const ofType = rules.map((r) => ({
    index: r.index,
    c: r.conditions.find((c) => c.type === type) as Condition,
  }));
  const hit = ofType.find(({ c }) => (anyTrue ? c.status === 'True' : c.status !== 'True'));
  if (hit !== undefined) return { ...hit.c, message: `rule ${hit.index}: ${hit.c.message}` };
  if (anyTrue) return cond(type, false, 'NoConflict', 'no rule competes with another rule');
  // All rules agree: say what each says (pools, gateways), which is what kubectl describe shows.
  const first = ofType[0]?.c ?? cond(type, true, type === 'Assigned' ? 'GatewayAssigned' : type, '');
  const message =
    ofType.length === 1
      ? first.message
      : ofType.map(({ index, c }) => `rule ${index}: ${c.message}`).join('; ');
  return { ...first, message };
}

export function computePolicyStatus(state: State, policy: PolicyRec): PolicyStatus {
  const rules = policy.rules.map((r) => computeRuleStatus(state, r));
  return {
    policy: policy.ref,
    observedGeneration: policy.p.generation,
    rules,
    conditions: [
      aggregate('Accepted', rules, false),
      aggregate('PodsSelected', rules, false),
      aggregate('Assigned', rules, false),
      aggregate('Conflict', rules, true),
    ],
  };
}

/** Stage 6: PolicyStatusComputed for the touched policies whose status changed, in policy-key order. */
export function emitStatuses(
  state: State,
  fromSelection: ReadonlySet<PolicyRec>,
  fromClaims: ReadonlySet<PolicyRec>,
  fromSteers: ReadonlySet<PolicyRec>,
  fromGateways: ReadonlySet<PolicyRec>,
  livenessChanged: readonly string[],
  offset: number,
): DecisionDraft[] {
  const policies = touchedPolicies(
    state,
    fromSelection,
    fromClaims,
    fromSteers,
    fromGateways,
    livenessChanged,
  );
  if (policies.size === 0) return [];
  const out: DecisionDraft[] = [];
  for (const policy of inOrder(policies, (a, b) => compare(a.key, b.key))) {
    if (policy.deleted) {
      if (!state.policies.has(policy.key)) state.emittedStatus.delete(policy.key);
      continue;
    }
    const status = computePolicyStatus(state, policy);
    const before = state.emittedStatus.get(policy.key);
    if (before !== undefined && jsonEqual(before, status)) continue;
    state.emittedStatus.set(policy.key, status);
    out.push({ schema: DECISIONS_SCHEMA, type: 'PolicyStatusComputed', offset, ...status });
  }
  return out;
}

/** The union of the stages' policies, plus the policies with selected pods on a node whose liveness changed. */
function touchedPolicies(
  state: State,
  a: ReadonlySet<PolicyRec>,
  b: ReadonlySet<PolicyRec>,
  c: ReadonlySet<PolicyRec>,
  d: ReadonlySet<PolicyRec>,
  livenessChanged: readonly string[],
): ReadonlySet<PolicyRec> {
  // Usually one policy, named by one or two stages: no new set unless the stages differ.
  if (livenessChanged.length === 0) {
    let largest = a;
    if (b.size > largest.size) largest = b;
    if (c.size > largest.size) largest = c;
    if (d.size > largest.size) largest = d;
    if (within(a, largest) && within(b, largest) && within(c, largest) && within(d, largest)) return largest;
  }
  const all = new Set<PolicyRec>();
  for (const set of [a, b, c, d]) for (const p of set) all.add(p);
  for (const node of livenessChanged)
    for (const policy of state.policies.values())
      if (policy.rules.some((r) => r.nodeCounts.has(node))) all.add(policy);
  return all;
}

function within(set: ReadonlySet<PolicyRec>, of: ReadonlySet<PolicyRec>): boolean {
  if (set === of || set.size === 0) return true;
  for (const p of set) if (!of.has(p)) return false;
  return true;
}

// ---- pools ----

/** How many policies a pool's Conflict message names before "and N more". */
const REFUSED_NAMED = 5;

/** "namespace/name" for a StaticEgressIP, "name" for a ClusterStaticEgressIP (the CRD's allocations[].policy). */
function policyName(policy: PolicyRec): string {
  return policy.namespace === undefined ? policy.name : `${policy.namespace}/${policy.name}`;
}

/** The egress IP records an Accepted pool governs, in address order. */
function ipsOfPool(state: State, standing: PoolStanding): EgressIPRec[] {
  const out: { rec: EgressIPRec; value: bigint }[] = [];
  for (const rec of state.ips.values()) {
    const addr = parseAddress(rec.ip);
    if (addr !== undefined && rangesCover(standing.pool.ranges, addr)) out.push({ rec, value: addr.value });
  }
  return out.sort((a, b) => a.rec.family - b.rec.family || compareBig(a.value, b.value)).map((x) => x.rec);
}

export function computePoolStatus(state: State, standing: PoolStanding): PoolStatus {
  const pool = standing.pool;
  const allocations: PoolAllocation[] = [];
  const refused: string[] = [];
  // A pool that is not Accepted governs nothing: no allocation, and no namespace asks it.
  for (const rec of standing.accepted ? ipsOfPool(state, standing) : []) {
    let user: RuleRec | undefined;
    const askers = new Map<string, string>();
    for (const r of rec.rules) {
      if (r.removed) continue;
      if (user === undefined && isActive(r) && r.pool === pool) user = r;
      // The one Accepted pool covering the IP refused the namespace: this one.
      else if (r.acceptReason === 'NamespaceNotPermitted' && r.policy.namespace !== undefined)
        askers.set(policyName(r.policy), r.policy.namespace);
    }
    if (user !== undefined) allocations.push({ egressIP: rec.ip, policy: policyName(user.policy) });
    for (const [p, ns] of [...askers].sort(([a], [b]) => compare(a, b)))
      refused.push(
        `StaticEgressIP ${p} asks for ${rec.ip} from namespace ${ns}, which this pool does not admit`,
      );
  }
  const accepted: Condition = standing.accepted
    ? cond('Accepted', true, 'Accepted', 'the addresses overlap no pool that takes precedence')
    : cond(
        'Accepted',
        false,
        'Overlaps',
        `${standing.overlap?.entry ?? ''} overlaps ${standing.overlap?.theirs ?? ''} of pool ${standing.overlap?.pool ?? ''}, which takes precedence (created earlier); no address of this pool is used until the overlap is removed`,
      );
  const more = refused.length > REFUSED_NAMED ? `; and ${refused.length - REFUSED_NAMED} more` : '';
  const conflict: Condition =
    refused.length > 0
      ? {
          type: 'Conflict',
          status: 'True',
          reason: 'NamespaceNotAdmitted',
          message: `${refused.slice(0, REFUSED_NAMED).join('; ')}${more}`,
        }
      : cond(
          'Conflict',
          false,
          'NoConflict',
          'no policy asks for an address of this pool from a namespace it does not admit',
        );
  return {
    pool: pool.ref,
    observedGeneration: pool.p.generation,
    allocations,
    conditions: [accepted, conflict],
  };
}

/**
 * Stage 7 for pools: PoolStatusComputed for the pools whose status may have changed and did, in
 * name order. `poolsChanged`: a pool appeared, changed or went away (every pool's standing may
 * follow); `ips`: the egress IPs whose claim claims.ts decided again.
 */
export function emitPoolStatuses(
  state: State,
  poolsChanged: boolean,
  ips: ReadonlySet<EgressIPRec>,
  offset: number,
): DecisionDraft[] {
  if (!poolsChanged && (ips.size === 0 || state.poolStanding.length === 0)) return [];
  if (poolsChanged)
    for (const name of state.emittedPoolStatus.keys())
      if (!state.pools.has(name)) state.emittedPoolStatus.delete(name);
  const touched = poolsChanged
    ? state.poolStanding
    : state.poolStanding.filter((s) =>
        [...ips].some((rec) => {
          const addr = parseAddress(rec.ip);
          return addr !== undefined && rangesCover(s.pool.ranges, addr);
        }),
      );
  const out: DecisionDraft[] = [];
  for (const standing of [...touched].sort((a, b) => compare(a.pool.name, b.pool.name))) {
    const status = computePoolStatus(state, standing);
    const before = state.emittedPoolStatus.get(standing.pool.name);
    if (before !== undefined && jsonEqual(before, status)) continue;
    state.emittedPoolStatus.set(standing.pool.name, status);
    out.push({ schema: DECISIONS_SCHEMA, type: 'PoolStatusComputed', offset, ...status });
  }
  return out;
}
