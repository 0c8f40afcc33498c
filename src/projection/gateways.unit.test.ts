// Gateway assignment: who may hold an egress IP, the stable (rendezvous) choice, standbys and
// failover, load spread, the gateway decisions, and slots.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';
import type { ClusterEvent } from '../contracts/cluster-events.ts';

const NODES = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'];

function cluster(nodes = NODES) {
  const ev = events();
  const s = new Scenario().given(
    ev.pool('pool'),
    ev.namespace('default'),
    nodes.flatMap((n) => healthyNode(ev, n)),
  );
  return { ev, s };
}

const assignment = (s: Scenario, ip = '198.51.100.1') => s.assignments()[ip];

void describe('eligibility', () => {
  const cases: [string, (ev: ReturnType<typeof events>, n: string) => ClusterEvent][] = [
    ['NotReady', (ev, n) => ev.node(n, { ready: false })],
    ['cordoned (unschedulable)', (ev, n) => ev.node(n, { unschedulable: true })],
    ['without InternalIP', (ev, n) => ev.node(n, { ip: '' })],
    ['lost (NodeLost)', (ev, n) => ev.nodeLost(n)],
    ['deleted', (ev, n) => ev.nodeDeleted(n)],
  ];
  for (const [what, make] of cases)
    void it(`given the only healthy node, when it is ${what}, then no node holds the IP`, () => {
      const { ev, s } = cluster(['node-1']);
      s.given(ev.policy('default', 'eip', [rule({ podSelector: {} })]));
      assert.equal(assignment(s)?.active, 'node-1');
      s.when(make(ev, 'node-1'));
      assert.equal(assignment(s)?.active, '');
    });

  void it('given a gatewaySelector, then only matching nodes are ranked', () => {
    const { ev, s } = cluster();
    s.given(
      ev.node('node-4', { labels: { egress: 'true' } }),
      ev.node('node-2', { labels: { egress: 'true' } }),
    );
    s.when(
      ev.policy('default', 'eip', [
        rule({ podSelector: {}, gateways: 5, gatewaySelector: { matchLabels: { egress: 'true' } } }),
      ]),
    );
    const a = assignment(s);
    assert.deepEqual([a?.active, ...(a?.standbys ?? [])].sort(), ['node-2', 'node-4']);
  });
});

void describe('stable choice (rendezvous hashing)', () => {
  void it('given an assignment, when unrelated nodes change, join or leave, then the gateway does not move', () => {
    const { ev, s } = cluster();
    s.given(ev.policy('default', 'eip', [rule({ podSelector: {}, gateways: 2 })]));
    const before = assignment(s);
    const others = NODES.filter((n) => n !== before?.active && !before?.standbys.includes(n));
    const out = s.when(
      ev.node(others[0] as string, { labels: { touched: 'yes' } }),
      ev.nodeLost(others[1] as string),
      ev.pod('default', 'unrelated', { ip: '10.0.9.9', node: others[2] }),
    );
    assert.deepEqual(assignment(s), before);
    assert.deepEqual(decisionsOfType(out, 'GatewayFailedOver'), []);
  });

  void it('given the same nodes in a different order, then the assignment is the same', () => {
    const a = cluster(NODES);
    const b = cluster([...NODES].reverse());
    for (const { ev, s } of [a, b])
      s.given(ev.policy('default', 'eip', [rule({ podSelector: {}, gateways: 3 })]));
    assert.deepEqual(assignment(a.s), assignment(b.s));
  });

  void it('given many egress IPs on five nodes, then each node holds some and none holds far more than its share', () => {
    const { ev, s } = cluster();
    const ips = Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`);
    s.given(
      ev.policy(
        'default',
        'many',
        ips.map((ip) => rule({ egressIP: ip, podSelector: {} })),
      ),
    );
    const load = new Map<string, number>();
    for (const a of Object.values(s.assignments())) load.set(a.active, (load.get(a.active) ?? 0) + 1);
    assert.equal(load.size, 5);
    for (const [node, n] of load) assert.ok(n >= 8 && n <= 35, `${node} holds ${n} of 100`);
  });
});

void describe('standbys and failover', () => {
  void it('given gateways: 3, then one active holder and two ranked standbys', () => {
    const { ev, s } = cluster();
    const out = s.when(ev.policy('default', 'eip', [rule({ podSelector: {}, gateways: 3 })]));
    const d = decisionsOfType(out, 'GatewayAssigned')[0];
    assert.equal(d?.standbys.length, 2);
    assert.equal(new Set([d?.active, ...(d?.standbys ?? [])]).size, 3);
    assert.equal(d?.previous, '');
  });

  void it('given an active holder with standbys, when the holder is lost, then the first standby takes over (NodeLost)', () => {
    const { ev, s } = cluster();
    s.given(ev.policy('default', 'eip', [rule({ podSelector: {}, gateways: 3 })]));
    const before = assignment(s);
    const out = s.when(ev.nodeLost(before?.active as string));
    const d = decisionsOfType(out, 'GatewayFailedOver')[0];
    assert.deepEqual(
      { from: d?.from, to: d?.to, reason: d?.reason },
      { from: before?.active, to: before?.standbys[0], reason: 'NodeLost' },
    );
    assert.equal(assignment(s)?.standbys[0], before?.standbys[1]);
    assert.equal(d?.offset, out.offset);
  });

  void it('given an active holder, when it is cordoned, then it hands over (Cordoned)', () => {
    const { ev, s } = cluster();
    s.given(ev.policy('default', 'eip', [rule({ podSelector: {}, gateways: 2 })]));
    const before = assignment(s);
    const out = s.when(ev.node(before?.active as string, { unschedulable: true }));
    const d = decisionsOfType(out, 'GatewayFailedOver')[0];
    assert.equal(d?.reason, 'Cordoned');
    assert.equal(d?.to, before?.standbys[0]);
    const newHolder = out.nodeRules.find((r) => r.node === d?.to);
    assert.deepEqual(newHolder?.egressIPs, [{ slot: 1, egressIP: '198.51.100.1' }]);
    const oldHolder = out.nodeRules.find((r) => r.node === d?.from);
    assert.deepEqual(oldHolder?.egressIPs, []);
  });

  void it('given a failover, when the old holder comes back, then it takes its IP back (Preempted): the ranking depends only on who is eligible', () => {
    const { ev, s } = cluster();
    s.given(ev.policy('default', 'eip', [rule({ podSelector: {} })]));
    const first = assignment(s)?.active as string;
    s.given(ev.nodeLost(first));
    const out = s.when(ev.nodeBack(first));
    const d = decisionsOfType(out, 'GatewayFailedOver')[0];
    assert.equal(d?.to, first);
    assert.equal(d?.reason, 'Preempted');
  });

  void it('given NotReady and a lost selector label, then the failover reasons say so', () => {
    const { ev, s } = cluster();
    s.given(
      NODES.map((n) => ev.node(n, { labels: { egress: 'yes' } })),
      ev.policy('default', 'eip', [
        rule({ podSelector: {}, gatewaySelector: { matchLabels: { egress: 'yes' } } }),
      ]),
    );
    const a = assignment(s)?.active as string;
    assert.equal(
      decisionsOfType(s.when(ev.node(a, { ready: false, labels: { egress: 'yes' } })), 'GatewayFailedOver')[0]
        ?.reason,
      'NotReady',
    );
    const b = assignment(s)?.active as string;
    assert.equal(
      decisionsOfType(s.when(ev.node(b, { labels: {} })), 'GatewayFailedOver')[0]?.reason,
      'NotEligible',
    );
  });

  void it('given the last eligible node is lost, then the IP is released (NoEligibleGateway) and directors drop instead of using the node IP', () => {
    const { ev, s } = cluster(['node-1', 'node-2']);
    s.given(
      ev.pod('default', 'web', { ip: '10.0.2.1', node: 'node-2' }),
      ev.node('node-2', { unschedulable: true }),
      ev.policy('default', 'eip', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.nodeLost('node-1'));
    const d = decisionsOfType(out, 'GatewayReleased')[0];
    assert.deepEqual(
      { from: d?.from, reason: d?.reason, fromReason: d?.fromReason },
      { from: 'node-1', reason: 'NoEligibleGateway', fromReason: 'NodeLost' },
    );
    const steer = s.rules('node-2')?.steers[0];
    assert.deepEqual(
      { node: steer?.gatewayNode, ip: steer?.gatewayIP, pods: steer?.podIPs },
      { node: '', ip: '', pods: ['10.0.2.1'] },
    );
    const assigned = s.status('default/eip')?.conditions.find((c) => c.type === 'Assigned');
    assert.equal(assigned?.reason, 'NoEligibleGateway');
  });

  void it('given a policy, when it is deleted, then its IP is released (NotInUse) and nothing of it stays on any node', () => {
    const { ev, s } = cluster(['node-1', 'node-2']);
    s.given(
      ev.pod('default', 'web', { ip: '10.0.2.1', node: 'node-2' }),
      ev.policy('default', 'eip', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.policyDeleted('default', 'eip'));
    assert.equal(decisionsOfType(out, 'GatewayReleased')[0]?.reason, 'NotInUse');
    for (const n of ['node-1', 'node-2']) {
      assert.deepEqual(s.rules(n)?.steers, []);
      assert.deepEqual(s.rules(n)?.egressIPs, []);
    }
    assert.deepEqual(s.assignments(), {});
  });
});

void describe('slots', () => {
  void it('given IPs coming into use, then each gets the lowest free slot, kept while in use and reused once free', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('default', 'a', [rule({ egressIP: '198.51.100.10', podSelector: {} })]),
      ev.policy('default', 'b', [rule({ egressIP: '198.51.100.20', podSelector: {} })]),
      ev.policy('default', 'c', [rule({ egressIP: '198.51.100.30', podSelector: {} })]),
    );
    const slots = () => Object.fromEntries(Object.entries(s.assignments()).map(([ip, a]) => [ip, a.slot]));
    assert.deepEqual(slots(), { '198.51.100.10': 1, '198.51.100.20': 2, '198.51.100.30': 3 });
    s.given(ev.policyDeleted('default', 'b'));
    assert.deepEqual(slots(), { '198.51.100.10': 1, '198.51.100.30': 3 }, 'others keep their slot');
    s.given(ev.policy('default', 'd', [rule({ egressIP: '198.51.100.40', podSelector: {} })]));
    assert.equal(slots()['198.51.100.40'], 2);
  });
});
