// The reference projection: everything recomputed from the cluster view alone, with no index
// and no memory of earlier steps (except slots, which are history by definition). Pure.
// Two uses:
// - Test oracle: after any event sequence, the incremental state must agree with it
//   (`diffWithReference`); the property tests check that on random logs.
// - Benchmark baseline: the cost of "recompute everything per event", which the incremental
//   design exists to avoid.
// It shares the *definitions* (selector matching, pools, precedence, hashing, overlap) with the
// incremental code, but none of its bookkeeping.
import {
  destinationSetsOverlap,
  parseAddress,
  parseCidr,
  rangesCover,
  type ParsedAddress,
  type ParsedCidr,
} from './addresses.ts';
import { computeRanking, ipHash } from './hrw.ts';
import { matchesOptionalSelector, matchesSelector, matchesServiceSelector } from './labels.ts';
import { isBaseEligible, nodeHashOf } from './gateways.ts';
import {
  compareRules,
  podIPsOf,
  policyPrecedes,
  type PodRec,
  type PolicyRec,
  type RuleRec,
  type State,
} from './model.ts';
import { computeNodeRules, computeNodeSignature, emptyNodeSignature } from './render.ts';
import { computePoolStanding } from './pools.ts';
import { computeAcceptance } from './rules.ts';
import { computePolicyStatus, computePoolStatus } from './status.ts';
import type { NodeRules, Steer } from '../contracts/node-rules.ts';
import { NODE_RULES_SCHEMA } from '../contracts/node-rules.ts';
import { compare, compareBig } from '../lib/compare.ts';

/** Node rules content as JSON (without the generation), for comparisons in tests. */
export function nodeRulesFingerprint(rules: NodeRules): string {
  return JSON.stringify([rules.nodeIP, rules.steers, rules.egressIPs, rules.neverSteer ?? []]);
}

export interface RefRule {
  accepted: boolean;
  reason: string;
  pool: string;
  selected: Set<PodRec>;
  unprogrammable: number;
  winner: boolean;
  claimLostTo: string;
  overlapLost: Map<string, number>;
  nodes: Set<string>;
}

export interface Reference {
  readonly rules: Map<RuleRec, RefRule>;
  readonly assignments: Map<string, { active: string; standbys: string[]; owner: RuleRec }>;
  readonly conflicts: Map<string, number>;
  readonly effective: Map<PodRec, RuleRec[]>;
  readonly nodeRules: Map<string, NodeRules>;
  /** Per pool: Accepted, and its allocations as "egressIP policy" in address order. */
  readonly pools: Map<string, { accepted: boolean; allocations: string[]; refused: number }>;
}

function liveRules(state: State): RuleRec[] {
  const out: RuleRec[] = [];
  for (const p of [...state.policies.values()].sort((a, b) => (a.key < b.key ? -1 : 1)))
    for (const r of p.rules) if (r.invalid === undefined) out.push(r);
  return out;
}

function selectsNaive(
  state: State,
  rule: RuleRec,
  ref: RefRule,
  pod: PodRec,
  sliceRefs: ReadonlyMap<string, Set<string>>,
): boolean {
  if (pod.p.hostNetwork || pod.p.terminal) return false;
  const policy: PolicyRec = rule.policy;
  if (policy.namespace !== undefined) {
    if (policy.namespace !== pod.namespace) return false;
  } else {
    const ns = state.namespaces.get(pod.namespace);
    if (ns === undefined || !matchesSelector(rule.namespaceSelector ?? {}, ns.p.labels)) return false;
    const pool = ref.pool === '' ? undefined : state.pools.get(ref.pool);
    if (!matchesOptionalSelector(pool?.p.namespaceSelector, ns.p.labels)) return false;
  }
  if (rule.serviceName === undefined && rule.podSelector === undefined) return false;
  if (rule.podSelector !== undefined && !matchesSelector(rule.podSelector, pod.p.labels)) return false;
  if (rule.serviceName !== undefined) {
    const svc = state.services.get(`${pod.namespace}/${rule.serviceName}`);
    const ok =
      matchesServiceSelector(svc?.p.selector, pod.p.labels) ||
      (sliceRefs.get(`${pod.namespace}/${rule.serviceName}`)?.has(pod.name) ?? false);
    if (!ok) return false;
  }
  return true;
}

export function computeReference(state: State): Reference {
  const pools = computePoolStanding(state.pools.values());
  const rules = liveRules(state);
  const refs = new Map<RuleRec, RefRule>();
  // Derived from the objects once per call (from scratch, as everything here), not once per rule
  // or node: per use, the naive baseline of bench/projection.bench.ts took minutes per event.
  const reserved = referenceReserved(state);
  const podHolders = podIPHolders(state);
  for (const r of rules) {
    const ns = r.policy.namespace;
    const acc = computeAcceptance(
      r,
      pools,
      ns === undefined ? undefined : state.namespaces.get(ns)?.p.labels,
      (a) => referenceHolder(reserved, podHolders, a),
    );
    refs.set(r, {
      accepted: acc.accepted,
      reason: acc.reason,
      pool: acc.pool?.name ?? '',
      selected: new Set(),
      unprogrammable: 0,
      winner: false,
      claimLostTo: '',
      overlapLost: new Map(),
      nodes: new Set(),
    });
  }
  const sliceRefs = new Map<string, Set<string>>();
  for (const s of state.slices.values()) {
    const key = `${s.namespace}/${s.p.serviceName}`;
    const names = sliceRefs.get(key) ?? new Set<string>();
    for (const n of s.podNames) names.add(n);
    sliceRefs.set(key, names);
  }
  const podsByNs = new Map<string, PodRec[]>();
  for (const pod of state.pods.values()) {
    const list = podsByNs.get(pod.namespace);
    if (list === undefined) podsByNs.set(pod.namespace, [pod]);
    else list.push(pod);
  }
  for (const r of rules) {
    const ref = refs.get(r) as RefRule;
    const namespaces = r.policy.namespace !== undefined ? [r.policy.namespace] : [...podsByNs.keys()];
    for (const ns of namespaces)
      for (const pod of podsByNs.get(ns) ?? [])
        if (selectsNaive(state, r, ref, pod, sliceRefs)) {
          ref.selected.add(pod);
          const prog = !!pod.p.nodeName && podIPsOf(pod, r.family).length > 0;
          if (!prog) ref.unprogrammable++;
        }
  }
  // claims
  const byIP = new Map<string, RuleRec[]>();
  for (const r of rules) {
    const list = byIP.get(r.egressIP);
    if (list === undefined) byIP.set(r.egressIP, [r]);
    else list.push(r);
  }
  const conflicts = new Map<string, number>();
  const owners = new Map<string, RuleRec>();
  for (const [ip, list] of byIP) {
    let winner: PolicyRec | undefined;
    for (const r of list)
      if ((refs.get(r) as RefRule).accepted && (winner === undefined || policyPrecedes(r.policy, winner)))
        winner = r.policy;
    const accepted = list.filter((r) => (refs.get(r) as RefRule).accepted);
    const owner = accepted.filter((r) => r.policy === winner).sort((a, b) => a.index - b.index)[0];
    if (owner !== undefined) owners.set(ip, owner);
    for (const r of accepted) {
      const ref = refs.get(r) as RefRule;
      ref.winner = r.policy === winner;
      if (!ref.winner && owner !== undefined) {
        ref.claimLostTo = owner.id;
        conflicts.set(`EgressIPClaimed|${ip}|${r.id}|${owner.id}`, 0);
      }
    }
  }
  // effective rules per pod
  const effective = new Map<PodRec, RuleRec[]>();
  const podsOnNode = new Map<string, { pod: PodRec; rules: RuleRec[] }[]>();
  const activeRulesOf = new Map<PodRec, RuleRec[]>();
  for (const r of rules) {
    const ref = refs.get(r) as RefRule;
    if (!ref.accepted || !ref.winner) continue;
    for (const pod of ref.selected) {
      const list = activeRulesOf.get(pod);
      if (list === undefined) activeRulesOf.set(pod, [r]);
      else list.push(r);
    }
  }
  for (const pod of state.pods.values()) {
    const cands = (activeRulesOf.get(pod) ?? []).sort(compareRules);
    const kept: RuleRec[] = [];
    for (const r of cands) {
      const w = kept.find((k) => k.egressIP !== r.egressIP && destinationSetsOverlap(k.destSet, r.destSet));
      if (w === undefined) kept.push(r);
      else {
        const key = `SelectionOverlap|${r.egressIP}|${r.id}|${w.id}`;
        conflicts.set(key, (conflicts.get(key) ?? 0) + 1);
        const lost = (refs.get(r) as RefRule).overlapLost;
        lost.set(w.id, (lost.get(w.id) ?? 0) + 1);
      }
    }
    effective.set(pod, kept);
    const node = pod.p.nodeName;
    if (!node) continue;
    const prog = kept.filter((r) => podIPsOf(pod, r.family).length > 0);
    if (prog.length === 0) continue;
    for (const r of prog) (refs.get(r) as RefRule).nodes.add(node);
    const list = podsOnNode.get(node);
    if (list === undefined) podsOnNode.set(node, [{ pod, rules: prog }]);
    else list.push({ pod, rules: prog });
  }
  // gateways
  const assignments = new Map<string, { active: string; standbys: string[]; owner: RuleRec }>();
  const held = new Map<string, string[]>();
  for (const [ip, owner] of owners) {
    const pool = owner.pool === undefined ? undefined : state.pools.get((refs.get(owner) as RefRule).pool);
    const eligible = [...state.nodes.values()]
      .filter(
        (n) =>
          isBaseEligible(state, n.name) &&
          matchesOptionalSelector(owner.gatewaySelector, n.p.labels) &&
          matchesOptionalSelector(pool?.p.nodeSelector, n.p.labels),
      )
      .map((n) => n.name);
    const ranked = computeRanking(ipHash(ip), eligible, owner.gateways, (n) => nodeHashOf(state, n));
    assignments.set(ip, { active: ranked[0] ?? '', standbys: ranked.slice(1), owner });
    if (ranked[0] !== undefined) held.set(ranked[0], [...(held.get(ranked[0]) ?? []), ip]);
  }
  // node rules
  const slotOf = (ip: string) => state.ips.get(ip)?.slot ?? -1;
  const nodeRules = new Map<string, NodeRules>();
  const names = new Set([
    ...state.nodes.keys(),
    ...podsOnNode.keys(),
    ...held.keys(),
    ...state.emittedNodeRules.keys(),
  ]);
  for (const node of names) {
    const groups = new Map<string, Steer>();
    for (const { pod, rules: rs } of podsOnNode.get(node) ?? [])
      for (const r of rs) {
        const key = `${slotOf(r.egressIP)}|${r.destKey}`;
        let g = groups.get(key);
        if (g === undefined) {
          const gw = (assignments.get(r.egressIP) as { active: string }).active;
          const gwIP = gw === '' ? '' : (state.nodes.get(gw)?.p.internalIP ?? '');
          g = {
            slot: slotOf(r.egressIP),
            egressIP: r.egressIP,
            gatewayNode: gwIP === '' ? '' : gw,
            gatewayIP: gwIP,
            podIPs: [],
            destinations: r.destinations,
            exceptions: r.exceptions,
            sources: [],
          };
          groups.set(key, g);
        }
        for (const a of podIPsOf(pod, r.family)) if (!g.podIPs.includes(a)) g.podIPs.push(a);
        if (!g.sources.includes(r.id)) g.sources.push(r.id);
      }
    const steers = [...groups.values()]
      .map((g) => ({ ...g, podIPs: [...g.podIPs].sort(), sources: [...g.sources].sort() }))
      .sort(
        (a, b) =>
          a.slot - b.slot ||
          compare(a.destinations.join(','), b.destinations.join(',')) ||
          compare(a.exceptions.join(','), b.exceptions.join(',')),
      );
    const egressIPs = (held.get(node) ?? [])
      .map((ip) => ({ slot: slotOf(ip), egressIP: ip }))
      .sort((a, b) => a.slot - b.slot);
    const neverSteer = referenceNeverSteer(reserved, steers);
    nodeRules.set(node, {
      schema: NODE_RULES_SCHEMA,
      node,
      generation: 0,
      nodeIP: state.nodes.get(node)?.p.internalIP ?? '',
      steers,
      egressIPs,
      ...(neverSteer.length > 0 ? { neverSteer } : {}),
    });
  }
  // pool allocations: the winning accepted rules of each IP, by the pool that governs them
  const poolRefs = new Map<string, { accepted: boolean; allocations: string[]; refused: number }>();
  for (const standing of pools) {
    const mine = [...owners.values()]
      .filter((r) => (refs.get(r) as RefRule).pool === standing.pool.name)
      .map((r) => ({ ip: parseCidr(`${r.egressIP}/${r.family === 4 ? 32 : 128}`), r }))
      .sort((a, b) => a.r.family - b.r.family || compareBig(a.ip?.lo ?? 0n, b.ip?.lo ?? 0n))
      .map(
        ({ r }) =>
          `${r.egressIP} ${r.policy.namespace === undefined ? '' : `${r.policy.namespace}/`}${r.policy.name}`,
      );
    // StaticEgressIP rules refused for their namespace by this (Accepted, so the only) covering pool.
    const refused = new Set(
      rules
        .filter((r) => {
          const addr = parseAddress(r.egressIP);
          return (
            standing.accepted &&
            r.policy.namespace !== undefined &&
            (refs.get(r) as RefRule).reason === 'NamespaceNotPermitted' &&
            addr !== undefined &&
            rangesCover(standing.pool.ranges, addr)
          );
        })
        .map((r) => `${r.egressIP} ${r.policy.key}`),
    );
    poolRefs.set(standing.pool.name, {
      accepted: standing.accepted,
      allocations: mine,
      refused: refused.size,
    });
  }
  return { rules: refs, assignments, conflicts, effective, nodeRules, pools: poolRefs };
}

interface ReservedBlock {
  cidr: ParsedCidr;
  rank: number;
  holder: string;
}

/** The running (not host-network) pods holding each IP, sorted. */
function podIPHolders(state: State): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of state.pods.values()) {
    if (p.p.hostNetwork || p.p.terminal) continue;
    for (const ip of [...p.ipv4, ...p.ipv6]) out.set(ip, [...(out.get(ip) ?? []), p.key]);
  }
  for (const keys of out.values()) keys.sort(compare);
  return out;
}

/** Every reserved block, from the objects, with reserved.ts' ranks and holder words. */
function referenceReserved(state: State): ReservedBlock[] {
  const out: ReservedBlock[] = [];
  for (const n of state.nodes.values()) {
    for (const text of new Set([
      ...(n.p.internalIP === undefined ? [] : [n.p.internalIP]),
      ...(n.p.addresses ?? []),
    ])) {
      const cidr = parseCidr(`${text}/${text.includes(':') ? 128 : 32}`);
      if (cidr !== undefined) out.push({ cidr, rank: 0, holder: `the address of node ${n.name}` });
    }
    for (const text of n.p.podCIDRs ?? []) {
      const cidr = parseCidr(text);
      if (cidr !== undefined)
        out.push({ cidr, rank: 1, holder: `inside the pod CIDR ${cidr.text} of node ${n.name}` });
    }
  }
  for (const s of state.serviceCIDRs.values())
    for (const text of s.p.cidrs) {
      const cidr = parseCidr(text);
      if (cidr !== undefined)
        out.push({ cidr, rank: 2, holder: `inside the service CIDR ${cidr.text} (ServiceCIDR ${s.name})` });
    }
  return out;
}

function referenceHolder(
  reserved: readonly ReservedBlock[],
  podHolders: ReadonlyMap<string, readonly string[]>,
  addr: ParsedAddress,
): string | undefined {
  const inside = reserved
    .filter((r) => r.cidr.family === addr.family && r.cidr.lo <= addr.value && addr.value <= r.cidr.hi)
    .sort((a, b) => a.rank - b.rank || compareBig(a.cidr.lo, b.cidr.lo) || compare(a.holder, b.holder));
  if (inside[0]?.rank === 0) return inside[0].holder;
  const pods = podHolders.get(addr.text) ?? [];
  if (pods.length > 0) return `the IP of pod ${pods[0]}`;
  return inside[0]?.holder;
}

function referenceNeverSteer(reserved: readonly ReservedBlock[], steers: readonly Steer[]): string[] {
  const out = new Set<string>();
  for (const st of steers) {
    const dests = st.destinations.map(parseCidr).filter((c) => c !== undefined);
    const excs = st.exceptions.map(parseCidr).filter((c) => c !== undefined);
    for (const { cidr: c } of reserved)
      if (
        dests.some((d) => d.family === c.family && d.lo <= c.hi && c.lo <= d.hi) &&
        !excs.some((e) => e.family === c.family && e.lo <= c.lo && c.hi <= e.hi)
      )
        out.add(c.text);
  }
  return [...out].sort(compare);
}

/** Every disagreement between the incremental state and the reference, as readable lines. */
export function diffWithReference(state: State, limit = 20): string[] {
  const ref = computeReference(state);
  const out: string[] = [];
  const say = (s: string) => {
    if (out.length < limit) out.push(s);
  };
  for (const [r, x] of ref.rules) {
    if (r.accepted !== x.accepted || r.acceptReason !== x.reason || (r.pool?.name ?? '') !== x.pool)
      say(
        `${r.id}: accepted ${r.accepted}/${r.acceptReason}/${r.pool?.name ?? ''}, reference ${x.accepted}/${x.reason}/${x.pool}`,
      );
    const sel = [...r.selected]
      .map((p) => p.key)
      .sort()
      .join(' ');
    const xsel = [...x.selected]
      .map((p) => p.key)
      .sort()
      .join(' ');
    if (sel !== xsel) say(`${r.id}: selects [${sel}], reference [${xsel}]`);
    if (r.unprogrammable !== x.unprogrammable)
      say(`${r.id}: unprogrammable ${r.unprogrammable}, reference ${x.unprogrammable}`);
    if (r.accepted && r.winner !== x.winner) say(`${r.id}: winner ${r.winner}, reference ${x.winner}`);
    if ((r.claimLostTo?.id ?? '') !== x.claimLostTo)
      say(`${r.id}: claim lost to ${r.claimLostTo?.id}, reference ${x.claimLostTo}`);
    const lost = JSON.stringify([...r.overlapLost].map(([w, n]) => [w.id, n]).sort());
    const xlost = JSON.stringify([...x.overlapLost].sort());
    if (lost !== xlost) say(`${r.id}: overlap lost ${lost}, reference ${xlost}`);
    const nodes = [...r.nodeCounts.keys()].sort().join(' ');
    const xnodes = [...x.nodes].sort().join(' ');
    if (nodes !== xnodes) say(`${r.id}: nodes [${nodes}], reference [${xnodes}]`);
  }
  for (const ip of state.ips.values()) {
    const x = ref.assignments.get(ip.ip);
    const mine =
      ip.owner === undefined
        ? 'none'
        : `${ip.emitted.active}|${ip.emitted.standbys.join(',')}|${ip.owner.id}`;
    const theirs = x === undefined ? 'none' : `${x.active}|${x.standbys.join(',')}|${x.owner.id}`;
    if (mine !== theirs) say(`ip ${ip.ip}: ${mine}, reference ${theirs}`);
    if ((ip.owner !== undefined) !== ip.slot > 0)
      say(`ip ${ip.ip}: in use ${ip.owner !== undefined} but slot ${ip.slot}`);
  }
  for (const ip of ref.assignments.keys()) if (!state.ips.has(ip)) say(`ip ${ip}: missing, reference has it`);
  const slots = [...state.ips.values()].filter((i) => i.slot > 0).map((i) => i.slot);
  if (new Set(slots).size !== slots.length) say(`slots not unique: ${slots.join(',')}`);
  const conflicts = JSON.stringify([...state.conflicts.values()].map((c) => [c.key, c.pods]).sort());
  const xconflicts = JSON.stringify([...ref.conflicts].sort());
  if (conflicts !== xconflicts) say(`conflicts ${conflicts}, reference ${xconflicts}`);
  const emittedConflicts = JSON.stringify([...state.emittedConflicts.keys()].sort());
  if (emittedConflicts !== JSON.stringify([...ref.conflicts.keys()].sort()))
    say(
      `emitted conflicts ${emittedConflicts}, reference ${JSON.stringify([...ref.conflicts.keys()].sort())}`,
    );
  for (const [node, x] of ref.nodeRules) {
    const last = state.emittedNodeRules.get(node);
    const emitted = last === undefined ? emptyNodeSignature() : [last.h1, last.h2];
    const now = computeNodeRules(state, node, 0);
    if (nodeRulesFingerprint(now) !== nodeRulesFingerprint(x))
      say(`node ${node}: renders ${nodeRulesFingerprint(now)}, reference ${nodeRulesFingerprint(x)}`);
    if (JSON.stringify(computeNodeSignature(state, node)) !== JSON.stringify(emitted))
      say(`node ${node}: renders other rules than it last emitted`);
  }
  for (const policy of state.policies.values()) {
    const fp = JSON.stringify(computePolicyStatus(state, policy));
    if (JSON.stringify(state.emittedStatus.get(policy.key)) !== fp)
      say(`status ${policy.key}: emitted is stale`);
  }
  for (const key of state.emittedStatus.keys())
    if (!state.policies.has(key)) say(`status ${key}: emitted for a deleted policy`);
  for (const standing of state.poolStanding) {
    const x = ref.pools.get(standing.pool.name);
    const status = computePoolStatus(state, standing);
    const allocations = status.allocations.map((a) => `${a.egressIP} ${a.policy}`);
    const conflict = status.conditions.find((c) => c.type === 'Conflict')?.status === 'True';
    if (
      x === undefined ||
      x.accepted !== standing.accepted ||
      conflict !== x.refused > 0 ||
      JSON.stringify(allocations) !== JSON.stringify(x.allocations)
    )
      say(
        `pool ${standing.pool.name}: accepted ${standing.accepted} conflict ${conflict} allocations ${JSON.stringify(allocations)}, reference ${JSON.stringify(x)}`,
      );
    if (JSON.stringify(state.emittedPoolStatus.get(standing.pool.name)) !== JSON.stringify(status))
      say(`pool status ${standing.pool.name}: emitted is stale`);
  }
  if (state.poolStanding.length !== ref.pools.size)
    say(`pools: ${state.poolStanding.length}, reference ${ref.pools.size}`);
  for (const name of state.emittedPoolStatus.keys())
    if (!state.pools.has(name)) say(`pool status ${name}: emitted for a deleted pool`);
  return out;
}
