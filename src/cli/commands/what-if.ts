// `kseip what-if -f policy.yaml`: fold the log plus the proposed change and print what would
// differ: assignments and per-node rules (core/what-if.ts). Writes nothing but stdout.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { fail, type CliContext } from '../context.ts';
import { renderTable } from '../core/render.ts';
import { isDocument, renderDocument } from '../core/output.ts';
import { computeWhatIf, parseChange } from '../core/what-if.ts';
import { replayLog } from '../replay-log.ts';
import { selectSource, withReadOptions, type ReadOptions } from './options.ts';

export function registerWhatIfCommand(program: Command, ctx: CliContext): void {
  withReadOptions(
    program
      .command('what-if')
      .description('what the log plus a proposed policy/pool change would decide (writes nothing)')
      .requiredOption(
        '-f, --file <policy.yaml>',
        'StaticEgressIP, ClusterStaticEgressIP or StaticEgressIPPool manifests',
      ),
  ).action(async (opts: ReadOptions & { file: string }) => {
    let docs: unknown[];
    try {
      docs = parseAllDocuments(readFileSync(opts.file, 'utf8')).map((d) => d.toJS() as unknown);
    } catch (err) {
      fail(`${opts.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const change = parseChange(docs);
    if (change._tag === 'Left') fail(`${opts.file}: ${change.left.reason}`);
    const fold = await replayLog(await selectSource(program, opts), ctx);
    const result = computeWhatIf(fold, change.right);
    if (isDocument(opts.output)) return ctx.write(renderDocument(opts.output, result));
    ctx.write(
      `what-if after offset ${result.events[0] === undefined ? '-' : fold.offset - result.events.length}: ${result.events.map((e) => `${e.type} ${e.object.namespace ? `${e.object.namespace}/` : ''}${e.object.name}`).join(', ')}\n\nassignments:\n`,
    );
    const a = (x: { active: string; standbys: string[] } | null): string =>
      x === null
        ? '(unused)'
        : `${x.active || '(none)'}${x.standbys.length > 0 ? ` +${x.standbys.join(',')}` : ''}`;
    ctx.write(
      renderTable(
        ['EGRESS-IP', 'BEFORE', 'AFTER'],
        result.assignments.map((d) => [d.egressIP, a(d.before), a(d.after)]),
      ),
    );
    ctx.write('\nnode rules:\n');
    const steers = (
      r: { steers: { egressIP: string; gatewayNode: string; podIPs: string[] }[] } | null,
    ): string =>
      r === null || r.steers.length === 0
        ? '-'
        : r.steers.map((s) => `${s.egressIP}→${s.gatewayNode || 'drop'}[${s.podIPs.join(',')}]`).join(' ');
    const held = (r: { egressIPs: { egressIP: string }[] } | null): string =>
      r === null || r.egressIPs.length === 0 ? '-' : r.egressIPs.map((e) => e.egressIP).join(',');
    ctx.write(
      renderTable(
        ['NODE', 'STEERS BEFORE', 'STEERS AFTER', 'HOLDS BEFORE', 'HOLDS AFTER'],
        result.nodeRules.map((d) => [
          d.node,
          steers(d.before),
          steers(d.after),
          held(d.before),
          held(d.after),
        ]),
      ),
    );
  });
}
