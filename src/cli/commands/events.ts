// `kseip events …`: reading the event log. Effectful (Kafka reads, stdout). Today: `tail`.
//
//   kseip events tail [ns/name] [--topic cluster-events] [--kind Pod] [--type PodObserved]
//        [--namespace ns] [--name n] [--since 10m] [--until <time>] [--from-beginning | --last 20]
//        [--follow] [--output table|json]
//
// Every record is printed with its offset ("partition:offset" on multi-partition topics); a record
// that does not decode is printed as UNDECODABLE with the reason, never skipped.
import { Command, Option } from 'commander';
import {
  decodeRecord,
  parseTimeArg,
  renderJsonLine,
  renderTableHeader,
  renderTableRow,
  resolveTopicName,
  selectMatching,
  topicHasObjects,
  type Filters,
} from '../topic-records.ts';
import { readTopic, type StartAt } from '../read-topic.ts';
import { cliKafka, fail, type CliContext } from '../context.ts';

interface TailOptions {
  topic: string;
  kind?: string[];
  type?: string[];
  namespace?: string;
  name?: string;
  since?: string;
  until?: string;
  fromBeginning?: boolean;
  last: string;
  follow?: boolean;
  output: 'table' | 'json';
}

const list = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
];

export function registerEventsCommand(program: Command, ctx: CliContext): void {
  const events = program
    .command('events')
    .description('read the event log (cluster-events and the other topics)');
  events
    .command('tail')
    .description('print records of a topic, decoded, with their offsets')
    .argument('[object]', 'only this object: "namespace/name", or "name" for cluster-scoped ones')
    .option(
      '--topic <topic>',
      'topic: a full name or a short one (cluster-events, decisions, node-rules, heartbeats, node-status, dead-letter)',
      'cluster-events',
    )
    .option('--kind <kinds>', 'only these object kinds (comma-separated or repeated), e.g. Pod,Node', list)
    .option('--type <types>', 'only these event types (comma-separated or repeated), e.g. PodObserved', list)
    .option('--namespace <namespace>', 'only objects of this namespace')
    .option('--name <name>', 'only objects with this name (on keyed topics: this key)')
    .option('--since <time>', 'start at this record time: RFC 3339, or an age like 10m, 2h, 7d')
    .option('--until <time>', 'stop after this record time: RFC 3339, or an age')
    .option('--from-beginning', 'start at the oldest record')
    .option(
      '--last <n>',
      'start this many records before the end (default without --since/--from-beginning)',
      '20',
    )
    .option('-f, --follow', 'keep printing new records until interrupted')
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'),
    )
    .action(async (object: string | undefined, opts: TailOptions) => {
      await runTail(object, opts, ctx, program.opts<{ brokers: string }>().brokers);
    });
}

async function runTail(
  object: string | undefined,
  opts: TailOptions,
  ctx: CliContext,
  brokers: string,
): Promise<void> {
  const topic = resolveTopicName(opts.topic);
  const now = ctx.now();
  let namespace = opts.namespace;
  let name = opts.name;
  if (object !== undefined) {
    const parts = object.split('/');
    if (parts.length > 2 || parts.some((p) => p === ''))
      fail(`object ${JSON.stringify(object)}: expected "namespace/name" or "name"`);
    if (parts.length === 2) [namespace, name] = parts;
    else name = parts[0];
  }
  if (!topicHasObjects(topic) && (opts.kind !== undefined || namespace !== undefined)) {
    fail(
      `--kind and --namespace apply to ${resolveTopicName('cluster-events')} only; on ${topic} use --name (the record key)`,
    );
  }
  const time = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const parsed = parseTimeArg(text, now);
    if (parsed._tag === 'Left') fail(`${flag}: ${parsed.left.reason}`);
    return parsed.right;
  };
  const sinceMs = time('--since', opts.since);
  const untilMs = time('--until', opts.until);
  const last = Number(opts.last);
  if (!Number.isSafeInteger(last) || last < 0)
    fail(`--last: expected a whole number, got ${JSON.stringify(opts.last)}`);
  const start: StartAt =
    opts.fromBeginning === true
      ? { kind: 'beginning' }
      : sinceMs !== undefined
        ? { kind: 'time', ms: sinceMs }
        : { kind: 'last', count: last };
  const filters: Filters = {
    ...(opts.kind === undefined ? {} : { kinds: opts.kind }),
    ...(opts.type === undefined ? {} : { types: opts.type }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(name === undefined ? {} : { name }),
    ...(sinceMs === undefined ? {} : { sinceMs }),
    ...(untilMs === undefined ? {} : { untilMs }),
  };

  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let partitioned = false;
  let headerShown = false;
  const print = (line: string): void => ctx.write(`${line}\n`);
  try {
    const shape = await readTopic({
      kafka: cliKafka(brokers),
      topic,
      start,
      follow: opts.follow === true,
      ...(untilMs === undefined ? {} : { untilMs }),
      signal: abort.signal,
      onStart: (shape) => (partitioned = shape.partitions > 1),
      onRecord: (record) => {
        const view = decodeRecord(record);
        if (!selectMatching(view, filters)) return;
        if (opts.output === 'json') return print(renderJsonLine(view));
        if (!headerShown) {
          print(renderTableHeader());
          headerShown = true;
        }
        print(renderTableRow(view, partitioned));
      },
    });
    if (opts.output === 'table' && !headerShown)
      ctx.writeErr(
        `no matching records in ${topic} (${shape.partitions} partition${shape.partitions === 1 ? '' : 's'})\n`,
      );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
