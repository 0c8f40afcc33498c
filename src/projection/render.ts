// Node rules (src/contracts/node-rules.ts): each node's whole desired state, rendered from its
// steer groups (steers.ts) and the egress IPs it holds (gateways.ts). Pure (mutates only the
// linear state, see model.ts).
// - A steer whose egress IP has no eligible gateway carries gatewayNode "" and gatewayIP "":
//   the agent must drop that traffic rather than let it leave with the node IP.
// - generation = offset of the event that last changed the node's rules, emitted only when the
//   content changed; so the size of a node's record grows with its own pods and the policies
//   touching them, never with the cluster.
//
// - neverSteer: the reserved prefixes (node addresses, pod and service CIDRs, see reserved.ts)
//   that the node's steers' destinations overlap, which the agent never steers.
//
// Stage 5 of a step (renderChangedNodes): the nodes steers and gateways touched in (and every
// node with steers when the reserved prefixes changed); out go the
// NodeRules of those whose content changed, in node-name order. It owns what was last emitted
// per node.
//
// Whether a node changed is decided from a 64-bit signature over its few groups, without visiting
// its pods or rendering; only a node whose signature changed is rendered and emitted. (Keeping
// every node's last emitted rules to compare instead made V8 pretenure the renders, and
// old-space collection then dominated the replay.) Two different contents of one node with equal
// signatures (~2^-64 per change) would suppress one emission; the property tests compare real
// contents.
import { NODE_RULES_SCHEMA, type HeldEgressIP, type NodeRules, type Steer } from '../contracts/node-rules.ts';
import { compare } from '../lib/compare.ts';
import { fmix32 } from './hrw.ts';
import type { EgressIPRec, State, SteerGroup } from './model.ts';
import { neverSteerOf } from './reserved.ts';
import { lane1, lane2 } from './steers.ts';

function gatewayOf(state: State, ip: EgressIPRec): { node: string; ip: string } {
  const gw = ip.emitted.active;
  const gwIP = gw === '' ? '' : (state.nodes.get(gw)?.p.internalIP ?? '');
  return { node: gwIP === '' ? '' : gw, ip: gwIP };
}

/** A 64-bit signature of everything computeNodeRules would render (but the generation). */
export function computeNodeSignature(state: State, node: string): [number, number] {
  const nodeIP = state.nodes.get(node)?.p.internalIP ?? '';
  let a = lane1(nodeIP);
  let b = lane2(nodeIP);
  for (const g of state.nodeGroups.get(node) ?? []) {
    const sh = g.ip.steerHash;
    if (!sh.valid) {
      const gw = gatewayOf(state, g.ip);
      const ident = `${g.ip.emitted.slot}|${g.ip.ip}|${gw.node}|${gw.ip}`;
      sh.h1 = lane1(ident);
      sh.h2 = lane2(ident);
      sh.valid = true;
    }
    a = (a + fmix32(sh.h1 ^ g.destHash ^ g.h1)) >>> 0;
    b = (b + fmix32(sh.h2 ^ g.destHash ^ fmix32(g.h2))) >>> 0;
    const never = neverSteerOf(state, g);
    if (never.cidrs.length > 0) {
      a = (a + never.h1) >>> 0;
      b = (b + never.h2) >>> 0;
    }
  }
  for (const ip of state.heldBy.get(node) ?? []) {
    const held = `held|${ip.emitted.slot}|${ip.ip}`;
    a = (a + lane1(held)) >>> 0;
    b = (b + lane2(held)) >>> 0;
  }
  return [a, b];
}

/** The full desired state of one node, as of the current state (generation left to the caller). */
export function computeNodeRules(state: State, node: string, generation: number): NodeRules {
  const nodeIP = state.nodes.get(node)?.p.internalIP ?? '';
  const groups = [...(state.nodeGroups.get(node) ?? [])].sort(
    (x, y) => x.ip.emitted.slot - y.ip.emitted.slot || compare(x.destKey, y.destKey),
  );
  // podIPs and sources are strings: the default sort orders them by UTF-16 code units, exactly
  // as lib/compare does, without a call into a comparator per comparison (this runs for every
  // node whose rules change, i.e. per pod event).
  const steers: Steer[] = groups.map((g) => {
    const gw = gatewayOf(state, g.ip);
    return {
      slot: g.ip.emitted.slot,
      egressIP: g.ip.ip,
      gatewayNode: gw.node,
      gatewayIP: gw.ip,
      podIPs: [...g.podIPs.keys()].sort(),
      destinations: g.destinations,
      exceptions: g.exceptions,
      sources: [...g.sources.keys()].sort(),
    };
  });
  const held = state.heldBy.get(node);
  const egressIPs: HeldEgressIP[] =
    held === undefined
      ? []
      : Array.from(held, (ip) => ({ slot: ip.emitted.slot, egressIP: ip.ip })).sort(
          (x, y) => x.slot - y.slot,
        );
  const neverSteer = neverSteerOfNode(state, groups);
  return {
    schema: NODE_RULES_SCHEMA,
    node,
    generation,
    nodeIP,
    steers,
    egressIPs,
    ...(neverSteer.length > 0 ? { neverSteer } : {}),
  };
}

/** The union of the groups' never-steer prefixes, sorted (absent from the record when empty). */
function neverSteerOfNode(state: State, groups: readonly SteerGroup[]): string[] {
  if (groups.length === 0) return [];
  if (groups.length === 1) return [...neverSteerOf(state, groups[0] as SteerGroup).cidrs];
  const all = new Set<string>();
  for (const g of groups) for (const c of neverSteerOf(state, g).cidrs) all.add(c);
  return [...all].sort(compare);
}

const [EMPTY_H1, EMPTY_H2] = [lane1(''), lane2('')];

/** The signature of a node with nothing: what a node never emitted implicitly has. */
export function emptyNodeSignature(): [number, number] {
  return [EMPTY_H1, EMPTY_H2];
}

/**
 * Stage 5 of a step: of the nodes steers and gateways touched, render those whose signature
 * changed, in node-name order.
 */
export function renderChangedNodes(
  state: State,
  fromSteers: ReadonlySet<string>,
  fromGateways: ReadonlySet<string>,
  offset: number,
  reservedChanged: boolean,
): NodeRules[] {
  const touched = reservedChanged
    ? touchedNodes(touchedNodes(fromSteers, fromGateways), new Set(state.nodeGroups.keys()))
    : touchedNodes(fromSteers, fromGateways);
  if (touched.size === 0) return [];
  const out: NodeRules[] = [];
  const nodes = touched.size === 1 ? touched : [...touched].sort(compare);
  for (const node of nodes) {
    const [h1, h2] = computeNodeSignature(state, node);
    const last = state.emittedNodeRules.get(node);
    if (last === undefined) {
      if (h1 === EMPTY_H1 && h2 === EMPTY_H2) continue;
      state.emittedNodeRules.set(node, { generation: offset, h1, h2 });
    } else {
      if (last.h1 === h1 && last.h2 === h2) continue;
      last.generation = offset;
      last.h1 = h1;
      last.h2 = h2;
    }
    out.push(computeNodeRules(state, node, offset));
  }
  return out;
}

/**
 * The rules last emitted for a node (undefined when none were). After every step the emitted
 * content equals the current render (the property tests check it), so this re-renders it.
 */
export function selectNodeRules(state: State, node: string): NodeRules | undefined {
  const last = state.emittedNodeRules.get(node);
  return last === undefined ? undefined : computeNodeRules(state, node, last.generation);
}

function touchedNodes(a: ReadonlySet<string>, b: ReadonlySet<string>): ReadonlySet<string> {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const all = new Set(a);
  for (const n of b) all.add(n);
  return all;
}
