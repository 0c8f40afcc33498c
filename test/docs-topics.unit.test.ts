// docs/topics.md stays true to the contract: every example record decodes with the cluster-events
// codecs, every event type is documented, and every topic of src/contracts/topics.ts is listed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClusterEvent, decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeHeartbeat, decodeNodeApplyStatus } from '../src/contracts/node-reports.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const doc = readFileSync(path.resolve(import.meta.dirname, '../docs/topics.md'), 'utf8');

/** The page's sections by their `## ` heading; examples are checked with their section's codec. */
function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/topics.md has no section "${heading}"`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

const REPORTS = section('`kseip.heartbeats.v1` and `kseip.node-status.v1`');

function exampleRecords(text = doc.replace(REPORTS, '')): string[] {
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

void test('the heartbeat and node-status examples decode with their codecs, and the schema versions are documented', () => {
  const records = exampleRecords(REPORTS);
  assert.ok(records.length >= 3, `found ${records.length} report examples`);
  for (const r of records) {
    const decoded = 'seq' in (JSON.parse(r) as object) ? decodeHeartbeat(r) : decodeNodeApplyStatus(r);
    assert.equal(
      decoded._tag,
      'Right',
      `${r.slice(0, 80)}…: ${decoded._tag === 'Left' ? decoded.left.reason : ''}`,
    );
    assert.equal((JSON.parse(r) as { schema?: unknown }).schema, 1, `${r.slice(0, 80)}… shows no schema`);
  }
  const versions = section('Schema versions');
  for (const topic of [TOPICS.heartbeats, TOPICS.nodeStatus])
    assert.ok(versions.includes(`\`${topic}\``), topic);
  assert.match(versions, /without the\s+field as schema `1`/);
});
