// Where records that do not decode go: kseip.dead-letter.v1, with the original value, and the
// reason, the source position and the original key in headers, so an operator can see what was
// skipped and why. A letter's key is its source position (component, topic, partition, offset) and
// the topic is compacted: a record read again, e.g. by an agent restarted on a compacted
// node-rules topic, collapses into one letter instead of one per reading. Effectful (produces).
// A dead letter is fire-and-forget: a failure to write it is logged, never thrown, because a
// consumer must not stop on a bad record (parse at the edge: a record that does not decode is
// counted, set aside with its reason, and skipped).
import type { Either } from 'fp-ts/lib/Either.js';
import type { IHeaders, Message, ProducerRecord } from 'kafkajs';
import type { DecodeFailure } from '../contracts/decode.ts';
import { TOPICS } from '../contracts/topics.ts';
import type { Logger } from './log.ts';

export interface DeadLetter {
  readonly sourceTopic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | string | null;
  readonly value: Buffer | string | null;
  readonly reason: string;
}

export interface DeadLetterSink {
  send(letter: DeadLetter): void;
}

/** Header names on every dead letter (values are UTF-8 strings). */
export const DEAD_LETTER_HEADERS = {
  reason: 'kseip-reason',
  component: 'kseip-component',
  sourceTopic: 'kseip-source-topic',
  sourcePartition: 'kseip-source-partition',
  sourceOffset: 'kseip-source-offset',
  /** The original record's key (absent when it had none). */
  sourceKey: 'kseip-source-key',
} as const;

/** The dead-letter record for a letter: keyed by its source position, the value as it was read. */
export function renderDeadLetterMessage(component: string, letter: DeadLetter): Message {
  const headers: IHeaders = {
    [DEAD_LETTER_HEADERS.reason]: letter.reason,
    [DEAD_LETTER_HEADERS.component]: component,
    [DEAD_LETTER_HEADERS.sourceTopic]: letter.sourceTopic,
    [DEAD_LETTER_HEADERS.sourcePartition]: String(letter.partition),
    [DEAD_LETTER_HEADERS.sourceOffset]: letter.offset,
  };
  if (letter.key !== null) headers[DEAD_LETTER_HEADERS.sourceKey] = letter.key;
  return {
    key: `${component}:${letter.sourceTopic}/${letter.partition}/${letter.offset}`,
    value: letter.value,
    headers,
  };
}

/**
 * A sink on a connected producer. `onLetter` runs for every letter (count it in a metric there),
 * whether or not the write succeeds.
 *
 * A record read again is not written again: the sink remembers, per source topic and partition,
 * the highest offset it dead-lettered, and drops a letter at or below it (a consumer reads a
 * partition in offset order, so a lower offset can only be a re-read, e.g. a consumer that joined
 * again before it could seek). Across processes the compacted topic folds re-readings into one.
 */
export function createDeadLetterSink(opts: {
  /** A connected producer, or anything that sends like one (e.g. one that connects lazily). */
  producer: { send(record: ProducerRecord): Promise<unknown> };
  component: string;
  log: Logger;
  onLetter?: (letter: DeadLetter) => void;
}): DeadLetterSink {
  const highest = new Map<string, bigint>();
  return {
    send(letter) {
      const at = `${letter.sourceTopic}/${letter.partition}`;
      const offset = BigInt(letter.offset);
      const seen = highest.get(at);
      if (seen !== undefined && offset <= seen) {
        opts.log.debug(
          { topic: letter.sourceTopic, partition: letter.partition, offset: letter.offset },
          'record read again; already dead-lettered',
        );
        return;
      }
      highest.set(at, offset);
      opts.onLetter?.(letter);
      opts.log.warn(
        {
          topic: letter.sourceTopic,
          partition: letter.partition,
          offset: letter.offset,
          reason: letter.reason,
        },
        'record does not decode; sent to the dead-letter topic',
      );
      opts.producer
        .send({
          topic: TOPICS.deadLetter,
          messages: [renderDeadLetterMessage(opts.component, letter)],
        })
        .catch((err: unknown) => {
          opts.log.error(
            { err, offset: letter.offset, topic: letter.sourceTopic },
            'could not write dead letter',
          );
        });
    },
  };
}

/** A consumed record as kafkajs hands it over in a batch. */
export interface ConsumedRecord {
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

/**
 * Decodes a record that is keyed by node name and whose payload names its node (heartbeats, node
 * rules). A record that does not decode, or whose payload names another node than its key, goes
 * to the sink with the reason and gives undefined: one bad record never stops a consumer.
 */
export function decodeNodeKeyed<T extends { readonly node: string }>(
  record: ConsumedRecord,
  source: { readonly topic: string; readonly partition: number; readonly what: string },
  decode: (value: Buffer | null) => Either<DecodeFailure, T>,
  sink: DeadLetterSink,
): T | undefined {
  const decoded = decode(record.value);
  const key = record.key?.toString('utf8');
  if (decoded._tag === 'Right' && decoded.right.node === key) return decoded.right;
  sink.send({
    sourceTopic: source.topic,
    partition: source.partition,
    offset: record.offset,
    key: record.key,
    value: record.value,
    reason:
      decoded._tag === 'Left'
        ? decoded.left.reason
        : `${source.what} keyed ${JSON.stringify(key)} names node ${JSON.stringify(decoded.right.node)}`,
  });
  return undefined;
}
