// `kseip what-if -f policy.yaml`: what the live log plus a proposed change would decide. Pure:
// the change (StaticEgressIP, ClusterStaticEgressIP or StaticEgressIPPool manifests, parsed by
// the watcher's own parser, src/watcher/parse.ts) becomes the cluster events the watcher would
// write, folded after the log at the next offsets; the result is diffed against the state
// before. Nothing is written anywhere.
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import { CLUSTER_EVENTS_SCHEMA, type ClusterEvent } from '../../contracts/cluster-events.ts';
import type { NodeRules } from '../../contracts/node-rules.ts';
import { selectAssignments } from '../../projection/projection.ts';
import { selectAllNodeRules } from '../../projection/queries.ts';
import { parseObject, type AnyParsed } from '../../watcher/parse.ts';
import type { ObjectKind } from '../../contracts/primitives.ts';
import { stepFold, type Fold } from './fold.ts';

export interface WhatIfError {
  readonly _tag: 'WhatIfError';
  readonly reason: string;
}

const KINDS: readonly string[] = ['StaticEgressIP', 'ClusterStaticEgressIP', 'StaticEgressIPPool'];

/** Manifests (already YAML-parsed documents) → the Observed events the watcher would publish. */
export function parseChange(docs: readonly unknown[]): Either<WhatIfError, AnyParsed[]> {
  const out: AnyParsed[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc === null || doc === undefined) continue;
    const kind = (doc as { kind?: unknown }).kind;
    if (typeof kind !== 'string' || !KINDS.includes(kind))
      return left({
        _tag: 'WhatIfError',
        reason: `document ${i + 1}: kind ${JSON.stringify(kind)}: expected one of ${KINDS.join(', ')}`,
      });
    const parsed = parseObject(kind as ObjectKind, doc);
    if (parsed._tag === 'Left')
      return left({
        _tag: 'WhatIfError',
        reason: `document ${i + 1}: ${parsed.left.reason.replace(/\n/g, '; ')}`,
      });
    out.push(parsed.right);
  }
  if (out.length === 0)
    return left({
      _tag: 'WhatIfError',
      reason: 'no StaticEgressIP, ClusterStaticEgressIP or StaticEgressIPPool in the file',
    });
  return right(out);
}

/** The events as the current watcher leader would write them (its term, the log's last time). */
export function computeChangeEvents(f: Fold, changes: readonly AnyParsed[]): ClusterEvent[] {
  return changes.map((c, i) => ({
    schema: CLUSTER_EVENTS_SCHEMA,
    id: `what-if-${f.offset + 1 + i}`,
    observedAt: f.time === '' ? new Date(0).toISOString() : f.time,
    producer: { component: 'watcher', term: f.terms.get('watcher') ?? 0 },
    ...c,
  }));
}

export interface Snapshot {
  readonly assignments: Record<string, { active: string; standbys: string[]; slot: number }>;
  readonly nodeRules: Record<string, NodeRules>;
}

export function selectSnapshot(f: Fold): Snapshot {
  return {
    assignments: structuredClone(selectAssignments(f.state)),
    nodeRules: selectAllNodeRules(f.state),
  };
}

export interface WhatIfResult {
  readonly events: readonly ClusterEvent[];
  readonly assignments: {
    egressIP: string;
    before: Snapshot['assignments'][string] | null;
    after: Snapshot['assignments'][string] | null;
  }[];
  /** Nodes whose rules would change: their rules before and after (after: what the projector would emit). */
  readonly nodeRules: { node: string; before: NodeRules | null; after: NodeRules | null }[];
  readonly decisions: readonly unknown[];
}

/** Folds the change into `f` (consumed) and diffs. */
export function computeWhatIf(f: Fold, changes: readonly AnyParsed[]): WhatIfResult {
  const before = selectSnapshot(f);
  const events = computeChangeEvents(f, changes);
  const decisions: unknown[] = [];
  let offset = f.offset;
  for (const e of events) decisions.push(...stepFold(f, e, ++offset).outputs.decisions);
  const after = selectSnapshot(f);
  const ips = [...new Set([...Object.keys(before.assignments), ...Object.keys(after.assignments)])].sort();
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  const assignments = ips
    .map((ip) => ({
      egressIP: ip,
      before: before.assignments[ip] ?? null,
      after: after.assignments[ip] ?? null,
    }))
    .filter((d) => !same(d.before, d.after));
  const nodes = [...new Set([...Object.keys(before.nodeRules), ...Object.keys(after.nodeRules)])].sort();
  const nodeRules = nodes
    .map((node) => ({ node, before: before.nodeRules[node] ?? null, after: after.nodeRules[node] ?? null }))
    .filter((d) => !same(d.before, d.after));
  return { events, assignments, nodeRules, decisions };
}
