// `kseip events tail|grep`: reading the event log. Effectful (Kafka or export-file reads, stdout).
//
//   kseip events tail [ns/name] [--topic cluster-events] [--kind Pod] [--type PodObserved]
//        [--namespace ns] [--name n] [--since 10m] [--until <time>] [--from-beginning | --last 20]
//        [--follow] [--from <file>] [--output table|wide|json|yaml]
//   kseip events grep <regex> [ns/name] [-i] [same filters] [--follow] [--from <file>] [--output …]
//
// Every record is printed with its offset ("partition:offset" on multi-partition topics); a record
// that does not decode is printed as UNDECODABLE with the reason, never skipped. `tail` starts
// near the end (the last N records, or --since); `grep` reads the whole topic (or from --since)
// and prints the records whose table row or JSON line matches the regular expression; it exits
// 5 when nothing matched, like grep's "no lines selected" (docs/cli.md).
import type { Command } from 'commander';
import {
  decodeRecord,
  parseTimeArg,
  renderJsonLine,
  renderTableHeader,
  renderTableRow,
  resolveTopicName,
  selectMatching,
  selectRecordDocument,
  topicHasObjects,
  type Filters,
  type RecordView,
} from '../topic-records.ts';
import { readTopic, type StartAt, type TopicRecord } from '../../lib/read-topic.ts';
import { fail, type CliContext } from '../context.ts';
import { cliKafka } from '../kafka-connection.ts';
import type { LogRecord } from '../core/log-file.ts';
import { fileSource } from '../log-source.ts';
import { isDocument, outputOption, renderDocument, type OutputFormat } from '../core/output.ts';
import { fromOption } from './options.ts';
import { PROGRESS_EVERY } from '../replay-log.ts';
import { CliExit, EXIT } from './exit.ts';

interface EventsOptions {
  topic: string;
  kind?: string[];
  type?: string[];
  namespace?: string;
  name?: string;
  since?: string;
  until?: string;
  follow?: boolean;
  from?: string;
  output: OutputFormat;
}

interface TailOptions extends EventsOptions {
  fromBeginning?: boolean;
  last: string;
}

interface GrepOptions extends EventsOptions {
  ignoreCase?: boolean;
}

const list = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
];

/** The options tail and grep share: which topic, which records, where from, how printed. */
function withEventOptions(cmd: Command): Command {
  return cmd
    .argument('[object]', 'only this object: "namespace/name", or "name" for cluster-scoped ones')
    .option(
      '--topic <topic>',
      'topic: a full name or a short one (cluster-events, decisions, node-rules, heartbeats, node-status, dead-letter)',
      'cluster-events',
    )
    .option('--kind <kinds>', 'only these object kinds (comma-separated or repeated), e.g. Pod,Node', list)
    .option('--type <types>', 'only these event types (comma-separated or repeated), e.g. PodObserved', list)
    .option('-n, --namespace <namespace>', 'only objects of this namespace')
    .option('--name <name>', 'only objects with this name (on keyed topics: this key)')
    .option('--since <time>', 'start at this record time: RFC 3339, or an age like 10m, 2h, 7d')
    .option('--until <time>', 'stop after this record time: RFC 3339, or an age')
    .option('-f, --follow', 'keep printing new records until interrupted (Kafka only)')
    .addOption(fromOption())
    .addOption(outputOption());
}

export function registerEventsCommand(program: Command, ctx: CliContext): void {
  const events = program
    .command('events')
    .description('read the event log (cluster-events and the other topics)');
  withEventOptions(
    events
      .command('tail')
      .description('print the newest records of a topic (or from a time), decoded, with their offsets'),
  )
    .option('--from-beginning', 'start at the oldest record')
    .option(
      '--last <n>',
      'start this many records before the end (default without --since/--from-beginning)',
      '20',
    )
    .action(async (object: string | undefined, opts: TailOptions) => {
      const last = Number(opts.last);
      if (!Number.isSafeInteger(last) || last < 0)
        fail(`--last: expected a whole number, got ${JSON.stringify(opts.last)}`);
      const q = prepare(object, opts, ctx.now());
      const start: StartAt =
        opts.fromBeginning === true
          ? { kind: 'beginning' }
          : q.filters.sinceMs !== undefined
            ? { kind: 'time', ms: q.filters.sinceMs }
            : { kind: 'last', count: last };
      const printer = createPrinter(ctx, opts.output);
      const shape = await read(program, q, opts, start, printer, (view) => {
        if (selectMatching(view, q.filters)) printer.print(view);
      });
      if (!isDocument(opts.output) && printer.printed === 0)
        ctx.writeErr(
          `no matching records in ${q.topic} (${shape.partitions} partition${shape.partitions === 1 ? '' : 's'})\n`,
        );
    });

  withEventOptions(
    events
      .command('grep')
      .description(
        'print every record of a topic whose row or JSON matches a regular expression (exit 5: none)',
      )
      .argument('<regex>', 'JavaScript regular expression, e.g. "198\\.51\\.100\\.10" or "frontend-.*"'),
  )
    .option('-i, --ignore-case', 'match without regard to case')
    .action(async (pattern: string, object: string | undefined, opts: GrepOptions) => {
      let re: RegExp;
      try {
        re = new RegExp(pattern, opts.ignoreCase === true ? 'i' : '');
      } catch (err) {
        fail(`regex ${JSON.stringify(pattern)}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const q = prepare(object, opts, ctx.now());
      const start: StartAt =
        q.filters.sinceMs !== undefined ? { kind: 'time', ms: q.filters.sinceMs } : { kind: 'beginning' };
      const printer = createPrinter(ctx, opts.output);
      let scanned = 0;
      await read(program, q, opts, start, printer, (view) => {
        if (++scanned % PROGRESS_EVERY === 0 && opts.follow !== true)
          ctx.writeErr(`scanned ${scanned} records (offset ${view.record.offset})\n`);
        if (!selectMatching(view, q.filters)) return;
        if (re.test(renderTableRow(view, false)) || re.test(renderJsonLine(view))) printer.print(view);
      });
      if (printer.printed === 0)
        throw new CliExit(EXIT.noMatch, `no record of ${q.topic} matches /${pattern}/`);
    });
}

interface Query {
  readonly topic: string;
  readonly filters: Filters;
}

/** Validates the shared options; usage errors exit 2. */
function prepare(object: string | undefined, opts: EventsOptions, now: number): Query {
  const topic = resolveTopicName(opts.topic);
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
  if (opts.follow === true && opts.from !== undefined)
    fail('--follow reads Kafka; an export file (--from) does not grow');
  const time = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const parsed = parseTimeArg(text, now);
    if (parsed._tag === 'Left') fail(`${flag}: ${parsed.left.reason}`);
    return parsed.right;
  };
  const sinceMs = time('--since', opts.since);
  const untilMs = time('--until', opts.until);
  return {
    topic,
    filters: {
      ...(opts.kind === undefined ? {} : { kinds: opts.kind }),
      ...(opts.type === undefined ? {} : { types: opts.type }),
      ...(namespace === undefined ? {} : { namespace }),
      ...(name === undefined ? {} : { name }),
      ...(sinceMs === undefined ? {} : { sinceMs }),
      ...(untilMs === undefined ? {} : { untilMs }),
    },
  };
}

interface Printer {
  readonly printed: number;
  /** Offsets are written "partition:offset" once the topic is known to have several partitions. */
  partitioned: boolean;
  print(view: RecordView): void;
}

function createPrinter(ctx: CliContext, output: OutputFormat): Printer {
  let printed = 0;
  return {
    get printed() {
      return printed;
    },
    partitioned: false,
    print(view) {
      if (output === 'json') ctx.write(`${renderJsonLine(view)}\n`);
      else if (output === 'yaml') ctx.write(renderDocument('yaml', selectRecordDocument(view)));
      else {
        const wide = output === 'wide';
        if (printed === 0) ctx.write(`${renderTableHeader(wide)}\n`);
        ctx.write(`${renderTableRow(view, this.partitioned, wide)}\n`);
      }
      printed++;
    },
  };
}

/**
 * Hands every record from `start` to the end (or on and on with --follow) to `onView`, from Kafka
 * or from the export file; resolves with the topic's partition count.
 */
async function read(
  program: Command,
  q: Query,
  opts: EventsOptions,
  start: StartAt,
  printer: Printer,
  onView: (view: RecordView) => void,
): Promise<{ partitions: number }> {
  const { topic } = q;
  const untilMs = q.filters.untilMs;
  if (opts.from !== undefined) {
    return readFile(opts.from, topic, start, printer, onView);
  }
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await readTopic({
      kafka: await cliKafka(program),
      topic,
      start,
      follow: opts.follow === true,
      ...(untilMs === undefined ? {} : { untilMs }),
      signal: abort.signal,
      onStart: (shape) => (printer.partitioned = shape.partitions > 1),
      onRecord: (record) => onView(decodeRecord(record)),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * An export file holds cluster-events, decisions, node-rules and node-status (kseip export).
 * Streamed: records are printed as they are read, except for --last, which keeps the last N per
 * partition. The project's topics have one partition each; should a file hold more, offsets are
 * written "partition:offset" from the first record of a partition other than 0 on.
 */
async function readFile(
  file: string,
  topic: string,
  start: StartAt,
  printer: Printer,
  onView: (view: RecordView) => void,
): Promise<{ partitions: number }> {
  const partitions = new Set<number>();
  const lastN = start.kind === 'last' ? start.count : undefined;
  const kept = new Map<number, TopicRecord[]>();
  await fileSource(file).read(topic, (r) => {
    partitions.add(r.partition);
    if (r.partition > 0) printer.partitioned = true;
    if (start.kind === 'time' && r.timestamp < start.ms) return;
    const record = topicRecordOf(r);
    if (lastN === undefined) return onView(decodeRecord(record));
    let ring = kept.get(r.partition);
    if (ring === undefined) kept.set(r.partition, (ring = []));
    ring.push(record);
    if (ring.length > 2 * lastN + 1000) ring.splice(0, ring.length - lastN);
  });
  if (lastN !== undefined && lastN > 0)
    for (const p of [...kept.keys()].sort((a, b) => a - b))
      for (const record of (kept.get(p) ?? []).slice(-lastN)) onView(decodeRecord(record));
  return { partitions: Math.max(1, partitions.size) };
}

/** Back to Kafka's shape: the bytes the broker held (JSON re-serialised, or the raw text). */
function topicRecordOf(r: LogRecord): TopicRecord {
  return {
    topic: r.topic,
    partition: r.partition,
    offset: String(r.offset),
    timestamp: String(r.timestamp),
    key: r.key,
    value:
      r.raw !== undefined
        ? Buffer.from(r.raw)
        : r.value === null
          ? null
          : Buffer.from(JSON.stringify(r.value)),
    headers: {},
  };
}
