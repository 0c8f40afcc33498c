// Decoding, filtering and rendering of records for `kseip events tail` (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import { TOPICS } from '../contracts/topics.ts';
import {
  decodeRecord,
  parseTimeArg,
  renderJsonLine,
  renderTableRow,
  resolveTopicName,
  selectMatching,
  topicHasObjects,
} from './topic-records.ts';
import type { TopicRecord } from '../lib/read-topic.ts';

const pod: ClusterEvent = {
  schema: 1,
  id: '00000000-0000-4000-8000-000000000001',
  type: 'PodObserved',
  observedAt: '2026-01-02T03:04:05.678Z',
  producer: { component: 'watcher', term: 3 },
  object: { kind: 'Pod', namespace: 'shop', name: 'web-0', uid: 'u1', resourceVersion: '42' },
  payload: {
    labels: { tier: 'web', app: 'shop' },
    podIPs: ['10.1.0.5'],
    hostNetwork: false,
    terminal: false,
    nodeName: 'node-a',
  },
};

const record = (value: string | null, extra: Partial<TopicRecord> = {}): TopicRecord => ({
  topic: TOPICS.clusterEvents,
  partition: 0,
  offset: '7',
  timestamp: String(Date.parse('2026-01-02T03:04:06Z')),
  key: 'Pod/shop/web-0',
  value: value === null ? null : Buffer.from(value),
  headers: {},
  ...extra,
});

void test('given a cluster event, then the row shows offset, time, term, type, object and what it says', () => {
  const view = decodeRecord(record(JSON.stringify(pod)));
  assert.equal(
    renderTableRow(view, false),
    '7        2026-01-02T03:04:05.678Z 3    PodObserved                   Pod shop/web-0                           node=node-a ips=10.1.0.5 labels=app=shop,tier=web',
  );
  assert.equal(renderTableRow(view, true).slice(0, 9), '0:7      ');
});

void test('given a record that does not decode, then it is shown with the reason, never dropped', () => {
  const bad = decodeRecord(record('{"schema":1,"type":"PodObserved","id":"x"}'));
  assert.equal(bad.ok, false);
  assert.match(renderTableRow(bad, false), /UNDECODABLE +Pod\/shop\/web-0 +.*observedAt: expected string/);
  assert.equal(selectMatching(bad, {}), true);
  assert.equal(selectMatching(bad, { kinds: ['pod'] }), true, 'the key still says which object');
  assert.equal(selectMatching(bad, { kinds: ['Node'] }), false);
  const notJson = decodeRecord(record('{oops'));
  assert.deepEqual(JSON.parse(renderJsonLine(notJson)), {
    topic: TOPICS.clusterEvents,
    partition: 0,
    offset: 7,
    timestamp: '2026-01-02T03:04:06.000Z',
    key: 'Pod/shop/web-0',
    undecodable: notJson.ok ? '' : notJson.reason,
    raw: '{oops',
  });
  assert.match(renderTableRow(decodeRecord(record(null)), false), /tombstone/);
});

void test('filters: kind and type case-insensitively, namespace and name exactly, time on the record', () => {
  const view = decodeRecord(record(JSON.stringify(pod)));
  assert.equal(selectMatching(view, { kinds: ['node', 'POD'] }), true);
  assert.equal(selectMatching(view, { types: ['podobserved'] }), true);
  assert.equal(selectMatching(view, { types: ['PodDeleted'] }), false);
  assert.equal(selectMatching(view, { namespace: 'shop', name: 'web-0' }), true);
  assert.equal(selectMatching(view, { namespace: 'shop', name: 'web-1' }), false);
  const ts = Date.parse('2026-01-02T03:04:06Z');
  assert.equal(selectMatching(view, { sinceMs: ts, untilMs: ts }), true);
  assert.equal(selectMatching(view, { sinceMs: ts + 1 }), false);
});

void test('--since/--until accept RFC 3339 times and ages', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  assert.deepEqual(parseTimeArg('10m', now), { _tag: 'Right', right: now - 600_000 });
  assert.deepEqual(parseTimeArg('2026-01-01T23:00:00Z', now), { _tag: 'Right', right: now - 3_600_000 });
  assert.equal(parseTimeArg('yesterday', now)._tag, 'Left');
});

void test('topic names: short names resolve, suffixed topics keep their contract', () => {
  assert.equal(resolveTopicName('cluster-events'), TOPICS.clusterEvents);
  assert.equal(resolveTopicName('node-rules'), TOPICS.nodeRules);
  assert.equal(resolveTopicName('my.own.topic'), 'my.own.topic');
  assert.equal(topicHasObjects(`${TOPICS.clusterEvents}.replay-1`), true);
  assert.equal(topicHasObjects(TOPICS.nodeRules), false);
  const replayed = decodeRecord(record(JSON.stringify(pod), { topic: `${TOPICS.clusterEvents}.replay-1` }));
  assert.equal(replayed.ok && replayed.decoded.type, 'PodObserved');
});

void test('given a PoolStatusComputed decision, then the row names the pool and says what it decided', () => {
  const decision = {
    schema: 1,
    id: '12.3',
    type: 'PoolStatusComputed',
    offset: 12,
    pool: { name: 'old', uid: 'u7' },
    observedGeneration: 1,
    allocations: [{ egressIP: '198.51.100.10', policy: 'blue/eip' }],
    conditions: [
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' },
      { type: 'Conflict', status: 'True', reason: 'NamespaceNotAdmitted', message: 'red/eip' },
    ],
  };
  const view = decodeRecord(
    record(JSON.stringify(decision), { topic: TOPICS.decisions, key: 'StaticEgressIPPool/old' }),
  );
  assert.equal(view.ok, true, view.ok ? '' : view.reason);
  const row = renderTableRow(view, false);
  assert.match(row, /PoolStatusComputed +StaticEgressIPPool\/old/);
  assert.match(row, /198\.51\.100\.10/);
  assert.match(row, /NamespaceNotAdmitted/);
});
