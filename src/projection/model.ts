// The projection's state: the cluster view (objects as the log last described them) and the
// indexes and derived facts that make every step incremental. Types and constructors only.
//
// Why mutable: the benchmark cluster has 150,000 pods; copying maps of that size per event
// would cost milliseconds per event, and persistent maps would cost several times the memory
// and time of native Map/Set. So the state is a *linear* value: `evolve(state, event, offset)`
// updates it in place and returns it, and a caller never uses a state again after passing it to
// evolve (exactly how a fold uses its accumulator). Under that discipline the projection is
// observably pure: the same events from initialState() give the same outputs, byte for byte,
// which the property tests check. Nothing in here reads a clock, randomness or the environment,
// and every iteration whose order could reach an output is either over insertion-ordered
// Map/Set (insertion order is itself a function of the log) or explicitly sorted.
//
// Ownership of the mutable fields: each stage of a step (projection.ts lists them in order)
// writes only its own, and hands what the next stage needs on as a typed return value:
//   cluster-view.ts  the object maps, seenIds, terms, lists, liveness, lastSeen fields
//   selection.ts     rule scopes and selections, pod→rules, slice references, unprogrammable,
//                    pool standing (rules.ts: building rules from specs, acceptance by pools;
//                    pools.ts: which pools are Accepted)
//   claims.ts        egress IP records' rules, winners and owners, per-pod effective rules,
//                    conflicts
//   steers.ts        registrations of pods on nodes, steer groups, director counts
//   gateways.ts      eligibility sets, rankings, slots, held/emitted assignments
//   render.ts        emitted node rules (and the steer hash cache it reads)
//   status.ts        emitted policy and pool statuses
import { limits } from '../api/group.ts';
import type { LabelSelector, Labels } from '../contracts/primitives.ts';
import type { EgressRule, PayloadOf } from '../contracts/cluster-events.ts';
import type {
  Condition,
  ConflictKind,
  Decision,
  PolicyRef,
  PoolAllocation,
  PoolRef,
  RuleStatus,
} from '../contracts/decisions.ts';
import type { NodeRules } from '../contracts/node-rules.ts';
import type { AddressRange, DestinationSet, Family, ParsedCidr } from './addresses.ts';
import type { ClaimBuffer } from './claims.ts';
import type { GatewayBuffer } from './gateways.ts';
import type { SelectionBuffer } from './selection.ts';
import type { SteerBuffer } from './steers.ts';

export type PodPayload = PayloadOf<'PodObserved'>;
export type NodePayload = PayloadOf<'NodeObserved'>;
export type ServicePayload = PayloadOf<'ServiceObserved'>;
export type SlicePayload = PayloadOf<'EndpointSliceObserved'>;
export type NamespacePayload = PayloadOf<'NamespaceObserved'>;
export type PoolPayload = PayloadOf<'StaticEgressIPPoolObserved'>;
export type PolicyPayload = PayloadOf<'StaticEgressIPObserved'> | PayloadOf<'ClusterStaticEgressIPObserved'>;
export type PolicyKind = 'StaticEgressIP' | 'ClusterStaticEgressIP';

/** The largest `gateways` honoured (the CRD's bound); bounds the work per egress IP. */
export const MAX_GATEWAYS = limits.maxGateways;

export interface PodRec {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  p: PodPayload;
  lastSeen: number;
  /** Canonical pod IPs per family, sorted (parsed once per PodObserved). */
  ipv4: string[];
  ipv6: string[];
  deleted: boolean;
  // reserved.ts: the IPs under which podsByIP lists this pod
  reservedIPs: readonly string[];
  // selection.ts: the rules selecting this pod, and whether it counted as programmable (per
  // family) when the rules' unprogrammable counters were last adjusted
  // (an array, not a Set: a pod has zero to a few rules, and 150,000 Sets cost heap and GC time)
  selectedBy: RuleRec[];
  prog4: boolean;
  prog6: boolean;
  // claims.ts: the overlap conflicts this pod counts in, as [loser, winner] pairs
  lost: [RuleRec, RuleRec][];
  // steers.ts: what the pod contributes to its node's steers
  regNode: string | undefined;
  regRules: RuleRec[];
  regIPs4: string[];
  regIPs6: string[];
}

export interface NodeRec {
  readonly name: string;
  p: NodePayload;
  lastSeen: number;
}

export interface ServiceRec {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  p: ServicePayload;
  lastSeen: number;
}

export interface SliceRec {
  readonly key: string;
  readonly namespace: string;
  p: SlicePayload;
  lastSeen: number;
  /** Distinct pod names this slice refers to (targetRefs), computed once per event. */
  podNames: string[];
}

export interface NamespaceRec {
  readonly name: string;
  p: NamespacePayload;
  lastSeen: number;
}

export interface PoolRec {
  readonly name: string;
  /** Replaced (never mutated) when the same name is observed with another uid. */
  ref: PoolRef;
  p: PoolPayload;
  lastSeen: number;
  ranges: AddressRange[];
}

/**
 * Whether a pool's addresses may be used (pools.ts): a pool whose addresses overlap those of an
 * Accepted pool that takes precedence is not Accepted, and governs no egress IP.
 */
export interface PoolStanding {
  readonly pool: PoolRec;
  readonly accepted: boolean;
  /** When not accepted: the pool that keeps the overlapping addresses, and the entries that overlap. */
  readonly overlap: { readonly pool: string; readonly entry: string; readonly theirs: string } | undefined;
}

export interface ServiceCIDRRec {
  readonly name: string;
  p: PayloadOf<'ServiceCIDRObserved'>;
  lastSeen: number;
}

/** An address block in use in the cluster, and what holds it (reserved.ts). */
export interface ReservedPrefix {
  readonly cidr: ParsedCidr;
  /** Ranks the holders in a message: 0 node address, 1 pod CIDR, 2 service CIDR. */
  readonly rank: number;
  /** As a message names it: "the address of node node1", "inside the pod CIDR 10.244.1.0/24 of node node1". */
  readonly holder: string;
}

/** The never-steer prefixes that overlap one destination set, and their signature lanes. */
export interface NeverSteerEntry {
  readonly cidrs: readonly string[];
  readonly h1: number;
  readonly h2: number;
}

export interface PolicyRec {
  /** "StaticEgressIP/ns/name" or "ClusterStaticEgressIP/name": unique across kinds. */
  readonly key: string;
  readonly kind: PolicyKind;
  readonly namespace: string | undefined;
  readonly name: string;
  /** Replaced (never mutated) when the same name is observed with another uid. */
  ref: PolicyRef;
  /** Offset of the Observed event that made this policy exist: the conflict precedence. */
  readonly firstSeen: number;
  p: PolicyPayload;
  lastSeen: number;
  rules: RuleRec[];
  deleted: boolean;
}

export type AcceptReason =
  | 'Accepted'
  | 'NoPoolCoversIP'
  | 'PoolNotAccepted'
  | 'NamespaceNotPermitted'
  | 'EgressIPInUse'
  | 'InvalidEgressIP'
  | 'InvalidDestination'
  | 'NoDestinations';

export interface RuleRec {
  /** "ns/name#i" or "cluster/name#i" (a steer's `sources`). */
  readonly id: string;
  readonly policy: PolicyRec;
  readonly index: number;
  readonly spec: EgressRule;
  /** Set when the spec cannot be used at all (bad IP or CIDR); such a rule selects nothing. */
  readonly invalid: { reason: AcceptReason; message: string } | undefined;
  /** Canonical egress IP text (the spec's text when invalid). */
  readonly egressIP: string;
  readonly family: Family;
  readonly destinations: string[];
  readonly exceptions: string[];
  /** destinations + exceptions as one string: rules with equal keys share a steer. */
  readonly destKey: string;
  readonly destSet: DestinationSet;
  readonly gateways: number;
  readonly serviceName: string | undefined;
  readonly podSelector: LabelSelector | undefined;
  readonly gatewaySelector: LabelSelector | undefined;
  /** ClusterStaticEgressIP only: the policy's namespaceSelector. */
  readonly namespaceSelector: LabelSelector | undefined;
  removed: boolean;
  // rules.ts
  accepted: boolean;
  acceptReason: AcceptReason;
  acceptMessage: string;
  pool: PoolRec | undefined;
  // selection.ts
  /** ClusterStaticEgressIP rules: the namespaces in scope (policy ∩ pool namespaceSelector). */
  readonly scope: Set<string>;
  /** ClusterStaticEgressIP rules: namespaces the policy selects but the governing pool does not admit. */
  readonly excluded: Set<string>;
  readonly selected: Set<PodRec>;
  unprogrammable: number;
  // claims.ts
  /** Won the egress IP claim (meaningful when accepted). */
  winner: boolean;
  claimLostTo: RuleRec | undefined;
  /** Overlap conflicts lost, by winning rule: how many pods. */
  readonly overlapLost: Map<RuleRec, number>;
  readonly overlapCache: WeakMap<RuleRec, boolean>;
  // steers.ts: directors of this rule (nodes with registered pods) and their pod counts
  readonly nodeCounts: Map<string, number>;
  /** claims.ts: the record of this rule's egress IP, while the rule is attached to it. */
  ipRec: EgressIPRec | undefined;
}

export interface Sig {
  readonly key: string;
  readonly gatewaySelector: LabelSelector | undefined;
  readonly nodeSelector: LabelSelector | undefined;
  /** Eligible node names and their rendezvous hashes (hrw.ts nodeHash). */
  readonly eligible: Map<string, number>;
  readonly ips: Set<EgressIPRec>;
}

export interface Assignment {
  active: string;
  standbys: string[];
  slot: number;
  owner: string;
}

export interface EgressIPRec {
  readonly ip: string;
  readonly family: Family;
  readonly ipH: number;
  /** Every valid rule naming this IP, accepted or not. */
  readonly rules: Set<RuleRec>;
  /** The winning policy's lowest-index accepted rule: its gateway parameters apply. */
  owner: RuleRec | undefined;
  slot: number;
  sig: Sig | undefined;
  k: number;
  /** Top k eligible nodes, best first, and their scores. */
  ranked: string[];
  scores: number[];
  /** Current claim conflicts of this IP, by conflict key. */
  claimKeys: Set<string>;
  /** steers.ts: nodes with registered pods steering to this IP, and how many pods each. */
  readonly directors: Map<string, number>;
  /** The assignment as last emitted (decisions, node rules). */
  emitted: Assignment;
  /**
   * render.ts: hashes of what a steer shows of this IP (slot, gateway node and address),
   * cached; stale whenever `emitted` or the gateway's address changes.
   */
  steerHash: { valid: boolean; h1: number; h2: number };
}

export interface ConflictRec {
  readonly key: string;
  readonly kind: ConflictKind;
  readonly loser: RuleRec;
  readonly winner: RuleRec;
  readonly egressIP: string;
  pods: number;
}

export interface EmittedNodeRules {
  generation: number;
  h1: number;
  h2: number;
}

/** One steer of one node, maintained incrementally (steers.ts). */
export interface SteerGroup {
  readonly ip: EgressIPRec;
  readonly destKey: string;
  readonly destHash: number;
  readonly destinations: string[];
  readonly exceptions: string[];
  /** Pod IP → how many registered pods carry it; source rule id → how many pods. */
  readonly podIPs: Map<string, number>;
  readonly sources: Map<string, number>;
  /** Sums of the two lane hashes of the distinct keys of both maps. */
  h1: number;
  h2: number;
}

/** A PolicyStatusComputed without its envelope (schema, type, id, offset). */
export interface PolicyStatus {
  readonly policy: PolicyRef;
  readonly observedGeneration: number;
  readonly rules: RuleStatus[];
  readonly conditions: Condition[];
}

/** A PoolStatusComputed without its envelope. */
export interface PoolStatus {
  readonly pool: PoolRef;
  readonly observedGeneration: number;
  readonly allocations: PoolAllocation[];
  readonly conditions: Condition[];
}

export interface StepOutputs {
  /** The cluster-events offset these outputs were caused by. */
  readonly offset: number;
  readonly decisions: readonly Decision[];
  readonly nodeRules: readonly NodeRules[];
  /**
   * Present only when the fold refused the event (cluster-view.ts says which are refused): why.
   * The event changed nothing; the projector dead-letters it with this reason.
   */
  readonly refused?: string;
}

/**
 * What the log says about one producer component's terms (cluster-view.ts, "Term fencing").
 * fence: the newest confirmed term; events of older terms are ignored. announced: a term a
 * LeadershipAcquired announced and no other event has confirmed yet. highest: the newest term of
 * any counted event of the component other than a LeadershipAcquired.
 */
export interface TermRec {
  fence: number | undefined;
  announced: number | undefined;
  highest: number | undefined;
}

export interface State {
  // ---- cluster view (cluster-view.ts) ----
  readonly seenIds: Set<string>;
  readonly terms: Map<string, TermRec>;
  /** In-progress lists per kind: listId → offset of its ListStarted. */
  readonly lists: Map<string, Map<string, number>>;
  readonly pods: Map<string, PodRec>;
  readonly nodes: Map<string, NodeRec>;
  /** true after NodeBack, false after NodeLost; absent: never heard of (not alive). */
  readonly liveness: Map<string, boolean>;
  readonly services: Map<string, ServiceRec>;
  readonly slices: Map<string, SliceRec>;
  readonly namespaces: Map<string, NamespaceRec>;
  readonly pools: Map<string, PoolRec>;
  readonly policies: Map<string, PolicyRec>;
  readonly serviceCIDRs: Map<string, ServiceCIDRRec>;
  /** Events ignored as duplicates, fenced, no-ops or refused (for metrics and tests). */
  ignored: { duplicate: number; fenced: number; unchanged: number; refused: number };
  // ---- reserved addresses (reserved.ts) ----
  /** Canonical pod IP → the pods (not host-network, not terminal) that carry it. */
  readonly podsByIP: Map<string, PodRec[]>;
  /** Node addresses, pod CIDRs and service CIDRs, sorted; undefined when one changed since. */
  reservedPrefixes: ReservedPrefix[] | undefined;
  /** Per steer group destKey: the reserved prefixes its destinations overlap. */
  readonly neverSteerByDest: Map<string, NeverSteerEntry>;
  // ---- selection indexes (selection.ts) ----
  readonly podsByNamespace: Map<string, Set<PodRec>>;
  /** Valid rules whose scope includes the namespace (namespaced: their own; cluster: selected). */
  readonly rulesByNamespace: Map<string, Set<RuleRec>>;
  /** Valid namespaced rules by the policy's namespace (pool admission depends on its labels). */
  readonly namespacedRulesByNamespace: Map<string, Set<RuleRec>>;
  readonly clusterRules: Set<RuleRec>;
  /** Valid rules by serviceName. */
  readonly rulesByService: Map<string, Set<RuleRec>>;
  /** Every pool in precedence order with whether it is Accepted (pools.ts); rebuilt on a pool change. */
  poolStanding: readonly PoolStanding[];
  /** "ns/service" → pod name → number of slices naming it. */
  readonly sliceRefs: Map<string, Map<string, number>>;
  // ---- gateways (gateways.ts) ----
  readonly ips: Map<string, EgressIPRec>;
  readonly sigs: Map<string, Sig>;
  readonly nodeHashes: Map<string, number>;
  readonly heldBy: Map<string, Set<EgressIPRec>>;
  readonly usedSlots: Set<number>;
  /** Freed slots, ascending; nextSlot is one past the highest ever used. */
  freeSlots: number[];
  nextSlot: number;
  // ---- claims and conflicts (claims.ts) ----
  readonly conflicts: Map<string, ConflictRec>;
  /** The conflicts as last emitted, with their pod counts at detection. */
  readonly emittedConflicts: Map<string, ConflictRec>;
  // ---- steers (steers.ts) and node rules (render.ts) ----
  /** Per node, its steers as groups of counted pod IPs and sources. */
  readonly nodeGroups: Map<string, SteerGroup[]>;
  /**
   * Per node, what was last emitted: its generation and the 64-bit signature of its content
   * (render.ts says why a signature and not the rules themselves).
   */
  readonly emittedNodeRules: Map<string, EmittedNodeRules>;
  // ---- status (status.ts) ----
  readonly emittedStatus: Map<string, PolicyStatus>;
  /** Pool name → the pool status as last emitted. */
  readonly emittedPoolStatus: Map<string, PoolStatus>;
  // ---- each stage's change buffer: written only by that stage, which clears it when it starts
  // and returns it (typed read-only) to the stages after it. Reused from step to step so that a
  // step allocates nothing for them; valid until the next step. ----
  readonly buffers: StageBuffers;
}

export interface StageBuffers {
  readonly selection: SelectionBuffer;
  readonly claims: ClaimBuffer;
  readonly steers: SteerBuffer;
  readonly gateways: GatewayBuffer;
}

export function initialState(): State {
  return {
    seenIds: new Set(),
    terms: new Map(),
    lists: new Map(),
    pods: new Map(),
    nodes: new Map(),
    liveness: new Map(),
    services: new Map(),
    slices: new Map(),
    namespaces: new Map(),
    pools: new Map(),
    policies: new Map(),
    serviceCIDRs: new Map(),
    podsByIP: new Map(),
    reservedPrefixes: undefined,
    neverSteerByDest: new Map(),
    ignored: { duplicate: 0, fenced: 0, unchanged: 0, refused: 0 },
    podsByNamespace: new Map(),
    rulesByNamespace: new Map(),
    namespacedRulesByNamespace: new Map(),
    clusterRules: new Set(),
    rulesByService: new Map(),
    poolStanding: [],
    sliceRefs: new Map(),
    ips: new Map(),
    sigs: new Map(),
    nodeHashes: new Map(),
    heldBy: new Map(),
    usedSlots: new Set(),
    freeSlots: [],
    nextSlot: 1,
    conflicts: new Map(),
    emittedConflicts: new Map(),
    nodeGroups: new Map(),
    emittedNodeRules: new Map(),
    emittedStatus: new Map(),
    emittedPoolStatus: new Map(),
    buffers: {
      selection: { attached: [], detached: [], reaccepted: [], pods: new Set(), policies: new Set() },
      claims: {
        ips: new Set(),
        pods: [],
        effective: [],
        decisions: [],
        policies: new Set(),
        conflicts: new Set(),
      },
      steers: { nodes: new Set(), policies: new Set() },
      gateways: { decisions: [], nodes: new Set(), policies: new Set(), touched: new Set() },
    },
  };
}

/** A set's elements in a canonical order; no copy or sort for the usual zero or one element. */
export function inOrder<T>(set: ReadonlySet<T>, compare: (a: T, b: T) => number): Iterable<T> {
  return set.size <= 1 ? set : [...set].sort(compare);
}

/** Empties a stage buffer's set or list (cheap when it already is empty). */
export function clearSet<T>(set: Set<T>): void {
  if (set.size > 0) set.clear();
}

export function clearList<T>(list: T[]): void {
  // `length = 0` drops the backing store, and the next step's first push allocates a new one;
  // popping trims it in place.
  while (list.length > 0) list.pop();
}

/** Map-of-sets helpers: the indexes above are all of this shape. */
export function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

export function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

/** Adds `delta` to a count (dropping it at 0) and returns the new count. */
export function countIn<K>(map: Map<K, number>, key: K, delta: number): number {
  const n = (map.get(key) ?? 0) + delta;
  if (n === 0) map.delete(key);
  else map.set(key, n);
  return n;
}

/** Precedence of policies in conflicts (docs/api.md, "Conflicts"): first seen in the log wins. */
export function policyPrecedes(a: PolicyRec, b: PolicyRec): boolean {
  if (a.firstSeen !== b.firstSeen) return a.firstSeen < b.firstSeen;
  if (a.kind !== b.kind) return a.kind === 'ClusterStaticEgressIP';
  const an = a.namespace ?? '';
  const bn = b.namespace ?? '';
  if (an !== bn) return an < bn;
  return a.name < b.name;
}

export function rulePrecedes(a: RuleRec, b: RuleRec): boolean {
  if (a.policy !== b.policy) return policyPrecedes(a.policy, b.policy);
  return a.index < b.index;
}

export function compareRules(a: RuleRec, b: RuleRec): number {
  return a === b ? 0 : rulePrecedes(a, b) ? -1 : 1;
}

/** Active: accepted, and its policy won the egress IP. Only active rules steer and hold. */
export function isActive(r: RuleRec): boolean {
  return !r.removed && r.accepted && r.winner;
}

export function podIPsOf(p: PodRec, family: Family): string[] {
  return family === 4 ? p.ipv4 : p.ipv6;
}

/** A selected pod can be programmed once it has a node and an IP of the egress IP's family. */
export function isProgrammable(p: PodRec, family: Family): boolean {
  return p.p.nodeName !== undefined && p.p.nodeName !== '' && podIPsOf(p, family).length > 0;
}

export type { Labels };
