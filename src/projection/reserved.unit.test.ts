// Reserved addresses (issue 12, findings 1 and 7): an egress IP that the cluster itself uses is
// never taken, and steers never capture the cluster's own addresses, both from the log alone.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';
import { diffWithReference } from './reference.ts';

const POD_CIDR_1 = '10.244.1.0/24';
const POD_CIDR_2 = '10.244.2.0/24';

/** Two nodes with addresses and pod CIDRs, a service CIDR, a careless pool over all of it. */
function base() {
  const ev = events();
  const s = new Scenario().given(
    ev.namespace('team-a'),
    healthyNode(ev, 'node-1', {
      ip: '10.240.0.11',
      addresses: ['10.240.0.11', '198.51.100.211'],
      podCIDRs: [POD_CIDR_1],
    }),
    healthyNode(ev, 'node-2', { ip: '10.240.0.12', addresses: ['10.240.0.12'], podCIDRs: [POD_CIDR_2] }),
    ev.serviceCIDR('kubernetes', ['10.96.0.0/16']),
    ev.pod('team-a', 'web', { labels: { app: 'web' }, ip: '10.244.2.5', node: 'node-2' }),
    ev.pool('careless', ['10.0.0.0/8', '198.51.100.0/24']),
  );
  return { ev, s };
}

const accepted = (s: Scenario, policy: string) =>
  s.status(policy)?.conditions.find((c) => c.type === 'Accepted');

const claim = (
  ev: ReturnType<typeof events>,
  name: string,
  egressIP: string,
  destinations = ['203.0.113.0/24'],
) =>
  ev.policy('team-a', name, [
    rule({ egressIP, podSelector: { matchLabels: { app: 'web' } }, to: destinations }),
  ]);

void describe('reserved addresses: egress IPs the cluster uses are never taken', () => {
  for (const [what, ip, holder] of [
    ["a node's InternalIP", '10.240.0.11', 'the address of node node-1'],
    ["a node's ExternalIP", '198.51.100.211', 'the address of node node-1'],
    ["a pod's IP", '10.244.2.5', 'the IP of pod team-a/web'],
    ['an unused address in a pod CIDR', '10.244.1.77', `inside the pod CIDR ${POD_CIDR_1} of node node-1`],
    [
      'an address in the service CIDR',
      '10.96.3.4',
      'inside the service CIDR 10.96.0.0/16 (ServiceCIDR kubernetes)',
    ],
  ] as const)
    void it(`given ${what} as egress IP, then the rule is not Accepted, names the holder, and nothing holds or steers it`, () => {
      const { ev, s } = base();
      const out = s.when(claim(ev, 'eip', ip));
      const c = accepted(s, 'team-a/eip');
      assert.equal(c?.status, 'False');
      assert.equal(c?.reason, 'EgressIPInUse');
      assert.match(
        c?.message ?? '',
        new RegExp(
          `egress IP ${ip.replace(/\./g, '\\.')} is in use: it is ${holder.replace(/[().]/g, '\\$&')}`,
        ),
      );
      assert.deepEqual(decisionsOfType(out, 'GatewayAssigned'), []);
      assert.deepEqual(out.nodeRules, []);
      assert.deepEqual(diffWithReference(s.state), []);
    });

  void it('given an accepted egress IP, when a pod gets that IP, then the rule is released; when the pod goes, it is taken again', () => {
    const { ev, s } = base();
    s.given(claim(ev, 'eip', '10.1.2.3'));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    assert.equal(s.rules('node-2')?.steers.length, 1);
    s.when(ev.pod('team-a', 'squatter', { ip: '10.1.2.3', node: 'node-1' }));
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'EgressIPInUse');
    assert.deepEqual(s.rules('node-2')?.steers ?? [], []);
    assert.deepEqual(diffWithReference(s.state), []);
    s.when(ev.podDeleted('team-a', 'squatter'));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    assert.equal(s.rules('node-2')?.steers.length, 1);
    assert.deepEqual(diffWithReference(s.state), []);
  });

  void it('given an accepted egress IP, when a node comes up with it as its address, then the rule is released', () => {
    const { ev, s } = base();
    s.given(claim(ev, 'eip', '10.1.2.3'));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    s.when(healthyNode(ev, 'node-3', { ip: '10.1.2.3', addresses: ['10.1.2.3'] }));
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'EgressIPInUse');
    assert.match(accepted(s, 'team-a/eip')?.message ?? '', /the address of node node-3/);
    s.when(ev.nodeDeleted('node-3'));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    assert.deepEqual(diffWithReference(s.state), []);
  });

  void it('given a host-network pod, then its IP (the node address) is named as the node, not the pod', () => {
    const { ev, s } = base();
    s.given(ev.pod('team-a', 'agent', { ip: '10.240.0.12', node: 'node-2', hostNetwork: true }));
    s.when(claim(ev, 'eip', '10.240.0.12'));
    assert.match(accepted(s, 'team-a/eip')?.message ?? '', /it is the address of node node-2/);
  });

  void it('given a ServiceCIDR that goes away, then an egress IP inside it becomes usable', () => {
    const { ev, s } = base();
    s.given(claim(ev, 'eip', '10.96.3.4'));
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'EgressIPInUse');
    s.when(ev.serviceCIDRDeleted('kubernetes'));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    assert.deepEqual(diffWithReference(s.state), []);
  });
});

void describe('reserved addresses: steers never capture the cluster', () => {
  void it('given destinations 0.0.0.0/0, then the node rules name every node address, pod CIDR and service CIDR as never-steer', () => {
    const { ev, s } = base();
    s.when(claim(ev, 'eip', '198.51.100.7', ['0.0.0.0/0']));
    assert.deepEqual(
      s.rules('node-2')?.neverSteer,
      [
        '10.240.0.11/32',
        '10.240.0.12/32',
        POD_CIDR_1,
        POD_CIDR_2,
        '10.96.0.0/16',
        '198.51.100.211/32',
      ].sort(),
    );
    assert.deepEqual(diffWithReference(s.state), []);
  });

  void it('given destinations outside the cluster, then no never-steer is sent (the record does not grow with the cluster)', () => {
    const { ev, s } = base();
    s.when(claim(ev, 'eip', '198.51.100.7'));
    assert.equal(s.rules('node-2')?.steers.length, 1);
    assert.equal(s.rules('node-2')?.neverSteer, undefined);
  });

  void it('given a steer over 10.0.0.0/8, when a node joins with a new pod CIDR, then every steering node gets it', () => {
    const { ev, s } = base();
    s.given(claim(ev, 'eip', '198.51.100.7', ['10.0.0.0/8']));
    const before = s.rules('node-2');
    assert.ok(!before?.neverSteer?.includes('10.244.3.0/24'));
    const out = s.when(healthyNode(ev, 'node-3', { ip: '192.0.2.13', podCIDRs: ['10.244.3.0/24'] }));
    const node2 = out.nodeRules.find((r) => r.node === 'node-2');
    assert.ok(node2?.neverSteer?.includes('10.244.3.0/24'), JSON.stringify(node2));
    assert.ok(
      !node2?.neverSteer?.includes('192.0.2.13/32'),
      'an address outside the destinations is not sent',
    );
    assert.deepEqual(diffWithReference(s.state), []);
  });

  void it('given an exception that covers a pod CIDR, then that CIDR is not sent', () => {
    const { ev, s } = base();
    s.when(
      ev.policy('team-a', 'eip', [
        rule({ egressIP: '198.51.100.7', podSelector: {}, to: ['10.244.0.0/16'], except: ['10.244.1.0/24'] }),
      ]),
    );
    assert.deepEqual(s.rules('node-2')?.neverSteer, [POD_CIDR_2]);
  });
});
