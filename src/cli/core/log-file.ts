// The offline log format of `kseip export --to` and `--from <file>`: JSON lines, one Kafka
// record per line: {"topic","partition","offset","timestamp","key","value"} where `value` is the
// record's JSON embedded as is (so a reader parses each line once), or {"raw": text} in place of
// `value` when the record is not JSON (kept so verify and tail see exactly what Kafka held), or
// null for a tombstone. Pure: encoding and decoding of one line.
import { left, right, type Either } from 'fp-ts/lib/Either.js';

/** One record of any topic, as the CLI cores see it (from Kafka or from a file). */
export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** Kafka's record timestamp, ms since the epoch. */
  readonly timestamp: number;
  readonly key: string | null;
  /** The value as parsed JSON; undefined with `raw` when it is not JSON; null for a tombstone. */
  readonly value: unknown;
  readonly raw?: string;
}

export interface LineError {
  readonly _tag: 'LineError';
  readonly reason: string;
}

/** A record from Kafka's bytes: the JSON parsed once here, at the edge. */
export function recordFromBytes(
  topic: string,
  partition: number,
  offset: number,
  timestamp: number,
  key: string | null,
  value: Buffer | string | null,
): LogRecord {
  if (value === null) return { topic, partition, offset, timestamp, key, value: null };
  const text = typeof value === 'string' ? value : value.toString('utf8');
  try {
    return { topic, partition, offset, timestamp, key, value: JSON.parse(text) as unknown };
  } catch {
    return { topic, partition, offset, timestamp, key, value: undefined, raw: text };
  }
}

export function renderLine(r: LogRecord): string {
  const head = {
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key,
  };
  return JSON.stringify(r.raw !== undefined ? { ...head, raw: r.raw } : { ...head, value: r.value });
}

export function parseLine(line: string, lineNo: number): Either<LineError, LogRecord> {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (err) {
    return left({ _tag: 'LineError', reason: `line ${lineNo}: not JSON: ${(err as Error).message}` });
  }
  const r = o as Record<string, unknown>;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof r.topic !== 'string' ||
    typeof r.offset !== 'number' ||
    typeof r.timestamp !== 'number' ||
    !(typeof r.key === 'string' || r.key === null) ||
    !('value' in r || typeof r.raw === 'string')
  )
    return left({
      _tag: 'LineError',
      reason: `line ${lineNo}: expected {topic, partition, offset, timestamp, key, value|raw}`,
    });
  return right({
    topic: r.topic,
    partition: typeof r.partition === 'number' ? r.partition : 0,
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key,
    value: 'value' in r ? r.value : undefined,
    ...(typeof r.raw === 'string' ? { raw: r.raw } : {}),
  });
}
