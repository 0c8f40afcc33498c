// Options every read command shares (--from, --output) and the source they select. Effectful
// edge only in creating the Kafka client.
import { Option, type Command } from 'commander';
import { cliKafka } from '../context.ts';
import { fileSource, kafkaSource, type LogSource } from '../log-source.ts';

export interface ReadOptions {
  from?: string;
  output: 'table' | 'json';
}

export function withReadOptions(cmd: Command): Command {
  return cmd
    .option('--from <file>', 'read an export file (kseip export --to) instead of Kafka')
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'),
    );
}

export function selectSource(program: Command, opts: ReadOptions): LogSource {
  return opts.from !== undefined
    ? fileSource(opts.from)
    : kafkaSource(cliKafka(program.opts<{ brokers: string }>().brokers));
}
