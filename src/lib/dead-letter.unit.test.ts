import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEAD_LETTER_HEADERS, renderDeadLetterMessage } from './dead-letter.ts';

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
