// Per-node desired state (src/events/node-rules.ts): what each node must hold, derived from the
// effective rules of its own pods and the egress IPs it actively holds. Pure (mutates only the
// linear state, see model.ts).
// - Director: one steer per (egress IP slot, destinations, exceptions) with this node's own
//   selected pod IPs only. Pod and service CIDRs never appear as destinations unless a policy
//   names them; the agent additionally excludes its configured cluster CIDRs.
// - Gateway: only the egress IPs it holds, never one entry per remote pod (principle 4): the
//   agent recognises steered traffic by the tunnel it arrives on (one VNI per slot).
// - A steer whose egress IP has no eligible gateway carries gatewayNode "" and gatewayIP "":
//   the agent must drop that traffic rather than let it leave with the node IP.
// - generation = offset of the event that last changed the node's rules, emitted only when the
//   content changed; so the size of a node's record grows with its own pods and the policies
//   touching them, never with the cluster.
import { NODE_RULES_SCHEMA, type HeldEgressIP, type NodeRules, type Steer } from '../events/node-rules.ts';
import { addTo, countIn, removeFrom, type PodRec, type RuleRec, type State } from './model.ts';
import { podIPsOf } from './model.ts';

function sameRules(a: readonly RuleRec[], b: readonly RuleRec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Record which rules the pod steers on its node (only rules it can be programmed for: it has a
 * node and an IP of the rule's family). Marks the nodes whose rules change.
 */
export function registerPod(state: State, pod: PodRec, effective: readonly RuleRec[]): void {
  const node = pod.deleted || !pod.p.nodeName ? undefined : pod.p.nodeName;
  const rules = node === undefined ? [] : effective.filter((r) => podIPsOf(pod, r.family).length > 0);
  const newNode = rules.length > 0 ? node : undefined;
  if (
    newNode === pod.regNode &&
    sameRules(rules, pod.regRules) &&
    pod.regIPs4 === pod.ipv4 &&
    pod.regIPs6 === pod.ipv6
  )
    return;
  const dirty = state.dirty;
  if (pod.regNode !== undefined) {
    const old = pod.regNode;
    for (const r of pod.regRules) {
      countIn(r.nodeCounts, old, -1);
      const ip = state.ips.get(r.egressIP);
      if (ip !== undefined) countIn(ip.directors, old, -1);
      dirty.policies.add(r.policy);
    }
    removeFrom(state.podsOnNode, old, pod);
    dirty.nodes.add(old);
  }
  if (newNode !== undefined) {
    for (const r of rules) {
      countIn(r.nodeCounts, newNode, +1);
      const ip = state.ips.get(r.egressIP);
      if (ip !== undefined) countIn(ip.directors, newNode, +1);
      dirty.policies.add(r.policy);
    }
    addTo(state.podsOnNode, newNode, pod);
    dirty.nodes.add(newNode);
  }
  pod.regNode = newNode;
  pod.regRules = rules;
  pod.regIPs4 = pod.ipv4;
  pod.regIPs6 = pod.ipv6;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The full desired state of one node, as of the current state (generation left to the caller). */
export function computeNodeRules(state: State, node: string, generation: number): NodeRules {
  const nodeIP = state.nodes.get(node)?.p.internalIP ?? '';
  const groups = new Map<string, { steer: Steer; ips: Set<string>; sources: Set<string> }>();
  for (const pod of state.podsOnNode.get(node) ?? []) {
    for (const r of pod.regRules) {
      const ip = state.ips.get(r.egressIP);
      if (ip === undefined) continue;
      const key = `${ip.emitted.slot}|${r.destKey}`;
      let g = groups.get(key);
      if (g === undefined) {
        const gw = ip.emitted.active;
        const gwIP = gw === '' ? '' : (state.nodes.get(gw)?.p.internalIP ?? '');
        g = {
          steer: {
            slot: ip.emitted.slot,
            egressIP: ip.ip,
            gatewayNode: gwIP === '' ? '' : gw,
            gatewayIP: gwIP,
            podIPs: [],
            destinations: r.destinations,
            exceptions: r.exceptions,
            sources: [],
          },
          ips: new Set(),
          sources: new Set(),
        };
        groups.set(key, g);
      }
      for (const a of podIPsOf(pod, r.family)) g.ips.add(a);
      g.sources.add(r.id);
    }
  }
  const steers: Steer[] = [...groups.values()]
    .map((g) => ({ ...g.steer, podIPs: [...g.ips].sort(byText), sources: [...g.sources].sort(byText) }))
    .sort(
      (a, b) =>
        a.slot - b.slot ||
        byText(a.destinations.join(','), b.destinations.join(',')) ||
        byText(a.exceptions.join(','), b.exceptions.join(',')),
    );
  const egressIPs: HeldEgressIP[] = [...(state.heldBy.get(node) ?? [])]
    .map((ip) => ({ slot: ip.emitted.slot, egressIP: ip.ip }))
    .sort((a, b) => a.slot - b.slot);
  return { schema: NODE_RULES_SCHEMA, node, generation, nodeIP, steers, egressIPs };
}

/** The content that decides whether a node's rules changed: everything but the generation. */
export function nodeRulesFingerprint(rules: NodeRules): string {
  return JSON.stringify([rules.nodeIP, rules.steers, rules.egressIPs]);
}

const EMPTY_FINGERPRINT = JSON.stringify(['', [], []]);

/** Render the nodes the step touched; returns those whose rules changed, in node-name order. */
export function renderDirtyNodes(state: State, offset: number): NodeRules[] {
  if (state.dirty.nodes.size === 0) return [];
  const out: NodeRules[] = [];
  for (const node of [...state.dirty.nodes].sort(byText)) {
    const rules = computeNodeRules(state, node, offset);
    const fingerprint = nodeRulesFingerprint(rules);
    const before = state.emittedNodeRules.get(node);
    if ((before?.fingerprint ?? EMPTY_FINGERPRINT) === fingerprint) continue;
    state.emittedNodeRules.set(node, { rules, fingerprint });
    out.push(rules);
  }
  return out;
}

/** The rules last emitted for a node (empty when none were). */
export function selectNodeRules(state: State, node: string): NodeRules | undefined {
  return state.emittedNodeRules.get(node)?.rules;
}
