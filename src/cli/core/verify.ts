// `kseip verify`: the replayed outputs compared with what the projector recorded. Pure and
// incremental: `checkStep` is called with each step's outputs; the first divergence is kept.
//
// decisions (kept forever): the recorded records must equal the replayed ones one by one, byte
// for byte (the projector writes JSON.stringify of the same values). A recorded log that ends
// early is "behind" (the projector has not caught up), not a divergence.
// node-rules (compacted: older records per node may be gone): every recorded record must appear,
// in order, among the replayed records of its node; and the last recorded record of each node
// must be the last replayed one unless the projector is behind.
import type { Outputs } from '../../projection/projection.ts';
import type { LogRecord } from './log-file.ts';

export interface Divergence {
  readonly topic: string;
  readonly offset: number;
  readonly key: string | null;
  readonly recorded: string;
  readonly expected: string;
  readonly reason: string;
}

export interface Verifier {
  readonly decisions: readonly LogRecord[];
  next: number;
  /** Per node: recorded node-rules records (in order) and the index of the next to find. */
  readonly rules: Map<string, { records: LogRecord[]; next: number; lastExpected: string }>;
  divergence: Divergence | undefined;
  replayedDecisions: number;
}

const text = (r: LogRecord): string => (r.raw !== undefined ? r.raw : JSON.stringify(r.value));

export function createVerifier(decisions: readonly LogRecord[], nodeRules: readonly LogRecord[]): Verifier {
  const rules = new Map<string, { records: LogRecord[]; next: number; lastExpected: string }>();
  for (const r of nodeRules) {
    const key = r.key ?? '';
    let entry = rules.get(key);
    if (entry === undefined) rules.set(key, (entry = { records: [], next: 0, lastExpected: '' }));
    entry.records.push(r);
  }
  return { decisions, next: 0, rules, divergence: undefined, replayedDecisions: 0 };
}

export function checkStep(v: Verifier, outputs: Outputs): void {
  if (v.divergence !== undefined) return;
  for (const d of outputs.decisions) {
    v.replayedDecisions++;
    const expected = JSON.stringify(d);
    const rec = v.decisions[v.next];
    if (rec === undefined) continue; // behind
    v.next++;
    const recorded = text(rec);
    if (recorded !== expected) {
      v.divergence = {
        topic: rec.topic,
        offset: rec.offset,
        key: rec.key,
        recorded,
        expected,
        reason: `decision ${d.id} differs`,
      };
      return;
    }
  }
  for (const r of outputs.nodeRules) {
    const expected = JSON.stringify(r);
    const entry = v.rules.get(r.node);
    if (entry === undefined) continue;
    entry.lastExpected = expected;
    const rec = entry.records[entry.next];
    if (rec !== undefined && text(rec) === expected) entry.next++;
  }
}

/** After the replay: anything recorded that the replay never produced, in recorded order. */
export function finishVerify(v: Verifier): Divergence | undefined {
  if (v.divergence !== undefined) return v.divergence;
  const extra = v.decisions[v.next];
  if (extra !== undefined)
    return {
      topic: extra.topic,
      offset: extra.offset,
      key: extra.key,
      recorded: text(extra),
      expected: '(nothing: the replay produced no further decision)',
      reason: 'recorded decision the replay never produced',
    };
  const unmatched: LogRecord[] = [];
  for (const entry of v.rules.values()) {
    const rec = entry.records[entry.next];
    if (rec !== undefined) unmatched.push(rec);
  }
  unmatched.sort((a, b) => a.offset - b.offset);
  const first = unmatched[0];
  if (first !== undefined)
    return {
      topic: first.topic,
      offset: first.offset,
      key: first.key,
      recorded: text(first),
      expected: v.rules.get(first.key ?? '')?.lastExpected ?? '(no replayed node rules for this node)',
      reason: `node rules of ${first.key ?? '?'} never produced by the replay (in this order)`,
    };
  return undefined;
}

export function selectBehind(v: Verifier): number {
  return v.replayedDecisions - v.next;
}
