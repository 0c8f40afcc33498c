// Per-node desired state (src/contracts/node-rules.ts): what each node must hold, derived from the
// effective rules of its own pods and the egress IPs it actively holds. Pure (mutates only the
// linear state, see model.ts).
// - Director: one steer per (egress IP slot, destinations, exceptions) with this node's own
//   selected pod IPs only. Pod and service CIDRs never appear as destinations unless a policy
//   names them; the agent additionally excludes its configured cluster CIDRs.
// - Gateway: only the egress IPs it holds, never one entry per remote pod (per-node state stays
//   small whatever the cluster's size): the
//   agent recognises steered traffic by the tunnel it arrives on (one VNI per slot).
// - A steer whose egress IP has no eligible gateway carries gatewayNode "" and gatewayIP "":
//   the agent must drop that traffic rather than let it leave with the node IP.
// - generation = offset of the event that last changed the node's rules, emitted only when the
//   content changed; so the size of a node's record grows with its own pods and the policies
//   touching them, never with the cluster.
//
// Incremental: a node's steers live as groups (egress IP record, destinations) holding counted
// sets of pod IPs and source rules, updated per pod registration in O(rules of the pod). Each
// group also keeps a hash of its distinct elements, so whether a node's rules changed is
// decided from a 64-bit signature over its few groups, without visiting its pods or rendering;
// only a node whose signature changed is rendered and emitted. (Keeping every node's last
// emitted rules to compare instead made V8 pretenure the renders, and old-space collection then
// dominated the replay.) Two different contents of one node with equal signatures (~2^-64 per
// change) would suppress one emission; the property tests compare real contents.
import { NODE_RULES_SCHEMA, type HeldEgressIP, type NodeRules, type Steer } from '../contracts/node-rules.ts';
import { fmix32 } from './hrw.ts';
import {
  countIn,
  type EgressIPRec,
  type PodRec,
  type RuleRec,
  type State,
  type SteerGroup,
} from './model.ts';
import { podIPsOf } from './model.ts';
import { compare } from '../lib/compare.ts';

function sameRules(a: readonly RuleRec[], b: readonly RuleRec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- hashing (two independent 32-bit lanes) ----

function hashText(text: string, seed: number, prime: number): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), prime);
  return fmix32(h);
}
const lane1 = (text: string): number => hashText(text, 0x811c9dc5, 0x01000193);
const lane2 = (text: string): number => hashText(text, 0x5bd1e995, 0x9e3779b1);
/** Tags keep equal strings in different roles (a pod IP vs a source) apart. */
const TAG_POD_IP = 0x2545f491;
const TAG_SOURCE = 0x7feb352d;

function addCounted(g: SteerGroup, map: Map<string, number>, key: string, tag: number): void {
  const n = map.get(key) ?? 0;
  map.set(key, n + 1);
  if (n === 0) {
    g.h1 = (g.h1 + fmix32(lane1(key) ^ tag)) >>> 0;
    g.h2 = (g.h2 + fmix32(lane2(key) ^ tag)) >>> 0;
  }
}

function removeCounted(g: SteerGroup, map: Map<string, number>, key: string, tag: number): void {
  const n = map.get(key) ?? 0;
  if (n > 1) map.set(key, n - 1);
  else if (n === 1) {
    map.delete(key);
    g.h1 = (g.h1 - fmix32(lane1(key) ^ tag)) >>> 0;
    g.h2 = (g.h2 - fmix32(lane2(key) ^ tag)) >>> 0;
  }
}

// ---- registration ----

function groupOf(state: State, node: string, r: RuleRec, create: boolean): SteerGroup | undefined {
  const ip = r.ipRec;
  if (ip === undefined) return undefined;
  let groups = state.nodeGroups.get(node);
  for (const g of groups ?? []) if (g.ip === ip && g.destKey === r.destKey) return g;
  if (!create) return undefined;
  const g: SteerGroup = {
    ip,
    destKey: r.destKey,
    destHash: lane1(r.destKey),
    destinations: r.destinations,
    exceptions: r.exceptions,
    podIPs: new Map(),
    sources: new Map(),
    h1: 0,
    h2: 0,
  };
  if (groups === undefined) state.nodeGroups.set(node, (groups = []));
  groups.push(g);
  return g;
}

function contribute(state: State, node: string, pod: PodRec, rules: readonly RuleRec[], delta: 1 | -1): void {
  for (const r of rules) {
    countIn(r.nodeCounts, node, delta);
    if (r.ipRec !== undefined) countIn(r.ipRec.directors, node, delta);
    state.dirty.policies.add(r.policy);
    const g = groupOf(state, node, r, delta > 0);
    if (g === undefined) continue;
    const addrs = r.family === 4 ? pod.regIPs4 : pod.regIPs6;
    if (delta > 0) {
      for (const a of addrs) addCounted(g, g.podIPs, a, TAG_POD_IP);
      addCounted(g, g.sources, r.id, TAG_SOURCE);
    } else {
      for (const a of addrs) removeCounted(g, g.podIPs, a, TAG_POD_IP);
      removeCounted(g, g.sources, r.id, TAG_SOURCE);
      if (g.sources.size === 0) {
        const groups = state.nodeGroups.get(node) as SteerGroup[];
        groups.splice(groups.indexOf(g), 1);
        if (groups.length === 0) state.nodeGroups.delete(node);
      }
    }
  }
  state.dirty.nodes.add(node);
}

/**
 * Record which rules the pod steers on its node (only rules it can be programmed for: it has a
 * node and an IP of the rule's family). Marks the nodes whose groups it touches.
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
  if (pod.regNode !== undefined) contribute(state, pod.regNode, pod, pod.regRules, -1);
  pod.regNode = newNode;
  pod.regRules = rules;
  pod.regIPs4 = pod.ipv4;
  pod.regIPs6 = pod.ipv6;
  if (newNode !== undefined) contribute(state, newNode, pod, rules, +1);
}

// ---- signature and rendering ----

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
  const steers: Steer[] = groups.map((g) => {
    const gw = gatewayOf(state, g.ip);
    return {
      slot: g.ip.emitted.slot,
      egressIP: g.ip.ip,
      gatewayNode: gw.node,
      gatewayIP: gw.ip,
      podIPs: [...g.podIPs.keys()].sort(compare),
      destinations: g.destinations,
      exceptions: g.exceptions,
      sources: [...g.sources.keys()].sort(compare),
    };
  });
  const held = state.heldBy.get(node);
  const egressIPs: HeldEgressIP[] =
    held === undefined
      ? []
      : Array.from(held, (ip) => ({ slot: ip.emitted.slot, egressIP: ip.ip })).sort(
          (x, y) => x.slot - y.slot,
        );
  return { schema: NODE_RULES_SCHEMA, node, generation, nodeIP, steers, egressIPs };
}

const [EMPTY_H1, EMPTY_H2] = [lane1(''), lane2('')];

/** The signature of a node with nothing: what a node never emitted implicitly has. */
export function emptyNodeSignature(): [number, number] {
  return [EMPTY_H1, EMPTY_H2];
}

/** Emit the touched nodes whose signature changed, rendered, in node-name order. */
export function renderDirtyNodes(state: State, offset: number): NodeRules[] {
  const dirty = state.dirty.nodes;
  if (dirty.size === 0) return [];
  const out: NodeRules[] = [];
  const nodes = dirty.size === 1 ? dirty : [...dirty].sort(compare);
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
