// Steers: which of its own pods' IPs each node steers, to which destinations, through which
// egress IP. Pure (mutates only the linear state, see model.ts).
// - Director: one steer per (egress IP, destinations, exceptions) with this node's own selected
//   pod IPs only. Pod and service CIDRs never appear as destinations unless a policy names them;
//   the agent additionally excludes its configured cluster CIDRs.
// - A gateway needs no entry per remote pod (per-node state stays small whatever the cluster's
//   size): the agent recognises steered traffic by the tunnel it arrives on (one VNI per slot).
//
// Stage 4 of a step (evolveSteers): claims' effective rules per touched pod in; out go the nodes
// whose steers changed (for render.ts) and the policies whose directors changed (for status). It
// owns the pods' registrations, each node's steer groups, and per rule and egress IP the count of
// pods per director node.
//
// Incremental: a node's steers live as groups (egress IP record, destinations) holding counted
// sets of pod IPs and source rules, updated per pod registration in O(rules of the pod). Each
// group also keeps a hash of its distinct elements, from which render.ts decides whether the
// node changed without visiting its pods.
import { fmix32 } from './hrw.ts';
import {
  clearSet,
  countIn,
  type PodRec,
  type PolicyRec,
  type RuleRec,
  type State,
  type SteerGroup,
} from './model.ts';
import { podIPsOf } from './model.ts';
import type { ClaimChanges } from './claims.ts';

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
export const lane1 = (text: string): number => hashText(text, 0x811c9dc5, 0x01000193);
export const lane2 = (text: string): number => hashText(text, 0x5bd1e995, 0x9e3779b1);
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

/** What steers hands on: nodes whose steers changed (render), policies whose set of director nodes changed (status). */
export interface SteerChanges {
  readonly nodes: ReadonlySet<string>;
  readonly policies: ReadonlySet<PolicyRec>;
}

/** The same, as steers builds it (its buffer in the state). */
export interface SteerBuffer {
  readonly nodes: Set<string>;
  readonly policies: Set<PolicyRec>;
}

const NO_STEER_CHANGES: SteerChanges = { nodes: new Set(), policies: new Set() };

/** Stage 4 of a step: register each touched pod's effective rules on its node. */
export function evolveSteers(state: State, claims: ClaimChanges): SteerChanges {
  if (claims.pods.length === 0) return NO_STEER_CHANGES;
  const out = state.buffers.steers;
  clearSet(out.nodes);
  clearSet(out.policies);
  for (let i = 0; i < claims.pods.length; i++)
    registerPod(state, out, claims.pods[i] as PodRec, claims.effective[i] as readonly RuleRec[]);
  return out;
}

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

function contribute(
  state: State,
  out: SteerBuffer,
  node: string,
  pod: PodRec,
  rules: readonly RuleRec[],
  delta: 1 | -1,
): void {
  for (const r of rules) {
    const pods = countIn(r.nodeCounts, node, delta);
    if (r.ipRec !== undefined) countIn(r.ipRec.directors, node, delta);
    // Status counts a rule's director nodes, not its pods per node (selection reports the pods):
    // only a node becoming or ceasing to be a director of the rule concerns it.
    if (pods === 0 || pods === delta) out.policies.add(r.policy);
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
  out.nodes.add(node);
}

/**
 * Record which rules the pod steers on its node (only rules it can be programmed for: it has a
 * node and an IP of the rule's family). Marks the nodes whose groups it touches.
 */
function registerPod(state: State, out: SteerBuffer, pod: PodRec, effective: readonly RuleRec[]): void {
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
  if (pod.regNode !== undefined) contribute(state, out, pod.regNode, pod, pod.regRules, -1);
  pod.regNode = newNode;
  pod.regRules = rules;
  pod.regIPs4 = pod.ipv4;
  pod.regIPs6 = pod.ipv6;
  if (newNode !== undefined) contribute(state, out, newNode, pod, rules, +1);
}
