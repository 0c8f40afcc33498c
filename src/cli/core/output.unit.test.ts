// Output documents: JSON on one line, YAML as a `---` document that parses back to the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { renderDocument } from './output.ts';

const value = {
  pod: 'shop/web-0',
  intervals: [{ from: { offset: 3, time: 't' } }, { from: { offset: 3, time: 't' } }],
  to: null,
};

void test('given an answer, then json is one line and yaml one document of the same value', () => {
  assert.equal(renderDocument('json', value), `${JSON.stringify(value)}\n`);
  const yaml = renderDocument('yaml', value);
  assert.ok(yaml.startsWith('---\n'));
  assert.ok(!yaml.includes('&'), 'no anchors for repeated values');
  const docs = parseAllDocuments(yaml + renderDocument('yaml', { n: 2 }));
  assert.deepEqual(
    docs.map((d) => d.toJS() as unknown),
    [value, { n: 2 }],
  );
});
