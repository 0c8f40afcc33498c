// Pools: an egress IP is used only when an Accepted pool covers it and admits the namespace; the
// pool's nodeSelector limits the gateways. Overlapping pools: the older governs. Pool status:
// allocations, Accepted, Conflict (PoolStatusComputed).
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

  void it('given two overlapping pools, then the older governs and the newer governs nothing, not even its other addresses', () => {
    const { ev, s } = base();
    s.given(
      ev.pool('b-old', ['198.51.100.0/28'], {
        nodeSelector: { matchLabels: { egress: 'yes' } },
        creationTimestamp: '2026-01-01T00:00:00Z',
      }),
    );
    const out = s.when(
      ev.pool('a-new', ['198.51.100.1/32', '198.51.100.40/32'], {
        creationTimestamp: '2026-01-02T00:00:00Z',
      }),
    );
    const loser = decisionsOfType(out, 'PoolStatusComputed').find((d) => d.pool.name === 'a-new');
    assert.deepEqual(loser?.conditions[0], {
      type: 'Accepted',
      status: 'False',
      reason: 'Overlaps',
      message:
        '198.51.100.1/32 overlaps 198.51.100.0/28 of pool b-old, which takes precedence (created earlier); no address of this pool is used until the overlap is removed',
    });
    s.when(
      ev.policy('team-a', 'eip', [rule({ podSelector: {} })]),
      ev.policy('team-a', 'other', [
        rule({ egressIP: '198.51.100.40', podSelector: {}, to: ['203.0.113.0/32'] }),
      ]),
    );
    assert.match(accepted(s, 'team-a/eip')?.message ?? '', /pool b-old covers/);
    assert.equal(s.assignments()['198.51.100.1']?.active, 'node-1', "b-old's nodeSelector applies");
    assert.equal(accepted(s, 'team-a/other')?.reason, 'PoolNotAccepted');
    assert.match(
      accepted(s, 'team-a/other')?.message ?? '',
      /covered only by pool a-new, which is not Accepted: it overlaps pool b-old/,
    );
    assert.deepEqual(s.poolStatus('b-old')?.allocations, [
      { egressIP: '198.51.100.1', policy: 'team-a/eip' },
    ]);
    assert.deepEqual(s.poolStatus('a-new')?.allocations, []);

    const deleted = s.when(ev.poolDeleted('b-old'));
    assert.equal(s.poolStatus('a-new')?.conditions[0]?.status, 'True');
    assert.deepEqual(s.poolStatus('a-new')?.allocations, [
      { egressIP: '198.51.100.1', policy: 'team-a/eip' },
      { egressIP: '198.51.100.40', policy: 'team-a/other' },
    ]);
    assert.equal(accepted(s, 'team-a/other')?.status, 'True');
    assert.ok(
      !decisionsOfType(deleted, 'PoolStatusComputed').some((d) => d.pool.name === 'b-old'),
      'a deleted pool gets no status',
    );
  });

  void it('given two overlapping pools of the same age, then the first by name wins, whatever order the log has them in', () => {
    for (const order of [
      ['a', 'b'],
      ['b', 'a'],
    ]) {
      const { ev, s } = base();
      s.given(...order.map((n) => ev.pool(`pool-${n}`, ['198.51.100.0/24'])));
      assert.equal(s.poolStatus('pool-a')?.conditions[0]?.status, 'True', `order ${order.join(',')}`);
      assert.equal(s.poolStatus('pool-b')?.conditions[0]?.reason, 'Overlaps', `order ${order.join(',')}`);
    }
  });

  void it('given a pool that admits only team a, when team b asks for its address, then the pool shows Conflict=True NamespaceNotAdmitted until it stops', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { team: 'a' } } }));
    assert.deepEqual(s.poolStatus('pool')?.conditions[1], {
      type: 'Conflict',
      status: 'False',
      reason: 'NoConflict',
      message: 'no policy asks for an address of this pool from a namespace it does not admit',
    });
    s.when(ev.policy('team-b', 'eip', [rule({ egressIP: '198.51.100.5', podSelector: {} })]));
    assert.deepEqual(s.poolStatus('pool')?.conditions[1], {
      type: 'Conflict',
      status: 'True',
      reason: 'NamespaceNotAdmitted',
      message:
        'StaticEgressIP team-b/eip asks for 198.51.100.5 from namespace team-b, which this pool does not admit',
    });
    assert.deepEqual(s.poolStatus('pool')?.allocations, []);
    // Relabelled into the pool: the conflict ends and the IP is allocated.
    s.when(ev.namespace('team-b', { team: 'a' }));
    assert.equal(s.poolStatus('pool')?.conditions[1]?.status, 'False');
    assert.deepEqual(s.poolStatus('pool')?.allocations, [{ egressIP: '198.51.100.5', policy: 'team-b/eip' }]);
  });

  void it('given a cluster policy whose namespaces the pool partly admits, then the pool shows no Conflict (the policy names them)', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { team: 'a' } } }));
    s.when(ev.clusterPolicy('everyone', {}, [rule({ podSelector: { matchLabels: { app: 'web' } } })]));
    assert.equal(s.poolStatus('pool')?.conditions[1]?.status, 'False');
    assert.deepEqual(s.poolStatus('pool')?.allocations, [{ egressIP: '198.51.100.1', policy: 'everyone' }]);
  });

  void it('given a pool status, then it is emitted again only when it changes, and for a re-created pool (another uid)', () => {
    const { ev, s } = base();
    s.given(ev.pool('pool', ['198.51.100.0/24'], {}, 'uid-1'));
    assert.equal(s.poolStatus('pool')?.pool.uid, 'uid-1');
    const pod = s.when(ev.pod('team-a', 'web-2', { labels: { app: 'web' }, ip: '10.0.1.3', node: 'node-3' }));
    assert.deepEqual(decisionsOfType(pod, 'PoolStatusComputed'), [], 'nothing of the pool changed');
    const same = s.when(ev.pool('pool', ['198.51.100.0/24'], {}, 'uid-1'));
    assert.deepEqual(decisionsOfType(same, 'PoolStatusComputed'), []);
    const recreated = s.when(ev.pool('pool', ['198.51.100.0/24'], {}, 'uid-2'));
    assert.deepEqual(
      decisionsOfType(recreated, 'PoolStatusComputed').map((d) => d.pool),
      [{ name: 'pool', uid: 'uid-2' }],
    );
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
