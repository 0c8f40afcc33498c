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
import { destinationSetsOverlap } from './addresses.ts';
import type { ConflictDetected, ConflictResolved, DecisionDraft } from '../contracts/decisions.ts';
import type * as t from 'io-ts';
import { DECISIONS_SCHEMA } from '../contracts/decisions.ts';
import { ipHash } from './hrw.ts';
import {
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
import { registerPod } from './steers.ts';
import { compare } from '../lib/compare.ts';

export function attachRule(state: State, rule: RuleRec): void {
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
  state.dirty.ips.add(rec);
}

export function detachRule(state: State, rule: RuleRec): void {
  const rec = state.ips.get(rule.egressIP);
  if (rec === undefined) return;
  rec.rules.delete(rule);
  state.dirty.ips.add(rec);
}

function byIP(a: EgressIPRec, b: EgressIPRec): number {
  return compare(a.ip, b.ip);
}

/** Decide the winner of every egress IP the step touched; marks pods of rules that flipped. */
export function resolveClaims(state: State): void {
  const dirty = state.dirty;
  for (const rec of inOrder(dirty.ips, byIP)) {
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
        for (const pod of r.selected) dirty.pods.add(pod);
      }
      const lostTo = r.accepted && !won ? owner : undefined;
      if (lostTo !== r.claimLostTo) r.claimLostTo = lostTo;
      dirty.policies.add(r.policy);
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
          dirty.conflicts.add(key);
        }
      }
    }
    for (const key of rec.claimKeys)
      if (!keys.has(key)) {
        state.conflicts.delete(key);
        dirty.conflicts.add(key);
      }
    rec.claimKeys = keys;
    rec.owner = owner;
    // Even with the same owner its parameters may have changed (its pool's nodeSelector).
    dirty.assignments.add(rec);
  }
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

function countOverlap(state: State, loser: RuleRec, winner: RuleRec, delta: number): void {
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
  state.dirty.conflicts.add(key);
  state.dirty.policies.add(loser.policy);
}

/** Recompute the effective rules of every pod the step touched, and re-register them. */
export function resolvePods(state: State): void {
  for (const pod of state.dirty.pods) {
    const { rules, lost } = computeEffectiveRules(pod);
    if (pod.lost.length > 0 || lost.length > 0) {
      for (const [l, w] of pod.lost) countOverlap(state, l, w, -1);
      for (const [l, w] of lost) countOverlap(state, l, w, +1);
      pod.lost = lost;
    }
    registerPod(state, pod, rules);
  }
}

type ConflictDraft =
  Omit<t.TypeOf<typeof ConflictDetected>, 'id'> | Omit<t.TypeOf<typeof ConflictResolved>, 'id'>;

function conflictMessage(c: ConflictRec): string {
  return c.kind === 'EgressIPClaimed'
    ? `egress IP ${c.egressIP} is also claimed by ${c.winner.id}, which takes precedence (first seen in the log); ${c.loser.id} does not use it`
    : `${c.pods} pod(s) selected by ${c.loser.id} are also selected by ${c.winner.id} (egress IP ${c.winner.egressIP}) for overlapping destinations; ${c.winner.id} takes precedence for them`;
}

/** ConflictResolved / ConflictDetected for the conflicts whose existence changed in this step. */
export function emitConflicts(state: State, offset: number): DecisionDraft[] {
  if (state.dirty.conflicts.size === 0) return [];
  const resolved: ConflictDraft[] = [];
  const detected: ConflictDraft[] = [];
  for (const key of [...state.dirty.conflicts].sort()) {
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
