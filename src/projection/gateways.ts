// Gateway assignment: eligible nodes, rendezvous ranking, slots, and the gateway decisions.
// Pure (mutates only the linear state, see model.ts).
// - Eligible for an egress IP: the Node is Ready, not unschedulable (a cordoned node hands its
//   IPs over before it is drained), has an InternalIP (directors tunnel to it), is alive (a
//   NodeBack and no NodeLost since), and matches the owner rule's gatewaySelector and the
//   governing pool's nodeSelector. Egress IPs with equal selectors share one eligible set (a
//   "sig"), maintained per node event, so no event rescans all nodes.
// - Ranking: hrw.ts. Active holder = first, standbys = the next gateways-1. The ranking is a
//   function of the eligible set only (no stickiness), so it does not depend on the order in
//   which facts arrived, e.g. within a relist; the price is that a node becoming eligible takes
//   over the ~1/n of the IPs it ranks first for ("Preempted"), which is also what spreads load.
// - Slots: lowest free slot when an egress IP comes into use, kept while it is in use, freed
//   when it is not; slot 0 is never used, so a slot-derived mark is never 0.
//
// Stage 5 of a step (evolveGateways): node changes (eligibility) and the egress IPs whose owner
// claims decided again in; out go the gateway decisions, the nodes whose rules change (old and
// new holder, every director of a moved IP, a node whose object changed) for render.ts, and the
// policies whose status may have changed. It owns the eligible sets, rankings, slots, held IPs
// and the assignments as last emitted, and drops an egress IP record nothing uses any more.
import type { FailoverReason } from '../contracts/decisions.ts';
import { DECISIONS_SCHEMA, type DecisionDraft } from '../contracts/decisions.ts';
import { nodeHash, ranksBefore, score } from './hrw.ts';
import { matchesOptionalSelector, selectorKey } from './labels.ts';
import type { ViewChange } from './cluster-view.ts';
import {
  clearList,
  clearSet,
  addTo,
  inOrder,
  removeFrom,
  type EgressIPRec,
  type PolicyRec,
  type Sig,
  type State,
} from './model.ts';
import type { NodePayload } from './model.ts';
import { compare } from '../lib/compare.ts';

export function nodeHashOf(state: State, name: string): number {
  let h = state.nodeHashes.get(name);
  if (h === undefined) {
    h = nodeHash(name);
    state.nodeHashes.set(name, h);
  }
  return h;
}

/** Ready, schedulable, addressable and alive: eligibility before any selector. */
export function isBaseEligible(state: State, name: string): boolean {
  const node = state.nodes.get(name);
  return (
    node !== undefined &&
    node.p.ready &&
    !node.p.unschedulable &&
    node.p.internalIP !== undefined &&
    node.p.internalIP !== '' &&
    state.liveness.get(name) === true
  );
}

function inSig(state: State, sig: Sig, name: string): boolean {
  if (!isBaseEligible(state, name)) return false;
  const labels = (state.nodes.get(name) as { p: NodePayload }).p.labels;
  return (
    matchesOptionalSelector(sig.gatewaySelector, labels) && matchesOptionalSelector(sig.nodeSelector, labels)
  );
}

/** What gateways hands on: decisions, nodes to render, policies for status. */
export interface GatewayChanges {
  readonly decisions: readonly DecisionDraft[];
  readonly nodes: ReadonlySet<string>;
  readonly policies: ReadonlySet<PolicyRec>;
}

/** The same, as gateways builds it (its buffer in the state), and the egress IPs it touched. */
export interface GatewayBuffer {
  readonly decisions: DecisionDraft[];
  readonly nodes: Set<string>;
  readonly policies: Set<PolicyRec>;
  readonly touched: Set<EgressIPRec>;
}

const NO_GATEWAY_CHANGES: GatewayChanges = { decisions: [], nodes: new Set(), policies: new Set() };

/** A Node object or a node's liveness changed (cluster-view.ts). */
export type NodeChange = Extract<ViewChange, { kind: 'Node' } | { kind: 'Liveness' }>;

/** Stage 5 of a step: eligibility, owners' parameters, slots, and the assignment decisions. */
export function evolveGateways(
  state: State,
  nodeChanges: readonly NodeChange[],
  claimed: ReadonlySet<EgressIPRec>,
  offset: number,
): GatewayChanges {
  if (nodeChanges.length === 0 && claimed.size === 0) return NO_GATEWAY_CHANGES;
  const out = state.buffers.gateways;
  clearList(out.decisions);
  clearSet(out.nodes);
  clearSet(out.policies);
  clearSet(out.touched);
  const touched = out.touched;
  for (const change of nodeChanges) {
    if (change.kind === 'Node') applyNodeChange(state, out, touched, change.name, change.before);
    else updateEligibility(state, touched, change.name);
  }
  for (const ip of claimed) touched.add(ip);
  refreshGateways(state, touched);
  emitAssignments(state, out, touched, offset);
  return out;
}

/** Put `name` (node hash `h`) into an IP's top k if it ranks high enough. */
function offer(touched: Set<EgressIPRec>, ip: EgressIPRec, name: string, h: number): void {
  const s = score(ip.ipH, h);
  let i = ip.ranked.length;
  while (i > 0 && ranksBefore(s, name, ip.scores[i - 1] as number, ip.ranked[i - 1] as string)) i--;
  if (i >= ip.k) return;
  ip.ranked.splice(i, 0, name);
  ip.scores.splice(i, 0, s);
  if (ip.ranked.length > ip.k) {
    ip.ranked.pop();
    ip.scores.pop();
  }
  touched.add(ip);
}

function rerank(touched: Set<EgressIPRec>, ip: EgressIPRec): void {
  ip.ranked = [];
  ip.scores = [];
  touched.add(ip);
  if (ip.sig === undefined || ip.k === 0) return;
  // The hot loop of a policy change or a leaving holder (a scan of the eligible set): a node
  // below the current k-th score is rejected before anything else is looked at.
  let floor = -1;
  for (const [name, h] of ip.sig.eligible) {
    const s = score(ip.ipH, h);
    if (s < floor) continue;
    offer(touched, ip, name, h);
    if (ip.ranked.length === ip.k) floor = ip.scores[ip.k - 1] as number;
  }
}

/** Re-check one node's eligibility in every sig (after its Node object or liveness changed). */
function updateEligibility(state: State, touched: Set<EgressIPRec>, name: string): void {
  for (const sig of state.sigs.values()) {
    const want = inSig(state, sig, name);
    const has = sig.eligible.has(name);
    if (want && !has) {
      const h = nodeHashOf(state, name);
      sig.eligible.set(name, h);
      for (const ip of sig.ips) offer(touched, ip, name, h);
    } else if (!want && has) {
      sig.eligible.delete(name);
      for (const ip of sig.ips) if (ip.ranked.includes(name)) rerank(touched, ip);
    }
  }
}

/** A Node object changed (or went away): its own rules, tunnels towards it, eligibility. */
function applyNodeChange(
  state: State,
  out: GatewayBuffer,
  touched: Set<EgressIPRec>,
  name: string,
  before: NodePayload | undefined,
): void {
  out.nodes.add(name);
  const after = state.nodes.get(name)?.p;
  if (before?.internalIP !== after?.internalIP) {
    for (const ip of state.heldBy.get(name) ?? []) {
      ip.steerHash.valid = false;
      for (const d of ip.directors.keys()) out.nodes.add(d);
    }
  }
  updateEligibility(state, touched, name);
}

function attachSig(
  state: State,
  ip: EgressIPRec,
  key: string,
  owner: NonNullable<EgressIPRec['owner']>,
): void {
  let sig = state.sigs.get(key);
  if (sig === undefined) {
    sig = {
      key,
      gatewaySelector: owner.gatewaySelector,
      nodeSelector: owner.pool?.p.nodeSelector,
      eligible: new Map(),
      ips: new Set(),
    };
    state.sigs.set(key, sig);
    for (const name of state.nodes.keys())
      if (inSig(state, sig, name)) sig.eligible.set(name, nodeHashOf(state, name));
  }
  sig.ips.add(ip);
  ip.sig = sig;
}

function detachSig(state: State, ip: EgressIPRec): void {
  const sig = ip.sig;
  if (sig === undefined) return;
  sig.ips.delete(ip);
  if (sig.ips.size === 0) state.sigs.delete(sig.key);
  ip.sig = undefined;
}

function byIP(a: EgressIPRec, b: EgressIPRec): number {
  return compare(a.ip, b.ip);
}

/**
 * After claims: give each touched egress IP the parameters of its owner (eligible set, k),
 * re-ranking when they changed, then free and allocate slots, lowest first, in IP order.
 */
function refreshGateways(state: State, all: Set<EgressIPRec>): void {
  const touched = inOrder(all, byIP);
  for (const ip of touched) {
    const owner = ip.owner;
    if (owner === undefined) {
      detachSig(state, ip);
      ip.k = 0;
      ip.ranked = [];
      ip.scores = [];
      continue;
    }
    const key = `${selectorKey(owner.gatewaySelector)}|${selectorKey(owner.pool?.p.nodeSelector)}`;
    if (ip.sig?.key !== key || ip.k !== owner.gateways) {
      detachSig(state, ip);
      attachSig(state, ip, key, owner);
      ip.k = owner.gateways;
      rerank(all, ip);
    }
  }
  for (const ip of touched) {
    if (ip.owner === undefined && ip.slot !== 0) {
      state.usedSlots.delete(ip.slot);
      const i = state.freeSlots.findIndex((s) => s > ip.slot);
      state.freeSlots.splice(i < 0 ? state.freeSlots.length : i, 0, ip.slot);
      ip.slot = 0;
    }
  }
  for (const ip of touched) {
    if (ip.owner !== undefined && ip.slot === 0) {
      ip.slot = state.freeSlots.length > 0 ? (state.freeSlots.shift() as number) : state.nextSlot++;
      state.usedSlots.add(ip.slot);
    }
  }
}

/** Why `node` no longer holds `ip` (it is known not to be the active holder any more). */
export function computeFailoverReason(state: State, ip: EgressIPRec, node: string): FailoverReason {
  const n = state.nodes.get(node);
  if (n === undefined) return 'NodeDeleted';
  if (state.liveness.get(node) !== true) return 'NodeLost';
  if (n.p.unschedulable) return 'Cordoned';
  if (!n.p.ready) return 'NotReady';
  if (n.p.internalIP === undefined || n.p.internalIP === '') return 'NoNodeIP';
  if (ip.sig === undefined || !ip.sig.eligible.has(node)) return 'NotEligible';
  return 'Preempted';
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Compare each touched egress IP's assignment with what was last emitted: update who holds
 * what, mark the nodes whose rules change (old and new holder, every director of the IP), and
 * return the gateway decisions in IP order.
 */
function emitAssignments(
  state: State,
  changes: GatewayBuffer,
  touched: Set<EgressIPRec>,
  offset: number,
): void {
  if (touched.size === 0) return;
  const out = changes.decisions;
  for (const ip of inOrder(touched, byIP)) {
    const active = ip.owner !== undefined ? (ip.ranked[0] ?? '') : '';
    const standbys = ip.owner !== undefined ? ip.ranked.slice(1) : [];
    const owner = ip.owner?.id ?? '';
    const em = ip.emitted;
    if (active !== em.active || ip.slot !== em.slot) {
      if (em.active !== '') {
        removeFrom(state.heldBy, em.active, ip);
        changes.nodes.add(em.active);
      }
      if (active !== '') {
        addTo(state.heldBy, active, ip);
        changes.nodes.add(active);
      }
      for (const d of ip.directors.keys()) changes.nodes.add(d);
    }
    const base = { schema: DECISIONS_SCHEMA, offset, egressIP: ip.ip, slot: ip.slot, owner, standbys };
    if (active !== em.active) {
      if (em.active === '')
        out.push({ ...base, type: 'GatewayAssigned', active, previous: '', previousStandbys: em.standbys });
      else if (active === '')
        out.push({
          ...base,
          slot: em.slot,
          type: 'GatewayReleased',
          from: em.active,
          reason: ip.owner === undefined ? 'NotInUse' : 'NoEligibleGateway',
          fromReason:
            ip.owner === undefined && isBaseEligible(state, em.active)
              ? ''
              : computeFailoverReason(state, ip, em.active),
        });
      else
        out.push({
          ...base,
          type: 'GatewayFailedOver',
          from: em.active,
          to: active,
          reason: computeFailoverReason(state, ip, em.active),
        });
    } else if (active !== '' && !sameList(standbys, em.standbys))
      out.push({ ...base, type: 'GatewayAssigned', active, previous: active, previousStandbys: em.standbys });
    if (active !== em.active || owner !== em.owner || ip.slot !== em.slot || !sameList(standbys, em.standbys))
      for (const r of ip.rules) changes.policies.add(r.policy);
    ip.emitted = { active, standbys, slot: ip.slot, owner };
    // render.ts caches what a steer shows of this IP; it may have changed.
    ip.steerHash.valid = false;
    if (ip.rules.size === 0 && ip.owner === undefined && ip.directors.size === 0) state.ips.delete(ip.ip);
  }
}
