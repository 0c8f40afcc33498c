// Links, neighbours, fdb entries, routes, rules, addresses and sysctls: the diff between the
// desired and observed kernel state, rendered as `ip -batch` / `bridge -batch` lines. Pure.
// The plan is ordered so that nothing we steer ever lacks a path: devices are created and set up
// first, then their neighbour/fdb entries and routes, then the rules that send traffic there;
// removal runs in the reverse order and only after the nftables transaction stopped marking.
import {
  addressKey,
  DEFAULT_EGRESS_ADDRESS_LIFETIME_S,
  fdbKey,
  type KernelState,
  linkKey,
  neighKey,
  routeKey,
  ruleKey,
  sysctlKey,
  hex,
  type AddressSpec,
  type RouteSpec,
  type RuleSpec,
  type SysctlSpec,
  type VxlanLink,
} from './kernel-state.ts';

export interface IpPlan {
  /** ip batch: delete links that must be re-created, create missing ones (still down). */
  readonly createLinks: readonly string[];
  /** Written after creation and before the links come up. */
  readonly sysctls: readonly SysctlSpec[];
  /** ip batch: link up/mtu/mac, neighbours, routes, rules, addresses. */
  readonly adds: readonly string[];
  /** bridge batch: fdb entries (need the links to exist). */
  readonly fdbAdds: readonly string[];
  /** bridge batch: stale fdb entries on links that stay. */
  readonly fdbRemoves: readonly string[];
  /** ip batch after the nft transaction: gateway tunnels come up (or take the gateway MAC). */
  readonly activations: readonly string[];
  /** ip batch: rules, routes, neighbours, links, addresses no longer desired. */
  readonly removes: readonly string[];
  /** Egress IPs this plan adds: to be announced by gratuitous ARP once applied. */
  readonly acquired: readonly string[];
}

export function isEmptyIpPlan(plan: IpPlan): boolean {
  return (
    plan.createLinks.length === 0 &&
    plan.sysctls.length === 0 &&
    plan.adds.length === 0 &&
    plan.fdbAdds.length === 0 &&
    plan.fdbRemoves.length === 0 &&
    plan.activations.length === 0 &&
    plan.removes.length === 0
  );
}

function index<T>(items: readonly T[], key: (item: T) => string): Map<string, T> {
  return new Map(items.map((i) => [key(i), i]));
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** A VXLAN device cannot change its VNI, port, underlay address or device in place. */
function needsRecreate(d: VxlanLink, c: VxlanLink): boolean {
  return d.vni !== c.vni || d.port !== c.port || d.local !== c.local || d.uplink !== c.uplink;
}

export function renderLinkAdd(l: VxlanLink): string {
  const local = l.local === undefined ? '' : ` local ${l.local}`;
  return (
    `link add ${l.name} address ${l.mac} mtu ${l.mtu} type vxlan id ${l.vni} dstport ${l.port}` +
    `${local} dev ${l.uplink} nolearning`
  );
}

export function renderRoute(verb: 'replace' | 'del', r: RouteSpec): string {
  const type = r.type === 'throw' ? 'throw ' : '';
  const via = r.via === undefined ? '' : ` via ${r.via}`;
  const dev = r.dev === undefined ? '' : ` dev ${r.dev}`;
  const onlink = r.via !== undefined && verb === 'replace' ? ' onlink' : '';
  return `route ${verb} ${type}${r.dst}${via}${dev}${onlink} table ${r.table}`;
}

export function renderRule(verb: 'add' | 'del', r: RuleSpec): string {
  return `rule ${verb} priority ${r.priority} fwmark ${hex(r.mark)}/${hex(r.mask)} lookup ${r.table}`;
}

export function renderAddress(
  verb: 'replace' | 'del',
  a: AddressSpec,
  egressLifetimeS = DEFAULT_EGRESS_ADDRESS_LIFETIME_S,
): string {
  const prefix = a.ip.includes('/') ? '' : '/32';
  const extra =
    verb === 'del'
      ? ''
      : a.kind === 'tunnel'
        ? ' scope link'
        : ` label ${a.label}${renderLifetime(egressLifetimeS)}`;
  return `address ${verb} ${a.ip}${prefix} dev ${a.dev}${extra}`;
}

function renderLifetime(lifetime: number | 'forever'): string {
  return ` valid_lft ${lifetime} preferred_lft ${lifetime}`;
}

/**
 * Renews (or, with 'forever', pins) the lifetime of a held egress IP. `change` never creates the
 * address: one that expired or was removed meanwhile fails instead of coming back unasked.
 */
export function renderEgressLifetime(a: AddressSpec, lifetime: number | 'forever'): string {
  return `address change ${a.ip}/32 dev ${a.dev} label ${a.label}${renderLifetime(lifetime)}`;
}

/** `egressLifetimeS`: the lifetime new egress IPs are added with (DataplaneConfig). */
export function computeIpPlan(
  desired: KernelState,
  current: KernelState,
  egressLifetimeS = DEFAULT_EGRESS_ADDRESS_LIFETIME_S,
): IpPlan {
  const createLinks: string[] = [];
  const adds: string[] = [];
  const removes: string[] = [];
  const curLinks = index(current.links, linkKey);
  const desiredLinks = index(desired.links, linkKey);
  // A gateway's tunnel (it carries the receiving address) starts to receive steered packets when
  // it is up with the gateway MAC. Before the nft transaction has the rules that mark and SNAT
  // them, they would be forwarded unmarked and leave with the node IP; so up and MAC wait for
  // it. Nothing routes through a gateway tunnel, so nothing else needs it up earlier.
  const gatewayTunnels = new Set(desired.addresses.filter((a) => a.kind === 'tunnel').map((a) => a.dev));
  const activations: string[] = [];
  const linkSet = (name: string, changes: readonly string[]): void => {
    if (changes.length > 0)
      (gatewayTunnels.has(name) ? activations : adds).push(`link set dev ${name} ${changes.join(' ')}`);
  };

  // Links that are (re)created lose every neighbour, fdb entry and route that used them.
  const fresh = new Set<string>();
  // A link whose MAC changes keeps its routes but the kernel flushes its neighbour entries.
  const newMac = new Set<string>();
  for (const d of desired.links) {
    const c = curLinks.get(d.name);
    if (c !== undefined && !needsRecreate(d, c)) {
      const changes: string[] = [];
      if (c.mtu !== d.mtu) changes.push(`mtu ${d.mtu}`);
      if (c.mac !== d.mac) {
        changes.push(`address ${d.mac}`);
        newMac.add(d.name);
      }
      if (!c.up) changes.push('up');
      linkSet(d.name, changes);
      continue;
    }
    if (c !== undefined) createLinks.push(`link del ${c.name}`);
    fresh.add(d.name);
    // No IPv6 link-local address: it would send router solicitations and MLD into the tunnel.
    createLinks.push(renderLinkAdd(d), `link set dev ${d.name} addrgenmode none`);
    linkSet(d.name, ['up']);
  }
  const survives = (dev: string | undefined): boolean => dev === undefined || !fresh.has(dev);

  // Deleting a device's last IPv4 address makes the kernel disable IP on it (fib_disable_ip):
  // every route through the device and every neighbour on it goes too, permanent ones included.
  // A gateway that becomes a director of the same slot loses the tunnel's receiving address and
  // gains a route and a neighbour on that device; deleted last, the address would take them
  // along and the steered traffic would leave through the main table with the node IP. So that
  // address is deleted first, and the device's routes and neighbours count as gone.
  const desiredAddressDevs = new Set(desired.addresses.map((a) => a.dev));
  const addressGoesFirst = current.addresses.filter(
    (a) =>
      a.kind === 'tunnel' && survives(a.dev) && desiredLinks.has(a.dev) && !desiredAddressDevs.has(a.dev),
  );
  const flushed = new Set(addressGoesFirst.map((a) => a.dev));
  const wasFlushed = (dev: string | undefined): boolean => dev !== undefined && flushed.has(dev);
  for (const a of addressGoesFirst) adds.push(renderAddress('del', a));

  const curSysctls = index(current.sysctls, sysctlKey);
  const sysctls = desired.sysctls.filter(
    (s) => fresh.has(devOfSysctl(s)) || curSysctls.get(s.key)?.value !== s.value,
  );

  const neighbourSurvives = (dev: string): boolean => survives(dev) && !newMac.has(dev) && !flushed.has(dev);
  const curNeigh = index(
    current.neighbours.filter((n) => neighbourSurvives(n.dev)),
    neighKey,
  );
  for (const d of desired.neighbours) {
    if (!sameJson(curNeigh.get(neighKey(d)), d)) {
      adds.push(`neigh replace ${d.ip} lladdr ${d.mac} dev ${d.dev} nud permanent`);
    }
  }
  const curRoutes = index(
    current.routes.filter((r) => survives(r.dev) && !wasFlushed(r.dev)),
    routeKey,
  );
  for (const d of desired.routes) {
    if (!sameJson(curRoutes.get(routeKey(d)), d)) adds.push(renderRoute('replace', d));
  }
  const curRules = index(current.rules, ruleKey);
  for (const d of desired.rules) if (!curRules.has(ruleKey(d))) adds.push(renderRule('add', d));
  const curAddresses = index(current.addresses, addressKey);
  const acquired: string[] = [];
  for (const d of desired.addresses) {
    const c = curAddresses.get(addressKey(d));
    if (!sameJson(c, d)) adds.push(renderAddress('replace', d, egressLifetimeS));
    if (c === undefined && d.kind === 'egress') acquired.push(d.ip);
  }

  const fdbAdds: string[] = [];
  const fdbRemoves: string[] = [];
  const curFdb = index(
    current.fdb.filter((f) => survives(f.dev)),
    fdbKey,
  );
  const desiredFdb = index(desired.fdb, fdbKey);
  for (const d of desired.fdb) {
    // `replace` of a unicast entry moves its remote in place: this is the failover step.
    if (!sameJson(curFdb.get(fdbKey(d)), d))
      fdbAdds.push(`fdb replace ${d.mac} dev ${d.dev} dst ${d.dst} self permanent`);
  }

  // Removal: only what survives the re-creations above and is no longer desired.
  const linkGoes = (dev: string | undefined): boolean =>
    dev !== undefined && curLinks.has(dev) && !desiredLinks.has(dev);
  const desiredRules = index(desired.rules, ruleKey);
  for (const c of current.rules) if (!desiredRules.has(ruleKey(c))) removes.push(renderRule('del', c));
  const desiredRoutes = index(desired.routes, routeKey);
  for (const c of current.routes) {
    if (!desiredRoutes.has(routeKey(c)) && survives(c.dev) && !linkGoes(c.dev) && !wasFlushed(c.dev))
      removes.push(renderRoute('del', c));
  }
  const desiredNeigh = index(desired.neighbours, neighKey);
  for (const c of current.neighbours) {
    if (!desiredNeigh.has(neighKey(c)) && neighbourSurvives(c.dev) && !linkGoes(c.dev)) {
      removes.push(`neigh del ${c.ip} dev ${c.dev}`);
    }
  }
  for (const c of current.fdb) {
    if (!desiredFdb.has(fdbKey(c)) && survives(c.dev) && !linkGoes(c.dev)) {
      fdbRemoves.push(`fdb del ${c.mac} dev ${c.dev} dst ${c.dst} self`);
    }
  }
  for (const c of current.links) if (!desiredLinks.has(c.name)) removes.push(`link del ${c.name}`);
  const desiredAddresses = index(desired.addresses, addressKey);
  for (const c of current.addresses) {
    if (!desiredAddresses.has(addressKey(c)) && !linkGoes(c.dev) && !addressGoesFirst.includes(c))
      removes.push(renderAddress('del', c));
  }

  // Without a sysctl to write between creating a link and bringing it up (director devices
  // receive nothing and need none), creation joins the adds: one process fewer. Not when there
  // are fdb entries to add: the agent runs the adds and the fdb batch side by side, and an fdb
  // entry on a link that the adds are still creating fails ("Cannot find device").
  if (sysctls.length === 0 && fdbAdds.length === 0)
    return {
      createLinks: [],
      sysctls,
      adds: [...createLinks, ...adds],
      fdbAdds,
      fdbRemoves,
      activations,
      removes,
      acquired,
    };
  return { createLinks, sysctls, adds, fdbAdds, fdbRemoves, activations, removes, acquired };
}

/** `net.ipv4.conf.<dev>.rp_filter` → `<dev>` (device names never contain dots here). */
function devOfSysctl(s: SysctlSpec): string {
  return s.key.split('.')[3] ?? '';
}

/** The plan as one sorted-section text, for golden tests. */
export function dumpIpPlan(plan: IpPlan): string {
  const section = (title: string, lines: readonly string[]): string[] =>
    lines.length === 0 ? [] : [`# ${title}`, ...lines];
  const lines = [
    ...section('ip: create links', plan.createLinks),
    ...section(
      'sysctl',
      plan.sysctls.map((s) => `${s.key}=${s.value}`),
    ),
    ...section('ip: adds', plan.adds),
    ...section('bridge: adds', plan.fdbAdds),
    ...section('ip: after nft, activations', plan.activations),
    ...section('bridge: removes', plan.fdbRemoves),
    ...section('ip: removes', plan.removes),
    ...section('announce', plan.acquired),
  ];
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
