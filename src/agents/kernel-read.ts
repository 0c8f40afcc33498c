// Reads back what of ours the kernel holds, in the same shape computeKernelState produces, so the
// two can be diffed. The parse* functions are pure (JSON text of nft/ip/bridge → typed state) and
// keep only objects we own: our nftables table, links named kseip-v<slot>, neighbour and fdb
// entries on those links, routes in our table range, rules at our priority, addresses with our
// label on the uplink. readKernelState is the effectful edge that runs the commands.
import {
  LINK_PREFIX,
  NFT_FAMILY,
  NFT_TABLE,
  parseSlotOfLink,
  rpFilterKey,
  sortKernelState,
  type AddressSpec,
  type FdbSpec,
  type KernelState,
  type NeighSpec,
  type NftChain,
  type NftSet,
  type NftState,
  type RouteSpec,
  type RuleSpec,
  type SysctlSpec,
  type VxlanLink,
} from '../dataplane/kernel-state.ts';
import { runChecked, type KernelRunner } from './kernel-exec.ts';
import { compare } from '../lib/compare.ts';

/** What parsing needs to know to tell ours from theirs. */
export interface Ownership {
  readonly uplink: string;
  readonly label: string;
  readonly rulePriority: number;
  readonly tableBase: number;
  readonly maxSlot: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

function parseArray(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const value = JSON.parse(trimmed) as unknown;
  return Array.isArray(value) ? value : [];
}

// ---------------------------------------------------------------------------------------------
// nftables

/** One element as nft -j prints it, in our canonical text; anything else (ranges, typed values
 *  someone added by hand) gets a text of its own, so it shows up as a difference. */
function parseNftElement(e: unknown): string {
  if (typeof e === 'string') return e;
  if (isObject(e)) {
    if (isObject(e.prefix)) return `${str(e.prefix.addr) ?? '?'}/${num(e.prefix.len) ?? '?'}`;
    if (Array.isArray(e.range)) return e.range.map(parseNftElement).join('-');
    if (isObject(e.elem)) return parseNftElement(e.elem.val);
  }
  return JSON.stringify(e);
}

/** `nft -j list table ip kseip` → our table state (undefined input: the table does not exist). */
export function parseNftTable(text: string | undefined): NftState | undefined {
  if (text === undefined) return undefined;
  const doc = JSON.parse(text) as unknown;
  const items = isObject(doc) && Array.isArray(doc.nftables) ? doc.nftables : [];
  const sets: NftSet[] = [];
  const chains = new Map<string, { chain: Omit<NftChain, 'rules'>; rules: NftChain['rules'][number][] }>();
  let found = false;
  for (const item of items) {
    if (!isObject(item)) continue;
    if (isObject(item.table) && item.table.name === NFT_TABLE) found = true;
    if (isObject(item.set)) {
      const s = item.set;
      const flags = Array.isArray(s.flags) ? s.flags : [];
      const elem = Array.isArray(s.elem) ? s.elem : [];
      sets.push({
        name: str(s.name) ?? '',
        // Any other type or flag (typed by hand) reads as "not what we want" and is recreated.
        interval: flags.includes('interval') && s.type === 'ipv4_addr',
        elements: elem.map(parseNftElement),
      });
    }
    if (isObject(item.chain)) {
      const c = item.chain;
      const name = str(c.name) ?? '';
      chains.set(name, {
        chain: {
          name,
          type: str(c.type) as NftChain['type'],
          hook: str(c.hook) as NftChain['hook'],
          priority: num(c.prio) ?? NaN,
        },
        rules: [],
      });
    }
    if (isObject(item.rule)) {
      const r = item.rule;
      const owner = chains.get(str(r.chain) ?? '');
      // A rule without our comment (added by hand) still counts, so the chain reads as changed.
      owner?.rules.push({ id: str(r.comment) ?? `handle-${num(r.handle) ?? '?'}`, text: undefined });
    }
  }
  if (!found) return undefined;
  return {
    sets: sets.map((s) => ({ ...s, elements: sortElements([...s.elements]) })),
    chains: [...chains.values()].map(({ chain, rules }) => ({ ...chain, rules })),
  };
}

/** The same order computeKernelState uses: by address value. */
function sortElements(elements: string[]): string[] {
  const value = (e: string): number => {
    const parts = (e.split(/[-/]/)[0] ?? '').split('.').map(Number);
    return parts.length === 4 ? parts.reduce((acc, p) => acc * 256 + p, 0) : Number.MAX_SAFE_INTEGER;
  };
  return elements.sort((a, b) => value(a) - value(b) || compare(a, b));
}

// ---------------------------------------------------------------------------------------------
// ip / bridge

/** `ip -j -d link show type vxlan` → our tunnel devices. */
export function parseLinks(text: string): VxlanLink[] {
  const links: VxlanLink[] = [];
  for (const l of parseArray(text)) {
    if (!isObject(l)) continue;
    const name = str(l.ifname) ?? '';
    if (parseSlotOfLink(name) === undefined) continue;
    const info = isObject(l.linkinfo) && isObject(l.linkinfo.info_data) ? l.linkinfo.info_data : {};
    const flags = Array.isArray(l.flags) ? l.flags : [];
    links.push({
      name,
      vni: num(info.id) ?? -1,
      port: num(info.port) ?? -1,
      local: str(info.local),
      uplink: str(info.link) ?? '',
      mtu: num(l.mtu) ?? -1,
      mac: str(l.address) ?? '',
      up: flags.includes('UP'),
    });
  }
  return links;
}

/** `ip -j addr show` → the uplink's MTU, the egress IPs we hold on it (our label) and the
 *  addresses of our tunnel devices (every address there is ours). */
export function parseAddresses(
  text: string,
  own: Ownership,
): { uplinkMtu: number; addresses: AddressSpec[] } {
  let uplinkMtu = -1;
  const addresses: AddressSpec[] = [];
  for (const dev of parseArray(text)) {
    if (!isObject(dev)) continue;
    const name = str(dev.ifname) ?? '';
    const tunnel = parseSlotOfLink(name) !== undefined;
    if (name === own.uplink) uplinkMtu = num(dev.mtu) ?? -1;
    else if (!tunnel) continue;
    const infos = Array.isArray(dev.addr_info) ? dev.addr_info : [];
    for (const a of infos) {
      if (!isObject(a) || a.family !== 'inet') continue;
      if (!tunnel && a.label !== own.label) continue;
      // Another prefix length is still ours: read it as-is so that it gets replaced.
      const ip = str(a.local) ?? '';
      addresses.push({
        kind: tunnel ? 'tunnel' : 'egress',
        ip: a.prefixlen === 32 ? ip : `${ip}/${num(a.prefixlen) ?? '?'}`,
        dev: name,
        label: tunnel ? name : own.label,
      });
    }
  }
  return { uplinkMtu, addresses };
}

function parseHexOrNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v)) return Number(v);
  return undefined;
}

/** `ip -j rule show` → the rules at our priority. */
export function parseRules(text: string, own: Ownership): RuleSpec[] {
  const rules: RuleSpec[] = [];
  for (const r of parseArray(text)) {
    if (!isObject(r) || r.priority !== own.rulePriority) continue;
    rules.push({
      priority: own.rulePriority,
      mark: parseHexOrNumber(r.fwmark) ?? 0,
      mask: parseHexOrNumber(r.fwmask) ?? 0xffffffff,
      table: parseHexOrNumber(r.table) ?? -1,
    });
  }
  return rules;
}

const isOurTable = (table: number | undefined, own: Ownership): table is number =>
  table !== undefined && table > own.tableBase && table <= own.tableBase + own.maxSlot;

/** `ip -j route show table all` → routes in our tables (tableBase+1 … tableBase+maxSlot). */
export function parseRoutes(text: string, own: Ownership): RouteSpec[] {
  const routes: RouteSpec[] = [];
  for (const r of parseArray(text)) {
    if (!isObject(r)) continue;
    const table = parseHexOrNumber(r.table);
    if (!isOurTable(table, own)) continue;
    routes.push({
      table,
      type: r.type === 'throw' ? 'throw' : 'unicast',
      dst: (str(r.dst) ?? '').replace(/\/32$/, ''),
      via: str(r.gateway),
      dev: str(r.dev),
    });
  }
  return routes;
}

/** `ip -j neigh show nud permanent` → entries on our links. */
export function parseNeighbours(text: string): NeighSpec[] {
  const out: NeighSpec[] = [];
  for (const n of parseArray(text)) {
    if (!isObject(n) || !(str(n.dev) ?? '').startsWith(LINK_PREFIX)) continue;
    out.push({ dev: str(n.dev) ?? '', ip: str(n.dst) ?? '', mac: str(n.lladdr) ?? '' });
  }
  return out;
}

/** `bridge -j fdb show` → remote entries on our links. */
export function parseFdb(text: string): FdbSpec[] {
  const out: FdbSpec[] = [];
  for (const f of parseArray(text)) {
    if (!isObject(f) || !(str(f.ifname) ?? '').startsWith(LINK_PREFIX) || str(f.dst) === undefined) continue;
    out.push({ dev: str(f.ifname) ?? '', mac: str(f.mac) ?? '', dst: str(f.dst) ?? '' });
  }
  return out;
}

/** `ip -j netconf show` → rp_filter of our links (the device's own value, not the effective one). */
export function parseRpFilters(text: string): SysctlSpec[] {
  const modes: Record<string, string> = { off: '0', strict: '1', loose: '2' };
  const out: SysctlSpec[] = [];
  for (const c of parseArray(text)) {
    if (!isObject(c) || c.family !== 'inet') continue;
    const dev = str(c.interface) ?? '';
    if (parseSlotOfLink(dev) === undefined) continue;
    out.push({ key: rpFilterKey(dev), value: modes[str(c.rp_filter) ?? ''] ?? String(c.rp_filter) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export interface KernelSnapshot {
  readonly state: KernelState;
  readonly uplinkMtu: number;
}

/** The ip reads, as one `ip -j -d -batch -`: each command prints one JSON array on its own line. */
export const IP_READS = [
  'link show type vxlan',
  'addr show',
  'rule show',
  'route show table all',
  'neigh show nud permanent',
  'netconf show',
] as const;

/** Reads everything of ours: one ip batch, one bridge and one nft process, in parallel. */
export async function readKernelState(runner: KernelRunner, own: Ownership): Promise<KernelSnapshot> {
  const [nftResult, ipOut, fdb] = await Promise.all([
    runner.run('nft', ['-j', 'list', 'table', NFT_FAMILY, NFT_TABLE]),
    runChecked(runner, 'ip', ['-j', '-d', '-batch', '-'], { input: IP_READS.join('\n') + '\n' }),
    runChecked(runner, 'bridge', ['-j', 'fdb', 'show']),
  ]);
  // "No such file or directory" is the only way nft says the table does not exist.
  if (nftResult.code !== 0 && !/No such file or directory/.test(nftResult.stderr)) {
    throw new Error(`nft list table failed: ${nftResult.stderr.trim()}`);
  }
  const lines = ipOut.split('\n').filter((line) => line.trim() !== '');
  if (lines.length !== IP_READS.length) {
    throw new Error(`ip -batch printed ${lines.length} results for ${IP_READS.length} reads`);
  }
  const [links, addrs, rules, routes, neigh, netconf] = lines as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const up = parseAddresses(addrs, own);
  return {
    uplinkMtu: up.uplinkMtu,
    state: sortKernelState({
      nft: parseNftTable(nftResult.code === 0 ? nftResult.stdout : undefined),
      links: parseLinks(links),
      neighbours: parseNeighbours(neigh),
      fdb: parseFdb(fdb),
      routes: parseRoutes(routes, own),
      rules: parseRules(rules, own),
      addresses: up.addresses,
      sysctls: parseRpFilters(netconf),
    }),
  };
}
