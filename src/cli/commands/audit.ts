// `kseip audit egress-ip|pod|failovers`: the egress history replayed from cluster-events
// (core/history.ts), or read from the audit index of an export file (core/audit-index.ts: the
// same history, derived by `kseip export`; --replay ignores it). Effectful (reads the log or the
// file, writes stdout); the answers are pure derivations.
import type { Command } from 'commander';
import { fail, type CliContext } from '../context.ts';
import {
  evolveHistory,
  initialHistory,
  selectIntervals,
  type EgressInterval,
  type History,
  type HistoryFilter,
} from '../core/history.ts';
import { selectIndexedHistory } from '../core/audit-index.ts';
import { readAuditIndex } from '../audit-index-file.ts';
import { renderTable } from '../core/render.ts';
import { isDocument, renderDocument, type OutputFormat } from '../core/output.ts';
import { parseTimeArg } from '../topic-records.ts';
import { replayLog } from '../replay-log.ts';
import {
  selectPodRef,
  selectSource,
  splitFrom,
  withNamespace,
  withReadOptions,
  type ReadOptions,
} from './options.ts';

interface WindowOptions extends Omit<ReadOptions, 'from'> {
  from?: string[];
  replay?: boolean;
  at?: string;
  since?: string;
  to?: string;
}

function time(flag: string, text: string | undefined, now: number): number | undefined {
  if (text === undefined) return undefined;
  const t = parseTimeArg(text, now);
  if (t._tag === 'Left') fail(`${flag}: ${t.left.reason}`);
  return t.right;
}

/**
 * The history the query needs. From an export file with an audit index (and no --replay): the
 * index, filtered as the replay would have filtered (core/audit-index.ts); otherwise a replay.
 */
async function history(
  program: Command,
  ctx: CliContext,
  opts: ReadOptions & { replay?: boolean },
  filter: HistoryFilter,
): Promise<History> {
  if (opts.from !== undefined && opts.replay !== true) {
    // Only the index lines that can matter are parsed (see readAuditIndex).
    const mentions =
      filter.pod !== undefined
        ? `"pod":${JSON.stringify(filter.pod)}`
        : filter.egressIP !== undefined
          ? `"egressIP":${JSON.stringify(filter.egressIP)}`
          : filter.intervals === false
            ? '"decision":'
            : undefined;
    const index = readAuditIndex(opts.from, mentions);
    if (index?._tag === 'Left')
      throw new Error(`${opts.from}: ${index.left.reason} (--replay ignores the index)`);
    if (index !== undefined) return selectIndexedHistory(index.right, filter);
  }
  const h = initialHistory(filter);
  await replayLog(await selectSource(program, opts), ctx, {
    onStep: (step, f) => evolveHistory(h, f, step),
  });
  return h;
}

/** `wide` adds how long each closed interval lasted (in the log's own times). */
export function renderIntervals(intervals: readonly EgressInterval[], wide = false): string {
  return renderTable(
    ['FROM', 'TO', 'POD', 'POD-IP', 'NODE', 'EGRESS-IP', 'GATEWAY', 'OFFSETS', ...(wide ? ['DURATION'] : [])],
    intervals.map((iv) => [
      iv.from.time,
      iv.to?.time ?? '(now)',
      iv.pod,
      iv.podIP,
      iv.node,
      iv.egressIP,
      iv.gateway || '(none: dropped)',
      `${iv.from.offset}-${iv.to?.offset ?? ''}`,
      ...(wide
        ? [iv.to === undefined ? '-' : renderDuration(Date.parse(iv.to.time) - Date.parse(iv.from.time))]
        : []),
    ]),
  );
}

/** 8.791s, 31m2.5s, 26h0m3s: exact to the millisecond the log records. */
export function renderDuration(ms: number): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** An answer of the audit commands: a document (json, yaml) or the table (table, wide). */
function print(ctx: CliContext, output: OutputFormat, doc: unknown, table: (wide: boolean) => string): void {
  ctx.write(isDocument(output) ? renderDocument(output, doc) : table(output === 'wide'));
}

const withReplay = (cmd: Command): Command =>
  cmd.option('--replay', "with --from <file>: replay the file's log instead of reading its audit index");

export function registerAuditCommand(program: Command, ctx: CliContext): void {
  const audit = program
    .command('audit')
    .description('who left the cluster as which egress IP, when, through which gateway');
  withReplay(
    withReadOptions(
      audit
        .command('egress-ip')
        .description('pods mapped to an egress IP, as intervals (at a time, in a window, or ever)')
        .argument('<ip>', 'the egress IP')
        .option('--at <time>', 'at this time (RFC 3339 or an age like 10m)')
        .option('--since <time>', 'window start (also: --from <time>)')
        .option('--to <time>', 'window end'),
      true,
    ),
  )
    // --from names the export file on every read command; here a --from that reads as a time
    // (RFC 3339 or an age) is the window start instead, as the issue spells the window.
    .action(async (ip: string, opts: WindowOptions) => {
      const now = ctx.now();
      const split = splitFrom(opts.from, (v) => parseTimeArg(v, now)._tag === 'Right');
      const since = split.time ?? opts.since;
      const at = time('--at', opts.at, now);
      const from = at ?? time('--since', since, now) ?? -Infinity;
      const to = at ?? time('--to', opts.to, now) ?? Infinity;
      const read = {
        output: opts.output,
        ...(opts.replay === true ? { replay: true } : {}),
        ...(split.file === undefined ? {} : { from: split.file }),
      };
      const h = await history(program, ctx, read, { egressIP: ip });
      const rows = selectIntervals(h, from, to);
      print(ctx, opts.output, { egressIP: ip, intervals: rows }, (wide) => renderIntervals(rows, wide));
    });
  withReplay(
    withReadOptions(
      withNamespace(
        audit
          .command('pod')
          .description("a pod's egress history: intervals, egress IPs, gateways")
          .argument('<pod>', 'the pod: namespace/name, or name with -n'),
      ),
    ),
  ).action(async (arg: string, opts: ReadOptions & { replay?: boolean; namespace?: string }) => {
    const pod = selectPodRef(arg, opts.namespace);
    const h = await history(program, ctx, opts, { pod });
    print(ctx, opts.output, { pod, intervals: h.intervals }, (wide) => renderIntervals(h.intervals, wide));
  });
  withReplay(
    withReadOptions(
      audit
        .command('failovers')
        .description('gateway changes: assignments, failovers (with reason) and releases')
        .option('--ip <ip>', 'only this egress IP'),
    ),
  ).action(async (opts: ReadOptions & { ip?: string; replay?: boolean }) => {
    const h = await history(program, ctx, opts, {
      ...(opts.ip === undefined ? {} : { egressIP: opts.ip }),
      intervals: false,
    });
    const rows = h.gatewayDecisions;
    print(ctx, opts.output, { decisions: rows }, (wide) =>
      renderTable(
        [
          'TIME',
          'OFFSET',
          'EGRESS-IP',
          'TYPE',
          'FROM',
          'TO',
          'REASON',
          'STANDBYS',
          ...(wide ? ['SLOT', 'OWNER', 'ID'] : []),
        ],
        rows.map((d) => [
          d.time,
          String(d.offset),
          d.egressIP,
          d.type,
          d.type === 'GatewayAssigned' ? d.previous || '-' : d.from,
          d.type === 'GatewayAssigned' ? d.active : d.type === 'GatewayFailedOver' ? d.to : '-',
          d.type === 'GatewayAssigned' ? '-' : d.reason,
          d.standbys.join(',') || '-',
          ...(wide ? [String(d.slot), d.owner, d.id] : []),
        ]),
      ),
    );
  });
}
