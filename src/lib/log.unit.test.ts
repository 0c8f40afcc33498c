import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serializeErr } from './log.ts';

void test('an error is logged with its message, name, code and own fields, without inherited constants', () => {
  const timeout = serializeErr(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  assert.deepEqual(Object.keys(timeout as object).sort(), ['code', 'message', 'name', 'stack', 'type']);
  assert.equal((timeout as { name: string }).name, 'TimeoutError');

  const refused = serializeErr(Object.assign(new Error('Forbidden'), { statusCode: 403 })) as Record<
    string,
    unknown
  >;
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.message, 'Forbidden');

  assert.equal(serializeErr('not an error'), 'not an error');
});
