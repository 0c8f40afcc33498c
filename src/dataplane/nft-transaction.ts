// nftables transactions as data: the diff between the desired and the observed state of our one
// table, and its rendering to `nft -f` text. Pure. Sets are diffed element by element (like
// kube-proxy's nftables proxier); a chain whose rule ids differ is flushed and rebuilt whole.
// Everything is one transaction, which the kernel applies whole or not at all, so no moment ever
// lacks a matching rule whatever the order of the ops inside it.
import {
  NFT_FAMILY,
  NFT_TABLE,
  NFT_TABLE_COMMENT,
  type NftChain,
  type NftSet,
  type NftState,
} from './kernel-state.ts';
import { compare } from '../lib/compare.ts';

export type NftOp =
  | { readonly op: 'add-table' }
  | { readonly op: 'delete-table' }
  | { readonly op: 'add-set'; readonly set: string; readonly interval: boolean }
  | { readonly op: 'flush-set'; readonly set: string }
  | { readonly op: 'delete-set'; readonly set: string }
  | { readonly op: 'add-elements'; readonly set: string; readonly elements: readonly string[] }
  | { readonly op: 'delete-elements'; readonly set: string; readonly elements: readonly string[] }
  | {
      readonly op: 'add-chain';
      readonly chain: string;
      readonly type: NftChain['type'];
      readonly hook: NftChain['hook'];
      readonly priority: number;
    }
  | { readonly op: 'flush-chain'; readonly chain: string }
  | { readonly op: 'delete-chain'; readonly chain: string }
  | { readonly op: 'add-rule'; readonly chain: string; readonly text: string; readonly id: string };

/**
 * The ops that turn `current` into `desired`. `full` (after a failed apply, or when the kernel
 * state is not trusted) rewrites every set and chain, still in one transaction and still
 * without a window: a flush and the re-adds commit together.
 */
export function computeNftTransaction(
  desired: NftState | undefined,
  current: NftState | undefined,
  full = false,
): NftOp[] {
  if (desired === undefined) return current === undefined ? [] : [{ op: 'delete-table' }];
  const cur = current ?? { sets: [], chains: [] };
  const curSets = new Map(cur.sets.map((s) => [s.name, s]));
  const curChains = new Map(cur.chains.map((c) => [c.name, c]));
  const desiredSets = new Set(desired.sets.map((s) => s.name));
  const desiredChains = new Set(desired.chains.map((c) => c.name));

  const addObjects: NftOp[] = [];
  const flushes: NftOp[] = [];
  const recreate: NftOp[] = [];
  const addElements: NftOp[] = [];
  const addRules: NftOp[] = [];
  const deleteElements: NftOp[] = [];
  const deleteObjects: NftOp[] = [];

  // A set whose type changed must be deleted and re-added; every rule referencing it must be
  // flushed first, so that forces all chains to be rebuilt in this same transaction.
  const retyped = desired.sets.filter((d) => {
    const c = curSets.get(d.name);
    return c !== undefined && c.interval !== d.interval;
  });
  const rebuildAllChains = full || retyped.length > 0;

  for (const d of desired.sets) {
    const c = curSets.get(d.name);
    if (c === undefined) {
      addObjects.push({ op: 'add-set', set: d.name, interval: d.interval });
      if (d.elements.length > 0) addElements.push({ op: 'add-elements', set: d.name, elements: d.elements });
    } else if (c.interval !== d.interval) {
      recreate.push({ op: 'delete-set', set: d.name }, { op: 'add-set', set: d.name, interval: d.interval });
      if (d.elements.length > 0) addElements.push({ op: 'add-elements', set: d.name, elements: d.elements });
    } else if (full) {
      flushes.push({ op: 'flush-set', set: d.name });
      if (d.elements.length > 0) addElements.push({ op: 'add-elements', set: d.name, elements: d.elements });
    } else {
      const { missing, unused } = diffSorted(d.elements, c.elements);
      if (missing.length > 0) addElements.push({ op: 'add-elements', set: d.name, elements: missing });
      if (unused.length > 0) deleteElements.push({ op: 'delete-elements', set: d.name, elements: unused });
    }
  }

  for (const d of desired.chains) {
    const c = curChains.get(d.name);
    const spec = {
      op: 'add-chain',
      chain: d.name,
      type: d.type,
      hook: d.hook,
      priority: d.priority,
    } as const;
    const rules: NftOp[] = d.rules.map((r) => ({
      op: 'add-rule',
      chain: d.name,
      text: r.text ?? '',
      id: r.id,
    }));
    if (c === undefined) {
      addObjects.push(spec);
      addRules.push(...rules);
    } else if (c.type !== d.type || c.hook !== d.hook || c.priority !== d.priority) {
      flushes.push({ op: 'flush-chain', chain: d.name });
      recreate.push({ op: 'delete-chain', chain: d.name }, spec);
      addRules.push(...rules);
    } else if (rebuildAllChains || !sameIds(d, c)) {
      flushes.push({ op: 'flush-chain', chain: d.name });
      addRules.push(...rules);
    }
  }

  for (const c of cur.chains) {
    if (!desiredChains.has(c.name)) {
      flushes.push({ op: 'flush-chain', chain: c.name });
      deleteObjects.push({ op: 'delete-chain', chain: c.name });
    }
  }
  // Sets go after chains: a set cannot be deleted while a rule still references it.
  for (const c of cur.sets) {
    if (!desiredSets.has(c.name)) deleteObjects.push({ op: 'delete-set', set: c.name });
  }

  const body = [
    ...addObjects,
    ...flushes,
    ...recreate,
    // Unused elements go before new ones: an interval set refuses an element that overlaps one
    // still in it (widening 203.0.113.10/32 to 203.0.113.0/27), and inside one transaction the
    // order opens no window.
    ...deleteElements,
    ...addElements,
    ...addRules,
    ...deleteObjects,
  ];
  if (body.length === 0) return [];
  // `add table` is idempotent and carries the comment that marks the table as ours.
  return [{ op: 'add-table' }, ...body];
}

function sameIds(a: NftChain, b: NftChain): boolean {
  return a.rules.length === b.rules.length && a.rules.every((r, i) => r.id === b.rules[i]?.id);
}

/** Elements in `desired` but not `current`, and the reverse. Both inputs are sorted lists. */
function diffSorted(
  desired: readonly string[],
  current: readonly string[],
): { missing: string[]; unused: string[] } {
  const have = new Set(current);
  const want = new Set(desired);
  return {
    missing: desired.filter((e) => !have.has(e)),
    unused: current.filter((e) => !want.has(e)),
  };
}

const T = `${NFT_FAMILY} ${NFT_TABLE}`;

/** One op as one line of `nft -f` input. */
export function renderNftOp(op: NftOp): string {
  switch (op.op) {
    case 'add-table':
      return `add table ${T} { comment "${NFT_TABLE_COMMENT}"; }`;
    case 'delete-table':
      return `delete table ${T}`;
    case 'add-set':
      return `add set ${T} ${op.set} { type ipv4_addr;${op.interval ? ' flags interval;' : ''} }`;
    case 'flush-set':
      return `flush set ${T} ${op.set}`;
    case 'delete-set':
      return `delete set ${T} ${op.set}`;
    case 'add-elements':
      return `add element ${T} ${op.set} { ${op.elements.join(', ')} }`;
    case 'delete-elements':
      return `delete element ${T} ${op.set} { ${op.elements.join(', ')} }`;
    case 'add-chain':
      return `add chain ${T} ${op.chain} { type ${op.type} hook ${op.hook} priority ${op.priority}; policy accept; }`;
    case 'flush-chain':
      return `flush chain ${T} ${op.chain}`;
    case 'delete-chain':
      return `delete chain ${T} ${op.chain}`;
    case 'add-rule':
      return `add rule ${T} ${op.chain} ${op.text} comment "${op.id}"`;
    default: {
      const _exhaustive: never = op;
      return _exhaustive;
    }
  }
}

/** The whole transaction as `nft -f` text (empty string for no change). */
export function renderNftTransaction(ops: readonly NftOp[]): string {
  return ops.length === 0 ? '' : ops.map(renderNftOp).join('\n') + '\n';
}

/**
 * A sorted, human-readable dump of a table state, for golden tests and `explain` output: the
 * same state always dumps to the same text whatever order it was built in.
 */
export function dumpNftState(state: NftState | undefined): string {
  if (state === undefined) return `table ${T}: absent\n`;
  const lines: string[] = [`table ${T}`];
  for (const s of [...state.sets].sort(byName)) lines.push(dumpSet(s));
  for (const c of [...state.chains].sort(byName)) {
    lines.push(`chain ${c.name} (${c.type} ${c.hook} ${c.priority})`);
    for (const r of c.rules) lines.push(`  ${r.text ?? '?'}  # ${r.id}`);
  }
  return lines.join('\n') + '\n';
}

function dumpSet(s: NftSet): string {
  return `set ${s.name}${s.interval ? ' (interval)' : ''}: ${s.elements.length === 0 ? '-' : s.elements.join(', ')}`;
}

function byName(a: { name: string }, b: { name: string }): number {
  return compare(a.name, b.name);
}
