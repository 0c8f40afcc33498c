// PolicyStatusComputed: what the status writer turns into StaticEgressIP.status.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';

void describe('policy status', () => {
  void it('given the seed manifest and a pool, then the status names the gateway, standbys, counts and conditions', () => {
    const ev = events();
    const s = new Scenario().given(
      ev.pool('pool'),
      ev.namespace('default'),
      healthyNode(ev, 'node-1'),
      healthyNode(ev, 'node-2'),
      ev.service('default', 'frontend', { app: 'fe' }),
      ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('default', 'fe-2', { labels: { app: 'fe' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.pod('default', 'fe-3', { labels: { app: 'fe' } }),
    );
    const out = s.when(
      ev.policy('default', 'eip', [rule({ service: 'frontend', to: ['4.2.2.2/32'], gateways: 2 })], 7),
    );
    const st = decisionsOfType(out, 'PolicyStatusComputed')[0];
    assert.equal(st?.observedGeneration, 7);
    assert.deepEqual(st?.policy, { kind: 'StaticEgressIP', namespace: 'default', name: 'eip' });
    const r = st?.rules[0];
    assert.deepEqual(
      {
        ip: r?.egressIP,
        gws: [r?.active, ...(r?.standbys ?? [])].sort(),
        pods: r?.selectedPods,
        unprog: r?.unprogrammablePods,
        nodes: r?.selectedNodes,
      },
      { ip: '198.51.100.1', gws: ['node-1', 'node-2'], pods: 3, unprog: 1, nodes: 1 },
    );
    assert.deepEqual(
      st?.conditions.map((c) => [c.type, c.status, c.reason]),
      [
        ['Accepted', 'True', 'Accepted'],
        ['PodsSelected', 'True', 'PodsSelected'],
        ['Assigned', 'True', 'GatewayAssigned'],
        ['Conflict', 'False', 'NoConflict'],
      ],
    );
    assert.equal(st?.offset, out.offset);
  });

  void it('given a status, when an event changes nothing in it, then no new status is emitted', () => {
    const ev = events();
    const s = new Scenario().given(
      ev.pool('pool'),
      healthyNode(ev, 'node-1'),
      ev.policy('default', 'eip', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.pod('other', 'unrelated', { ip: '10.0.0.1', node: 'node-1' }));
    assert.deepEqual(decisionsOfType(out, 'PolicyStatusComputed'), []);
  });

  void it('given one bad rule of two, then the policy-level condition is False and names that rule', () => {
    const ev = events();
    const s = new Scenario().given(ev.pool('pool'), healthyNode(ev, 'node-1'));
    s.when(
      ev.policy('default', 'eip', [
        rule({ podSelector: {} }),
        rule({ egressIP: '192.0.2.77', podSelector: {} }),
      ]),
    );
    const accepted = s.status('default/eip')?.conditions.find((c) => c.type === 'Accepted');
    assert.equal(accepted?.status, 'False');
    assert.equal(accepted?.reason, 'NoPoolCoversIP');
    assert.match(accepted?.message ?? '', /^rule 1: .*192\.0\.2\.77/);
  });

  void it('given pods on two nodes, when one node is lost, then selectedNodes counts only the live one, and again both when it is back', () => {
    const ev = events();
    const s = new Scenario().given(
      ev.pool('pool'),
      healthyNode(ev, 'node-1'),
      healthyNode(ev, 'node-2'),
      ev.pod('default', 'a', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('default', 'b', { labels: { app: 'fe' }, ip: '10.0.2.1', node: 'node-2' }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'fe' } } })]),
    );
    assert.equal(s.status('default/eip')?.rules[0]?.selectedNodes, 2);
    s.when(ev.nodeLost('node-2'));
    assert.equal(s.status('default/eip')?.rules[0]?.selectedNodes, 1);
    s.when(ev.nodeBack('node-2'));
    assert.equal(s.status('default/eip')?.rules[0]?.selectedNodes, 2);
  });
});
