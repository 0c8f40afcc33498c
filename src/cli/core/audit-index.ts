// The audit index of an export file: the egress history of the whole log (every interval of
// every pod and egress IP, and every gateway decision), derived by the same replay the audit
// commands run (history.ts, no filter) and appended to the file by `kseip export`. It is a read
// model of the log, like the projector's outputs: `audit` answers from it without folding a
// million events, `verify` re-derives it and reports the first difference, and `--replay`
// ignores it. Pure: rendering, parsing and the per-query selections.
//
// Layout, after the topic records (whose lines start with {"topic":…, so readers of topics skip
// these without parsing them):
//   {"index":"audit","interval":{…EgressInterval}}        one per interval, in opening order
//   {"index":"audit","decision":{…GatewayDecision, time}} one per gateway decision, in log order
//   {"index":"audit","trailer":{schema, start, upTo, events, intervals, decisions}}   last line
// `start` is the byte offset of the first index line, so a reader seeks there from the trailer
// and never reads the records. `upTo` is the last cluster-events offset folded, `events` the
// number of cluster-events records (a file whose records were cut or extended no longer matches).
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import type { EgressInterval, GatewayDecision, History } from './history.ts';

export const AUDIT_INDEX_SCHEMA = 1;
export const INDEX_LINE_PREFIX = '{"index":"audit",';

export interface IndexTrailer {
  readonly schema: number;
  readonly start: number;
  readonly upTo: number;
  readonly events: number;
  readonly intervals: number;
  readonly decisions: number;
}

export interface AuditIndex {
  readonly trailer: IndexTrailer;
  readonly intervals: readonly EgressInterval[];
  readonly decisions: readonly (GatewayDecision & { time: string })[];
}

export interface IndexError {
  readonly _tag: 'IndexError';
  readonly reason: string;
}

const fail = (reason: string): Either<IndexError, never> => left({ _tag: 'IndexError', reason });

/** The index lines of an unfiltered history, without the trailer (which needs the byte offset). */
export function renderIndexBody(h: History): string[] {
  if (h.filter.egressIP !== undefined || h.filter.pod !== undefined || h.filter.intervals === false)
    throw new Error('an audit index is built from the unfiltered history');
  return [
    ...h.intervals.map((iv) => `${INDEX_LINE_PREFIX}"interval":${JSON.stringify(iv)}}`),
    ...h.gatewayDecisions.map((d) => `${INDEX_LINE_PREFIX}"decision":${JSON.stringify(d)}}`),
  ];
}

export function renderIndexTrailer(t: IndexTrailer): string {
  return `${INDEX_LINE_PREFIX}"trailer":${JSON.stringify(t)}}`;
}

export function parseTrailer(line: string): Either<IndexError, IndexTrailer> {
  if (!line.startsWith(`${INDEX_LINE_PREFIX}"trailer":`)) return fail('no audit index trailer');
  let t: Partial<IndexTrailer>;
  try {
    t = (JSON.parse(line) as { trailer: Partial<IndexTrailer> }).trailer;
  } catch (err) {
    return fail(`audit index trailer is not JSON: ${(err as Error).message}`);
  }
  const fields = ['schema', 'start', 'upTo', 'events', 'intervals', 'decisions'] as const;
  if (typeof t !== 'object' || t === null || fields.some((k) => typeof t[k] !== 'number'))
    return fail(`audit index trailer: expected numbers ${fields.join(', ')}`);
  if (t.schema !== AUDIT_INDEX_SCHEMA)
    return fail(`audit index schema ${t.schema}: this kseip reads schema ${AUDIT_INDEX_SCHEMA}`);
  return right(t as IndexTrailer);
}

/**
 * The body lines (between `start` and the trailer) into the index; checks the counts unless
 * `partial` (the reader kept only the lines a query needs, and counted the rest itself).
 */
export function parseIndexBody(
  trailer: IndexTrailer,
  lines: readonly string[],
  partial = false,
): Either<IndexError, AuditIndex> {
  const intervals: EgressInterval[] = [];
  const decisions: (GatewayDecision & { time: string })[] = [];
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    if (!line.startsWith(INDEX_LINE_PREFIX)) return fail(`audit index line ${i + 1}: not an index line`);
    let o: { interval?: EgressInterval; decision?: GatewayDecision & { time: string } };
    try {
      o = JSON.parse(line) as typeof o;
    } catch (err) {
      return fail(`audit index line ${i + 1}: not JSON: ${(err as Error).message}`);
    }
    if (o.interval !== undefined) intervals.push(o.interval);
    else if (o.decision !== undefined) decisions.push(o.decision);
    else return fail(`audit index line ${i + 1}: neither an interval nor a decision`);
  }
  if (!partial && (intervals.length !== trailer.intervals || decisions.length !== trailer.decisions))
    return fail(
      `audit index holds ${intervals.length} intervals and ${decisions.length} decisions, its trailer says ${trailer.intervals} and ${trailer.decisions}`,
    );
  return right({ trailer, intervals, decisions });
}

// ---- the queries: the same answers the filtered replay gives (history.ts) --------------------------

/** audit egress-ip: that IP's intervals (to be windowed with selectIntervals). */
export function selectIndexedHistory(
  index: AuditIndex,
  filter: { egressIP?: string; pod?: string },
): History {
  return {
    filter,
    intervals: index.intervals.filter(
      (iv) =>
        (filter.egressIP === undefined || iv.egressIP === filter.egressIP) &&
        (filter.pod === undefined || iv.pod === filter.pod),
    ),
    open: new Map(),
    gatewayDecisions: index.decisions.filter(
      (d) => filter.egressIP === undefined || d.egressIP === filter.egressIP,
    ),
  };
}

/** verify: the replayed (unfiltered) history against the index; the first difference, if any. */
export function selectIndexDivergence(
  index: AuditIndex,
  replayed: History,
  upTo: number,
  events: number,
): { line: number; recorded: string; expected: string; reason: string } | undefined {
  if (index.trailer.upTo !== upTo || index.trailer.events !== events)
    return {
      line: index.intervals.length + index.decisions.length + 1,
      recorded: renderIndexTrailer(index.trailer),
      expected: `upTo ${upTo}, events ${events}`,
      reason: 'the audit index was built from another log',
    };
  const expected = renderIndexBody(replayed);
  const recorded = [
    ...index.intervals.map((iv) => `${INDEX_LINE_PREFIX}"interval":${JSON.stringify(iv)}}`),
    ...index.decisions.map((d) => `${INDEX_LINE_PREFIX}"decision":${JSON.stringify(d)}}`),
  ];
  for (let i = 0; i < Math.max(expected.length, recorded.length); i++)
    if (expected[i] !== recorded[i])
      return {
        line: i + 1,
        recorded: recorded[i] ?? '(nothing)',
        expected: expected[i] ?? '(nothing)',
        reason: 'audit index differs from the replayed history',
      };
  return undefined;
}
