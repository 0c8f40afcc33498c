// Options every read command shares (--from, --output) and the source they select. Effectful
// edge only in creating the Kafka client (and, for --from, checking that the file exists).
import { existsSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { fail } from '../context.ts';
import { cliKafka } from '../kafka-connection.ts';
import { fileSource, kafkaSource, type LogSource } from '../log-source.ts';
import { parseFromArg } from '../core/from-arg.ts';
import { outputOption, type OutputFormat } from '../core/output.ts';

export interface ReadOptions {
  from?: string;
  output: OutputFormat;
}

/**
 * --from, checked as it is parsed (parseFromArg: a mistyped time or a missing file is a usage
 * error naming the accepted formats). `timeWindow`: the command also takes the window start as
 * --from <time> (audit egress-ip, as the issue spells it); --from is then repeatable and each
 * value is sorted into a time or a file by `splitFrom`.
 */
export function fromOption(
  timeWindow = false,
  what = 'read an export file (kseip export --to) instead of Kafka',
): Option {
  const check = (v: string): string => {
    const parsed = parseFromArg(v, { acceptsTime: timeWindow, nowMs: Date.now(), fileExists: existsSync });
    if (parsed._tag === 'Left') throw new InvalidArgumentError(parsed.left);
    return v;
  };
  return timeWindow
    ? new Option(
        '--from <file|time>',
        'an export file to read instead of Kafka, or (if it reads as RFC 3339 or an age) the window start',
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), check(v)])
    : new Option('--from <file>', what).argParser(check);
}

export function withReadOptions(cmd: Command, timeWindow = false): Command {
  return cmd.addOption(fromOption(timeWindow)).addOption(outputOption());
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

/** -n/--namespace for a command whose argument is a pod: `-n shop web-0` or `shop/web-0`. */
export const withNamespace = (cmd: Command): Command =>
  cmd.option('-n, --namespace <namespace>', 'the namespace of a pod given by name only (default "default")');

/** "ns/name" from a pod argument and -n, as kubectl reads them; a usage error if they disagree. */
export function selectPodRef(arg: string, namespace: string | undefined): string {
  const parts = arg.split('/');
  if (parts.length === 1 && parts[0] !== '') return `${namespace ?? 'default'}/${arg}`;
  if (parts.length !== 2 || parts.some((p) => p === ''))
    fail(`pod ${JSON.stringify(arg)}: expected namespace/name, or a name with -n <namespace>`);
  if (namespace !== undefined && namespace !== parts[0])
    fail(`pod ${JSON.stringify(arg)} is in namespace ${parts[0]}, but -n says ${namespace}`);
  return arg;
}

export async function selectSource(program: Command, opts: { from?: string }): Promise<LogSource> {
  return opts.from !== undefined ? fileSource(opts.from) : kafkaSource(await cliKafka(program));
}
