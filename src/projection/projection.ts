// The projection: cluster events in, decisions and changed node rules out. Pure: a fold
// `evolve(state, event, offset) => state` over the log, with the outputs of the last step in
// `selectStepOutputs(state)`. No I/O, clock, logger or randomness; the state is a linear value
// (model.ts explains why, and why that keeps the fold observably pure).
//
// One step, in order (each phase recomputes only what the earlier ones marked dirty):
//   1. cluster-view  the event → object changes (or nothing: duplicate, fenced, unchanged)
//   2. selection     rule scopes, acceptance and selected pods; gateways: node eligibility
//   3. claims        egress IP winners and owners
//   4. gateways      owner parameters, rankings, slots
//   5. claims        per-pod effective rules (overlaps), registered on nodes
//   6. gateways      assignment changes → gateway decisions, holders, nodes to re-render
//   7. node-rules    re-render touched nodes, emit those that changed
//   8. claims/status ConflictResolved/Detected and PolicyStatusComputed that changed
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import type { Decision, DecisionDraft } from '../contracts/decisions.ts';
import type { ViewChange } from './cluster-view.ts';
import { evolveClusterView } from './cluster-view.ts';
import { emitConflicts, resolveClaims, resolvePods } from './claims.ts';
import { applyNodeChange, emitAssignments, refreshGateways, updateEligibility } from './gateways.ts';
import { initialState as initialModelState, type State, type StepOutputs } from './model.ts';
import { renderDirtyNodes } from './steers.ts';
import {
  applyNamespaceChange,
  applyPodChange,
  applyPolicyChange,
  applyPoolChange,
  applyServiceChange,
  applySliceChange,
} from './selection.ts';
import { emitStatuses } from './status.ts';
import { compare } from '../lib/compare.ts';

export type { State };

export type Outputs = StepOutputs;

const EMPTY: readonly never[] = [];

export function initialState(): State {
  return initialModelState();
}

function applyChange(state: State, change: ViewChange): void {
  switch (change.kind) {
    case 'Pod':
      return applyPodChange(state, change);
    case 'Node':
      return applyNodeChange(state, change.name, change.before);
    case 'Liveness':
      markPoliciesOnNode(state, change.name);
      return updateEligibility(state, change.name);
    case 'Service':
      return applyServiceChange(state, change);
    case 'EndpointSlice':
      return applySliceChange(state, change);
    case 'Namespace':
      return applyNamespaceChange(state, change);
    case 'Pool':
      return applyPoolChange(state, change);
    case 'Policy':
      return applyPolicyChange(state, change);
    default: {
      const _exhaustive: never = change;
      return _exhaustive;
    }
  }
}

/** Policies with selected pods on the node: their selectedNodes counts only live nodes. */
function markPoliciesOnNode(state: State, node: string): void {
  for (const policy of state.policies.values()) {
    if (policy.rules.some((r) => r.nodeCounts.has(node))) state.dirty.policies.add(policy);
  }
}

function numbered(offset: number, drafts: readonly DecisionDraft[]): Decision[] {
  return drafts.map((d, i) => ({ ...d, id: `${offset}.${i}` }));
}

/** Apply one event at its log offset. Consumes `state` (see model.ts) and returns it. */
export function evolve(state: State, event: ClusterEvent, offset: number): State {
  const changes = evolveClusterView(state, event, offset);
  if (changes.length === 0) {
    state.outputs = { offset, decisions: EMPTY, nodeRules: EMPTY };
    return state;
  }
  for (const change of changes) applyChange(state, change);
  resolveClaims(state);
  refreshGateways(state);
  resolvePods(state);
  const gateways = emitAssignments(state, offset);
  const nodeRules = renderDirtyNodes(state, offset);
  const conflicts = emitConflicts(state, offset);
  const statuses = emitStatuses(state, offset);
  const d = state.dirty;
  if (d.pods.size > 0) d.pods.clear();
  if (d.ips.size > 0) d.ips.clear();
  if (d.assignments.size > 0) d.assignments.clear();
  if (d.nodes.size > 0) d.nodes.clear();
  if (d.policies.size > 0) d.policies.clear();
  if (d.conflicts.size > 0) d.conflicts.clear();
  state.outputs = {
    offset,
    decisions: numbered(offset, [...conflicts, ...gateways, ...statuses]),
    nodeRules,
  };
  return state;
}

/** What the last evolve emitted: decisions (audit trail, status) and the node rules that changed. */
export function selectStepOutputs(state: State): Outputs {
  return state.outputs;
}

/** Fold a sequence of (event, offset) and collect every output: replay, tests, verify. */
export function replay(
  events: Iterable<{ event: ClusterEvent; offset: number }>,
  state: State = initialState(),
) {
  const outputs: Outputs[] = [];
  for (const { event, offset } of events) {
    evolve(state, event, offset);
    const o = selectStepOutputs(state);
    if (o.decisions.length > 0 || o.nodeRules.length > 0) outputs.push(o);
  }
  return { state, outputs };
}

/** The current assignment per egress IP in use: active holder and standbys. */
export function selectAssignments(
  state: State,
): Record<string, { active: string; standbys: string[]; slot: number }> {
  const out: Record<string, { active: string; standbys: string[]; slot: number }> = {};
  for (const ip of [...state.ips.values()].sort((a, b) => compare(a.ip, b.ip)))
    if (ip.owner !== undefined)
      out[ip.ip] = { active: ip.emitted.active, standbys: ip.emitted.standbys, slot: ip.emitted.slot };
  return out;
}
