// docs/topics.md stays true to the contract: every example record decodes with its topic's codec
// (cluster events, decisions, heartbeats and node-status), every event and decision type is
// documented, and every topic of src/contracts/topics.ts is listed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClusterEvent, decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { Decision, decodeDecision } from '../src/contracts/decisions.ts';
import { decodeHeartbeat, decodeNodeApplyStatus } from '../src/contracts/node-reports.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const whole = readFileSync(path.resolve(import.meta.dirname, '../docs/topics.md'), 'utf8');

/** The page's sections by their `## ` heading; examples are checked with their section's codec. */
function section(heading: string): string {
  const start = whole.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/topics.md has no section "${heading}"`);
  const end = whole.indexOf('\n## ', start + 1);
  return whole.slice(start, end < 0 ? undefined : end);
}

const DECISIONS = section('`kseip.decisions.v1`');
const REPORTS = section('`kseip.heartbeats.v1` and `kseip.node-status.v1`');
/** Everything else: its examples are cluster events. */
const doc = whole.replace(DECISIONS, '').replace(REPORTS, '');

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

function assertDecoded(
  r: string,
  decoded: { _tag: 'Left'; left: { reason: string } } | { _tag: 'Right' },
): void {
  assert.equal(
    decoded._tag,
    'Right',
    `${r.slice(0, 80)}…: ${decoded._tag === 'Left' ? decoded.left.reason : ''}`,
  );
}

void test('every example record in docs/topics.md decodes as a cluster event', () => {
  const records = exampleRecords();
  assert.ok(records.length >= 14, `found ${records.length} examples`);
  for (const r of records) assertDecoded(r, decodeClusterEvent(r));
});

void test('every event type and every topic is documented', () => {
  for (const codec of ClusterEvent.types)
    assert.ok(doc.includes(`\`${codec.name}\``), `${codec.name} is not documented`);
  for (const topic of Object.values(TOPICS))
    assert.ok(whole.includes(`\`${topic}\``), `${topic} is not documented`);
  const examples = new Set(exampleRecords().map((r) => (JSON.parse(r) as { type: string }).type));
  for (const codec of ClusterEvent.types) {
    if (!codec.name.endsWith('Deleted') || codec.name === 'PodDeleted') {
      assert.ok(examples.has(codec.name), `${codec.name} has no example record`);
    }
  }
});

void test('every decision type is documented in the decisions section, and its examples decode', () => {
  for (const codec of Decision.types)
    assert.ok(DECISIONS.includes(`\`${codec.name}\``), `${codec.name} is not documented`);
  const types = new Set<string>();
  for (const r of exampleRecords(DECISIONS)) {
    const decoded = decodeDecision(r);
    assertDecoded(r, decoded);
    if (decoded._tag === 'Right') types.add(decoded.right.type);
  }
  assert.ok(types.has('PoolStatusComputed'), 'PoolStatusComputed has no example record');
});

void test('the heartbeat and node-status examples decode with their codecs, and the schema versions are documented', () => {
  const records = exampleRecords(REPORTS);
  assert.ok(records.length >= 3, `found ${records.length} report examples`);
  for (const r of records) {
    const decoded = 'seq' in (JSON.parse(r) as object) ? decodeHeartbeat(r) : decodeNodeApplyStatus(r);
    assertDecoded(r, decoded);
    assert.equal((JSON.parse(r) as { schema?: unknown }).schema, 1, `${r.slice(0, 80)}… shows no schema`);
  }
  const versions = section('Schema versions');
  for (const topic of [TOPICS.heartbeats, TOPICS.nodeStatus])
    assert.ok(versions.includes(`\`${topic}\``), topic);
  assert.match(versions, /without the\s+field as schema `1`/);
});
