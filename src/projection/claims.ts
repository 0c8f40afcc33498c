// Claims and conflicts: which rule may use an egress IP, and which rules steer each pod. Pure
// (mutates only the linear state, see model.ts). Precedence everywhere is model.ts
// `rulePrecedes`: the policy first seen in the log wins, then kind/namespace/name, then the rule
// index (docs/api.md, "Conflicts").
// - EgressIPClaimed: several policies have accepted rules with one egress IP. The first policy
//   wins; all its rules with that IP are active, and the others' rules with it are not (they
//   get Conflict=True). The owner of the IP (whose gatewaySelector and gateways count apply) is
//   the winning policy's lowest-index rule with it.
// - SelectionOverlap: a pod selected by active rules with different egress IPs whose
//   destinations (minus exceptions) overlap would have two ways out. Per pod, rules are taken in
//   precedence order and a rule is kept unless it overlaps a rule already kept; the loser leaves
//   only those pods out, so one contested pod does not disable a whole policy.
// Only the outcome of a step is compared with what was last emitted, so a conflict that appears
// and disappears within one event emits nothing.
//
// Stage 3 of a step (evolveClaims): selection's changes in; out go the egress IPs whose owner was
// decided again (for gateways), each touched pod's effective rules (for steers), the conflict
// decisions and the policies whose status may have changed. It owns the egress IP records' rule
// sets, winners and owners, per-pod effective rules and overlaps, and the conflicts.
import { destinationSetsOverlap } from './addresses.ts';
import type { ConflictDetected, ConflictResolved, DecisionDraft } from '../contracts/decisions.ts';
import type * as t from 'io-ts';
import { DECISIONS_SCHEMA } from '../contracts/decisions.ts';
import { ipHash } from './hrw.ts';
import {
  clearList,
  clearSet,
  compareRules,
  countIn,
  inOrder,
  isActive,
  policyPrecedes,
  type ConflictRec,
  type EgressIPRec,
  type PodRec,
  type PolicyRec,
  type RuleRec,
  type State,
} from './model.ts';
import type { SelectionChanges } from './selection.ts';
import { compare } from '../lib/compare.ts';

/** What claims hands on: to gateways (ips), to steers (pods, effective), to status (policies). */
export interface ClaimChanges {
  /** Egress IPs whose owner was decided again: gateways re-read the owner's parameters. */
  readonly ips: ReadonlySet<EgressIPRec>;
  /** Pods whose effective rules were recomputed, and those rules (same index). */
  readonly pods: readonly PodRec[];
  readonly effective: readonly (readonly RuleRec[])[];
  /** ConflictResolved / ConflictDetected, in that order. */
  readonly decisions: readonly DecisionDraft[];
  readonly policies: ReadonlySet<PolicyRec>;
}

/** The same, as claims builds it (its buffer in the state), and the conflicts it touched. */
export interface ClaimBuffer {
  readonly ips: Set<EgressIPRec>;
  readonly pods: PodRec[];
  readonly effective: (readonly RuleRec[])[];
  readonly decisions: DecisionDraft[];
  readonly policies: Set<PolicyRec>;
  readonly conflicts: Set<string>;
}

const NO_CLAIM_CHANGES: ClaimChanges = {
  ips: new Set(),
  pods: [],
  effective: [],
  decisions: [],
  policies: new Set(),
};

/** Stage 3 of a step: claims on egress IPs, then every touched pod's effective rules. */
export function evolveClaims(state: State, selection: SelectionChanges, offset: number): ClaimChanges {
  if (
    selection.pods.size === 0 &&
    selection.attached.length === 0 &&
    selection.detached.length === 0 &&
    selection.reaccepted.length === 0
  )
    return NO_CLAIM_CHANGES;
  const out = state.buffers.claims;
  clearSet(out.ips);
  clearList(out.pods);
  clearList(out.effective);
  clearList(out.decisions);
  clearSet(out.policies);
  clearSet(out.conflicts);
  const conflicts = out.conflicts;
  for (const rule of selection.detached) detachRule(state, out, rule);
  for (const rule of selection.attached) attachRule(state, out, rule);
  for (const rule of selection.reaccepted) {
    const ip = state.ips.get(rule.egressIP);
    if (ip !== undefined) out.ips.add(ip);
  }
  const flipped = resolveClaims(state, out, conflicts);
  resolvePods(state, out, conflicts, selection.pods);
  if (flipped !== undefined)
    for (const pod of flipped) if (!selection.pods.has(pod)) resolvePod(state, out, conflicts, pod);
  if (conflicts.size > 0) out.decisions.push(...emitConflicts(state, conflicts, offset));
  return out;
}

function attachRule(state: State, out: ClaimBuffer, rule: RuleRec): void {
  let rec = state.ips.get(rule.egressIP);
  if (rec === undefined) {
    rec = {
      ip: rule.egressIP,
      family: rule.family,
      ipH: ipHash(rule.egressIP),
      rules: new Set(),
      owner: undefined,
      slot: 0,
      sig: undefined,
      k: 0,
      ranked: [],
      scores: [],
      claimKeys: new Set(),
      directors: new Map(),
      emitted: { active: '', standbys: [], slot: 0, owner: '' },
      steerHash: { valid: false, h1: 0, h2: 0 },
    };
    state.ips.set(rule.egressIP, rec);
  }
  rec.rules.add(rule);
  rule.ipRec = rec;
  out.ips.add(rec);
}

function detachRule(state: State, out: ClaimBuffer, rule: RuleRec): void {
  const rec = state.ips.get(rule.egressIP);
  if (rec === undefined) return;
  rec.rules.delete(rule);
  out.ips.add(rec);
}

function byIP(a: EgressIPRec, b: EgressIPRec): number {
  return compare(a.ip, b.ip);
}

/** Decide the winner of every egress IP the step touched; returns the pods of rules that flipped. */
function resolveClaims(state: State, out: ClaimBuffer, conflicts: Set<string>): Set<PodRec> | undefined {
  let flipped: Set<PodRec> | undefined;
  for (const rec of inOrder(out.ips, byIP)) {
    let winner: PolicyRec | undefined;
    for (const r of rec.rules)
      if (r.accepted && (winner === undefined || policyPrecedes(r.policy, winner))) winner = r.policy;
    let owner: RuleRec | undefined;
    for (const r of rec.rules)
      if (r.accepted && r.policy === winner && (owner === undefined || r.index < owner.index)) owner = r;

    const keys = new Set<string>();
    for (const r of rec.rules) {
      const won = r.accepted && r.policy === winner;
      if (won !== r.winner) {
        r.winner = won;
        if (r.selected.size > 0) {
          flipped ??= new Set();
          for (const pod of r.selected) flipped.add(pod);
        }
      }
      const lostTo = r.accepted && !won ? owner : undefined;
      if (lostTo !== r.claimLostTo) r.claimLostTo = lostTo;
      out.policies.add(r.policy);
      if (lostTo !== undefined) {
        const key = `EgressIPClaimed|${rec.ip}|${r.id}|${lostTo.id}`;
        keys.add(key);
        const existing = state.conflicts.get(key);
        if (existing === undefined || existing.loser !== r || existing.winner !== lostTo) {
          state.conflicts.set(key, {
            key,
            kind: 'EgressIPClaimed',
            loser: r,
            winner: lostTo,
            egressIP: rec.ip,
            pods: 0,
          });
          conflicts.add(key);
        }
      }
    }
    for (const key of rec.claimKeys)
      if (!keys.has(key)) {
        state.conflicts.delete(key);
        conflicts.add(key);
      }
    rec.claimKeys = keys;
    rec.owner = owner;
    // Even with the same owner its parameters may have changed (its pool's nodeSelector): every
    // IP in out.ips goes to gateways.
  }
  return flipped;
}

function overlaps(a: RuleRec, b: RuleRec): boolean {
  if (a.egressIP === b.egressIP) return false;
  let v = a.overlapCache.get(b);
  if (v === undefined) {
    v = destinationSetsOverlap(a.destSet, b.destSet);
    a.overlapCache.set(b, v);
    b.overlapCache.set(a, v);
  }
  return v;
}

const NO_RULES: RuleRec[] = [];
const NO_PAIRS: [RuleRec, RuleRec][] = [];

/** The rules that steer a pod, in precedence order, and the overlap conflicts it causes. */
export function computeEffectiveRules(pod: PodRec): { rules: RuleRec[]; lost: [RuleRec, RuleRec][] } {
  if (pod.deleted || pod.selectedBy.length === 0) return { rules: NO_RULES, lost: NO_PAIRS };
  const candidates: RuleRec[] = [];
  for (const r of pod.selectedBy) if (isActive(r)) candidates.push(r);
  if (candidates.length <= 1) return { rules: candidates, lost: NO_PAIRS };
  candidates.sort(compareRules);
  const kept: RuleRec[] = [];
  const lost: [RuleRec, RuleRec][] = [];
  for (const r of candidates) {
    const beaten = kept.find((k) => overlaps(k, r));
    if (beaten === undefined) kept.push(r);
    else lost.push([r, beaten]);
  }
  return { rules: kept, lost };
}

function countOverlap(
  state: State,
  out: ClaimBuffer,
  conflicts: Set<string>,
  loser: RuleRec,
  winner: RuleRec,
  delta: number,
): void {
  const key = `SelectionOverlap|${loser.egressIP}|${loser.id}|${winner.id}`;
  let rec = state.conflicts.get(key);
  if (rec === undefined) {
    rec = { key, kind: 'SelectionOverlap', loser, winner, egressIP: loser.egressIP, pods: 0 };
    state.conflicts.set(key, rec);
  } else if (delta > 0 && (rec.loser !== loser || rec.winner !== winner)) {
    // The same rules by id, rebuilt by a policy update: keep the record, point at the new ones.
    rec = { ...rec, loser, winner };
    state.conflicts.set(key, rec);
  }
  rec.pods += delta;
  if (rec.pods <= 0) state.conflicts.delete(key);
  countIn(loser.overlapLost, winner, delta);
  conflicts.add(key);
  out.policies.add(loser.policy);
}

/** Recompute the effective rules of the touched pods; steers registers them next. */
function resolvePods(state: State, out: ClaimBuffer, conflicts: Set<string>, pods: Iterable<PodRec>): void {
  for (const pod of pods) resolvePod(state, out, conflicts, pod);
}

function resolvePod(state: State, out: ClaimBuffer, conflicts: Set<string>, pod: PodRec): void {
  const { rules, lost } = computeEffectiveRules(pod);
  if (pod.lost.length > 0 || lost.length > 0) {
    for (const [l, w] of pod.lost) countOverlap(state, out, conflicts, l, w, -1);
    for (const [l, w] of lost) countOverlap(state, out, conflicts, l, w, +1);
    pod.lost = lost;
  }
  out.pods.push(pod);
  out.effective.push(rules);
}

type ConflictDraft =
  Omit<t.TypeOf<typeof ConflictDetected>, 'id'> | Omit<t.TypeOf<typeof ConflictResolved>, 'id'>;

function conflictMessage(c: ConflictRec): string {
  return c.kind === 'EgressIPClaimed'
    ? `egress IP ${c.egressIP} is also claimed by ${c.winner.id}, which takes precedence (first seen in the log); ${c.loser.id} does not use it`
    : `${c.pods} pod(s) selected by ${c.loser.id} are also selected by ${c.winner.id} (egress IP ${c.winner.egressIP}) for overlapping destinations; ${c.winner.id} takes precedence for them`;
}

/** ConflictResolved / ConflictDetected for the conflicts whose existence changed in this step. */
function emitConflicts(state: State, conflicts: ReadonlySet<string>, offset: number): DecisionDraft[] {
  if (conflicts.size === 0) return [];
  const resolved: ConflictDraft[] = [];
  const detected: ConflictDraft[] = [];
  for (const key of [...conflicts].sort()) {
    const now = state.conflicts.get(key);
    const before = state.emittedConflicts.get(key);
    const base = (c: ConflictRec) => ({
      schema: DECISIONS_SCHEMA,
      offset,
      conflict: c.kind,
      loser: c.loser.id,
      loserPolicy: c.loser.policy.ref,
      winner: c.winner.id,
      winnerPolicy: c.winner.policy.ref,
      egressIP: c.egressIP,
    });
    if (now !== undefined && before === undefined) {
      detected.push({
        ...base(now),
        type: 'ConflictDetected',
        pods: now.pods,
        message: conflictMessage(now),
      });
      state.emittedConflicts.set(key, { ...now });
    } else if (now === undefined && before !== undefined) {
      resolved.push({ ...base(before), type: 'ConflictResolved' });
      state.emittedConflicts.delete(key);
    }
  }
  return [...resolved, ...detected] as DecisionDraft[];
}
