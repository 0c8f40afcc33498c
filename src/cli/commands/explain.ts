// `kseip explain pod <ns/name> [--dest <ip>]`: why the pod does or does not leave as an egress
// IP (core/explain.ts), at the end of the log or at --until. Effectful: reads cluster-events and
// node-status (the agents' apply acks), writes stdout.
import type { Command } from 'commander';
import { decodeNodeApplyStatusValue, type NodeApplyStatus } from '../../contracts/node-reports.ts';
import { TOPICS } from '../../contracts/topics.ts';
import type { CliContext } from '../context.ts';
import { isDocument, renderDocument } from '../core/output.ts';
import { computeExplanation } from '../core/explain.ts';
import { evolveHistory, initialHistory } from '../core/history.ts';
import { replayLog } from '../replay-log.ts';
import { CliExit, EXIT } from './exit.ts';
import { selectPodRef, selectSource, withNamespace, withReadOptions, type ReadOptions } from './options.ts';
import { parseUntil } from './replay.ts';

export function registerExplainCommand(program: Command, ctx: CliContext): void {
  const explain = program.command('explain').description('why something is (or is not) the way it is');
  withReadOptions(
    withNamespace(
      explain
        .command('pod')
        .description('why the pod does or does not leave as an egress IP')
        .argument('<pod>', 'the pod: namespace/name, or name with -n')
        .option('--dest <ip>', 'for traffic to this destination')
        .option('--until <time|offset>', 'explain at this point of the log instead of its end'),
    ),
  ).action(async (arg: string, opts: ReadOptions & { dest?: string; until?: string; namespace?: string }) => {
    const pod = selectPodRef(arg, opts.namespace);
    const until = parseUntil(opts.until, ctx.now());
    const source = await selectSource(program, opts);
    const h = initialHistory({ pod });
    const fold = await replayLog(source, ctx, {
      ...(until === undefined ? {} : { until }),
      onStep: (step, f) => evolveHistory(h, f, step),
    });
    const acks = new Map<string, NodeApplyStatus>();
    await source.read(TOPICS.nodeStatus, (r) => {
      const s = decodeNodeApplyStatusValue(r.value);
      if (s._tag === 'Right' && s.right.ok) {
        const prev = acks.get(s.right.node);
        if (prev === undefined || prev.generation <= s.right.generation) acks.set(s.right.node, s.right);
      }
    });
    const e = computeExplanation(fold.state, pod, opts.dest, acks, h);
    if (isDocument(opts.output)) ctx.write(renderDocument(opts.output, { offset: fold.offset, ...e }));
    else {
      ctx.write(
        `pod ${e.pod}${e.node ? ` on ${e.node}` : ''}${e.podIPs.length > 0 ? ` (${e.podIPs.join(',')})` : ''} at offset ${fold.offset}\n`,
      );
      for (const f of e.findings) ctx.write(`  ${f.verdict}: ${f.message}\n`);
    }
    if (e.findings.some((f) => f.verdict === 'UnknownPod'))
      throw new CliExit(EXIT.unknownPod, `pod ${pod} not found`);
  });
}
