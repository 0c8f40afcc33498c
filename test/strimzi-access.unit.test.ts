// The Kafka access matrix (src/contracts/topic-access.ts) is what the Strimzi overlay and
// docs/kafka.md say: the generated files are committed as generated (regenerate with
// `node src/contracts/write-strimzi-access.ts`), and the table in the docs is the rendered one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { renderStrimziAccessFiles, WORKLOAD_PRINCIPALS } from '../src/contracts/strimzi-access.ts';
import { KAFKA_PRINCIPAL_NAMES, KAFKA_PRINCIPALS, renderAccessTable } from '../src/contracts/topic-access.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const root = path.resolve(import.meta.dirname, '..');

void test('the Strimzi overlay holds the KafkaUsers and workload patches generated from the matrix', () => {
  for (const { file, text } of renderStrimziAccessFiles()) {
    const committed = readFileSync(path.join(root, 'k8s/overlays/strimzi', file), 'utf8');
    assert.equal(
      committed,
      text,
      `k8s/overlays/strimzi/${file} is stale: run node src/contracts/write-strimzi-access.ts`,
    );
  }
});

void test('docs/kafka.md shows the rendered access table', () => {
  const doc = readFileSync(path.join(root, 'docs/kafka.md'), 'utf8');
  const m = /<!-- access-table:begin[^>]*-->\n([\s\S]*?)\n<!-- access-table:end -->/.exec(doc);
  assert.ok(m, 'docs/kafka.md has no access-table markers');
  assert.equal(m[1], renderAccessTable());
});

void test('every workload has a principal, and only the projector writes node rules and decisions', () => {
  const used = new Set(WORKLOAD_PRINCIPALS.map((w) => w.principal));
  for (const name of ['watcher', 'projector', 'liveness', 'agent', 'status-writer'] as const)
    assert.ok(used.has(name), `${name} has no workload`);
  assert.ok(KAFKA_PRINCIPAL_NAMES.includes('auditor'));
  const writers = (topic: string): string[] =>
    KAFKA_PRINCIPAL_NAMES.filter((n) =>
      KAFKA_PRINCIPALS[n].grants.some(
        (g) => g.resource.type === 'topic' && g.resource.name === topic && g.operations.includes('Write'),
      ),
    );
  assert.deepEqual(writers(TOPICS.nodeRules), ['projector']);
  assert.deepEqual(writers(TOPICS.decisions), ['projector']);
  assert.deepEqual(writers(TOPICS.clusterEvents), ['watcher', 'liveness']);
});
