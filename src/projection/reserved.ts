// Reserved addresses: what the cluster itself uses, from the log alone (issue 12, findings 1 and
// 7). Node addresses (Node status.addresses), pod IPs, pod CIDRs (Node spec.podCIDRs) and
// service CIDRs (ServiceCIDR objects). Two rules follow from them:
// - an egress IP that is one of them is never taken: its rule is not Accepted (EgressIPInUse)
//   and the message names the holder. Taking a node's address would move the router's ARP entry
//   away from that node; taking a pod IP or a ClusterIP would black-hole their traffic;
// - a steer never captures traffic to them: each node's rules carry, in `neverSteer`, the
//   reserved prefixes that its steers' destinations overlap, and the agent leaves those
//   destinations alone. Before, only the agent's --never-steer flag did this, which the shipped
//   config left empty. Only the overlapping prefixes are sent, so a node's record grows with the
//   cluster only when a policy asks to steer cluster addresses (destinations 0.0.0.0/0).
//
// Stage 1b of a step (evolveReserved): the view changes in; out go the egress IPs whose holder
// may have changed (selection re-decides their rules' acceptance) and whether the reserved
// prefixes changed (render re-renders every node with steers). It owns podsByIP, the prefixes
// and the per-destination never-steer cache. Pure (mutates only the linear state, see model.ts).
import { compare } from '../lib/compare.ts';
import type { ViewChange } from './cluster-view.ts';
import { jsonEqual } from './cluster-view.ts';
import { parseAddress, parseCidr, type ParsedAddress, type ParsedCidr } from './addresses.ts';
import type {
  EgressIPRec,
  NeverSteerEntry,
  NodeRec,
  PodRec,
  ReservedPrefix,
  ServiceCIDRRec,
  State,
  SteerGroup,
} from './model.ts';
import { lane1, lane2 } from './steers.ts';

export interface ReservedChanges {
  /** Egress IPs (canonical) in use by rules whose holder may have changed. */
  readonly egressIPs: readonly string[];
  /** The reserved prefixes changed: every node's never-steer list may have. */
  readonly prefixesChanged: boolean;
}

const NO_CHANGES: ReservedChanges = { egressIPs: [], prefixesChanged: false };
const NO_IPS: readonly string[] = [];

/** The IPs a pod holds for this purpose: none for host-network pods (the node's address covers
 *  them) and for pods that ended. */
function podIPsOf(pod: PodRec): readonly string[] {
  if (pod.deleted || pod.p.hostNetwork || pod.p.terminal) return NO_IPS;
  if (pod.ipv6.length === 0) return pod.ipv4;
  return pod.ipv4.length === 0 ? pod.ipv6 : [...pod.ipv4, ...pod.ipv6];
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Stage 1b of a step (see the header). */
export function evolveReserved(state: State, changes: readonly ViewChange[]): ReservedChanges {
  let egressIPs: string[] | undefined;
  let prefixesChanged = false;
  const touch = (ip: string): void => {
    if (state.ips.has(ip)) (egressIPs ??= []).push(ip);
  };
  const touchInside = (cidrs: readonly ParsedCidr[]): void => {
    // A node address is a host prefix: one lookup. Only pod and service CIDRs scan the egress
    // IPs (replaying a log meets every node once, so this runs nodes × egress IPs times).
    const blocks = cidrs.filter((c) => {
      if (c.lo !== c.hi) return true;
      touch(c.text.slice(0, c.text.indexOf('/')));
      return false;
    });
    if (blocks.length === 0) return;
    for (const rec of state.ips.values()) {
      const addr = addressOf(rec);
      if (addr !== undefined && blocks.some((c) => contains(c, addr))) (egressIPs ??= []).push(rec.ip);
    }
  };
  for (const change of changes) {
    if (change.kind === 'Pod') {
      const pod = change.rec;
      const ips = podIPsOf(pod);
      if (sameList(ips, pod.reservedIPs)) continue;
      for (const ip of pod.reservedIPs) {
        if (ips.includes(ip)) continue;
        unindex(state, ip, pod);
        touch(ip);
      }
      for (const ip of ips) {
        if (pod.reservedIPs.includes(ip)) continue;
        const list = state.podsByIP.get(ip);
        if (list === undefined) state.podsByIP.set(ip, [pod]);
        else list.push(pod);
        touch(ip);
      }
      pod.reservedIPs = ips;
    } else if (change.kind === 'Node' || change.kind === 'ServiceCIDR') {
      const before =
        change.kind === 'Node'
          ? reservedOfNode(change.name, change.before)
          : reservedOfServiceCIDR(change.name, change.before);
      const now =
        change.kind === 'Node'
          ? reservedOfNode(change.name, state.nodes.get(change.name)?.p)
          : reservedOfServiceCIDR(change.name, state.serviceCIDRs.get(change.name)?.p);
      if (jsonEqual(before.map(textOf), now.map(textOf))) continue;
      prefixesChanged = true;
      touchInside([...before, ...now].map((r) => r.cidr));
    }
  }
  if (prefixesChanged) {
    state.reservedPrefixes = undefined;
    state.neverSteerByDest.clear();
  }
  if (egressIPs === undefined && !prefixesChanged) return NO_CHANGES;
  return {
    egressIPs: egressIPs === undefined ? NO_IPS : [...new Set(egressIPs)].sort(compare),
    prefixesChanged,
  };
}

function unindex(state: State, ip: string, pod: PodRec): void {
  const list = state.podsByIP.get(ip);
  if (list === undefined) return;
  const i = list.indexOf(pod);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) state.podsByIP.delete(ip);
}

const textOf = (r: ReservedPrefix): string => `${r.rank}|${r.cidr.text}|${r.holder}`;

const parsedEgressIPs = new WeakMap<EgressIPRec, ParsedAddress | undefined>();

/** An egress IP's parsed address, parsed once per record (records live as long as the IP). */
function addressOf(rec: EgressIPRec): ParsedAddress | undefined {
  if (parsedEgressIPs.has(rec)) return parsedEgressIPs.get(rec);
  const addr = parseAddress(rec.ip);
  parsedEgressIPs.set(rec, addr);
  return addr;
}

function contains(cidr: ParsedCidr, addr: ParsedAddress): boolean {
  return cidr.family === addr.family && cidr.lo <= addr.value && addr.value <= cidr.hi;
}

function hostCidr(addr: ParsedAddress): ParsedCidr {
  return {
    family: addr.family,
    lo: addr.value,
    hi: addr.value,
    text: `${addr.text}/${addr.family === 4 ? 32 : 128}`,
  };
}

function reservedOfNode(name: string, p: NodeRec['p'] | undefined): ReservedPrefix[] {
  if (p === undefined) return [];
  const out: ReservedPrefix[] = [];
  // internalIP is also listed in addresses by new watchers; old logs carry only internalIP.
  for (const text of new Set([
    ...(p.internalIP !== undefined ? [p.internalIP] : []),
    ...(p.addresses ?? []),
  ])) {
    const addr = parseAddress(text);
    if (addr !== undefined)
      out.push({ cidr: hostCidr(addr), rank: 0, holder: `the address of node ${name}` });
  }
  for (const text of p.podCIDRs ?? []) {
    const cidr = parseCidr(text);
    if (cidr !== undefined)
      out.push({ cidr, rank: 1, holder: `inside the pod CIDR ${cidr.text} of node ${name}` });
  }
  return out;
}

function reservedOfServiceCIDR(name: string, p: ServiceCIDRRec['p'] | undefined): ReservedPrefix[] {
  const out: ReservedPrefix[] = [];
  for (const text of p?.cidrs ?? []) {
    const cidr = parseCidr(text);
    if (cidr !== undefined)
      out.push({ cidr, rank: 2, holder: `inside the service CIDR ${cidr.text} (ServiceCIDR ${name})` });
  }
  return out;
}

/** Every reserved prefix in a canonical order: family, then start, then rank and holder. */
function reservedPrefixes(state: State): readonly ReservedPrefix[] {
  if (state.reservedPrefixes !== undefined) return state.reservedPrefixes;
  const all: ReservedPrefix[] = [];
  for (const node of state.nodes.values()) all.push(...reservedOfNode(node.name, node.p));
  for (const svc of state.serviceCIDRs.values()) all.push(...reservedOfServiceCIDR(svc.name, svc.p));
  all.sort(
    (a, b) =>
      a.cidr.family - b.cidr.family ||
      (a.cidr.lo < b.cidr.lo ? -1 : a.cidr.lo > b.cidr.lo ? 1 : 0) ||
      a.rank - b.rank ||
      compare(a.holder, b.holder),
  );
  state.reservedPrefixes = all;
  return all;
}

/**
 * What holds `addr` in the cluster, as a message names it; undefined when nothing does. Node
 * addresses first, then pod IPs, then pod CIDRs, then service CIDRs; within each, the lowest name.
 */
export function addressHolder(state: State, addr: ParsedAddress): string | undefined {
  const prefixes = reservedPrefixes(state);
  let best: ReservedPrefix | undefined;
  for (const r of prefixes)
    if (contains(r.cidr, addr) && (best === undefined || r.rank < best.rank)) best = r;
  if (best?.rank === 0) return best.holder;
  const pods = state.podsByIP.get(addr.text);
  if (pods !== undefined && pods.length > 0) {
    let first = pods[0] as PodRec;
    for (const p of pods) if (compare(p.key, first.key) < 0) first = p;
    return `the IP of pod ${first.key}`;
  }
  return best?.holder;
}

/** The reserved prefixes a steer group's destinations overlap (minus those inside an exception). */
export function neverSteerOf(state: State, group: SteerGroup): NeverSteerEntry {
  const cached = state.neverSteerByDest.get(group.destKey);
  if (cached !== undefined) return cached;
  const destinations = group.destinations.map(parseCidr).filter((c): c is ParsedCidr => c !== undefined);
  const exceptions = group.exceptions.map(parseCidr).filter((c): c is ParsedCidr => c !== undefined);
  const cidrs = new Set<string>();
  for (const r of reservedPrefixes(state)) {
    const c = r.cidr;
    const overlaps = destinations.some((d) => d.family === c.family && d.lo <= c.hi && c.lo <= d.hi);
    const excepted = exceptions.some((e) => e.family === c.family && e.lo <= c.lo && c.hi <= e.hi);
    if (overlaps && !excepted) cidrs.add(c.text);
  }
  const list = [...cidrs].sort(compare);
  const text = list.join(',');
  const entry: NeverSteerEntry = { cidrs: list, h1: lane1(`never|${text}`), h2: lane2(`never|${text}`) };
  state.neverSteerByDest.set(group.destKey, entry);
  return entry;
}
