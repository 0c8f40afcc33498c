// What a netns node's kernel holds, read with the plain tools (`nft -j`, `ip -j`) and summarised
// for e2e assertions and failure messages: the nftables table `ip kseip` (sets and their
// elements, rule count), and every routing rule, route, link and address that is not part of
// the node as the netcluster harness built it. Read-only: it never changes a namespace.
// `readNodeKernel` is effectful (spawns the tools in the node's namespace); the `select*`
// functions are pure.
//
// Why not the agent's own reader (src/agents/kernel-read.ts): a test that checks the agent's
// work with the agent's parser would share its blind spots. This reads broadly instead: any
// `ip rule` besides the kernel's three, any route outside the main and local tables, any VXLAN
// device besides the CNI's, any address from the egress range, counts as a leftover.
import type { NetCluster, NetNode } from './netcluster.ts';
import { EGRESS_RANGE } from './netcluster.ts';

/** The table the agents own (docs/dataplane.md). */
export const KSEIP_NFT_TABLE = 'kseip';
/** The rule priorities the kernel creates in every namespace (local, main, default). */
const KERNEL_RULE_PRIORITIES = new Set([0, 32766, 32767]);
/** The CNI's own VXLAN device (flannel), present in vxlan mode; not ours. */
const CNI_VXLAN_DEVICE = 'flannel.1';

export interface NftSetDump {
  readonly name: string;
  /** Elements as text: an address, `a.b.c.d/len` or `a-b`. */
  readonly elements: readonly string[];
}

export interface NodeKernel {
  readonly node: string;
  /** `ip kseip`, or undefined when the table does not exist. */
  readonly nft: { readonly sets: readonly NftSetDump[]; readonly rules: number } | undefined;
  /** Every `ip rule` other than the kernel's own three, as `<priority> <selector> lookup <table>`. */
  readonly rules: readonly string[];
  /** Every IPv4 route outside the main and local tables, as `table <t> <type> <dst> [dev <d>]`. */
  readonly routes: readonly string[];
  /** Links named `kseip*` or of kind vxlan (except the CNI's), as `<name> <kind> [id <vni>]`. */
  readonly links: readonly string[];
  /** IPv4 addresses from the egress range or with a `:kseip` label, as `<dev> <ip>/<len> <label>`. */
  readonly addresses: readonly string[];
}

interface IpRule {
  priority: number;
  table?: string;
  fwmark?: string;
  fwmask?: string;
  src?: string;
}
interface IpRoute {
  type?: string;
  dst: string;
  table?: string;
  dev?: string;
  gateway?: string;
}
interface IpLink {
  ifname: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number } };
}
interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number; label?: string }[];
}
type NftElem = string | { prefix?: { addr: string; len: number }; range?: [string, string]; elem?: unknown };
interface NftObject {
  set?: { name: string; table: string; elem?: NftElem[] };
  rule?: { table: string };
}

function elementText(e: NftElem): string {
  if (typeof e === 'string') return e;
  if (e.prefix !== undefined) return `${e.prefix.addr}/${e.prefix.len}`;
  if (e.range !== undefined) return `${e.range[0]}-${e.range[1]}`;
  if (e.elem !== undefined) return elementText(e.elem as NftElem);
  return JSON.stringify(e);
}

/** `nft -j list table ip kseip` output → sets and rule count. */
export function parseNftTable(json: string): NonNullable<NodeKernel['nft']> {
  const objects = (JSON.parse(json) as { nftables: NftObject[] }).nftables;
  const sets: NftSetDump[] = [];
  let rules = 0;
  for (const o of objects) {
    if (o.set !== undefined && o.set.table === KSEIP_NFT_TABLE)
      sets.push({ name: o.set.name, elements: (o.set.elem ?? []).map(elementText).sort() });
    if (o.rule !== undefined && o.rule.table === KSEIP_NFT_TABLE) rules++;
  }
  return { sets: sets.sort((a, b) => a.name.localeCompare(b.name)), rules };
}

function ipv4InRange(ip: string, cidr: string): boolean {
  const toNum = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const [base, len] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(len));
  return Math.floor(toNum(ip) / size) === Math.floor(toNum(base) / size);
}

async function run(cluster: NetCluster, ns: string, argv: readonly string[]): Promise<string> {
  const r = await cluster.exec(ns, argv);
  if (r.code !== 0) throw new Error(`[${ns}] ${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function readNodeKernel(cluster: NetCluster, node: NetNode): Promise<NodeKernel> {
  const [nftOut, rulesOut, routesOut, linksOut, addrsOut] = await Promise.all([
    cluster.exec(node.ns, ['nft', '-j', 'list', 'table', 'ip', KSEIP_NFT_TABLE]),
    run(cluster, node.ns, ['ip', '-j', '-4', 'rule', 'show']),
    run(cluster, node.ns, ['ip', '-j', '-4', 'route', 'show', 'table', 'all']),
    run(cluster, node.ns, ['ip', '-j', '-d', 'link', 'show']),
    run(cluster, node.ns, ['ip', '-j', '-4', 'addr', 'show']),
  ]);
  let nft: NodeKernel['nft'];
  if (nftOut.code === 0) nft = parseNftTable(nftOut.stdout);
  else if (!/No such file or directory/.test(nftOut.stderr))
    throw new Error(`[${node.ns}] nft list table ip ${KSEIP_NFT_TABLE}: ${nftOut.stderr.trim()}`);

  const rules = (JSON.parse(rulesOut) as IpRule[])
    .filter((r) => !KERNEL_RULE_PRIORITIES.has(r.priority))
    .map(
      (r) =>
        `${r.priority} from ${r.src ?? 'all'}${r.fwmark === undefined ? '' : ` fwmark ${r.fwmark}/${r.fwmask ?? '-'}`} lookup ${r.table ?? '?'}`,
    );
  const routes = (JSON.parse(routesOut) as IpRoute[])
    // Routes of the main table carry no `table` field.
    .filter((r) => r.table !== undefined && r.table !== 'local' && r.table !== 'main')
    .map(
      (r) =>
        `table ${r.table} ${r.type ?? 'unicast'} ${r.dst}${r.gateway === undefined ? '' : ` via ${r.gateway}`}${r.dev === undefined ? '' : ` dev ${r.dev}`}`,
    );
  const links = (JSON.parse(linksOut) as IpLink[])
    .filter(
      (l) =>
        l.ifname.startsWith('kseip') || (l.linkinfo?.info_kind === 'vxlan' && l.ifname !== CNI_VXLAN_DEVICE),
    )
    .map(
      (l) =>
        `${l.ifname} ${l.linkinfo?.info_kind ?? '?'}${l.linkinfo?.info_data?.id === undefined ? '' : ` id ${l.linkinfo.info_data.id}`}`,
    );
  const addresses = (JSON.parse(addrsOut) as IpAddr[]).flatMap((l) =>
    (l.addr_info ?? [])
      .filter(
        (a) =>
          a.family === 'inet' &&
          (ipv4InRange(a.local, EGRESS_RANGE) ||
            (a.label ?? '').includes(':kseip') ||
            l.ifname.startsWith('kseip')),
      )
      .map((a) => `${l.ifname} ${a.local}/${a.prefixlen} ${a.label ?? ''}`.trimEnd()),
  );
  return { node: node.name, nft, rules, routes, links, addresses };
}

/** Everything of ours left on the node, one line each; empty when the node is clean. */
export function selectLeftovers(k: NodeKernel): string[] {
  return [
    ...(k.nft === undefined
      ? []
      : [
          `nft table ip ${KSEIP_NFT_TABLE}: ${k.nft.rules} rules, sets ${k.nft.sets.map((s) => `${s.name}{${s.elements.join(',')}}`).join(' ')}`,
        ]),
    ...k.rules.map((r) => `ip rule ${r}`),
    ...k.routes.map((r) => `route ${r}`),
    ...k.links.map((l) => `link ${l}`),
    ...k.addresses.map((a) => `address ${a}`),
  ];
}

/** Every element of every set of the table whose name ends in `suffix` (e.g. `-pods`). */
export function selectSetElements(k: NodeKernel, suffix: string): string[] {
  return (k.nft?.sets ?? []).filter((s) => s.name.endsWith(suffix)).flatMap((s) => s.elements);
}

/** The node's kernel state as text, for failure messages. */
export function describeNodeKernel(k: NodeKernel): string {
  const lines = selectLeftovers(k);
  return `${k.node}: ${lines.length === 0 ? '(clean)' : `\n  ${lines.join('\n  ')}`}`;
}
