// The projection: cluster events in, decisions and changed node rules out. Pure: a fold over
// the log, `evolve(state, event, offset)`, which returns the step's outputs. No I/O, clock,
// logger or randomness; the state is a linear value (model.ts explains why, and why that keeps
// the fold observably pure).
//
// One step is a straight line of stages. Each owns its part of the state (model.ts) and returns
// typed changes that the next stages take as arguments; none runs twice, and none calls into
// another:
//   1. cluster-view  event → ViewChange[] (or nothing: duplicate, fenced, unchanged; or a
//                    refusal, which ends the step: the projector dead-letters the event)
//   1b. reserved     view changes → ReservedChanges: egress IPs whose holder (a node, pod or
//                    service address) may have changed, whether the reserved prefixes changed
//   2. selection     object changes + ReservedChanges → SelectionChanges: rules
//                    attached/detached/re-accepted, pods whose selecting rules changed, policies
//   3. claims        SelectionChanges → ClaimChanges: egress IPs whose owner was decided again,
//                    each touched pod's effective rules, ConflictResolved/Detected, policies
//   4. steers        ClaimChanges → SteerChanges: nodes whose steers changed, policies
//   5. gateways      node changes + ClaimChanges.ips → GatewayChanges: gateway decisions, nodes
//                    whose rules change, policies
//   6. render        SteerChanges.nodes + GatewayChanges.nodes (every node with steers when the
//                    reserved prefixes changed) → the NodeRules that changed
//   7. status        every stage's policies (+ liveness changes) → PolicyStatusComputed;
//                    pool changes + ClaimChanges.ips → PoolStatusComputed
// Outputs of a step: decisions in the order conflicts, gateways, policy statuses, pool statuses;
// then node rules.
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import type { Decision, DecisionDraft } from '../contracts/decisions.ts';
import { evolveClaims } from './claims.ts';
import { evolveClusterView, type ViewChange } from './cluster-view.ts';
import { evolveGateways, type NodeChange } from './gateways.ts';
import { initialState as initialModelState, type State, type StepOutputs } from './model.ts';
import { renderChangedNodes } from './render.ts';
import { evolveReserved } from './reserved.ts';
import { evolveSelection, type ObjectChange } from './selection.ts';
import { emitPoolStatuses, emitStatuses } from './status.ts';
import { evolveSteers } from './steers.ts';

export type { State };

export type Outputs = StepOutputs;

const EMPTY: readonly never[] = [];
const NO_NODES: readonly NodeChange[] = [];
const NO_OBJECTS: readonly ObjectChange[] = [];

export function initialState(): State {
  return initialModelState();
}

/** The step's decisions in output order, each with its id `<offset>.<index>`. */
function numbered(offset: number, ...groups: readonly (readonly DecisionDraft[])[]): readonly Decision[] {
  const out: Decision[] = [];
  for (const drafts of groups) for (const d of drafts) out.push({ ...d, id: `${offset}.${out.length}` });
  return out.length === 0 ? EMPTY : out;
}

const isNodeChange = (c: ViewChange): c is NodeChange => c.kind === 'Node' || c.kind === 'Liveness';

/** Node and liveness changes go to gateways; the others to selection. (No wrapper object: this runs per event.) */
function nodeChangesOf(changes: readonly ViewChange[]): readonly NodeChange[] {
  if (changes.length === 1)
    return isNodeChange(changes[0] as ViewChange) ? (changes as readonly NodeChange[]) : NO_NODES;
  return changes.filter(isNodeChange);
}

function objectChangesOf(
  changes: readonly ViewChange[],
  nodeChanges: readonly NodeChange[],
): readonly ObjectChange[] {
  if (nodeChanges.length === 0) return changes as readonly ObjectChange[];
  if (nodeChanges.length === changes.length) return NO_OBJECTS;
  return changes.filter((c): c is ObjectChange => !isNodeChange(c));
}

/**
 * Apply one event at its log offset and return what the step emits. Consumes `state` (see
 * model.ts): the caller keeps using the same, updated value.
 */
export function evolve(state: State, event: ClusterEvent, offset: number): Outputs {
  const changes = evolveClusterView(state, event, offset);
  if ('refused' in changes) return { offset, decisions: EMPTY, nodeRules: EMPTY, refused: changes.refused };
  if (changes.length === 0) return { offset, decisions: EMPTY, nodeRules: EMPTY };
  const nodeChanges = nodeChangesOf(changes);
  const objectChanges = objectChangesOf(changes, nodeChanges);
  const reserved = evolveReserved(state, changes);
  const selection = evolveSelection(state, objectChanges, reserved);
  const claims = evolveClaims(state, selection, offset);
  const steers = evolveSteers(state, claims);
  const gateways = evolveGateways(state, nodeChanges, claims.ips, offset);
  const nodeRules = renderChangedNodes(state, steers.nodes, gateways.nodes, offset, reserved.prefixesChanged);
  const livenessChanged =
    nodeChanges.length === 0 ? EMPTY : nodeChanges.filter((c) => c.kind === 'Liveness').map((c) => c.name);
  const statuses = emitStatuses(
    state,
    selection.policies,
    claims.policies,
    steers.policies,
    gateways.policies,
    livenessChanged,
    offset,
  );
  const poolStatuses = emitPoolStatuses(
    state,
    objectChanges.some((c) => c.kind === 'Pool'),
    claims.ips,
    offset,
  );
  return {
    offset,
    decisions: numbered(offset, claims.decisions, gateways.decisions, statuses, poolStatuses),
    nodeRules,
  };
}

/** Fold a sequence of (event, offset) and collect every output: replay, tests, verify. */
export function replay(
  events: Iterable<{ event: ClusterEvent; offset: number }>,
  state: State = initialState(),
) {
  const outputs: Outputs[] = [];
  for (const { event, offset } of events) {
    const o = evolve(state, event, offset);
    if (o.decisions.length > 0 || o.nodeRules.length > 0) outputs.push(o);
  }
  return { state, outputs };
}

export { selectAssignments } from './queries.ts';
