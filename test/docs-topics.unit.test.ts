// docs/topics.md stays true to the contract: every example record decodes with the cluster-events
// codecs, every event type is documented, and every topic of src/contracts/topics.ts is listed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClusterEvent, decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { Decision, decodeDecision } from '../src/contracts/decisions.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const whole = readFileSync(path.resolve(import.meta.dirname, '../docs/topics.md'), 'utf8');
// The decisions topic has a section of its own; every other example is a cluster event.
const DECISIONS_HEADING = '## `kseip.decisions.v1`';
const decisionsStart = whole.indexOf(DECISIONS_HEADING);
const decisionsEnd = whole.indexOf('\n## ', decisionsStart + 1);
const decisionsDoc =
  decisionsStart < 0 ? '' : whole.slice(decisionsStart, decisionsEnd < 0 ? undefined : decisionsEnd);
const doc = decisionsStart < 0 ? whole : whole.replace(decisionsDoc, '');

function exampleRecords(text: string = doc): string[] {
  const blocks = [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
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

void test('every decision type is documented in the decisions section, and its examples decode', () => {
  assert.ok(decisionsStart >= 0, `docs/topics.md has no "${DECISIONS_HEADING}" section`);
  for (const codec of Decision.types)
    assert.ok(decisionsDoc.includes(`\`${codec.name}\``), `${codec.name} is not documented`);
  const records = exampleRecords(decisionsDoc);
  const types = new Set<string>();
  for (const r of records) {
    const decoded = decodeDecision(r);
    assert.equal(
      decoded._tag,
      'Right',
      `${r.slice(0, 80)}…: ${decoded._tag === 'Left' ? decoded.left.reason : ''}`,
    );
    if (decoded._tag === 'Right') types.add(decoded.right.type);
  }
  assert.ok(types.has('PoolStatusComputed'), 'PoolStatusComputed has no example record');
});
