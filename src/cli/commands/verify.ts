// `kseip verify`: replay cluster-events from the start and compare with the recorded decisions
// and node-rules (core/verify.ts). Exit 3 on divergence, printing the first divergent record.
// Effectful: reads three topics, writes stdout.
import type { Command } from 'commander';
import { TOPICS } from '../../events/topics.ts';
import type { CliContext } from '../context.ts';
import type { LogRecord } from '../core/log-file.ts';
import { checkStep, createVerifier, finishVerify, selectBehind } from '../core/verify.ts';
import { replayLog } from '../replay-log.ts';
import { CliExit, EXIT } from './exit.ts';
import { selectSource, withReadOptions, type ReadOptions } from './options.ts';

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  withReadOptions(
    program
      .command('verify')
      .description('replay cluster-events and compare with the recorded decisions and node rules'),
  ).action(async (opts: ReadOptions) => {
    const source = selectSource(program, opts);
    const decisions: LogRecord[] = [];
    const nodeRules: LogRecord[] = [];
    await source.read(TOPICS.decisions, (r) => void decisions.push(r));
    await source.read(TOPICS.nodeRules, (r) => void nodeRules.push(r));
    const v = createVerifier(decisions, nodeRules);
    const fold = await replayLog(source, ctx, { onStep: (step) => checkStep(v, step.outputs) });
    const d = finishVerify(v);
    const summary = {
      ok: d === undefined,
      events: fold.events,
      undecodable: fold.skipped,
      decisions: decisions.length,
      nodeRules: nodeRules.length,
      behind: selectBehind(v),
      ...(d === undefined ? {} : { divergence: d }),
    };
    if (opts.output === 'json') ctx.write(`${JSON.stringify(summary)}\n`);
    else if (d === undefined)
      ctx.write(
        `ok: ${fold.events} events replayed; ${decisions.length} decisions and ${nodeRules.length} node-rules records match${summary.behind > 0 ? ` (the projector is ${summary.behind} decisions behind)` : ''}\n`,
      );
    else
      ctx.write(
        `DIVERGENCE at ${d.topic} offset ${d.offset} key ${d.key ?? '-'}: ${d.reason}\n  recorded: ${d.recorded}\n  expected: ${d.expected}\n`,
      );
    if (d !== undefined) throw new CliExit(EXIT.divergence, `divergence at ${d.topic} offset ${d.offset}`);
  });
}
