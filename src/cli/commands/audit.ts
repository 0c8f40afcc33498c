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
import { parseTimeArg } from '../topic-records.ts';
import { replayLog } from '../replay-log.ts';
import { selectSource, splitFrom, withReadOptions, type ReadOptions } from './options.ts';

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
  await replayLog(selectSource(program, opts), ctx, {
    onStep: (step, f) => evolveHistory(h, f, step),
  });
  return h;
}

export function renderIntervals(intervals: readonly EgressInterval[]): string {
  return renderTable(
    ['FROM', 'TO', 'POD', 'POD-IP', 'NODE', 'EGRESS-IP', 'GATEWAY', 'OFFSETS'],
    intervals.map((iv) => [
      iv.from.time,
      iv.to?.time ?? '(now)',
      iv.pod,
      iv.podIP,
      iv.node,
      iv.egressIP,
      iv.gateway || '(none: dropped)',
      `${iv.from.offset}-${iv.to?.offset ?? ''}`,
    ]),
  );
}

const json = (value: unknown): string => `${JSON.stringify(value)}\n`;

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
      ctx.write(opts.output === 'json' ? json({ egressIP: ip, intervals: rows }) : renderIntervals(rows));
    });
  withReplay(
    withReadOptions(
      audit
        .command('pod')
        .description("a pod's egress history: intervals, egress IPs, gateways")
        .argument('<ns/name>', 'the pod'),
    ),
  ).action(async (pod: string, opts: ReadOptions & { replay?: boolean }) => {
    if (!/^[^/]+\/[^/]+$/.test(pod)) fail(`pod ${JSON.stringify(pod)}: expected namespace/name`);
    const h = await history(program, ctx, opts, { pod });
    ctx.write(opts.output === 'json' ? json({ pod, intervals: h.intervals }) : renderIntervals(h.intervals));
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
    if (opts.output === 'json') return ctx.write(json({ decisions: rows }));
    ctx.write(
      renderTable(
        ['TIME', 'OFFSET', 'EGRESS-IP', 'TYPE', 'FROM', 'TO', 'REASON', 'STANDBYS'],
        rows.map((d) => [
          d.time,
          String(d.offset),
          d.egressIP,
          d.type,
          d.type === 'GatewayAssigned' ? d.previous || '-' : d.from,
          d.type === 'GatewayAssigned' ? d.active : d.type === 'GatewayFailedOver' ? d.to : '-',
          d.type === 'GatewayAssigned' ? '-' : d.reason,
          d.standbys.join(',') || '-',
        ]),
      ),
    );
  });
}
