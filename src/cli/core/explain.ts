// `kseip explain pod`: why a pod does or does not leave the cluster as an egress IP, derived
// from the replayed projection state (the same records the projector holds) plus the agents'
// apply acks. Pure. One finding per rule that selects the pod (or one saying why none does),
// each with a verdict a script can switch on:
//   Egress        the rule matched: the pod leaves as egressIP via gateway (and is programmed)
//   NotProgrammed as Egress, but the pod's node has not acked the node rules that include it
//   NoPodIP       the pod has no IP of the egress IP's family (or no node yet)
//   NotSelected   no rule selects the pod
//   Excepted      --dest falls in the rule's exceptions
//   NotDestination --dest is not among the rule's destinations
//   NoGateway     no eligible node holds the egress IP: the director drops the traffic
//   LostConflict  another rule won the egress IP or the overlapping selection
//   NotAccepted   the rule is not accepted (pool, namespace, invalid spec)
import type { NodeApplyStatus } from '../../contracts/node-reports.ts';
import { parseAddress, parseCidr } from '../../projection/addresses.ts';
import type { State } from '../../projection/model.ts';
import { selectPod, type PodRuleView, type PodView } from '../../projection/queries.ts';
import { selectOpenIntervals, type History } from './history.ts';

export type Verdict =
  | 'Egress'
  | 'NotProgrammed'
  | 'NoPodIP'
  | 'NotSelected'
  | 'Excepted'
  | 'NotDestination'
  | 'NoGateway'
  | 'LostConflict'
  | 'NotAccepted'
  | 'UnknownPod';

export interface Finding {
  readonly verdict: Verdict;
  readonly rule?: string;
  readonly egressIP?: string;
  readonly gateway?: string;
  readonly message: string;
}

export interface Explanation {
  readonly pod: string;
  readonly node: string;
  readonly podIPs: readonly string[];
  readonly findings: readonly Finding[];
}

const inCidrs = (cidrs: readonly string[], dest: string): boolean => {
  const a = parseAddress(dest);
  if (a === undefined) return false;
  return cidrs.some((c) => {
    const p = parseCidr(c);
    return p !== undefined && p.family === a.family && p.lo <= a.value && a.value <= p.hi;
  });
};

/**
 * `acks`: the latest successful apply per node (node-status); `history`: the pod's egress
 * history (its open interval says which node-rules generation first steered it).
 */
export function computeExplanation(
  state: State,
  podKey: string,
  dest: string | undefined,
  acks: ReadonlyMap<string, NodeApplyStatus>,
  history: History,
): Explanation {
  const pod = selectPod(state, podKey);
  if (pod === undefined)
    return {
      pod: podKey,
      node: '',
      podIPs: [],
      findings: [{ verdict: 'UnknownPod', message: `no pod ${podKey} in the log at this point` }],
    };
  const node = pod.node;
  const base = { pod: podKey, node, podIPs: pod.podIPs };
  if (pod.rules.length === 0) {
    const why = pod.hostNetwork
      ? 'it uses the host network'
      : pod.terminal
        ? 'it has terminated'
        : 'no accepted rule of a policy in scope matches its labels or service';
    return {
      ...base,
      findings: [
        { verdict: 'NotSelected', message: `not selected by any rule: ${why}; it leaves with its node's IP` },
      ],
    };
  }
  return { ...base, findings: pod.rules.map((r) => explainRule(r, pod, dest, acks, history)) };
}

function explainRule(
  r: PodRuleView,
  pod: PodView,
  dest: string | undefined,
  acks: ReadonlyMap<string, NodeApplyStatus>,
  history: History,
): Finding {
  const id = { rule: r.rule, egressIP: r.egressIP };
  if (!r.accepted)
    return {
      ...id,
      verdict: 'NotAccepted',
      message: `rule ${r.rule} is not accepted: ${r.acceptReason}: ${r.acceptMessage}`,
    };
  if (!r.wonEgressIP)
    return {
      ...id,
      verdict: 'LostConflict',
      message: `rule ${r.rule} lost egress IP ${r.egressIP} to ${r.egressIPLostTo ?? 'another policy'} (first seen in the log wins)`,
    };
  const beaten = r.overlapLostTo;
  if (beaten !== undefined)
    return {
      ...id,
      verdict: 'LostConflict',
      message: `rule ${r.rule} overlaps rule ${beaten.rule} (egress IP ${beaten.egressIP}) for this pod and lost`,
    };
  if (dest !== undefined) {
    if (inCidrs(r.exceptions, dest))
      return {
        ...id,
        verdict: 'Excepted',
        message: `destination ${dest} is excepted by rule ${r.rule} (${r.exceptions.join(',')})`,
      };
    if (!inCidrs(r.destinations, dest))
      return {
        ...id,
        verdict: 'NotDestination',
        message: `destination ${dest} is not among rule ${r.rule}'s destinations (${r.destinations.join(',')}): it leaves with its node's IP`,
      };
  }
  if (!r.programmable)
    return {
      ...id,
      verdict: 'NoPodIP',
      message:
        pod.node === ''
          ? `the pod is not scheduled on a node yet`
          : `the pod has no IPv${r.family} address yet`,
    };
  const active = r.activeGateway;
  if (active === '')
    return {
      ...id,
      verdict: 'NoGateway',
      message: `no eligible node holds ${r.egressIP}: its director drops the pod's traffic to ${r.destinations.join(',')} until one does`,
    };
  const node = pod.node;
  const open = selectOpenIntervals(history, node).filter((iv) => iv.egressIP === r.egressIP);
  const needed = open.reduce((m, iv) => Math.max(m, iv.from.offset), -1);
  const ack = acks.get(node);
  const via = { ...id, gateway: active };
  // No acks at all (no agents reporting, or node-status not exported): programming is unknown.
  if (acks.size > 0 && needed >= 0 && (ack === undefined || ack.generation < needed))
    return {
      ...via,
      verdict: 'NotProgrammed',
      message: `rule ${r.rule} matches: leaves as ${r.egressIP} via ${active}, but node ${node} has not applied generation ${needed} yet (last ok apply: ${ack === undefined ? 'none' : ack.generation})`,
    };
  return {
    ...via,
    verdict: 'Egress',
    message: `rule ${r.rule} matches: leaves as ${r.egressIP} via gateway ${active}${dest === undefined ? ` for ${r.destinations.join(',')}${r.exceptions.length > 0 ? ` except ${r.exceptions.join(',')}` : ''}` : ` to ${dest}`}${ack === undefined ? ' (programming unknown: no node-status ack)' : ` (programmed: node ${node} applied generation ${ack.generation})`}`,
  };
}
