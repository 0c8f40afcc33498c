// Parse at the edge, given Kubernetes objects → then these payloads or these refusals.
// The CR fixtures (test/fixtures/crs/) are shared with test/crds.int.test.ts, which proves that the
// real API server accepts the valid ones and rejects the invalid ones with the messages they
// expect; here parse must agree with it on every one of them, in the same words.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import fc from 'fast-check';
import type { V1EndpointSlice, V1Node, V1Pod } from '@kubernetes/client-node';
import {
  parseClusterStaticEgressIP,
  parseEndpointSlice,
  parseNamespace,
  parseNode,
  parseServiceCIDR,
  parseObject,
  parseObjectRef,
  parsePod,
  parseService,
  parseStaticEgressIP,
  parseStaticEgressIPPool,
  samePayload,
  type ParseError,
} from './parse.ts';
import type { Either } from 'fp-ts/lib/Either.js';

const fixtures = path.resolve(import.meta.dirname, '../../test/fixtures/crs');

interface Fixture {
  file: string;
  object: Record<string, unknown>;
  expects: string[];
  parseAccepts: boolean;
}

function loadFixtures(dir: 'valid' | 'invalid'): Fixture[] {
  return readdirSync(path.join(fixtures, dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => {
      const text = readFileSync(path.join(fixtures, dir, file), 'utf8');
      const comments = text.split('\n').filter((l) => l.startsWith('# '));
      return {
        file,
        object: parseYaml(text) as Record<string, unknown>,
        expects: comments.filter((l) => l.startsWith('# expect: ')).map((l) => l.slice('# expect: '.length)),
        parseAccepts: comments.includes('# parse: accepts'),
      };
    });
}

function parseCustom(object: Record<string, unknown>): Either<ParseError, unknown> {
  switch (object.kind) {
    case 'StaticEgressIP':
      return parseStaticEgressIP(object);
    case 'ClusterStaticEgressIP':
      return parseClusterStaticEgressIP(object);
    case 'StaticEgressIPPool':
      return parseStaticEgressIPPool(object);
    default:
      throw new Error(`fixture of unexpected kind ${String(object.kind)}`);
  }
}

function rightOf<A>(result: Either<ParseError, A>): A {
  if (result._tag === 'Left') assert.fail(`expected a payload, got: ${result.left.reason}`);
  return result.right;
}

function leftOf<A>(result: Either<ParseError, A>): ParseError {
  if (result._tag === 'Right') assert.fail(`expected a ParseError, got ${JSON.stringify(result.right)}`);
  return result.left;
}

/** Wording only the API server's structural (OpenAPI) checks produce; parse has its own for those. */
const apiServerOnly = /Required value|Too many|Unsupported value|must be of type|unknown field/;

void describe('custom objects: parse agrees with the CRD validation', () => {
  for (const f of loadFixtures('valid')) {
    void it(`accepts valid/${f.file}`, () => {
      rightOf(parseCustom(f.object));
    });
  }
  const invalid = loadFixtures('invalid');
  void it('has a corpus of at least 20 invalid objects', () =>
    assert.ok(invalid.length >= 20, String(invalid.length)));
  for (const f of invalid) {
    void it(`${f.parseAccepts ? 'accepts (the API server prunes or refuses it first)' : 'refuses'} invalid/${f.file}`, () => {
      const result = parseCustom(f.object);
      if (f.parseAccepts) return void rightOf(result);
      const error = leftOf(result);
      assert.equal(error._tag, 'ParseError');
      assert.equal(error.kind, f.object.kind);
      for (const expected of f.expects.filter((e) => !apiServerOnly.test(e)))
        assert.ok(
          error.reason.includes(expected),
          `reason ${JSON.stringify(error.reason)} lacks ${JSON.stringify(expected)}`,
        );
    });
  }
});

void describe('StaticEgressIP', () => {
  const meta = { name: 'eip', namespace: 'default', uid: 'u-1', resourceVersion: '42', generation: 3 };

  void it('given the seed manifest, then one rule with cidr folded into destinations and gateways defaulted', () => {
    const seed = loadFixtures('valid').find((f) => f.file === 'seed.yaml')?.object as Record<string, unknown>;
    const parsed = rightOf(parseStaticEgressIP({ ...seed, metadata: meta }));
    assert.deepEqual(parsed, {
      type: 'StaticEgressIPObserved',
      object: {
        kind: 'StaticEgressIP',
        name: 'eip',
        namespace: 'default',
        uid: 'u-1',
        resourceVersion: '42',
      },
      payload: {
        generation: 3,
        rules: [
          {
            egressIP: '100.137.146.100',
            destinations: ['4.2.2.2/32'],
            exceptions: [],
            gateways: 1,
            serviceName: 'frontend',
          },
        ],
      },
    });
  });

  void it('given lists and selectors in any order, then sorted canonical output', () => {
    const parsed = rightOf(
      parseStaticEgressIP({
        metadata: meta,
        spec: {
          rules: [
            {
              egressip: '198.51.100.10',
              podSelector: {
                matchLabels: { tier: 'web', app: 'shop' },
                matchExpressions: [
                  { key: 'z', operator: 'In', values: ['b', 'a', 'b'] },
                  { key: 'a', operator: 'Exists', values: [] },
                ],
              },
              destinations: ['203.0.113.128/25', '10.0.0.0/8', '203.0.113.0/25'],
              exceptions: ['203.0.113.200/32', '10.1.0.0/16'],
              gatewaySelector: { matchLabels: {} },
              gateways: 2,
            },
          ],
        },
      }),
    );
    assert.deepEqual(parsed.payload.rules, [
      {
        egressIP: '198.51.100.10',
        destinations: ['10.0.0.0/8', '203.0.113.0/25', '203.0.113.128/25'],
        exceptions: ['10.1.0.0/16', '203.0.113.200/32'],
        gateways: 2,
        podSelector: {
          matchLabels: { app: 'shop', tier: 'web' },
          matchExpressions: [
            { key: 'a', operator: 'Exists' },
            { key: 'z', operator: 'In', values: ['a', 'b'] },
          ],
        },
        gatewaySelector: {},
      },
    ]);
    assert.deepEqual(Object.keys(parsed.payload.rules[0]?.podSelector?.matchLabels ?? {}), ['app', 'tier']);
  });

  void it('keeps the rules in spec order (status.rules mirrors it)', () => {
    const rule = (ip: string): Record<string, unknown> => ({
      egressip: ip,
      'service-name': 's',
      cidr: '203.0.113.0/24',
    });
    const parsed = rightOf(
      parseStaticEgressIP({ metadata: meta, spec: { rules: [rule('198.51.100.9'), rule('198.51.100.1')] } }),
    );
    assert.deepEqual(
      parsed.payload.rules.map((r) => r.egressIP),
      ['198.51.100.9', '198.51.100.1'],
    );
  });

  void it('given an object stored before the CRD was tightened, then a ParseError naming every problem', () => {
    const error = leftOf(
      parseStaticEgressIP({
        metadata: meta,
        spec: {
          rules: [
            { egressip: '198.51.100.10', 'service-name': 'frontend', cidr: '4.2.2.2' },
            { egressip: 'x' },
          ],
        },
      }),
    );
    assert.equal(error.kind, 'StaticEgressIP');
    assert.equal(error.object, 'default/eip');
    assert.match(error.reason, /spec\.rules\[0\]\.cidr: cidr 4\.2\.2\.2 is not a CIDR/);
    assert.match(error.reason, /spec\.rules\[1\]\.egressip: egressip x is not an IP address/);
    assert.match(error.reason, /spec\.rules\[1\]: a rule needs service-name/);
    assert.match(error.reason, /spec\.rules\[1\]: a rule needs cidr/);
  });

  void it('given JSON that is not a StaticEgressIP at all, then a ParseError, never a throw', () => {
    for (const raw of [
      null,
      42,
      'x',
      {},
      { metadata: {} },
      { metadata: { name: 'n', namespace: 'd' }, spec: { rules: 'no' } },
    ]) {
      const error = leftOf(parseStaticEgressIP(raw));
      assert.equal(error._tag, 'ParseError');
    }
    assert.equal(leftOf(parseStaticEgressIP({ metadata: { name: 'n' }, spec: { rules: [] } })).object, 'n');
    const wrongType = leftOf(
      parseStaticEgressIP({
        metadata: { name: 'n', namespace: 'd' },
        spec: { rules: [{ egressip: 1, podSelector: { matchExpressions: [{ key: 'a', operator: 'Is' }] } }] },
      }),
    );
    assert.equal(wrongType.object, 'd/n');
    assert.match(wrongType.reason, /^spec\.rules\[0\]\.egressip: expected string, got 1$/m);
    assert.match(
      wrongType.reason,
      /^spec\.rules\[0\]\.podSelector\.matchExpressions\[0\]\.operator: expected "In" \| "NotIn"/m,
    );
  });

  void it('drops nulls that a hand-made object may carry', () => {
    const parsed = rightOf(
      parseStaticEgressIP({
        metadata: meta,
        spec: {
          rules: [
            { egressip: '198.51.100.10', 'service-name': 'a', cidr: '203.0.113.0/24', podSelector: null },
          ],
        },
      }),
    );
    assert.equal(parsed.payload.rules[0]?.podSelector, undefined);
  });
});

void describe('ClusterStaticEgressIP and StaticEgressIPPool', () => {
  void it('given a cluster policy, then a cluster-scoped ref and a canonical namespace selector', () => {
    const parsed = rightOf(
      parseClusterStaticEgressIP({
        metadata: { name: 'c', namespace: 'ignored', generation: 1 },
        spec: {
          namespaceSelector: { matchLabels: { b: '2', a: '1' } },
          rules: [{ egressip: '2001:db8::10', podSelector: {}, destinations: ['2001:db8:1::/48'] }],
        },
      }),
    );
    assert.deepEqual(parsed.object, { kind: 'ClusterStaticEgressIP', name: 'c' });
    assert.deepEqual(parsed.payload.namespaceSelector, { matchLabels: { a: '1', b: '2' } });
    assert.deepEqual(parsed.payload.rules[0], {
      egressIP: '2001:db8::10',
      destinations: ['2001:db8:1::/48'],
      exceptions: [],
      gateways: 1,
      podSelector: {},
    });
  });

  void it('given a pool, then its addresses sorted IPv4 before IPv6, ascending', () => {
    const parsed = rightOf(
      parseStaticEgressIPPool({
        metadata: { name: 'p', generation: 2 },
        spec: {
          addresses: ['2001:db8::10-2001:db8::20', '198.51.100.20-198.51.100.30', '198.51.100.0/28'],
          nodeSelector: { matchLabels: { egress: 'yes' } },
        },
      }),
    );
    assert.deepEqual(parsed.payload, {
      generation: 2,
      addresses: ['198.51.100.0/28', '198.51.100.20-198.51.100.30', '2001:db8::10-2001:db8::20'],
      nodeSelector: { matchLabels: { egress: 'yes' } },
    });
  });

  void it("given a pool's creationTimestamp, then it is published: it decides which of two overlapping pools wins", () => {
    const parsed = rightOf(
      parseStaticEgressIPPool({
        metadata: { name: 'p', creationTimestamp: '2026-01-02T03:04:05Z' },
        spec: { addresses: ['198.51.100.0/28'] },
      }),
    );
    assert.equal(parsed.payload.creationTimestamp, '2026-01-02T03:04:05Z');
  });
});

void describe('built-in objects', () => {
  const pod: V1Pod = {
    metadata: {
      name: 'web-1',
      namespace: 'shop',
      uid: 'p-1',
      resourceVersion: '7',
      labels: { tier: 'web', app: 'shop' },
    },
    spec: { nodeName: 'node-a', containers: [] },
    status: {
      phase: 'Running',
      podIP: '10.244.1.5',
      podIPs: [{ ip: 'fd00::5' }, { ip: '10.244.1.5' }],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };

  void it('given a pod, then labels, pod IPs (IPv4 first), node, hostNetwork and terminal only', () => {
    assert.deepEqual(rightOf(parsePod(pod)), {
      type: 'PodObserved',
      object: { kind: 'Pod', name: 'web-1', namespace: 'shop', uid: 'p-1', resourceVersion: '7' },
      payload: {
        labels: { app: 'shop', tier: 'web' },
        podIPs: ['10.244.1.5', 'fd00::5'],
        hostNetwork: false,
        terminal: false,
        nodeName: 'node-a',
      },
    });
  });

  void it('given a pod with only status.podIP, a host-network pod, a finished pod, an unscheduled pod', () => {
    assert.deepEqual(rightOf(parsePod({ ...pod, status: { podIP: '10.0.0.1' } })).payload.podIPs, [
      '10.0.0.1',
    ]);
    assert.equal(
      rightOf(parsePod({ ...pod, spec: { containers: [], hostNetwork: true } })).payload.hostNetwork,
      true,
    );
    for (const phase of ['Succeeded', 'Failed'])
      assert.equal(rightOf(parsePod({ ...pod, status: { phase } })).payload.terminal, true);
    const unscheduled = rightOf(
      parsePod({ metadata: { name: 'p', namespace: 'n' }, status: { phase: 'Pending' } }),
    );
    assert.deepEqual(unscheduled.payload, { labels: {}, podIPs: [], hostNetwork: false, terminal: false });
  });

  void it('given a pod that differs only in fields projections do not read, then the same payload', () => {
    const later: V1Pod = {
      ...pod,
      metadata: { ...pod.metadata, resourceVersion: '8', labels: { app: 'shop', tier: 'web' } },
      status: { ...pod.status, conditions: [{ type: 'Ready', status: 'False' }], startTime: new Date(0) },
    };
    assert.ok(samePayload(rightOf(parsePod(pod)).payload, rightOf(parsePod(later)).payload));
    const relabelled: V1Pod = { ...pod, metadata: { ...pod.metadata, labels: { app: 'shop' } } };
    assert.ok(!samePayload(rightOf(parsePod(pod)).payload, rightOf(parsePod(relabelled)).payload));
  });

  void it('given objects without a name or with a bad address, then a ParseError', () => {
    assert.match(leftOf(parsePod({ metadata: { namespace: 'n' } })).reason, /metadata\.name: missing/);
    assert.match(leftOf(parsePod({ metadata: { name: 'p' } })).reason, /metadata\.namespace: missing/);
    assert.match(leftOf(parsePod({ ...pod, status: { podIP: '10.0.0.256' } })).reason, /status\.podIPs/);
    assert.match(leftOf(parseObjectRef('Node', {})).reason, /metadata\.name/);
  });

  void it('given a node, then labels, Ready, unschedulable, the first InternalIP, its IP addresses and pod CIDRs', () => {
    const node: V1Node = {
      metadata: { name: 'node-a', namespace: '', labels: { b: '1', a: '2' } },
      spec: { unschedulable: true, podCIDRs: ['fd00:10:244:1::/64', '10.244.1.0/24'] },
      status: {
        conditions: [
          { type: 'MemoryPressure', status: 'False' },
          { type: 'Ready', status: 'True' },
        ],
        addresses: [
          { type: 'Hostname', address: 'node-a' },
          { type: 'InternalIP', address: '192.0.2.11' },
          { type: 'InternalIP', address: 'fd00::11' },
          { type: 'ExternalIP', address: '198.51.100.11' },
          { type: 'InternalDNS', address: 'node-a.example' },
        ],
      },
    };
    assert.deepEqual(rightOf(parseNode(node)), {
      type: 'NodeObserved',
      object: { kind: 'Node', name: 'node-a' },
      payload: {
        labels: { a: '2', b: '1' },
        ready: true,
        unschedulable: true,
        internalIP: '192.0.2.11',
        addresses: ['192.0.2.11', '198.51.100.11', 'fd00::11'],
        podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      },
    });
    const badCidr = { ...node, spec: { podCIDRs: ['10.244.1.0/33'] } };
    assert.match(leftOf(parseNode(badCidr)).reason, /spec\.podCIDRs: "10\.244\.1\.0\/33" is not a CIDR/);
    const badExternal = {
      ...node,
      status: { addresses: [{ type: 'ExternalIP', address: '999.1.1.1' }] },
    };
    assert.match(leftOf(parseNode(badExternal)).reason, /ExternalIP "999\.1\.1\.1" is not an IP address/);
    const bare = rightOf(
      parseNode({ metadata: { name: 'n' }, status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } }),
    );
    assert.deepEqual(bare.payload, { labels: {}, ready: false, unschedulable: false });
  });

  void it('given a ServiceCIDR, then its CIDRs in canonical order', () => {
    const parsed = rightOf(
      parseServiceCIDR({
        metadata: { name: 'kubernetes' },
        spec: { cidrs: ['fd00:96::/108', '10.96.0.0/16'] },
      }),
    );
    assert.deepEqual(parsed, {
      type: 'ServiceCIDRObserved',
      object: { kind: 'ServiceCIDR', name: 'kubernetes' },
      payload: { cidrs: ['10.96.0.0/16', 'fd00:96::/108'] },
    });
    assert.match(
      leftOf(parseServiceCIDR({ metadata: { name: 'x' }, spec: { cidrs: ['10.96.0.0'] } })).reason,
      /spec\.cidrs: "10\.96\.0\.0" is not a CIDR/,
    );
  });

  void it('given an EndpointSlice, then its Service and its endpoints (ready or not) sorted by pod', () => {
    const slice: V1EndpointSlice = {
      metadata: {
        name: 'frontend-abc',
        namespace: 'shop',
        labels: { 'kubernetes.io/service-name': 'frontend' },
      },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['10.244.2.7'],
          nodeName: 'node-b',
          targetRef: { kind: 'Pod', name: 'web-2' },
          conditions: { ready: false },
        },
        { addresses: ['10.244.1.5'], nodeName: 'node-a', targetRef: { kind: 'Pod', name: 'web-1' } },
        { addresses: ['192.0.2.50'] },
      ],
    };
    assert.deepEqual(rightOf(parseEndpointSlice(slice)).payload, {
      serviceName: 'frontend',
      endpoints: [
        { addresses: ['192.0.2.50'] },
        { addresses: ['10.244.1.5'], podName: 'web-1', nodeName: 'node-a' },
        { addresses: ['10.244.2.7'], podName: 'web-2', nodeName: 'node-b' },
      ],
    });
    assert.deepEqual(rightOf(parseEndpointSlice({ ...slice, addressType: 'FQDN' })).payload.endpoints, []);
    const orphan = leftOf(parseEndpointSlice({ ...slice, metadata: { name: 'x', namespace: 'shop' } }));
    assert.match(orphan.reason, /kubernetes\.io\/service-name/);
  });

  void it('given Services with and without a selector, and a namespace', () => {
    const svc = (selector?: Record<string, string>) =>
      rightOf(parseService({ metadata: { name: 's', namespace: 'n' }, spec: { selector } })).payload;
    assert.deepEqual(svc({ b: '1', a: '2' }), { selector: { a: '2', b: '1' } });
    assert.deepEqual(svc({}), {});
    assert.deepEqual(svc(), {});
    assert.deepEqual(rightOf(parseNamespace({ metadata: { name: 'shop', labels: { team: 'a' } } })), {
      type: 'NamespaceObserved',
      object: { kind: 'Namespace', name: 'shop' },
      payload: { labels: { team: 'a' } },
    });
  });

  void it('parseObject dispatches by kind', () => {
    assert.equal(rightOf(parseObject('Pod', pod)).type, 'PodObserved');
    assert.equal(rightOf(parseObject('Namespace', { metadata: { name: 'x' } })).type, 'NamespaceObserved');
    assert.equal(leftOf(parseObject('StaticEgressIP', { metadata: { name: 'x' } })).kind, 'StaticEgressIP');
  });
});

void describe('canonical output (properties)', () => {
  const shuffled = <T>(items: readonly T[]) =>
    fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });

  void it('any order of destinations, exceptions, labels and selector values gives the same payload', () => {
    const destinations = ['203.0.113.0/25', '203.0.113.128/25', '192.0.2.0/24', '10.0.0.0/8'];
    const exceptions = ['203.0.113.0/26', '10.9.0.0/16', '192.0.2.7/32'];
    const labels: Array<[string, string]> = [
      ['app', 'shop'],
      ['tier', 'web'],
      ['zone', 'a'],
    ];
    const policy = (d: string[], e: string[], l: Array<[string, string]>, v: string[]) =>
      rightOf(
        parseStaticEgressIP({
          metadata: { name: 'p', namespace: 'n' },
          spec: {
            rules: [
              {
                egressip: '198.51.100.10',
                podSelector: {
                  matchLabels: Object.fromEntries(l),
                  matchExpressions: [{ key: 'k', operator: 'In', values: v }],
                },
                destinations: d,
                exceptions: e,
              },
            ],
          },
        }),
      ).payload;
    const reference = policy(destinations, exceptions, labels, ['x', 'y', 'z']);
    fc.assert(
      fc.property(
        shuffled(destinations),
        shuffled(exceptions),
        shuffled(labels),
        shuffled(['x', 'y', 'z']),
        (d, e, l, v) => samePayload(policy(d, e, l, v), reference),
      ),
    );
  });
});
