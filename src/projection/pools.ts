// Overlapping pools: which StaticEgressIPPools are Accepted. Pure.
//
// Two pools that share an address would each hand it out under their own namespaceSelector and
// nodeSelector, so an address is governed by at most one pool (docs/api.md, "Overlapping pools"):
// pools are taken in precedence order, and a pool is Accepted unless one of its entries overlaps
// an entry of a pool already Accepted. A pool that is not Accepted governs no egress IP at all,
// not even its addresses that overlap nothing: half a pool would be a surprise, and its status
// says what to fix. With Accepted pools disjoint, every address has at most one governing pool.
//
// Precedence: the older metadata.creationTimestamp wins (an incumbent pool is never displaced by
// a newcomer), then the name. Both come from the object itself, so the choice does not depend on
// the order in which a relist happens to publish the pools. An event without a timestamp (a log
// written before the watcher published it) counts as the oldest.
import { parsePoolEntry, type AddressRange } from './addresses.ts';
import type { PoolRec, PoolStanding } from './model.ts';
import { compare } from '../lib/compare.ts';

export function comparePools(a: PoolRec, b: PoolRec): number {
  return compare(a.p.creationTimestamp ?? '', b.p.creationTimestamp ?? '') || compare(a.name, b.name);
}

function rangesOverlap(a: AddressRange, b: AddressRange): boolean {
  return a.family === b.family && a.lo <= b.hi && b.lo <= a.hi;
}

/** The pool's entries with their text (an entry that does not parse covers nothing). */
function entriesOf(pool: PoolRec): { text: string; range: AddressRange }[] {
  return pool.p.addresses.flatMap((text) => {
    const range = parsePoolEntry(text);
    return range === undefined ? [] : [{ text, range }];
  });
}

/** Every pool in precedence order, and whether it is Accepted (the definition above). */
export function computePoolStanding(pools: Iterable<PoolRec>): PoolStanding[] {
  const ordered = [...pools].sort(comparePools);
  const accepted: { name: string; entries: { text: string; range: AddressRange }[] }[] = [];
  return ordered.map((pool): PoolStanding => {
    const entries = entriesOf(pool);
    for (const other of accepted)
      for (const mine of entries) {
        const theirs = other.entries.find((e) => rangesOverlap(mine.range, e.range));
        if (theirs !== undefined)
          return {
            pool,
            accepted: false,
            overlap: { pool: other.name, entry: mine.text, theirs: theirs.text },
          };
      }
    accepted.push({ name: pool.name, entries });
    return { pool, accepted: true, overlap: undefined };
  });
}
