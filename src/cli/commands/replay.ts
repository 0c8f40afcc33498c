// `kseip replay --until <time|offset>`: rebuild the projection at that point of cluster-events
// and print the assignments: egress IP → active gateway, standbys, slot, and the pods it carries
// (namespace/name, pod IP, node). Effectful (reads the log, writes stdout).
import type { Command } from 'commander';
import { fail, type CliContext } from '../context.ts';
import type { Fold, Until } from '../core/fold.ts';
import { renderTable } from '../core/render.ts';
import { isDocument, renderDocument } from '../core/output.ts';
import { selectAssignments } from '../../projection/projection.ts';
import { parseTimeArg } from '../topic-records.ts';
import { replayLog } from '../replay-log.ts';
import { selectSource, withReadOptions, type ReadOptions } from './options.ts';

export function parseUntil(text: string | undefined, nowMs: number): Until | undefined {
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return { kind: 'offset', offset: Number(text) };
  const t = parseTimeArg(text, nowMs);
  if (t._tag === 'Left') fail(`--until: ${t.left.reason} nor an offset`);
  return { kind: 'time', ms: t.right };
}

export interface AssignmentView {
  egressIP: string;
  active: string;
  standbys: string[];
  slot: number;
  pods: { pod: string; podIP: string; node: string }[];
}

/** Pure: the assignments of the folded state, with the pods the node rules steer to each IP. */
export function selectAssignmentViews(f: Fold): AssignmentView[] {
  const byIP = new Map<string, AssignmentView['pods']>();
  for (const [node, rules] of [...f.latestRules].sort(([a], [b]) => (a < b ? -1 : 1)))
    for (const s of rules.steers)
      for (const podIP of s.podIPs) {
        let pods = byIP.get(s.egressIP);
        if (pods === undefined) byIP.set(s.egressIP, (pods = []));
        pods.push({ pod: f.podAt.get(`${node}|${podIP}`) ?? '?', podIP, node });
      }
  return Object.entries(selectAssignments(f.state)).map(([egressIP, a]) => ({
    egressIP,
    active: a.active,
    standbys: a.standbys,
    slot: a.slot,
    pods: (byIP.get(egressIP) ?? []).sort((x, y) =>
      x.pod < y.pod ? -1 : x.pod > y.pod ? 1 : x.podIP < y.podIP ? -1 : 1,
    ),
  }));
}

/** `wide` adds each egress IP's slot (its mark and table index on the nodes, see node-rules.ts). */
export function renderAssignments(f: Fold, views: readonly AssignmentView[], wide = false): string {
  const head = `at offset ${f.offset} (${f.time || '-'}), ${f.events} events${f.skipped > 0 ? `, ${f.skipped} undecodable skipped` : ''}\n`;
  const rows = views.flatMap((v) =>
    (v.pods.length === 0 ? [undefined] : v.pods).map((p, i) => [
      i === 0 ? v.egressIP : '',
      i === 0 ? v.active || '(none: dropped)' : '',
      i === 0 ? v.standbys.join(',') || '-' : '',
      p?.pod ?? '-',
      p?.podIP ?? '-',
      p?.node ?? '-',
      ...(wide ? [i === 0 ? String(v.slot) : ''] : []),
    ]),
  );
  return (
    head +
    renderTable(['EGRESS-IP', 'ACTIVE', 'STANDBYS', 'POD', 'POD-IP', 'NODE', ...(wide ? ['SLOT'] : [])], rows)
  );
}

export function registerReplayCommand(program: Command, ctx: CliContext): void {
  withReadOptions(
    program
      .command('replay')
      .description('rebuild the view at a point of the log and print the assignments')
      .option(
        '--until <time|offset>',
        'stop after this cluster-events offset, or after this time (RFC 3339 or an age like 10m)',
      ),
  ).action(async (opts: ReadOptions & { until?: string }) => {
    const until = parseUntil(opts.until, ctx.now());
    const fold = await replayLog(
      await selectSource(program, opts),
      ctx,
      until === undefined ? {} : { until },
    );
    const views = selectAssignmentViews(fold);
    ctx.write(
      isDocument(opts.output)
        ? renderDocument(opts.output, {
            offset: fold.offset,
            time: fold.time,
            events: fold.events,
            assignments: views,
          })
        : renderAssignments(fold, views, opts.output === 'wide'),
    );
  });
}
