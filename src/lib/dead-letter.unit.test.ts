import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProducerRecord } from 'kafkajs';
import { pino } from 'pino';
import { DEAD_LETTER_HEADERS, createDeadLetterSink, renderDeadLetterMessage } from './dead-letter.ts';

const letter = {
  sourceTopic: 'kseip.node-rules.v1',
  partition: 2,
  offset: '41',
  key: 'node1',
  value: '{"schema":1',
  reason: 'not JSON',
};

void test('a dead letter is keyed by component and source position, the original key kept as a header', () => {
  const m = renderDeadLetterMessage('agent', letter);
  assert.equal(m.key, 'agent:kseip.node-rules.v1/2/41');
  assert.equal(m.value, '{"schema":1');
  assert.deepEqual(m.headers, {
    [DEAD_LETTER_HEADERS.reason]: 'not JSON',
    [DEAD_LETTER_HEADERS.component]: 'agent',
    [DEAD_LETTER_HEADERS.sourceTopic]: 'kseip.node-rules.v1',
    [DEAD_LETTER_HEADERS.sourcePartition]: '2',
    [DEAD_LETTER_HEADERS.sourceOffset]: '41',
    [DEAD_LETTER_HEADERS.sourceKey]: 'node1',
  });
});

void test('the same record read twice gives the same key, so compaction keeps one letter', () => {
  assert.equal(
    renderDeadLetterMessage('agent', letter).key,
    renderDeadLetterMessage('agent', { ...letter }).key,
  );
  assert.notEqual(
    renderDeadLetterMessage('agent', letter).key,
    renderDeadLetterMessage('status-writer', letter).key,
    'two components refusing one record keep both reasons',
  );
  assert.equal(
    renderDeadLetterMessage('agent', { ...letter, key: null }).headers?.[DEAD_LETTER_HEADERS.sourceKey],
    undefined,
  );
});

void test('a record read again is not dead-lettered again: one letter per source record, counted once', async () => {
  const sent: ProducerRecord[] = [];
  const counted: string[] = [];
  const sink = createDeadLetterSink({
    producer: { send: (r) => (sent.push(r), Promise.resolve()) },
    component: 'agent',
    log: pino({ level: 'silent' }),
    onLetter: (l) => counted.push(`${l.partition}/${l.offset}`),
  });
  sink.send(letter);
  sink.send({ ...letter, offset: '45' });
  // A consumer that joined again and read the partition from an earlier offset.
  sink.send(letter);
  sink.send({ ...letter, offset: '45' });
  // Another partition keeps its own position.
  sink.send({ ...letter, partition: 1, offset: '3' });
  await Promise.resolve();
  assert.deepEqual(counted, ['2/41', '2/45', '1/3']);
  assert.deepEqual(
    sent.map((r) => r.messages[0]?.key),
    ['agent:kseip.node-rules.v1/2/41', 'agent:kseip.node-rules.v1/2/45', 'agent:kseip.node-rules.v1/1/3'],
  );
});
