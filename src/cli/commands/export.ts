// `kseip export --to <file>`: copy the topics the read commands use into one JSON-lines file
// (core/log-file.ts), so every read command works with --from <file> and no Kafka; then append
// the audit index (core/audit-index.ts), built by replaying cluster-events while they are copied,
// so audits of a long log answer without replaying it. `--from <file>` re-exports a file (to
// add or rebuild its index). Effectful: reads Kafka or a file, writes the file, progress on
// stderr, a summary on stdout.
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { TOPICS } from '../../contracts/topics.ts';
import { fail, type CliContext } from '../context.ts';
import { cliKafka } from '../kafka-connection.ts';
import {
  AUDIT_INDEX_SCHEMA,
  renderIndexBody,
  renderIndexTrailer,
  type IndexTrailer,
} from '../core/audit-index.ts';
import { evolveHistory, initialHistory } from '../core/history.ts';
import { renderLine } from '../core/log-file.ts';
import { renderTable } from '../core/render.ts';
import { isDocument, outputOption, renderDocument, type OutputFormat } from '../core/output.ts';
import { fromOption } from './options.ts';
import { fileSource, kafkaSource } from '../log-source.ts';
import { createReplay, PROGRESS_EVERY } from '../replay-log.ts';

export const EXPORTED_TOPICS = [
  TOPICS.clusterEvents,
  TOPICS.decisions,
  TOPICS.nodeRules,
  TOPICS.nodeStatus,
] as const;

interface ExportOptions {
  to: string;
  from?: string;
  index: boolean;
  output: OutputFormat;
}

export function registerExportCommand(program: Command, ctx: CliContext): void {
  program
    .command('export')
    .description(
      `copy ${EXPORTED_TOPICS.join(', ')} into a JSON-lines file for offline use (--from), with an audit index`,
    )
    .requiredOption('--to <file>', 'the file to write (replaced)')
    .addOption(fromOption(false, 'copy an export file instead of Kafka (adds or rebuilds its audit index)'))
    .option('--no-index', 'leave out the audit index (audits of the file then replay it)')
    .addOption(outputOption('output format of the summary'))
    .action(async (opts: ExportOptions) => {
      if (opts.from !== undefined && path.resolve(opts.from) === path.resolve(opts.to))
        fail('--from and --to name the same file');
      const source = opts.from !== undefined ? fileSource(opts.from) : kafkaSource(await cliKafka(program));
      const history = initialHistory();
      const replay = opts.index
        ? createReplay(ctx, { onStep: (step, f) => evolveHistory(history, f, step) })
        : undefined;
      const fd = openSync(opts.to, 'w');
      const counts: Record<string, number> = {};
      let bytes = 0;
      let index: IndexTrailer | undefined;
      try {
        let buffer: string[] = [];
        const flush = (): void => {
          if (buffer.length === 0) return;
          const chunk = buffer.join('');
          writeSync(fd, chunk);
          bytes += Buffer.byteLength(chunk);
          buffer = [];
        };
        for (const topic of EXPORTED_TOPICS) {
          counts[topic] = 0;
          await source.read(topic, (r) => {
            buffer.push(`${renderLine(r)}\n`);
            if (topic === TOPICS.clusterEvents) replay?.onRecord(r);
            if (++counts[topic]! % PROGRESS_EVERY === 0)
              ctx.writeErr(`exported ${counts[topic]} records of ${topic}\n`);
            if (buffer.length >= 10_000) flush();
          });
          flush();
        }
        if (replay !== undefined) {
          const fold = replay.finish();
          const start = bytes;
          const body = renderIndexBody(history);
          for (const line of body) {
            buffer.push(`${line}\n`);
            if (buffer.length >= 10_000) flush();
          }
          index = {
            schema: AUDIT_INDEX_SCHEMA,
            start,
            upTo: fold.offset,
            events: fold.events + fold.skipped,
            intervals: history.intervals.length,
            decisions: history.gatewayDecisions.length,
          };
          buffer.push(`${renderIndexTrailer(index)}\n`);
          flush();
        }
      } finally {
        closeSync(fd);
      }
      const summary = {
        file: opts.to,
        records: counts,
        index: index === undefined ? null : { intervals: index.intervals, decisions: index.decisions },
      };
      if (isDocument(opts.output)) return ctx.write(renderDocument(opts.output, summary));
      ctx.write(
        renderTable(
          ['TOPIC', 'RECORDS'],
          [
            ...Object.entries(counts).map(([t, n]) => [t, String(n)]),
            [
              'audit index',
              index === undefined
                ? '(none)'
                : `${index.intervals} intervals, ${index.decisions} gateway decisions`,
            ],
          ],
        ),
      );
      ctx.writeErr(`wrote ${opts.to}\n`);
    });
}
