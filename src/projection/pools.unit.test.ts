// Pools: an egress IP is used only when a pool covers it and admits the namespace; the pool's
// nodeSelector limits the gateways.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';

function base() {
  const ev = events();
  const s = new Scenario().given(
    ev.namespace('team-a', { team: 'a' }),
    ev.namespace('team-b', { team: 'b' }),
    healthyNode(ev, 'node-1', { labels: { egress: 'yes' } }),
    healthyNode(ev, 'node-2'),
    healthyNode(ev, 'node-3'),
    ev.pod('team-a', 'web', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-2' }),
    ev.pod('team-b', 'web', { labels: { app: 'web' }, ip: '10.0.1.2', node: 'node-2' }),
  );
  return { ev, s };
}

const accepted = (s: Scenario, policy: string) =>
  s.status(policy)?.conditions.find((c) => c.type === 'Accepted');

void describe('pools', () => {
  void it('given no pool, when a policy claims an egress IP, then it is not Accepted (NoPoolCoversIP) and nothing is programmed', () => {
    const { ev, s } = base();
    const out = s.when(ev.policy('team-a', 'eip', [rule({ podSelector: {} })]));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'False');
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'NoPoolCoversIP');
    assert.deepEqual(out.nodeRules, []);
    assert.deepEqual(decisionsOfType(out, 'GatewayAssigned'), []);
  });

  void it('given a policy without pool, when a pool covering its IP appears, then it becomes Accepted and gets a gateway', () => {
    const { ev, s } = base();
    s.given(ev.policy('team-a', 'eip', [rule({ podSelector: {} })]));
    const out = s.when(ev.pool('pool', ['198.51.100.0-198.51.100.9']));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
    assert.equal(decisionsOfType(out, 'GatewayAssigned').length, 1);
    assert.deepEqual(s.rules('node-2')?.steers[0]?.podIPs, ['10.0.1.1']);
  });

  void it('given a pool range that ends before the egress IP, then the rule is not covered', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.2-198.51.100.9']));
    s.when(ev.policy('team-a', 'eip', [rule({ podSelector: {} })]));
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'NoPoolCoversIP');
  });

  void it('given a pool that admits only team a, when team b claims one of its IPs, then it is NamespaceNotPermitted', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { team: 'a' } } }));
    s.when(ev.policy('team-b', 'eip', [rule({ podSelector: {} })]));
    assert.equal(accepted(s, 'team-b/eip')?.reason, 'NamespaceNotPermitted');
    assert.deepEqual(s.rules('node-2')?.steers ?? [], []);
    s.when(ev.policy('team-a', 'eip', [rule({ egressIP: '198.51.100.7', podSelector: {} })]));
    assert.equal(accepted(s, 'team-a/eip')?.status, 'True');
  });

  void it('given an accepted policy, when its namespace is relabelled out of the pool, then it stops being Accepted and is released', () => {
    const { ev, s } = base();
    s.given(
      ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { team: 'a' } } }),
      ev.policy('team-a', 'eip', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.namespace('team-a', { team: 'c' }));
    assert.equal(accepted(s, 'team-a/eip')?.reason, 'NamespaceNotPermitted');
    assert.equal(decisionsOfType(out, 'GatewayReleased')[0]?.reason, 'NotInUse');
  });

  void it("given a pool nodeSelector, then only the nodes it selects can hold the pool's IPs", () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], { nodeSelector: { matchLabels: { egress: 'yes' } } }));
    s.when(ev.policy('team-a', 'eip', [rule({ podSelector: {}, gateways: 3 })]));
    assert.deepEqual(s.assignments()['198.51.100.1'], { active: 'node-1', standbys: [], slot: 1 });
  });

  void it('given a cluster policy over both teams, then only the namespaces its pool admits are steered', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { team: 'a' } } }));
    s.when(ev.clusterPolicy('everyone', {}, [rule({ podSelector: { matchLabels: { app: 'web' } } })]));
    assert.deepEqual(s.rules('node-2')?.steers[0]?.podIPs, ['10.0.1.1']);
    assert.match(accepted(s, 'everyone')?.message ?? '', /left out: team-b/);
  });

  void it('given two pools covering the IP, then the first by name governs (its nodeSelector applies)', () => {
    const { ev, s } = base();
    s.given(
      ev.pool('b-pool', ['198.51.100.0/24'], { nodeSelector: { matchLabels: { egress: 'yes' } } }),
      ev.pool('a-pool', ['198.51.100.1/32'], { nodeSelector: { matchLabels: { egress: 'no' } } }),
    );
    s.when(ev.policy('team-a', 'eip', [rule({ podSelector: {} })]));
    assert.match(accepted(s, 'team-a/eip')?.message ?? '', /a-pool/);
    assert.equal(s.assignments()['198.51.100.1']?.active, '', 'a-pool admits no node');
    s.when(ev.poolDeleted('a-pool'));
    assert.equal(s.assignments()['198.51.100.1']?.active, 'node-1');
  });

  void it('given a rule whose egress IP or destination is not an address, then it is not Accepted and selects nothing', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool'));
    s.when(
      ev.policy('team-a', 'bad', [
        rule({ egressIP: '198.51.100.300', podSelector: {} }),
        rule({ egressIP: '198.51.100.7', podSelector: {}, to: ['203.0.113.0/33'] }),
        rule({ egressIP: '198.51.100.8', podSelector: {}, to: ['2001:db8::/64'] }),
      ]),
    );
    const rules = s.status('team-a/bad')?.rules ?? [];
    assert.deepEqual(
      rules.map((r) => [r.conditions[0]?.reason, r.selectedPods]),
      [
        ['InvalidEgressIP', 0],
        ['InvalidDestination', 0],
        ['InvalidDestination', 0],
      ],
    );
    assert.deepEqual(s.assignments(), {});
  });
});
