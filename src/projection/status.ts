// Policy status: per rule the egress IP, its gateways, how many pods and nodes it selects, and
// the Accepted / PodsSelected / Assigned / Conflict conditions; per policy the same conditions
// aggregated.
// Pure (mutates only the linear state, see model.ts). A PolicyStatusComputed is emitted only
// when the computed status differs from the last one emitted for the policy; Programmed and
// Ready need agent acks and are the status writer's to add.
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
// Stage 6, the last of a step (emitStatuses): the policies every earlier stage touched, and the
// nodes whose liveness changed (a rule's selectedNodes counts only live nodes), in; out go the
// PolicyStatusComputed decisions. It owns the statuses as last emitted.
import type { Condition, DecisionDraft, RuleStatus } from '../contracts/decisions.ts';
import { DECISIONS_SCHEMA } from '../contracts/decisions.ts';
import { inOrder, isActive, type PolicyRec, type PolicyStatus, type RuleRec, type State } from './model.ts';
import { jsonEqual } from './cluster-view.ts';
import { compare } from '../lib/compare.ts';

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
