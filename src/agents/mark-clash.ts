// Detects other software on the node using packet-mark bits inside our mark mask, from
// `nft -j list ruleset` (native nftables and iptables-nft alike). Pure `findMarkClashes`, and the
// effectful `checkMarkClashes` the agent runs once at start.
//
// Why: our prerouting rule rewrites the bits of the mask on steered packets and our ip rule
// routes by them. A CNI or proxy that reads or writes the same bits either misroutes our packets
// or has its own verdicts (accept, masquerade, drop marks) corrupted. No 12-bit mask is free of
// every common default (docs/dataplane.md, "Mark bits"), so the agent looks instead of assuming.
//
// Decision: a clash is logged as an error and counted in kseip_agent_mark_clashes; the agent
// still starts. Refusing would take egress down on clusters where the overlap is harmless (the
// bits are reserved by a mask but never set on steered traffic), and an operator can act on the
// alert (set --mark-mask to free bits) without an outage.
//
// What counts as using bits: a match on `meta mark` (masked: the mask; unmasked: all 32 bits, an
// exact compare fails once we set our bits), a `meta mark set` (the bits its |, ^ and & change;
// a plain value or a copy from elsewhere, e.g. `ct mark`, overwrites all 32), and iptables-nft
// targets/matches that nft shows only as opaque `xt` (MARK, CONNMARK, mark, connmark): bits
// unknown, reported as a possible clash.
import type { Logger } from '../lib/log.ts';
import type { KernelRunner } from './kernel-exec.ts';

export interface MarkClash {
  family: string;
  table: string;
  chain: string;
  handle: number | undefined;
  /** The mark bits the rule reads or writes; undefined when nft cannot show them (xt). */
  bits: number | undefined;
  /** Our bits among them (undefined: unknown). */
  overlap: number | undefined;
}

const ALL = 0xffffffff;
const XT_MARK_NAMES = new Set(['MARK', 'CONNMARK', 'mark', 'connmark']);

type Json = unknown;

const isObj = (x: Json): x is Record<string, Json> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

const isMetaMark = (x: Json): boolean => isObj(x) && isObj(x.meta) && x.meta.key === 'mark';

/** The bits a `meta mark set <value>` changes. */
function bitsWritten(value: Json): number {
  if (isMetaMark(value)) return 0; // mark set mark: no change
  if (isObj(value)) {
    for (const op of ['|', '^', '&'] as const) {
      const args = value[op];
      if (Array.isArray(args) && args.length === 2 && typeof args[1] === 'number') {
        const n = args[1] >>> 0;
        const changed = op === '&' ? ~n >>> 0 : n;
        return (bitsWritten(args[0]) | changed) >>> 0;
      }
    }
  }
  return ALL; // a constant, ct mark, a map lookup: the whole mark is replaced
}

/** The bits a `match` on `meta mark` reads (0: it does not read the packet mark). */
function bitsRead(match: Record<string, Json>): number {
  const left = match.left;
  if (isMetaMark(left)) return ALL;
  const and: Json = isObj(left) ? left['&'] : undefined;
  if (Array.isArray(and)) {
    const [a, m] = and as Json[];
    if (isMetaMark(a) && typeof m === 'number') return m >>> 0;
  }
  return 0;
}

/** Every rule outside our own table that uses mark bits within `mask`. */
export function findMarkClashes(
  rulesetJson: string,
  mask: number,
  own: { family: string; table: string },
): MarkClash[] {
  const parsed = JSON.parse(rulesetJson) as { nftables?: Json[] };
  const clashes: MarkClash[] = [];
  for (const item of parsed.nftables ?? []) {
    if (!isObj(item) || !isObj(item.rule)) continue;
    const r = item.rule;
    const family = String(r.family);
    const table = String(r.table);
    if (family === own.family && table === own.table) continue;
    let bits = 0;
    let unknown = false;
    for (const e of Array.isArray(r.expr) ? r.expr : []) {
      if (!isObj(e)) continue;
      if (isObj(e.match)) bits |= bitsRead(e.match);
      if (isObj(e.mangle) && isMetaMark(e.mangle.key)) bits |= bitsWritten(e.mangle.value);
      if (isObj(e.xt) && XT_MARK_NAMES.has(String(e.xt.name))) unknown = true;
    }
    bits >>>= 0;
    const overlap = (bits & mask) >>> 0;
    if (overlap === 0 && !unknown) continue;
    clashes.push({
      family,
      table,
      chain: String(r.chain),
      handle: typeof r.handle === 'number' ? r.handle : undefined,
      bits: unknown && overlap === 0 ? undefined : bits,
      overlap: unknown && overlap === 0 ? undefined : overlap,
    });
  }
  return clashes;
}

const hex = (n: number | undefined): string | undefined =>
  n === undefined ? undefined : `0x${n.toString(16).padStart(8, '0')}`;

/**
 * Reads the ruleset of the agent's netns and logs every clash as an error (one line per rule).
 * Returns how many rules clash; a failed read is logged and counts as none (the check is advice,
 * it must not stop the agent).
 */
export async function checkMarkClashes(
  kernel: KernelRunner,
  mask: number,
  own: { family: string; table: string },
  log: Logger,
): Promise<number> {
  const res = await kernel.run('nft', ['-j', 'list', 'ruleset']).catch((err: unknown) => ({
    code: -1,
    stdout: '',
    stderr: String(err),
  }));
  if (res.code !== 0) {
    log.warn({ stderr: res.stderr.trim() }, 'could not read the nftables ruleset to check mark bits');
    return 0;
  }
  const clashes = findMarkClashes(res.stdout, mask, own);
  for (const c of clashes) {
    log.error(
      { ...c, bits: hex(c.bits), overlap: hex(c.overlap), markMask: hex(mask) },
      c.overlap === undefined
        ? 'another table sets or matches packet marks with bits nft cannot show (iptables-nft); they may clash with --mark-mask'
        : 'another table uses packet-mark bits inside --mark-mask; set --mark-mask to bits nothing else uses',
    );
  }
  if (clashes.length === 0) log.info({ markMask: hex(mask) }, 'no other table uses our mark bits');
  return clashes.length;
}
