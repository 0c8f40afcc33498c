// The report codecs at the edge: heartbeats and node-status carry a schema version (absent:
// written before the field existed, read as 1; a newer one is refused with that reason), and every
// field liveness and the status writer use is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHeartbeat, decodeNodeApplyStatus } from './node-reports.ts';

const heartbeat = (fields: Record<string, unknown> = {}): string =>
  JSON.stringify({ node: 'node-a', sentAt: '2026-12-04T12:00:00.000Z', seq: 3, bootId: 'b1', ...fields });
const ack = (fields: Record<string, unknown> = {}): string =>
  JSON.stringify({
    node: 'node-a',
    generation: 7,
    ok: true,
    appliedAt: '2026-12-04T12:00:00.000Z',
    durationMs: 1.5,
    unchanged: false,
    ...fields,
  });

void test('given a report without a schema field (an agent before issue 12), then it is read as schema 1', () => {
  for (const decoded of [decodeHeartbeat(heartbeat()), decodeNodeApplyStatus(ack())]) {
    assert.equal(decoded._tag, 'Right');
    if (decoded._tag === 'Right') assert.equal(decoded.right.schema, 1);
  }
  assert.equal(decodeHeartbeat(heartbeat({ schema: 1 }))._tag, 'Right');
  assert.equal(decodeNodeApplyStatus(ack({ schema: 1 }))._tag, 'Right');
});

void test('given a report of a newer schema, then it is refused, and the reason says so', () => {
  for (const decoded of [
    decodeHeartbeat(heartbeat({ schema: 2 })),
    decodeNodeApplyStatus(ack({ schema: 2 })),
  ]) {
    assert.equal(decoded._tag, 'Left');
    if (decoded._tag === 'Left')
      assert.match(decoded.left.reason, /schema 2 is newer than this reader.*schema 1/);
  }
  for (const schema of [0, '1', null, 1.5]) {
    const decoded = decodeHeartbeat(heartbeat({ schema }));
    assert.equal(decoded._tag, 'Left', `schema ${JSON.stringify(schema)}`);
    if (decoded._tag === 'Left') assert.match(decoded.left.reason, /^schema: expected 1/);
  }
});

void test('given a hostile value in a field liveness or the status writer uses, then the report does not decode, and the reason names the field', () => {
  const cases: [string, string, Record<string, unknown>][] = [
    ['heartbeat', 'node', { node: 'node-a; flush ruleset' }],
    ['heartbeat', 'node', { node: '' }],
    ['heartbeat', 'node', { node: 'Node_A' }],
    ['heartbeat', 'sentAt', { sentAt: 'yesterday' }],
    ['heartbeat', 'seq', { seq: -1 }],
    ['heartbeat', 'seq', { seq: 1.5 }],
    ['heartbeat', 'bootId', { bootId: 'b\u0000' }],
    ['ack', 'node', { node: 'x'.repeat(254) }],
    ['ack', 'generation', { generation: Number.MAX_SAFE_INTEGER + 2 }],
    ['ack', 'durationMs', { durationMs: -1 }],
    ['ack', 'error', { error: 'x'.repeat(5000) }],
    ['ack', 'error', { error: 'bad\u001b[31m' }],
    [
      'ack',
      'egressIP',
      {
        unprogrammable: [
          { role: 'gateway', slot: 1, egressIP: '10.0.0.1; reboot', sources: [], reason: 'r' },
        ],
      },
    ],
    [
      'ack',
      'sources',
      {
        unprogrammable: [
          { role: 'steer', slot: 1, egressIP: '198.51.100.1', sources: ['ns/x'], reason: 'r' },
        ],
      },
    ],
    [
      'ack',
      'slot',
      { unprogrammable: [{ role: 'steer', slot: 0, egressIP: '198.51.100.1', sources: [], reason: 'r' }] },
    ],
  ];
  for (const [kind, field, fields] of cases) {
    const decoded =
      kind === 'heartbeat' ? decodeHeartbeat(heartbeat(fields)) : decodeNodeApplyStatus(ack(fields));
    assert.equal(decoded._tag, 'Left', `${kind} ${JSON.stringify(fields).slice(0, 80)} was accepted`);
    if (decoded._tag === 'Left')
      assert.match(decoded.left.reason, new RegExp(`${field}(\\.\\d+)?: expected`));
  }
});
