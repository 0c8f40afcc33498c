// docs/topics.md stays true to the contract: every example record decodes with the cluster-events
// codecs, every event type is documented, and every topic of src/contracts/topics.ts is listed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClusterEvent, decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const doc = readFileSync(path.resolve(import.meta.dirname, '../docs/topics.md'), 'utf8');

function exampleRecords(): string[] {
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
  return blocks.flatMap((block) => {
    try {
      JSON.parse(block);
      return [block];
    } catch {
      return block.split('\n').filter((l) => l.trim() !== '');
    }
  });
}

void test('every example record in docs/topics.md decodes as a cluster event', () => {
  const records = exampleRecords();
  assert.ok(records.length >= 14, `found ${records.length} examples`);
  for (const r of records) {
    const decoded = decodeClusterEvent(r);
    assert.equal(
      decoded._tag,
      'Right',
      `${r.slice(0, 80)}…: ${decoded._tag === 'Left' ? decoded.left.reason : ''}`,
    );
  }
});

void test('every event type and every topic is documented', () => {
  for (const codec of ClusterEvent.types)
    assert.ok(doc.includes(`\`${codec.name}\``), `${codec.name} is not documented`);
  for (const topic of Object.values(TOPICS))
    assert.ok(doc.includes(`\`${topic}\``), `${topic} is not documented`);
  const examples = new Set(exampleRecords().map((r) => (JSON.parse(r) as { type: string }).type));
  for (const codec of ClusterEvent.types) {
    if (!codec.name.endsWith('Deleted') || codec.name === 'PodDeleted') {
      assert.ok(examples.has(codec.name), `${codec.name} has no example record`);
    }
  }
});
