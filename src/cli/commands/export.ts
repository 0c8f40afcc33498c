// `kseip export --to <file>`: copy the topics the read commands use into one JSON-lines file
// (core/log-file.ts), so every read command works with --from <file> and no Kafka. Effectful.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import { TOPICS } from '../../events/topics.ts';
import { cliKafka, type CliContext } from '../context.ts';
import { renderLine } from '../core/log-file.ts';
import { kafkaSource } from '../log-source.ts';
import { PROGRESS_EVERY } from '../replay-log.ts';

export const EXPORTED_TOPICS = [
  TOPICS.clusterEvents,
  TOPICS.decisions,
  TOPICS.nodeRules,
  TOPICS.nodeStatus,
] as const;

export function registerExportCommand(program: Command, ctx: CliContext): void {
  program
    .command('export')
    .description(`copy ${EXPORTED_TOPICS.join(', ')} into a JSON-lines file for offline use (--from)`)
    .requiredOption('--to <file>', 'the file to write (replaced)')
    .action(async (opts: { to: string }) => {
      const source = kafkaSource(cliKafka(program.opts<{ brokers: string }>().brokers));
      const fd = openSync(opts.to, 'w');
      const counts: Record<string, number> = {};
      try {
        let buffer: string[] = [];
        const flush = (): void => {
          if (buffer.length > 0) writeSync(fd, buffer.join(''));
          buffer = [];
        };
        for (const topic of EXPORTED_TOPICS) {
          counts[topic] = 0;
          await source.read(topic, (r) => {
            buffer.push(`${renderLine(r)}\n`);
            if (++counts[topic]! % PROGRESS_EVERY === 0) {
              flush();
              ctx.writeErr(`exported ${counts[topic]} records of ${topic}\n`);
            }
            if (buffer.length >= 10_000) flush();
          });
          flush();
        }
      } finally {
        closeSync(fd);
      }
      ctx.writeErr(
        `${opts.to}: ${Object.entries(counts)
          .map(([t, n]) => `${n} ${t}`)
          .join(', ')}\n`,
      );
    });
}
