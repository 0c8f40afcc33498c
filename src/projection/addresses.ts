// IP addresses, CIDRs, pool ranges and address-set arithmetic (ipaddr.js). Pure.
// Addresses become [lo, hi] intervals of bigints, so IPv4 and IPv6 share one code path; the
// family is kept beside them because 10.0.0.0 and ::a00:0 are equal integers.
// Parsers return undefined for text that is not an address: the API server validates these
// fields (CEL), so at this point a bad value is a bug upstream, which the caller reports as a
// rule condition instead of throwing.
import ipaddr from 'ipaddr.js';
import { compareBig } from '../lib/compare.ts';

export type Family = 4 | 6;

export interface Interval {
  readonly lo: bigint;
  readonly hi: bigint;
}

export interface ParsedAddress {
  readonly family: Family;
  readonly value: bigint;
  /** Canonical text: dotted quad, or RFC 5952 for IPv6. */
  readonly text: string;
}

export interface ParsedCidr extends Interval {
  readonly family: Family;
  /** Canonical "network/prefix" text (host bits cleared). */
  readonly text: string;
}

export interface AddressRange extends Interval {
  readonly family: Family;
}

function toBigint(bytes: readonly number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBigint(value: bigint, family: Family): string {
  const n = family === 4 ? 4 : 16;
  const bytes = new Array<number>(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  const addr = ipaddr.fromByteArray(bytes);
  return addr.kind() === 'ipv6' ? (addr as ipaddr.IPv6).toRFC5952String() : addr.toString();
}

/**
 * A canonical dotted quad (no leading zeros), parsed without ipaddr.js: pod IPs arrive by the
 * hundred thousand during a replay and the general parser's regular expressions dominated the
 * profile. Returns -1 for anything else, which then takes the general path.
 */
function parseCanonicalIPv4(text: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a final '.' closes the last part
    if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46) {
      if (digits === 0 || ++parts > 4) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else return -1;
  }
  return parts === 4 ? value : -1;
}

export function isCanonicalIPv4(text: string): boolean {
  return parseCanonicalIPv4(text) >= 0;
}

export function parseAddress(text: string): ParsedAddress | undefined {
  const fast = parseCanonicalIPv4(text);
  if (fast >= 0) return { family: 4, value: BigInt(fast), text };
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    const a = ipaddr.IPv4.parse(text);
    return { family: 4, value: toBigint(a.toByteArray()), text: a.toString() };
  }
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    const a = ipaddr.IPv6.parse(text);
    return { family: 6, value: toBigint(a.toByteArray()), text: a.toRFC5952String() };
  }
  return undefined;
}

export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseAddress(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const bits = addr.family === 4 ? 32 : 128;
  if (prefix > bits) return undefined;
  const hostBits = BigInt(bits - prefix);
  const lo = (addr.value >> hostBits) << hostBits;
  const hi = lo | ((1n << hostBits) - 1n);
  return { family: addr.family, lo, hi, text: `${fromBigint(lo, addr.family)}/${prefix}` };
}

/** A pool entry: a CIDR or an inclusive "first-last" range of one family. */
export function parsePoolEntry(text: string): AddressRange | undefined {
  const dash = text.indexOf('-');
  if (dash < 0) return parseCidr(text);
  const first = parseAddress(text.slice(0, dash).trim());
  const last = parseAddress(text.slice(dash + 1).trim());
  if (first === undefined || last === undefined || first.family !== last.family || first.value > last.value)
    return undefined;
  return { family: first.family, lo: first.value, hi: last.value };
}

export function rangesCover(ranges: readonly AddressRange[], addr: ParsedAddress): boolean {
  return ranges.some((r) => r.family === addr.family && r.lo <= addr.value && addr.value <= r.hi);
}

/** Sorted, merged, non-overlapping intervals. */
export function normalizeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => compareBig(a.lo, b.lo));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) out[out.length - 1] = { lo: last.lo, hi: iv.hi };
    } else out.push(iv);
  }
  return out;
}

/** a minus b, both normalized. */
export function subtractIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const iv of a) {
    let lo = iv.lo;
    const hi = iv.hi;
    while (j < b.length && (b[j] as Interval).hi < lo) j++;
    let k = j;
    while (k < b.length && (b[k] as Interval).lo <= hi) {
      const cut = b[k] as Interval;
      if (cut.lo > lo) out.push({ lo, hi: cut.lo - 1n });
      lo = cut.hi + 1n;
      if (lo > hi) break;
      k++;
    }
    if (lo <= hi) out.push({ lo, hi });
  }
  return out;
}

/** Whether two normalized interval lists share an address. */
export function intervalsIntersect(a: readonly Interval[], b: readonly Interval[]): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as Interval;
    const y = b[j] as Interval;
    if (x.hi < y.lo) i++;
    else if (y.hi < x.lo) j++;
    else return true;
  }
  return false;
}

/** The addresses a rule steers: its destinations minus its exceptions, of one family. */
export interface DestinationSet {
  readonly family: Family;
  readonly intervals: readonly Interval[];
}

export function computeDestinationSet(
  family: Family,
  destinations: readonly ParsedCidr[],
  exceptions: readonly ParsedCidr[],
): DestinationSet {
  return {
    family,
    intervals: subtractIntervals(normalizeIntervals(destinations), normalizeIntervals(exceptions)),
  };
}

export function destinationSetsOverlap(a: DestinationSet, b: DestinationSet): boolean {
  return a.family === b.family && intervalsIntersect(a.intervals, b.intervals);
}
