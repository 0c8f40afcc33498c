// `kseip verify`: replay cluster-events from the start and compare with the recorded decisions
// and node-rules (core/verify.ts), and, for an export file with an audit index, the index with
// the replayed history (core/audit-index.ts). Exit 3 on divergence, printing the first divergent
// record. Effectful: reads three topics (and the index), writes stdout.
import type { Command } from 'commander';
import { TOPICS } from '../../contracts/topics.ts';
import type { CliContext } from '../context.ts';
import type { LogRecord } from '../core/log-file.ts';
import { checkStep, createVerifier, finishVerify, selectBehind, type Divergence } from '../core/verify.ts';
import { selectIndexDivergence } from '../core/audit-index.ts';
import { evolveHistory, initialHistory } from '../core/history.ts';
import { readAuditIndex } from '../audit-index-file.ts';
import { replayLog } from '../replay-log.ts';
import { isDocument, renderDocument } from '../core/output.ts';
import { CliExit, EXIT } from './exit.ts';
import { selectSource, withReadOptions, type ReadOptions } from './options.ts';

export function registerVerifyCommand(program: Command, ctx: CliContext): void {
  withReadOptions(
    program
      .command('verify')
      .description('replay cluster-events and compare with the recorded decisions and node rules'),
  ).action(async (opts: ReadOptions) => {
    const source = await selectSource(program, opts);
    const decisions: LogRecord[] = [];
    const nodeRules: LogRecord[] = [];
    await source.read(TOPICS.decisions, (r) => void decisions.push(r));
    await source.read(TOPICS.nodeRules, (r) => void nodeRules.push(r));
    const v = createVerifier(decisions, nodeRules);
    // An index that cannot be read (a file edited by hand: its byte offsets moved) is itself a
    // divergence, reported after any divergent record, which says more.
    const index = opts.from === undefined ? undefined : readAuditIndex(opts.from);
    const h = initialHistory();
    const fold = await replayLog(source, ctx, {
      onStep: (step, f) => {
        checkStep(v, step.outputs);
        if (index !== undefined) evolveHistory(h, f, step);
      },
    });
    const indexed =
      index === undefined
        ? undefined
        : index._tag === 'Left'
          ? { line: 0, recorded: '(unreadable)', expected: '(a readable index)', reason: index.left.reason }
          : selectIndexDivergence(index.right, h, fold.offset, fold.events + fold.skipped);
    const d: Divergence | undefined =
      finishVerify(v) ??
      (indexed === undefined
        ? undefined
        : {
            topic: 'audit index',
            offset: indexed.line,
            key: null,
            recorded: indexed.recorded,
            expected: indexed.expected,
            reason: indexed.reason,
          });
    const summary = {
      ok: d === undefined,
      events: fold.events,
      undecodable: fold.skipped,
      decisions: decisions.length,
      nodeRules: nodeRules.length,
      behind: selectBehind(v),
      ...(index === undefined
        ? {}
        : { auditIndex: { intervals: h.intervals.length, decisions: h.gatewayDecisions.length } }),
      ...(d === undefined ? {} : { divergence: d }),
    };
    if (isDocument(opts.output)) ctx.write(renderDocument(opts.output, summary));
    else if (d === undefined)
      ctx.write(
        `ok: ${fold.events} events replayed; ${decisions.length} decisions and ${nodeRules.length} node-rules records match${index === undefined ? '' : `, and so does the audit index (${h.intervals.length} intervals)`}${summary.behind > 0 ? ` (the projector is ${summary.behind} decisions behind)` : ''}\n`,
      );
    else
      ctx.write(
        `DIVERGENCE at ${d.topic === 'audit index' ? `audit index line ${d.offset}` : `${d.topic} offset ${d.offset} key ${d.key ?? '-'}`}: ${d.reason}\n  recorded: ${d.recorded}\n  expected: ${d.expected}\n`,
      );
    if (d !== undefined)
      throw new CliExit(
        EXIT.divergence,
        `divergence at ${d.topic === 'audit index' ? `audit index line ${d.offset}` : `${d.topic} offset ${d.offset}`}`,
      );
  });
}
