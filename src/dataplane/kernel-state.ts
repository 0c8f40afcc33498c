// The dataplane's desired kernel state, computed from one NodeRules. Pure: no I/O, clock or
// randomness; the same NodeRules, config and uplink MTU always give an identical KernelState.
// It owns the naming and numbering scheme of every kernel object the agent creates (nftables
// table/sets/chains, VXLAN devices, routing tables, rule priority, marks, MACs, address labels),
// so readers (kernel-read.ts) and writers (nft-/ip-transaction.ts) agree on what is "ours".
import { createHash } from 'node:crypto';
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import type { NodeRules, Steer } from '../contracts/node-rules.ts';
import type { UnprogrammableRule } from '../contracts/node-reports.ts';
import { compare } from '../lib/compare.ts';

export interface DataplaneConfig {
  /** Run commands via `ip netns exec` (dev/test); absent on a real node. */
  netns?: string;
  /** The underlay interface, e.g. eth0: holds egress IPs, carries the tunnels. */
  uplink: string;
  /** Bits of the packet mark we may use; must be one contiguous run of bits. Default 0x0fff0000. */
  markMask: number;
  /** Routing table of slot s is tableBase + s. */
  tableBase: number;
  /** Priority of our `ip rule`s; every rule at this priority is ours. */
  rulePriority: number;
  /** VNI of slot s is vniBase + s. */
  vniBase: number;
  /** UDP port of our VXLAN devices; must differ from the CNI's. */
  vxlanPort: number;
  /** Destinations never steered whatever a policy says, beside the cluster addresses each node
   *  rules record names (its `neverSteer`): for what the log cannot know, e.g. a CNI that does not
   *  use Node spec.podCIDRs. */
  neverSteer: string[];
  /**
   * Where the net sysctls are written on a real node (no netns), default /proc/sys/net. In a
   * container /proc/sys is read-only and the runtime refuses a mount inside /proc, so the
   * DaemonSet mounts the host's /proc/sys/net elsewhere (k8s/base/agent.yaml). Net sysctls
   * belong to the writer's network namespace, which with hostNetwork is the node's.
   */
  procSysNet?: string;
  /**
   * Lifetime (seconds) of a held egress IP on the uplink; the agent renews it while it runs
   * (default DEFAULT_EGRESS_ADDRESS_LIFETIME_S).
   */
  egressAddressLifetimeS?: number;
}

export const DEFAULT_DATAPLANE_CONFIG: Omit<DataplaneConfig, 'uplink' | 'neverSteer'> = {
  markMask: 0x0fff0000,
  tableBase: 7000,
  rulePriority: 7000,
  vniBase: 7000,
  vxlanPort: 4799,
};

export const NFT_FAMILY = 'ip';
export const NFT_TABLE = 'kseip';
export const NFT_TABLE_COMMENT = 'kube-static-egress-ip: owned by the node agent, do not edit';
export const LINK_PREFIX = 'kseip-v';
/** The on-link next hop of every tunnel route. It exists nowhere: a permanent neighbour entry
 *  maps it to the gateway device's MAC, so no ARP ever crosses a tunnel. */
export const TUNNEL_NEXT_HOP = '169.254.42.1';
/** VXLAN encapsulation: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;
/**
 * The address of every gateway tunnel device. The kernel's reverse-path check fails for ANY
 * rp_filter mode other than 0 on a device without an IPv4 address (fib_validate_source jumps to
 * "last resort" and rejects), and 0 only counts if net.ipv4.conf.all.rp_filter is 0 too, which we
 * must never change. With an address, loose mode (2) on the device passes. It must differ from
 * TUNNEL_NEXT_HOP: an on-link next hop that is a local address is rejected.
 */
export const TUNNEL_DEVICE_ADDRESS = '169.254.42.2';
/**
 * A held egress IP is added with a lifetime (seconds; default this) that the running agent
 * renews (egressRenewIntervalMs). If only the agent process dies and the node stays up, the
 * kernel drops the address within that bound, so the node stops answering ARP for an IP that the
 * new gateway holds (never two holders for long; docs/failover.md). A clean stop (SIGTERM: a
 * restart or a rollout) makes it permanent first, so a restarted agent finds its addresses as it
 * left them.
 */
export const DEFAULT_EGRESS_ADDRESS_LIFETIME_S = 5;

/** How often a lifetime is renewed: a third of it, at most every second. */
export function egressRenewIntervalMs(lifetimeS: number): number {
  return Math.min(1_000, Math.floor((lifetimeS * 1_000) / 3));
}
/** IPv4 20 + TCP 20 header bytes: MSS = MTU - 40. */
const TCP_IP_HEADERS = 40;
/** Our NAT chain runs before the CNI's (srcnat = 100): the first NAT chain that binds a flow wins. */
export const NAT_PRIORITY = 95;
export const MANGLE_PRIORITY = -150;

// ---------------------------------------------------------------------------------------------
// The kernel state, as data. Every list is sorted by its key so that equal states compare equal.

export interface NftSet {
  readonly name: string;
  /** Interval sets hold CIDRs; plain sets hold addresses. */
  readonly interval: boolean;
  /** Canonical element text, sorted: `a.b.c.d` or `a.b.c.d/len` (len < 32). */
  readonly elements: readonly string[];
}

export interface NftChain {
  readonly name: string;
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'forward' | 'postrouting';
  readonly priority: number;
  readonly rules: readonly NftRule[];
}

/**
 * A rule is known by its id, a hash of its chain and text that is written as the rule's comment.
 * Reading a rule's expression back from `nft -j` and comparing it with our text is not reliable
 * (nft rewrites expressions, e.g. `& 0xf000ffff | 0x00010000` prints as `& 0xf001ffff | ...`), but the
 * comment comes back verbatim. The kernel reader fills in `text: undefined`.
 */
export interface NftRule {
  readonly id: string;
  readonly text: string | undefined;
}

export function ruleId(chain: string, text: string): string {
  return 'k' + createHash('sha256').update(`${chain}\n${text}`).digest('hex').slice(0, 12);
}

export interface NftState {
  readonly sets: readonly NftSet[];
  readonly chains: readonly NftChain[];
}

export interface VxlanLink {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  /** Underlay source address; undefined lets the kernel choose (node IP unknown yet). */
  readonly local: string | undefined;
  readonly uplink: string;
  readonly mtu: number;
  readonly mac: string;
  readonly up: boolean;
}

export interface RouteSpec {
  readonly table: number;
  readonly type: 'unicast' | 'throw';
  /** `default`, `a.b.c.d` or `a.b.c.d/len`. */
  readonly dst: string;
  readonly via: string | undefined;
  readonly dev: string | undefined;
}

export interface RuleSpec {
  readonly priority: number;
  readonly mark: number;
  readonly mask: number;
  readonly table: number;
}

export interface NeighSpec {
  readonly dev: string;
  readonly ip: string;
  readonly mac: string;
}

export interface FdbSpec {
  readonly dev: string;
  readonly mac: string;
  readonly dst: string;
}

export interface AddressSpec {
  /** `egress`: a held egress IP on the uplink (announced by gratuitous ARP when acquired);
   *  `tunnel`: the link-local address a gateway's tunnel device needs for reverse-path checks. */
  readonly kind: 'egress' | 'tunnel';
  readonly ip: string;
  readonly dev: string;
  readonly label: string;
}

export interface SysctlSpec {
  readonly key: string;
  readonly value: string;
}

export interface KernelState {
  /** undefined: our table must not exist. */
  readonly nft: NftState | undefined;
  readonly links: readonly VxlanLink[];
  readonly neighbours: readonly NeighSpec[];
  readonly fdb: readonly FdbSpec[];
  readonly routes: readonly RouteSpec[];
  readonly rules: readonly RuleSpec[];
  readonly addresses: readonly AddressSpec[];
  readonly sysctls: readonly SysctlSpec[];
}

export const EMPTY_KERNEL_STATE: KernelState = {
  nft: undefined,
  links: [],
  neighbours: [],
  fdb: [],
  routes: [],
  rules: [],
  addresses: [],
  sysctls: [],
};

/**
 * Only what concerns the whole node fails it: the agent's own configuration. A problem of one rule
 * (its slot, its egress IP, its gateway) leaves that rule out and is reported in
 * ComputedState.unprogrammable, so one tenant's rule never stops the others on the node.
 */
export type DataplaneModelError = { readonly _tag: 'InvalidConfig'; readonly reason: string };

export interface ComputedState {
  readonly state: KernelState;
  /** Values that were skipped rather than failing the whole node (e.g. IPv6 pod IPs). */
  readonly skipped: readonly string[];
  /** Whole rules (steers, held egress IPs) left out, with the reason; sorted by slot, then role,
   *  egress IP and sources. Everything else is in `state`. */
  readonly unprogrammable: readonly UnprogrammableRule[];
}

// ---------------------------------------------------------------------------------------------
// IPv4 and CIDR arithmetic (no dependency: this runs on 10,000-element sets).

/** The 32-bit value of a dotted quad, or undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  // Hand-rolled: it runs on every pod IP of every apply (10,000-element sets).
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return undefined;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : undefined;
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

interface Cidr {
  readonly start: number;
  readonly len: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, lenText, extra] = text.split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const ip = parseIpv4(addr);
  if (ip === undefined) return undefined;
  const len = lenText === undefined ? 32 : /^\d{1,2}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(len >= 0 && len <= 32)) return undefined;
  // Host bits are cleared: nft rejects a prefix with host bits set, and 203.0.113.7/24 means the /24.
  const size = 2 ** (32 - len);
  return { start: ip - (ip % size), len };
}

/** Canonical element text, as `nft -j` prints it back: a /32 is a bare address. */
export function formatCidr(cidr: Cidr): string {
  return cidr.len === 32 ? formatIpv4(cidr.start) : `${formatIpv4(cidr.start)}/${cidr.len}`;
}

/**
 * CIDRs as an interval set accepts them: canonical, sorted, with every CIDR that another one
 * contains dropped (an nft interval set without auto-merge rejects overlapping elements; two
 * CIDRs either nest or are disjoint, so dropping nested ones removes every overlap).
 */
export function normalizeCidrs(texts: readonly string[]): { cidrs: string[]; invalid: string[] } {
  const parsed: Cidr[] = [];
  const invalid: string[] = [];
  for (const text of texts) {
    const cidr = parseCidr(text);
    if (cidr === undefined) invalid.push(text);
    else parsed.push(cidr);
  }
  parsed.sort((a, b) => a.start - b.start || a.len - b.len);
  const kept: Cidr[] = [];
  let coveredUntil = -1;
  for (const cidr of parsed) {
    const end = cidr.start + 2 ** (32 - cidr.len) - 1;
    if (cidr.start <= coveredUntil) continue;
    kept.push(cidr);
    coveredUntil = end;
  }
  return { cidrs: kept.map(formatCidr), invalid };
}

/** Unique IPv4 addresses sorted by value (parsed once each: this runs on 10,000-pod sets). */
export function sortedAddresses(texts: readonly string[], onInvalid: (text: string) => void): string[] {
  const values = new Float64Array(texts.length);
  let n = 0;
  for (const text of texts) {
    const value = parseIpv4(text);
    if (value === undefined) onInvalid(text);
    else values[n++] = value;
  }
  const sorted = values.subarray(0, n).sort();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = sorted[i] ?? 0;
    if (i === 0 || v !== sorted[i - 1]) out.push(formatIpv4(v));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Naming and numbering: the one place that says what a slot becomes in the kernel.

export interface MarkLayout {
  readonly mask: number;
  readonly shift: number;
  readonly maxSlot: number;
}

export function computeMarkLayout(mask: number): Either<DataplaneModelError, MarkLayout> {
  if (!Number.isInteger(mask) || mask <= 0 || mask > 0xffffffff) {
    return left({ _tag: 'InvalidConfig', reason: `markMask ${mask} is not a 32-bit value` });
  }
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const field = mask >>> shift;
  // A contiguous run of ones is 2^n - 1: adding one leaves a single bit.
  if ((field & (field + 1)) !== 0) {
    return left({ _tag: 'InvalidConfig', reason: `markMask ${hex(mask)} is not one contiguous run of bits` });
  }
  return right({ mask: mask >>> 0, shift, maxSlot: field });
}

export const hex = (value: number): string => '0x' + (value >>> 0).toString(16).padStart(8, '0');

export const linkName = (slot: number): string => `${LINK_PREFIX}${slot}`;
/**
 * A steer's sets are named by its slot and a short hash of its policy rules (`sources`), so
 * several steers sharing a slot (one egress IP, different pods or destinations) each keep their
 * own pods, destinations and exceptions, and a steer's sets keep their name (and are diffed
 * element by element) while its pods come and go. `occurrence` only separates steers of one slot
 * with identical sources, which the projection does not emit.
 */
export function steerKey(slot: number, sources: readonly string[], occurrence = 0): string {
  const text = [...sources].sort().join('\n') + (occurrence > 0 ? `#${occurrence}` : '');
  return `v${slot}-${createHash('sha256').update(text).digest('hex').slice(0, 6)}`;
}
export const podsSetName = (key: string): string => `${key}-pods`;
export const dstSetName = (key: string): string => `${key}-dst`;
export const exceptSetName = (key: string): string => `${key}-except`;
export const NEVER_SET = 'never-steer';

export function parseSlotOfLink(name: string): number | undefined {
  const match = /^kseip-v(\d+)$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/** The MAC of the gateway's device for a slot: identical on every node, so a director's
 *  permanent neighbour entry never needs to learn it. */
export function gatewayMac(slot: number): string {
  return ['02', '6b', '73', '00', (slot >>> 8) & 255, slot & 255]
    .map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b))
    .join(':');
}

/**
 * The MAC of a director's device. It must differ from the gateway's: the VXLAN driver drops a
 * received frame whose source MAC equals the receiving device's own MAC (loop protection), so a
 * director using the gateway MAC would have all its frames dropped at the gateway.
 */
export function directorMac(node: string, slot: number): string {
  const digest = createHash('sha256').update(`${node}/${slot}`).digest();
  return ['06', ...[...digest.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Our label on egress-IP addresses: how we recognise them after a restart. Labels must start
 *  with the device name and fit IFNAMSIZ (15 characters). */
export function addressLabel(uplink: string): Either<DataplaneModelError, string> {
  const suffix = ':kseip'.slice(0, Math.max(0, 15 - uplink.length));
  if (suffix.length < 2) {
    return left({ _tag: 'InvalidConfig', reason: `uplink name ${uplink} is too long for an address label` });
  }
  return right(uplink + suffix);
}

export function tunnelMtu(uplinkMtu: number): number {
  return uplinkMtu - VXLAN_OVERHEAD;
}

// ---------------------------------------------------------------------------------------------
// NodeRules → KernelState.

/**
 * What one steer becomes. `tunnel`: through the slot's tunnel to a remote gateway; `local`: the
 * gateway is this node (SNAT by mark here); `drop`: no node may hold the egress IP yet, so the
 * traffic is dropped rather than leaving with the node IP.
 */
type SteerRoute =
  | { readonly kind: 'tunnel'; readonly gatewayIP: string }
  | { readonly kind: 'local' }
  | { readonly kind: 'drop' };

interface SteerPlan {
  readonly slot: number;
  /** Set-name prefix, see steerKey. */
  readonly key: string;
  readonly egressIP: string;
  readonly route: SteerRoute;
  readonly pods: string[];
  readonly dst: string[];
  readonly except: string[];
}

/**
 * Steers of one slot must agree on egress IP and gateway: the slot's mark, table and tunnel are
 * shared. Their pods, destinations and exceptions stay apart. Slots whose steers disagree → the
 * reason; every steer of such a slot is left out, since picking one would depend on their order.
 */
function selectDisagreeingSlots(steers: readonly Steer[]): Map<number, string> {
  const routes = new Map<number, Set<string>>();
  for (const steer of steers) {
    const set = routes.get(steer.slot) ?? new Set<string>();
    set.add(`${steer.egressIP} via ${steer.gatewayIP || 'no gateway'}`);
    routes.set(steer.slot, set);
  }
  const out = new Map<number, string>();
  for (const [slot, set] of routes)
    if (set.size > 1)
      out.set(slot, `slot ${slot} has steers that disagree: ${[...set].sort(compare).join(' and ')}`);
  return out;
}

/** Why a slot cannot be programmed, or undefined when it can. */
function checkSlot(slot: number, layout: MarkLayout): string | undefined {
  // Slot 0 would be mark 0, which is indistinguishable from "not marked".
  return !Number.isInteger(slot) || slot < 1 || slot > layout.maxSlot
    ? `slot must be an integer in 1..${layout.maxSlot}`
    : undefined;
}

const roleOrder = { gateway: 0, steer: 1 } as const;

function compareUnprogrammable(a: UnprogrammableRule, b: UnprogrammableRule): number {
  return (
    a.slot - b.slot ||
    roleOrder[a.role] - roleOrder[b.role] ||
    compare(a.egressIP, b.egressIP) ||
    compare(a.sources.join('\n'), b.sources.join('\n'))
  );
}

export function slotMark(layout: MarkLayout, slot: number): number {
  return (slot << layout.shift) >>> 0;
}

function markExpr(layout: MarkLayout, slot: number): string {
  return `meta mark set meta mark & ${hex(~layout.mask)} | ${hex(slotMark(layout, slot))}`;
}

function byKey<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return compare(ka, kb);
  };
}

export const linkKey = (l: VxlanLink): string => l.name;
export const routeKey = (r: RouteSpec): string => `${r.table} ${r.dst}`;
export const ruleKey = (r: RuleSpec): string => `${r.priority} ${hex(r.mark)}/${hex(r.mask)} ${r.table}`;
export const neighKey = (n: NeighSpec): string => `${n.dev} ${n.ip}`;
export const fdbKey = (f: FdbSpec): string => `${f.dev} ${f.mac}`;
export const addressKey = (a: AddressSpec): string => `${a.dev} ${a.ip}`;
export const sysctlKey = (s: SysctlSpec): string => s.key;

export function rpFilterKey(dev: string): string {
  return `net.ipv4.conf.${dev}.rp_filter`;
}

/** Sorts every list of a state, so that states built in any order compare equal. */
export function sortKernelState(state: KernelState): KernelState {
  return {
    nft:
      state.nft === undefined
        ? undefined
        : {
            sets: [...state.nft.sets].sort(byKey((s) => s.name)),
            chains: [...state.nft.chains].sort(byKey((c) => c.name)),
          },
    links: [...state.links].sort(byKey(linkKey)),
    neighbours: [...state.neighbours].sort(byKey(neighKey)),
    fdb: [...state.fdb].sort(byKey(fdbKey)),
    routes: [...state.routes].sort(byKey(routeKey)),
    rules: [...state.rules].sort(byKey(ruleKey)),
    addresses: [...state.addresses].sort(byKey(addressKey)),
    sysctls: [...state.sysctls].sort(byKey(sysctlKey)),
  };
}

/**
 * The whole desired kernel state of a node. Roles per slot:
 *  - director (steer to a remote gateway): sets + mark rule, ip rule → table → tunnel device,
 *    neighbour + fdb entry pointing at the gateway, MSS clamping, and an identity SNAT so the
 *    CNI's masquerade never touches the inner packet;
 *  - local (steer whose gateway is this node, or whose slot this node holds): mark rule only;
 *    the SNAT-by-mark rule of the held slot does the rest, no tunnel;
 *  - no gateway (gatewayIP ""): the steer's match ends in drop instead of the mark, nothing else;
 *  - gateway (held egress IP): the /32 on the uplink, a tunnel device that receives, a mark on
 *    what arrives through it, and SNAT by mark.
 * Each steer has its own sets and match rule, even when several share a slot (see steerKey).
 */
export function computeKernelState(
  cfg: DataplaneConfig,
  rules: NodeRules,
  uplinkMtu: number,
): Either<DataplaneModelError, ComputedState> {
  const layoutE = computeMarkLayout(cfg.markMask);
  if (layoutE._tag === 'Left') return layoutE;
  const layout = layoutE.right;
  const labelE = addressLabel(cfg.uplink);
  if (labelE._tag === 'Left') return labelE;
  const label = labelE.right;
  const configured = normalizeCidrs(cfg.neverSteer);
  if (configured.invalid.length > 0) {
    return left({
      _tag: 'InvalidConfig',
      reason: `neverSteer has invalid CIDRs: ${configured.invalid.join(', ')}`,
    });
  }
  // The record's own never-steer prefixes (the cluster's addresses its steers overlap) join the
  // flag's. Its IPv6 ones can only concern IPv6 steers, which this dataplane leaves out anyway.
  const never = normalizeCidrs([...configured.cidrs, ...normalizeCidrs(rules.neverSteer ?? []).cidrs]);
  const skipped: string[] = [];
  // From here on nothing fails the node: a rule that cannot be programmed is left out with its
  // reason, and the rest of the node's state is rendered as if it were not there.
  const unprogrammable: UnprogrammableRule[] = [];

  const held = new Map<number, string>();
  for (const h of rules.egressIPs) {
    const reason =
      checkSlot(h.slot, layout) ??
      (parseIpv4(h.egressIP) === undefined ? 'egress IP is not IPv4' : undefined);
    if (reason !== undefined) {
      unprogrammable.push({ role: 'gateway', slot: h.slot, egressIP: h.egressIP, sources: [], reason });
      continue;
    }
    held.set(h.slot, h.egressIP);
  }

  const disagreeing = selectDisagreeingSlots(rules.steers);
  const plans: SteerPlan[] = [];
  const keys = new Set<string>();
  for (const steer of rules.steers) {
    const slot = steer.slot;
    const isLocal = held.has(slot) || (rules.nodeIP !== '' && steer.gatewayIP === rules.nodeIP);
    const reason =
      checkSlot(slot, layout) ??
      disagreeing.get(slot) ??
      (parseIpv4(steer.egressIP) === undefined ? 'egress IP is not IPv4' : undefined) ??
      (!isLocal && steer.gatewayIP !== '' && parseIpv4(steer.gatewayIP) === undefined
        ? `gateway IP ${steer.gatewayIP} is not IPv4`
        : undefined);
    if (reason !== undefined) {
      unprogrammable.push({
        role: 'steer',
        slot,
        egressIP: steer.egressIP,
        sources: [...steer.sources].sort(compare),
        reason,
      });
      continue;
    }
    let route: SteerRoute;
    if (isLocal) {
      route = { kind: 'local' };
    } else if (steer.gatewayIP === '') {
      // The contract's "no eligible gateway": drop, never let it leave with the node IP.
      route = { kind: 'drop' };
    } else {
      route = { kind: 'tunnel', gatewayIP: steer.gatewayIP };
    }
    let occurrence = 0;
    while (keys.has(steerKey(slot, steer.sources, occurrence))) occurrence++;
    const key = steerKey(slot, steer.sources, occurrence);
    keys.add(key);
    const pods = sortedAddresses(steer.podIPs, (bad) => skipped.push(`slot ${slot} pod ${bad}`));
    const dst = normalizeCidrs(steer.destinations);
    const except = normalizeCidrs(steer.exceptions);
    for (const bad of [...dst.invalid, ...except.invalid]) skipped.push(`slot ${slot} cidr ${bad}`);
    plans.push({ slot, key, egressIP: steer.egressIP, route, pods, dst: dst.cidrs, except: except.cidrs });
  }
  // Rules in a stable order whatever order the steers came in: by slot, then by set names.
  plans.sort((a, b) => a.slot - b.slot || compare(a.key, b.key));

  const remote = plans.filter((p) => p.route.kind === 'tunnel');
  // One tunnel per slot, however many steers share it (they agree on the gateway).
  const tunnels = new Map<number, string>();
  for (const p of plans) if (p.route.kind === 'tunnel') tunnels.set(p.slot, p.route.gatewayIP);
  const mtu = tunnelMtu(uplinkMtu);
  const mss = mtu - TCP_IP_HEADERS;
  // The tunnels are IPv4 (their remotes are IPv4 gateway IPs): an IPv6 node IP (an IPv6-first
  // InternalIP) cannot be their source, so the kernel chooses one, as while the node IP is unknown.
  const local = parseIpv4(rules.nodeIP) === undefined ? undefined : rules.nodeIP;

  const sets: NftSet[] = [];
  const prerouting: string[] = [];
  const forward: string[] = [];
  const postrouting: string[] = [];
  for (const p of plans) {
    sets.push(
      { name: podsSetName(p.key), interval: false, elements: p.pods },
      { name: dstSetName(p.key), interval: true, elements: p.dst },
      { name: exceptSetName(p.key), interval: true, elements: p.except },
    );
    // A steer without a gateway drops in the same rule that would have marked it: one rule, in
    // the same atomic transaction as everything else, and nothing to route or SNAT.
    prerouting.push(
      `ip saddr @${podsSetName(p.key)} ip daddr @${dstSetName(p.key)} ip daddr != @${exceptSetName(p.key)}` +
        ` ip daddr != @${NEVER_SET} ${p.route.kind === 'drop' ? 'drop' : markExpr(layout, p.slot)}`,
    );
  }
  const heldSlots = [...held.keys()].sort((a, b) => a - b);
  for (const slot of heldSlots) {
    // In POSTROUTING the input interface is no longer known to nftables (iifname never
    // matches there), so what arrives through the tunnel is marked here and SNATed by mark.
    prerouting.push(`iifname "${linkName(slot)}" ${markExpr(layout, slot)}`);
  }
  if (remote.length > 0) {
    // The SYN towards the tunnel takes the tunnel route's MTU; the SYN-ACK coming back (by the
    // CNI's path, not the tunnel) is clamped too, since it sets what the pod sends into the tunnel.
    forward.push(`oifname "${LINK_PREFIX}*" tcp flags syn / syn,rst tcp option maxseg size set rt mtu`);
    for (const p of remote) {
      forward.push(
        `ip saddr @${dstSetName(p.key)} ip daddr @${podsSetName(p.key)} tcp flags syn,ack / syn,ack,rst` +
          ` tcp option maxseg size > ${mss} tcp option maxseg size set ${mss}`,
      );
    }
  }
  const snatBySlot = new Map<number, string>(held);
  for (const p of plans)
    if (p.route.kind === 'local' && !snatBySlot.has(p.slot)) snatBySlot.set(p.slot, p.egressIP);
  for (const [slot, egressIP] of [...snatBySlot].sort((a, b) => a[0] - b[0])) {
    postrouting.push(
      `meta mark & ${hex(layout.mask)} == ${hex(slotMark(layout, slot))} snat ip to ${egressIP}`,
    );
  }
  if (remote.length > 0) {
    // Binding the inner packet to its own source makes this the flow's NAT binding, so the
    // CNI's masquerade (which would fail on an address-less tunnel device) never runs for it.
    postrouting.push(`oifname "${LINK_PREFIX}*" snat ip to ip saddr`);
  }

  const withIds = (chain: string, texts: string[]): NftRule[] =>
    texts.map((text) => ({ id: ruleId(chain, text), text }));
  const chains: NftChain[] = [
    {
      name: 'prerouting',
      type: 'filter',
      hook: 'prerouting',
      priority: MANGLE_PRIORITY,
      rules: withIds('prerouting', prerouting),
    },
  ];
  if (forward.length > 0) {
    chains.push({
      name: 'forward',
      type: 'filter',
      hook: 'forward',
      priority: MANGLE_PRIORITY,
      rules: withIds('forward', forward),
    });
  }
  if (postrouting.length > 0) {
    chains.push({
      name: 'postrouting',
      type: 'nat',
      hook: 'postrouting',
      priority: NAT_PRIORITY,
      rules: withIds('postrouting', postrouting),
    });
  }
  sets.push({ name: NEVER_SET, interval: true, elements: never.cidrs });

  const links: VxlanLink[] = [];
  const neighbours: NeighSpec[] = [];
  const fdb: FdbSpec[] = [];
  const routes: RouteSpec[] = [];
  const ipRules: RuleSpec[] = [];
  const sysctls: SysctlSpec[] = [];
  const link = (slot: number, mac: string): VxlanLink => ({
    name: linkName(slot),
    vni: cfg.vniBase + slot,
    port: cfg.vxlanPort,
    local,
    uplink: cfg.uplink,
    mtu,
    mac,
    up: true,
  });
  for (const [slot, gateway] of tunnels) {
    const dev = linkName(slot);
    const table = cfg.tableBase + slot;
    links.push(link(slot, directorMac(rules.node, slot)));
    neighbours.push({ dev, ip: TUNNEL_NEXT_HOP, mac: gatewayMac(slot) });
    // A unicast entry for the gateway MAC, not the all-zeros default: the kernel refuses
    // `fdb replace` of an all-zeros entry (EOPNOTSUPP), and failover must be one replace.
    fdb.push({ dev, mac: gatewayMac(slot), dst: gateway });
    routes.push({ table, type: 'unicast', dst: 'default', via: TUNNEL_NEXT_HOP, dev });
    // The VXLAN outer packet inherits the inner packet's mark and would be routed into its own
    // tunnel again (dropped as a loop). The throw sends its lookup on to the main table.
    routes.push({ table, type: 'throw', dst: gateway, via: undefined, dev: undefined });
    ipRules.push({ priority: cfg.rulePriority, mark: slotMark(layout, slot), mask: layout.mask, table });
  }
  const addresses: AddressSpec[] = [];
  for (const slot of heldSlots) {
    const egressIP = held.get(slot) ?? '';
    links.push(link(slot, gatewayMac(slot)));
    // Loose reverse-path filtering on our device only: the inner source is a remote pod whose
    // route does not point at the tunnel. Effective value is max(all, dev), so 2 always wins
    // over 1; it needs the device to have an address (TUNNEL_DEVICE_ADDRESS).
    sysctls.push({ key: rpFilterKey(linkName(slot)), value: '2' });
    addresses.push(
      { kind: 'egress', ip: egressIP, dev: cfg.uplink, label },
      { kind: 'tunnel', ip: TUNNEL_DEVICE_ADDRESS, dev: linkName(slot), label: linkName(slot) },
    );
  }

  const empty = plans.length === 0 && heldSlots.length === 0;
  return right({
    state: sortKernelState({
      nft: empty ? undefined : { sets, chains },
      links,
      neighbours,
      fdb,
      routes,
      rules: ipRules,
      addresses,
      sysctls,
    }),
    skipped,
    unprogrammable: unprogrammable.sort(compareUnprogrammable),
  });
}
