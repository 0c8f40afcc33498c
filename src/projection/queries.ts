// The projection's read API: the named questions other code (the CLI, tests, benchmarks) may ask
// of a folded state, answered as plain values. Pure. Nothing outside src/projection/ reads the
// state's records directly; a new question gets a new function here.
import type { NodeRules } from '../contracts/node-rules.ts';
import { compare } from '../lib/compare.ts';
import type { AcceptReason, State } from './model.ts';
import { isProgrammable } from './model.ts';
import { selectNodeRules } from './render.ts';

export { selectNodeRules };

/** The assignment of one egress IP in use: active holder, standbys and slot. */
export interface AssignmentView {
  readonly active: string;
  readonly standbys: string[];
  readonly slot: number;
}

/** The current assignment per egress IP in use, by IP. */
export function selectAssignments(state: State): Record<string, AssignmentView> {
  const out: Record<string, AssignmentView> = {};
  for (const ip of [...state.ips.values()].sort((a, b) => compare(a.ip, b.ip)))
    if (ip.owner !== undefined)
      out[ip.ip] = { active: ip.emitted.active, standbys: ip.emitted.standbys, slot: ip.emitted.slot };
  return out;
}

/** The nodes that have been emitted node rules, in name order. */
export function selectNodesWithRules(state: State): string[] {
  return [...state.emittedNodeRules.keys()].sort(compare);
}

/** The node rules last emitted for every node, by node name (in name order). */
export function selectAllNodeRules(state: State): Record<string, NodeRules> {
  const out: Record<string, NodeRules> = {};
  for (const node of selectNodesWithRules(state)) {
    const r = selectNodeRules(state, node);
    if (r !== undefined) out[node] = r;
  }
  return out;
}

/** One rule that selects a pod, as the pod sees it. */
export interface PodRuleView {
  readonly rule: string;
  readonly egressIP: string;
  readonly family: 4 | 6;
  readonly destinations: readonly string[];
  readonly exceptions: readonly string[];
  /** Accepted (by a pool) and not removed. */
  readonly accepted: boolean;
  readonly acceptReason: AcceptReason;
  readonly acceptMessage: string;
  /** Won the claim on its egress IP; when not, the rule that did (if any). */
  readonly wonEgressIP: boolean;
  readonly egressIPLostTo: string | undefined;
  /** For this pod: lost an overlap to this rule (another egress IP, overlapping destinations). */
  readonly overlapLostTo: { readonly rule: string; readonly egressIP: string } | undefined;
  /** The pod has a node and an IP of the rule's family. */
  readonly programmable: boolean;
  /** The egress IP's active gateway as last emitted, '' when none. */
  readonly activeGateway: string;
}

/** A pod as the projection sees it, with the rules that select it in precedence order. */
export interface PodView {
  readonly node: string;
  readonly podIPs: readonly string[];
  readonly hostNetwork: boolean;
  readonly terminal: boolean;
  readonly rules: readonly PodRuleView[];
}

/** The pod `namespace/name`, or undefined when the log does not (or no longer) know it. */
export function selectPod(state: State, podKey: string): PodView | undefined {
  const pod = state.pods.get(podKey);
  if (pod === undefined || pod.deleted) return undefined;
  return {
    node: pod.p.nodeName ?? '',
    podIPs: pod.p.podIPs,
    hostNetwork: pod.p.hostNetwork,
    terminal: pod.p.terminal,
    rules: pod.selectedBy.map((r) => {
      const beaten = pod.lost.find(([loser]) => loser === r)?.[1];
      return {
        rule: r.id,
        egressIP: r.egressIP,
        family: r.family,
        destinations: r.destinations,
        exceptions: r.exceptions,
        accepted: !r.removed && r.accepted,
        acceptReason: r.acceptReason,
        acceptMessage: r.acceptMessage,
        wonEgressIP: r.winner,
        egressIPLostTo: r.claimLostTo?.id,
        overlapLostTo: beaten === undefined ? undefined : { rule: beaten.id, egressIP: beaten.egressIP },
        programmable: isProgrammable(pod, r.family),
        activeGateway: r.ipRec?.emitted.active ?? '',
      };
    }),
  };
}
