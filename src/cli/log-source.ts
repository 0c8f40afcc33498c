// Where the CLI's read commands get records: an export file (--from) or Kafka. Effectful: reads
// the file in chunks (a million-event export does not fit in one JS string) or reads a topic
// from the beginning to the end offsets seen at start (read-topic.ts). Records come in offset
// order per topic, handed to `onRecord` one at a time so a replay never holds the whole log.
import { closeSync, openSync, readSync } from 'node:fs';
import type { Kafka } from 'kafkajs';
import { readTopic } from '../lib/read-topic.ts';
import { parseLine, recordFromBytes, type LogRecord } from './core/log-file.ts';

export interface LogSource {
  /** Every record of `topic`, oldest first; a topic missing from the source yields nothing. */
  read(topic: string, onRecord: (r: LogRecord) => void): Promise<void>;
  readonly describe: string;
}

export function fileSource(path: string): LogSource {
  return {
    describe: path,
    read: async (topic, onRecord) => {
      // Cheap pre-filter: renderLine writes "topic" first, so other topics' lines are skipped
      // without parsing them.
      const prefix = `{"topic":${JSON.stringify(topic)},`;
      let lineNo = 0;
      // Yielding between chunks lets output drain to a pipe and a closed pipe (`| head`) end the
      // command, instead of a million-line read queueing everything it prints in memory first.
      for (const text of textBlocks(path)) {
        splitLines(text, (line) => {
          lineNo++;
          if (line === '' || !line.startsWith(prefix)) return;
          const parsed = parseLine(line, lineNo);
          if (parsed._tag === 'Left') throw new Error(`${path}: ${parsed.left.reason}`);
          onRecord(parsed.right);
        });
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
  };
}

/** Every line of bytes [start, end) of the file (the whole file by default), in order. */
export function forEachLine(
  path: string,
  onLine: (line: string) => void,
  range: { start: number; end: number } = { start: 0, end: Infinity },
): void {
  for (const text of textBlocks(path, range)) splitLines(text, onLine);
}

/** The file as blocks of whole lines (8 MiB reads; a line split by a read is carried over). */
function* textBlocks(
  path: string,
  range: { start: number; end: number } = { start: 0, end: Infinity },
): Generator<string> {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(8 * 1024 * 1024);
    let carry = Buffer.alloc(0);
    let position = range.start;
    for (;;) {
      const n = readSync(fd, chunk, 0, Math.min(chunk.length, range.end - position), position);
      if (n === 0) break;
      position += n;
      const data = carry.length === 0 ? chunk.subarray(0, n) : Buffer.concat([carry, chunk.subarray(0, n)]);
      const last = data.lastIndexOf(10);
      if (last < 0) {
        carry = Buffer.from(data);
        continue;
      }
      carry = Buffer.from(data.subarray(last + 1));
      yield data.toString('utf8', 0, last);
    }
    if (carry.length > 0) yield carry.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function splitLines(text: string, onLine: (line: string) => void): void {
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) return onLine(text.slice(start));
    onLine(text.slice(start, nl));
    start = nl + 1;
  }
}

export function kafkaSource(kafka: Kafka): LogSource {
  return {
    describe: 'Kafka',
    read: async (topic, onRecord) => {
      const admin = kafka.admin();
      await admin.connect();
      const exists = await admin.listTopics().finally(() => admin.disconnect());
      if (!exists.includes(topic)) return;
      await readTopic({
        kafka,
        topic,
        start: { kind: 'beginning' },
        follow: false,
        onRecord: (m) =>
          onRecord(
            recordFromBytes(topic, m.partition, Number(m.offset), Number(m.timestamp), m.key, m.value),
          ),
      });
    },
  };
}
