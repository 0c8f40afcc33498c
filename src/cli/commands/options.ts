// Options every read command shares (--from, --output) and the source they select. Effectful
// edge only in creating the Kafka client.
import { Option, type Command } from 'commander';
import { cliKafka } from '../context.ts';
import { fileSource, kafkaSource, type LogSource } from '../log-source.ts';

export interface ReadOptions {
  from?: string;
  output: 'table' | 'json';
}

/**
 * `timeWindow`: the command also takes the window start as --from <time> (audit egress-ip, as
 * the issue spells it); --from is then repeatable and each value is sorted into a time or a file
 * by `splitFrom`.
 */
export function withReadOptions(cmd: Command, timeWindow = false): Command {
  const withFrom = timeWindow
    ? cmd.option(
        '--from <file|time>',
        'an export file to read instead of Kafka, or (if it reads as RFC 3339 or an age) the window start',
        (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
      )
    : cmd.option('--from <file>', 'read an export file (kseip export --to) instead of Kafka');
  return withFrom.addOption(
    new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'),
  );
}

/** --from values of a timeWindow command: the file (last one given) and the window start. */
export function splitFrom(
  values: readonly string[] | undefined,
  isTime: (v: string) => boolean,
): { file?: string; time?: string } {
  const out: { file?: string; time?: string } = {};
  for (const v of values ?? [])
    if (isTime(v)) out.time = v;
    else out.file = v;
  return out;
}

export function selectSource(program: Command, opts: ReadOptions): LogSource {
  return opts.from !== undefined
    ? fileSource(opts.from)
    : kafkaSource(cliKafka(program.opts<{ brokers: string }>().brokers));
}
