// Selected pods per rule, maintained incrementally from object changes. Pure (mutates only the
// linear state, see model.ts).
// Which pods a rule selects (docs/api.md):
// - never a hostNetwork pod or a terminal (Succeeded/Failed) pod;
// - only pods in the rule's scope: a StaticEgressIP's own namespace; for a ClusterStaticEgressIP
//   the namespaces its namespaceSelector selects and its governing pool admits (rules.ts);
// - serviceName: pods the Service's selector matches in that namespace, UNION the pods its
//   EndpointSlices name (targetRef). The union matters: a pod that turns NotReady may leave the
//   slice, but while the Service still selects it, it keeps its egress IP, so its traffic never
//   falls back to the node IP while it is selected. A Service without a selector selects through
//   hand-made slices only.
// - podSelector: pods whose labels match (an empty selector selects every pod in scope).
// - both given (the CRD forbids it): a pod must satisfy both. Neither: nothing.
// Readiness plays no part. A selected pod without an IP or node counts as "selected but not
// programmable" (RuleRec.unprogrammable) until it gets them.
//
// Incremental: every change re-evaluates only the (rule, pod) pairs it can affect, found
// through the indexes: pods by namespace, rules by namespace in scope, rules by service name,
// slice references by service. Nothing rescans all pods or all rules per pod event.
//
// Stage 2 of a step (evolveSelection): the object changes of the view in (Node and liveness
// changes go to gateways.ts); out go the rules that join, leave or must re-decide their egress
// IP's claim, the pods whose selecting rules changed (for claims) and the policies whose status
// may have changed. It owns rule scopes and selections, acceptance (rules.ts) and the indexes.
import { matchesSelector, matchesServiceSelector, matchesOptionalSelector } from './labels.ts';
import { jsonEqual, type ViewChange } from './cluster-view.ts';
import { buildRule, computeAcceptance, type Acceptance } from './rules.ts';
import { computePoolStanding } from './pools.ts';
import { addressHolder, type ReservedChanges } from './reserved.ts';
import {
  clearList,
  clearSet,
  addTo,
  countIn,
  isProgrammable,
  removeFrom,
  type PodRec,
  type PolicyPayload,
  type PolicyRec,
  type PoolStanding,
  type RuleRec,
  type SliceRec,
  type State,
} from './model.ts';

/** The view changes selection reacts to (Node and Liveness changes are the gateways'). */
export type ObjectChange = Exclude<ViewChange, { kind: 'Node' } | { kind: 'Liveness' }>;

/**
 * What selection hands on to claims (and, for policies, to status). Owned by selection: no other
 * stage writes it.
 */
export interface SelectionChanges {
  /** Rules that appeared: they join the claim on their egress IP. */
  readonly attached: readonly RuleRec[];
  /** Rules that went away: they leave the claim on their egress IP. */
  readonly detached: readonly RuleRec[];
  /** Rules whose acceptance (or governing pool) changed: their egress IP's claim is decided again. */
  readonly reaccepted: readonly RuleRec[];
  /** Pods whose selecting rules (or IPs, node or labels) changed: their effective rules are recomputed. */
  readonly pods: ReadonlySet<PodRec>;
  /** Policies whose status may have changed. */
  readonly policies: ReadonlySet<PolicyRec>;
}

/** The same, as selection builds it (its buffer in the state). */
export interface SelectionBuffer {
  readonly attached: RuleRec[];
  readonly detached: RuleRec[];
  readonly reaccepted: RuleRec[];
  readonly pods: Set<PodRec>;
  readonly policies: Set<PolicyRec>;
}

const NO_SELECTION_CHANGES: SelectionChanges = {
  attached: [],
  detached: [],
  reaccepted: [],
  pods: new Set(),
  policies: new Set(),
};

/** Stage 2 of a step: the object changes of one event → which rules select which pods. */
export function evolveSelection(
  state: State,
  changes: readonly ObjectChange[],
  reserved: ReservedChanges,
): SelectionChanges {
  if (changes.length === 0 && reserved.egressIPs.length === 0) return NO_SELECTION_CHANGES;
  const out = state.buffers.selection;
  clearList(out.attached);
  clearList(out.detached);
  clearList(out.reaccepted);
  clearSet(out.pods);
  clearSet(out.policies);
  for (const change of changes) applyObjectChange(state, out, change);
  applyReservedChanges(state, out, reserved);
  return out;
}

/** Most frequent kinds first; the last branch is exhaustive (a new kind fails to compile there). */
function applyObjectChange(state: State, out: SelectionBuffer, change: ObjectChange): void {
  if (change.kind === 'Pod') applyPodChange(state, out, change);
  else if (change.kind === 'EndpointSlice') applySliceChange(state, out, change);
  else if (change.kind === 'Service') applyServiceChange(state, out, change);
  else if (change.kind === 'Policy') applyPolicyChange(state, out, change);
  else if (change.kind === 'Namespace') applyNamespaceChange(state, out, change);
  else if (change.kind === 'Pool') applyPoolChange(state, out, change);
  // A ServiceCIDR selects nothing; what it reserves reaches acceptance through applyReservedChanges.
  else if (change.kind !== 'ServiceCIDR') {
    const _exhaustive: never = change;
    return _exhaustive;
  }
}

function inScope(rule: RuleRec, namespace: string): boolean {
  return rule.policy.namespace !== undefined
    ? rule.policy.namespace === namespace
    : rule.scope.has(namespace);
}

/** Whether `rule` selects `pod` in the current view (the definition above). */
export function selects(state: State, rule: RuleRec, pod: PodRec): boolean {
  if (rule.invalid !== undefined || rule.removed || pod.deleted) return false;
  if (pod.p.hostNetwork || pod.p.terminal) return false;
  if (!inScope(rule, pod.namespace)) return false;
  if (rule.serviceName === undefined && rule.podSelector === undefined) return false;
  if (rule.podSelector !== undefined && !matchesSelector(rule.podSelector, pod.p.labels)) return false;
  if (rule.serviceName !== undefined) {
    const svcKey = `${pod.namespace}/${rule.serviceName}`;
    const viaSelector = matchesServiceSelector(state.services.get(svcKey)?.p.selector, pod.p.labels);
    if (!viaSelector && !(state.sliceRefs.get(svcKey)?.has(pod.name) ?? false)) return false;
  }
  return true;
}

function setSelected(state: State, out: SelectionBuffer, rule: RuleRec, pod: PodRec, on: boolean): void {
  if (rule.selected.has(pod) === on) return;
  const prog = rule.family === 4 ? pod.prog4 : pod.prog6;
  if (on) {
    rule.selected.add(pod);
    pod.selectedBy.push(rule);
    if (!prog) rule.unprogrammable++;
  } else {
    rule.selected.delete(pod);
    pod.selectedBy = pod.selectedBy.filter((r) => r !== rule);
    if (!prog) rule.unprogrammable--;
  }
  out.pods.add(pod);
  out.policies.add(rule.policy);
}

function reevaluate(state: State, out: SelectionBuffer, rule: RuleRec, pod: PodRec): void {
  setSelected(state, out, rule, pod, selects(state, rule, pod));
}

function reevaluateNamespace(state: State, out: SelectionBuffer, rule: RuleRec, namespace: string): void {
  for (const pod of state.podsByNamespace.get(namespace) ?? []) reevaluate(state, out, rule, pod);
}

// ---- pods ----

function applyPodChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'Pod' }>,
): void {
  const pod = change.rec;
  out.pods.add(pod);
  if (pod.deleted) {
    for (const rule of [...pod.selectedBy]) setSelected(state, out, rule, pod, false);
    removeFrom(state.podsByNamespace, pod.namespace, pod);
    return;
  }
  const before = change.before;
  if (before === undefined) addTo(state.podsByNamespace, pod.namespace, pod);
  // Programmability first, with the rules selecting the pod now; then selection with the new
  // labels (setSelected counts with the already updated flags).
  const prog4 = isProgrammable(pod, 4);
  const prog6 = isProgrammable(pod, 6);
  if (prog4 !== pod.prog4 || prog6 !== pod.prog6) {
    for (const rule of pod.selectedBy) {
      const was = rule.family === 4 ? pod.prog4 : pod.prog6;
      const now = rule.family === 4 ? prog4 : prog6;
      if (was !== now) {
        rule.unprogrammable += now ? -1 : 1;
        out.policies.add(rule.policy);
      }
    }
    pod.prog4 = prog4;
    pod.prog6 = prog6;
  }
  if (
    before === undefined ||
    before.hostNetwork !== pod.p.hostNetwork ||
    before.terminal !== pod.p.terminal ||
    !jsonEqual(before.labels, pod.p.labels)
  ) {
    // Every rule that selects the pod is in scope of its namespace, so this covers losing rules too.
    for (const rule of state.rulesByNamespace.get(pod.namespace) ?? []) reevaluate(state, out, rule, pod);
  }
}

// ---- services and endpoint slices ----

function rulesForService(state: State, namespace: string, service: string): RuleRec[] {
  const out: RuleRec[] = [];
  for (const rule of state.rulesByService.get(service) ?? []) if (inScope(rule, namespace)) out.push(rule);
  return out;
}

function applyServiceChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'Service' }>,
): void {
  const { namespace, name } = change.rec;
  for (const rule of rulesForService(state, namespace, name)) {
    reevaluateNamespace(state, out, rule, namespace);
    // A rule that selects nothing says whether its Service exists (status.ts, PodsSelected):
    // that can change with no pod joining or leaving.
    if (rule.selected.size === 0) out.policies.add(rule.policy);
  }
}

function sliceRef(state: State, svcKey: string, podName: string, delta: number): boolean {
  let refs = state.sliceRefs.get(svcKey);
  if (refs === undefined) state.sliceRefs.set(svcKey, (refs = new Map<string, number>()));
  const before = refs.get(podName) ?? 0;
  countIn(refs, podName, delta);
  if (refs.size === 0) state.sliceRefs.delete(svcKey);
  return before === 0 || before + delta === 0;
}

function applySliceChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'EndpointSlice' }>,
): void {
  const rec: SliceRec = change.rec;
  const ns = rec.namespace;
  const oldSvc = change.beforeService;
  const newSvc = change.deleted ? undefined : rec.p.serviceName;
  const oldPods = oldSvc === undefined ? [] : change.beforePods;
  const newPods = newSvc === undefined ? [] : rec.podNames;
  const touched: [string, string][] = [];
  if (oldSvc === newSvc) {
    const oldSet = new Set(oldPods);
    const newSet = new Set(newPods);
    for (const p of oldPods)
      if (!newSet.has(p) && sliceRef(state, `${ns}/${oldSvc}`, p, -1)) touched.push([oldSvc as string, p]);
    for (const p of newPods)
      if (!oldSet.has(p) && sliceRef(state, `${ns}/${newSvc}`, p, +1)) touched.push([newSvc as string, p]);
  } else {
    if (oldSvc !== undefined)
      for (const p of oldPods) if (sliceRef(state, `${ns}/${oldSvc}`, p, -1)) touched.push([oldSvc, p]);
    if (newSvc !== undefined)
      for (const p of newPods) if (sliceRef(state, `${ns}/${newSvc}`, p, +1)) touched.push([newSvc, p]);
  }
  if (touched.length === 0) return;
  // At most two services (old and new name); look their rules up once, not once per pod.
  const rulesOf = new Map<string, RuleRec[]>();
  for (const [svc, podName] of touched) {
    const pod = state.pods.get(`${ns}/${podName}`);
    if (pod === undefined) continue;
    let rules = rulesOf.get(svc);
    if (rules === undefined) rulesOf.set(svc, (rules = rulesForService(state, ns, svc)));
    for (const rule of rules) reevaluate(state, out, rule, pod);
  }
}

// ---- scope and acceptance (namespaces, pools) ----

/** For a cluster rule and a namespace: selected by the policy, and admitted by the pool. */
function clusterScope(state: State, rule: RuleRec, namespace: string): [boolean, boolean] {
  const ns = state.namespaces.get(namespace);
  if (ns === undefined || rule.invalid !== undefined || rule.removed) return [false, false];
  const selected = matchesSelector(rule.namespaceSelector ?? {}, ns.p.labels);
  return [selected, selected && matchesOptionalSelector(rule.pool?.p.namespaceSelector, ns.p.labels)];
}

function rescopeNamespace(state: State, out: SelectionBuffer, rule: RuleRec, namespace: string): void {
  const [selected, want] = clusterScope(state, rule, namespace);
  if (selected && !want) {
    if (!rule.excluded.has(namespace)) {
      rule.excluded.add(namespace);
      out.policies.add(rule.policy);
    }
  } else if (rule.excluded.delete(namespace)) out.policies.add(rule.policy);
  if (want === rule.scope.has(namespace)) return;
  if (want) {
    rule.scope.add(namespace);
    addTo(state.rulesByNamespace, namespace, rule);
  } else {
    rule.scope.delete(namespace);
    removeFrom(state.rulesByNamespace, namespace, rule);
  }
  reevaluateNamespace(state, out, rule, namespace);
  // An empty selection's PodsSelected message says whether any namespace is in scope.
  if (rule.selected.size === 0) out.policies.add(rule.policy);
}

function rescopeAll(state: State, out: SelectionBuffer, rule: RuleRec): void {
  for (const ns of state.namespaces.keys()) rescopeNamespace(state, out, rule, ns);
  for (const ns of [...rule.scope, ...rule.excluded])
    if (!state.namespaces.has(ns)) rescopeNamespace(state, out, rule, ns);
}

/** `poolEdited`: the rule's (old or new) governing pool itself changed, e.g. its selectors. */
function setAcceptance(
  state: State,
  out: SelectionBuffer,
  rule: RuleRec,
  acc: Acceptance,
  poolEdited = false,
): void {
  if (
    !poolEdited &&
    rule.accepted === acc.accepted &&
    rule.acceptReason === acc.reason &&
    rule.acceptMessage === acc.message &&
    rule.pool === acc.pool
  )
    return;
  const poolChanged = poolEdited || rule.pool !== acc.pool;
  rule.accepted = acc.accepted;
  rule.acceptReason = acc.reason;
  rule.acceptMessage = acc.message;
  rule.pool = acc.pool;
  out.policies.add(rule.policy);
  out.reaccepted.push(rule);
  if (poolChanged && rule.policy.namespace === undefined) rescopeAll(state, out, rule);
}

function acceptanceOf(state: State, rule: RuleRec, pools: readonly PoolStanding[]): Acceptance {
  const ns = rule.policy.namespace;
  return computeAcceptance(
    rule,
    pools,
    ns === undefined ? undefined : state.namespaces.get(ns)?.p.labels,
    (a) => addressHolder(state, a),
  );
}

/** Rules whose egress IP's holder may have changed (reserved.ts) decide their acceptance again. */
function applyReservedChanges(state: State, out: SelectionBuffer, reserved: ReservedChanges): void {
  if (reserved.egressIPs.length === 0) return;
  const pools = state.poolStanding;
  for (const ip of reserved.egressIPs)
    for (const rule of state.ips.get(ip)?.rules ?? [])
      if (rule.invalid === undefined && !rule.removed)
        setAcceptance(state, out, rule, acceptanceOf(state, rule, pools));
}

function applyNamespaceChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'Namespace' }>,
): void {
  for (const rule of state.clusterRules) rescopeNamespace(state, out, rule, change.name);
  const own = state.namespacedRulesByNamespace.get(change.name);
  if (own !== undefined && state.pools.size > 0) {
    const pools = state.poolStanding;
    for (const rule of own) setAcceptance(state, out, rule, acceptanceOf(state, rule, pools));
  }
}

function applyPoolChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'Pool' }>,
): void {
  // One pool's change can accept or refuse others (overlaps): every rule is decided again, and a
  // rule whose governing pool changes that way sees another Acceptance.
  state.poolStanding = computePoolStanding(state.pools.values());
  const pools = state.poolStanding;
  for (const policy of state.policies.values())
    for (const rule of policy.rules) {
      if (rule.invalid !== undefined) continue;
      const acc = acceptanceOf(state, rule, pools);
      setAcceptance(state, out, rule, acc, rule.pool?.name === change.name || acc.pool?.name === change.name);
    }
}

// ---- policies ----

function addRule(state: State, out: SelectionBuffer, rule: RuleRec, pools: readonly PoolStanding[]): void {
  out.policies.add(rule.policy);
  if (rule.invalid !== undefined) return;
  const acc = acceptanceOf(state, rule, pools);
  rule.accepted = acc.accepted;
  rule.acceptReason = acc.reason;
  rule.acceptMessage = acc.message;
  rule.pool = acc.pool;
  if (rule.serviceName !== undefined) addTo(state.rulesByService, rule.serviceName, rule);
  out.attached.push(rule);
  const ns = rule.policy.namespace;
  if (ns !== undefined) {
    addTo(state.namespacedRulesByNamespace, ns, rule);
    addTo(state.rulesByNamespace, ns, rule);
    reevaluateNamespace(state, out, rule, ns);
  } else {
    state.clusterRules.add(rule);
    rescopeAll(state, out, rule);
  }
}

function removeRule(state: State, out: SelectionBuffer, rule: RuleRec): void {
  rule.removed = true;
  out.policies.add(rule.policy);
  if (rule.invalid !== undefined) return;
  for (const pod of rule.selected) {
    pod.selectedBy = pod.selectedBy.filter((r) => r !== rule);
    out.pods.add(pod);
  }
  rule.selected.clear();
  rule.unprogrammable = 0;
  if (rule.serviceName !== undefined) removeFrom(state.rulesByService, rule.serviceName, rule);
  out.detached.push(rule);
  const ns = rule.policy.namespace;
  if (ns !== undefined) {
    removeFrom(state.namespacedRulesByNamespace, ns, rule);
    removeFrom(state.rulesByNamespace, ns, rule);
  } else {
    state.clusterRules.delete(rule);
    for (const scoped of rule.scope) removeFrom(state.rulesByNamespace, scoped, rule);
    rule.scope.clear();
    rule.excluded.clear();
  }
}

function namespaceSelectorOf(p: PolicyPayload | undefined): unknown {
  return p !== undefined && 'namespaceSelector' in p ? p.namespaceSelector : undefined;
}

/**
 * A policy appeared, changed or went away. Rules whose spec (and, for a cluster policy, the
 * namespaceSelector) did not change keep their state, so editing one rule re-evaluates only it.
 */
function applyPolicyChange(
  state: State,
  out: SelectionBuffer,
  change: Extract<ViewChange, { kind: 'Policy' }>,
): void {
  const policy: PolicyRec = change.rec;
  out.policies.add(policy);
  const old = policy.rules;
  if (policy.deleted) {
    for (const rule of old) removeRule(state, out, rule);
    policy.rules = [];
    return;
  }
  const pools = state.poolStanding;
  const sameScope = jsonEqual(namespaceSelectorOf(change.before), namespaceSelectorOf(policy.p));
  const next: RuleRec[] = [];
  policy.p.rules.forEach((spec, index) => {
    const prev = old[index];
    if (prev !== undefined && sameScope && jsonEqual(prev.spec, spec)) next.push(prev);
    else next.push(buildRule(policy, index, spec));
  });
  for (const rule of old) if (!next.includes(rule)) removeRule(state, out, rule);
  policy.rules = next;
  for (const rule of next) if (!old.includes(rule)) addRule(state, out, rule, pools);
}
