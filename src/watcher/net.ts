// IP and CIDR text with the exact semantics of the Kubernetes CEL IP/CIDR libraries that the CRDs
// validate with (Go's net/netip underneath): what isIP/isCIDR accept, what ip.isCanonical calls
// canonical, what isGlobalUnicast excludes. Pure.
//
// Why not ipaddr.js: it accepts forms the API server rejects (octal "010.1.1.1", "1.2.3",
// zones, IPv4-mapped IPv6), and parse.ts must reject exactly what the CRD rejects, so that an
// object stored before the CRD was tightened is caught here and not half-accepted.

export type Family = 4 | 6;

export interface Address {
  readonly family: Family;
  readonly value: bigint;
}

export interface Cidr {
  readonly family: Family;
  /** The address as written (host bits possibly set). */
  readonly address: bigint;
  readonly prefix: number;
}

const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

function parseIPv4(text: string): bigint | undefined {
  // Dotted decimal, four parts, no leading zeros (netip rejects them as ambiguous octal).
  if (!/^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(text)) return undefined;
  let value = 0n;
  for (const part of text.split('.')) {
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIPv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined; // no zone ("%eth0"), no brackets
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (const [i, part] of parts.entries()) {
      if (part.includes('.')) {
        // An IPv4 tail is allowed only as the last 32 bits.
        const v4 = i === parts.length - 1 ? parseIPv4(part) : undefined;
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (head === undefined || tail === undefined) return undefined;
  // An IPv4 tail may end only the whole address: "::1.2.3.4:5" is not an address.
  if (halves.length === 2 && (halves[0] ?? '').includes('.')) return undefined;
  const given = head.length + tail.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - given).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

const isV4Mapped = (value: bigint): boolean => value >> 32n === 0xffffn;

/** An address as CEL's ip()/isIP() accept it: no zone, no IPv4-mapped IPv6, no leading zeros. */
export function parseIP(text: string): Address | undefined {
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined || isV4Mapped(value) ? undefined : { family: 6, value };
  }
  const value = parseIPv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

/** The canonical text, as Go's netip.Addr.String (RFC 5952 for IPv6). */
export function formatIP(addr: Address): string {
  if (addr.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((addr.value >> s) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((addr.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let zeroStart = -1;
  let zeroLength = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > zeroLength) {
      zeroStart = i;
      zeroLength = j - i;
    }
  }
  if (zeroStart < 0) return groups.map((g) => g.toString(16)).join(':');
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  return `${hex(groups.slice(0, zeroStart))}::${hex(groups.slice(zeroStart + zeroLength))}`;
}

export const isCanonicalIP = (text: string): boolean => {
  const addr = parseIP(text);
  return addr !== undefined && formatIP(addr) === text;
};

/** A CIDR as CEL's cidr()/isCIDR() accept it (host bits allowed here; see hasHostBits). */
export function parseCIDR(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(addr.family)) return undefined;
  return { family: addr.family, address: addr.value, prefix };
}

function hostMask(cidr: Pick<Cidr, 'family' | 'prefix'>): bigint {
  return (1n << BigInt(bitsOf(cidr.family) - cidr.prefix)) - 1n;
}

export const networkOf = (cidr: Cidr): bigint => cidr.address & ~hostMask(cidr);
export const hasHostBits = (cidr: Cidr): boolean => (cidr.address & hostMask(cidr)) !== 0n;

/** The canonical text of the masked CIDR. */
export const formatCIDR = (cidr: Cidr): string =>
  `${formatIP({ family: cidr.family, value: networkOf(cidr) })}/${cidr.prefix}`;

/** CEL's cidr.containsCIDR: same family, `inner` at least as long, and inside `outer`. */
export function cidrContainsCIDR(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  return (inner.address & ~hostMask(outer)) === networkOf(outer);
}

export type AddressClass = 'unicast' | 'loopback' | 'unspecified' | 'link-local' | 'multicast' | 'broadcast';

/** What netip's IsGlobalUnicast looks at; private ranges count as unicast, as they do there. */
export function classifyIP(addr: Address): AddressClass {
  const v = addr.value;
  if (addr.family === 4) {
    if (v === 0n) return 'unspecified';
    if (v === 0xffffffffn) return 'broadcast';
    if (v >> 24n === 127n) return 'loopback';
    if (v >> 28n === 0xen) return 'multicast';
    if (v >> 16n === 0xa9fen) return 'link-local';
    return 'unicast';
  }
  if (v === 0n) return 'unspecified';
  if (v === 1n) return 'loopback';
  if (v >> 120n === 0xffn) return 'multicast';
  if (v >> 118n === 0x3fan) return 'link-local'; // fe80::/10
  return 'unicast';
}

/** An inclusive pool range "first-last" or a CIDR, as [first, last] of one family. */
export interface AddressSpan {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export function spanOfCIDR(cidr: Cidr): AddressSpan {
  const first = networkOf(cidr);
  return { family: cidr.family, first, last: first | hostMask(cidr) };
}
