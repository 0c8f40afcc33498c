// The cluster-events codec at the edge: an address field that is not an IP address fails to
// decode (so the projector dead-letters the record), with a reason that names the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeClusterEvent } from './cluster-events.ts';

const envelope = (type: string, kind: string, payload: unknown): string =>
  JSON.stringify({
    schema: 1,
    id: '00000000-0000-4000-8000-000000000001',
    type,
    observedAt: '2026-12-03T12:00:00.000Z',
    producer: { component: 'watcher', term: 1 },
    object: { kind, name: 'x', ...(kind === 'Node' ? {} : { namespace: 'default' }) },
    payload,
  });

const pod = (podIPs: string[]): string =>
  envelope('PodObserved', 'Pod', {
    labels: {},
    podIPs,
    hostNetwork: false,
    terminal: false,
    nodeName: 'node1',
  });
const node = (internalIP: string): string =>
  envelope('NodeObserved', 'Node', { labels: {}, ready: true, unschedulable: false, internalIP });
const slice = (address: string): string =>
  envelope('EndpointSliceObserved', 'EndpointSlice', {
    serviceName: 'web',
    endpoints: [{ addresses: [address], podName: 'web-0' }],
  });
const policy = (egressIP: string): string =>
  envelope('StaticEgressIPObserved', 'StaticEgressIP', {
    generation: 1,
    rules: [{ egressIP, destinations: ['203.0.113.0/24'], exceptions: [], gateways: 1 }],
  });

const HOSTILE = ['not-an-ip', '10.244.1.250; flush ruleset', '999.1.1.1', '', '10.0.0.1/32', ' 10.0.0.1'];

void test('given an address field that is not an IP address, then the record does not decode, and the reason names the field', () => {
  for (const bad of HOSTILE) {
    for (const [record, field] of [
      [pod(['10.1.0.5', bad]), 'podIPs'],
      [node(bad), 'internalIP'],
      [slice(bad), 'addresses'],
      [policy(bad), 'egressIP'],
    ] as const) {
      const decoded = decodeClusterEvent(record);
      assert.equal(decoded._tag, 'Left', `${field} ${JSON.stringify(bad)} was accepted`);
      if (decoded._tag === 'Left') assert.match(decoded.left.reason, new RegExp(`${field}.*IPAddress`));
    }
  }
});

void test('given IPv4 and IPv6 addresses, then they decode', () => {
  for (const record of [
    pod(['10.1.0.5', '2001:db8:1::66']),
    node('192.0.2.11'),
    slice('2001:db8::5'),
    policy('198.51.100.10'),
  ])
    assert.equal(decodeClusterEvent(record)._tag, 'Right', record);
});

void test('given a destination, a pool entry, a name or a count that is not what the field means, then the record does not decode, and the reason names the field', () => {
  const rule = { egressIP: '198.51.100.10', destinations: ['203.0.113.0/24'], exceptions: [], gateways: 1 };
  const cases: [string, string][] = [
    [
      envelope('StaticEgressIPObserved', 'StaticEgressIP', {
        generation: 1,
        rules: [{ ...rule, destinations: ['203.0.113.0/24; flush ruleset'] }],
      }),
      'destinations',
    ],
    [
      envelope('StaticEgressIPObserved', 'StaticEgressIP', {
        generation: 1,
        rules: [{ ...rule, exceptions: ['203.0.113.0/024'] }],
      }),
      'exceptions',
    ],
    [
      envelope('StaticEgressIPObserved', 'StaticEgressIP', {
        generation: 1,
        rules: [{ ...rule, gateways: 0 }],
      }),
      'gateways',
    ],
    [
      envelope('StaticEgressIPPoolObserved', 'StaticEgressIPPool', {
        generation: 1,
        addresses: ['198.51.100.1-fd00::1'],
      }),
      'addresses',
    ],
    [pod(['10.1.0.5']).replace('"name":"x"', '"name":"x\\ny"'), 'name'],
    [pod(['10.1.0.5']).replace('"nodeName":"node1"', '"nodeName":"node1 }"'), 'nodeName'],
    [pod(['fe80::1%eth0']), 'podIPs'],
  ];
  for (const [record, field] of cases) {
    const decoded = decodeClusterEvent(record);
    assert.equal(decoded._tag, 'Left', `${field}: ${record.slice(0, 200)} was accepted`);
    if (decoded._tag === 'Left')
      assert.match(decoded.left.reason, new RegExp(`${field}(\\.\\d+)?: expected`));
  }
});
