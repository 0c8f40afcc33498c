// `kseip explain pod <ns/name> [--dest <ip>]`: why the pod does or does not leave as an egress
// IP (core/explain.ts), at the end of the log or at --until. Effectful: reads cluster-events and
// node-status (the agents' apply acks), writes stdout.
import type { Command } from 'commander';
import { decodeWith } from '../../contracts/decode.ts';
import { NodeApplyStatus } from '../../contracts/node-reports.ts';
import { TOPICS } from '../../contracts/topics.ts';
import { fail, type CliContext } from '../context.ts';
import { computeExplanation } from '../core/explain.ts';
import { evolveHistory, initialHistory } from '../core/history.ts';
import { replayLog } from '../replay-log.ts';
import { CliExit, EXIT } from './exit.ts';
import { selectSource, withReadOptions, type ReadOptions } from './options.ts';
import { parseUntil } from './replay.ts';

export function registerExplainCommand(program: Command, ctx: CliContext): void {
  const explain = program.command('explain').description('why something is (or is not) the way it is');
  withReadOptions(
    explain
      .command('pod')
      .description('why the pod does or does not leave as an egress IP')
      .argument('<ns/name>', 'the pod')
      .option('--dest <ip>', 'for traffic to this destination')
      .option('--until <time|offset>', 'explain at this point of the log instead of its end'),
  ).action(async (pod: string, opts: ReadOptions & { dest?: string; until?: string }) => {
    if (!/^[^/]+\/[^/]+$/.test(pod)) fail(`pod ${JSON.stringify(pod)}: expected namespace/name`);
    const until = parseUntil(opts.until, ctx.now());
    const source = selectSource(program, opts);
    const h = initialHistory({ pod });
    const fold = await replayLog(source, ctx, {
      ...(until === undefined ? {} : { until }),
      onStep: (step, f) => evolveHistory(h, f, step),
    });
    const acks = new Map<string, NodeApplyStatus>();
    await source.read(TOPICS.nodeStatus, (r) => {
      const s = decodeWith(NodeApplyStatus, r.value);
      if (s._tag === 'Right' && s.right.ok) {
        const prev = acks.get(s.right.node);
        if (prev === undefined || prev.generation <= s.right.generation) acks.set(s.right.node, s.right);
      }
    });
    const e = computeExplanation(fold.state, pod, opts.dest, acks, h);
    if (opts.output === 'json') ctx.write(`${JSON.stringify({ offset: fold.offset, ...e })}\n`);
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
