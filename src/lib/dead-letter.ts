// Where records that do not decode go: kseip.dead-letter.v1, with the original key and value and
// the reason in headers, so an operator can see what was skipped and why. Effectful (produces).
// A dead letter is fire-and-forget: a failure to write it is logged, never thrown, because a
// consumer must not stop on a bad record (ARCHITECTURE.md, principle 6).
import type { IHeaders, ProducerRecord } from 'kafkajs';
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
} as const;

export function renderDeadLetterHeaders(component: string, letter: DeadLetter): IHeaders {
  return {
    [DEAD_LETTER_HEADERS.reason]: letter.reason,
    [DEAD_LETTER_HEADERS.component]: component,
    [DEAD_LETTER_HEADERS.sourceTopic]: letter.sourceTopic,
    [DEAD_LETTER_HEADERS.sourcePartition]: String(letter.partition),
    [DEAD_LETTER_HEADERS.sourceOffset]: letter.offset,
  };
}

/**
 * A sink on a connected producer. `onLetter` runs for every letter (count it in a metric there),
 * whether or not the write succeeds.
 */
export function createDeadLetterSink(opts: {
  /** A connected producer, or anything that sends like one (e.g. one that connects lazily). */
  producer: { send(record: ProducerRecord): Promise<unknown> };
  component: string;
  log: Logger;
  onLetter?: (letter: DeadLetter) => void;
}): DeadLetterSink {
  return {
    send(letter) {
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
          messages: [
            {
              key: letter.key,
              value: letter.value,
              headers: renderDeadLetterHeaders(opts.component, letter),
            },
          ],
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
