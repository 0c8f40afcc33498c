// Per-node desired state: directors get only their own pods, gateways only the IPs they hold,
// generations point at the event that changed a node, and only changed nodes are emitted.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, nodeIP } from '../../test/support/fixtures.ts';

function cluster() {
  const ev = events();
  const s = new Scenario().given(
    ev.pool('pool'),
    ev.namespace('default'),
    healthyNode(ev, 'gw-1', { labels: { egress: 'yes' } }),
    healthyNode(ev, 'node-1'),
    healthyNode(ev, 'node-2'),
    healthyNode(ev, 'node-3'),
  );
  return { ev, s };
}

const egressPolicy = (ev: ReturnType<typeof events>) =>
  ev.policy('default', 'eip', [
    rule({
      podSelector: { matchLabels: { app: 'web' } },
      gatewaySelector: { matchLabels: { egress: 'yes' } },
    }),
  ]);

void describe('node rules', () => {
  void it('given pods on two nodes, then each director steers only its own pods to the gateway', () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('default', 'w2', { labels: { app: 'web' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.pod('default', 'w3', { labels: { app: 'web' }, ip: '10.0.2.1', node: 'node-2' }),
      egressPolicy(ev),
    );
    assert.deepEqual(s.rules('node-1')?.steers, [
      {
        slot: 1,
        egressIP: '198.51.100.1',
        gatewayNode: 'gw-1',
        gatewayIP: nodeIP('gw-1'),
        podIPs: ['10.0.1.1', '10.0.1.2'],
        destinations: ['203.0.113.0/24'],
        exceptions: [],
        sources: ['default/eip#0'],
      },
    ]);
    assert.deepEqual(s.rules('node-2')?.steers[0]?.podIPs, ['10.0.2.1']);
    assert.deepEqual(s.rules('node-3')?.steers, []);
  });

  void it('given a gateway, then it holds only its egress IPs, with no entry per remote pod', () => {
    const { ev, s } = cluster();
    s.given(
      Array.from({ length: 50 }, (_, i) =>
        ev.pod('default', `w${i}`, {
          labels: { app: 'web' },
          ip: `10.0.${i % 3}.${i}`,
          node: `node-${(i % 3) + 1}`,
        }),
      ),
      egressPolicy(ev),
    );
    const gw = s.rules('gw-1');
    assert.deepEqual(gw?.egressIPs, [{ slot: 1, egressIP: '198.51.100.1' }]);
    assert.deepEqual(gw?.steers, []);
    assert.equal(gw?.nodeIP, nodeIP('gw-1'));
  });

  void it('given a selected pod on the gateway itself, then its steer points at its own node IP', () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'local', { labels: { app: 'web' }, ip: '10.0.9.1', node: 'gw-1' }),
      egressPolicy(ev),
    );
    const steer = s.rules('gw-1')?.steers[0];
    assert.equal(steer?.gatewayNode, 'gw-1');
    assert.equal(steer?.gatewayIP, s.rules('gw-1')?.nodeIP);
  });

  void it('given a change on one node, then only that node is emitted, with the offset of the change as generation', () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('default', 'w3', { labels: { app: 'web' }, ip: '10.0.2.1', node: 'node-2' }),
      egressPolicy(ev),
    );
    const gen2 = s.rules('node-2')?.generation;
    const out = s.when(ev.pod('default', 'w4', { labels: { app: 'web' }, ip: '10.0.1.4', node: 'node-1' }));
    assert.deepEqual(
      out.nodeRules.map((r) => [r.node, r.generation]),
      [['node-1', out.offset]],
    );
    assert.equal(s.rules('node-2')?.generation, gen2);
  });

  void it('given a gateway failover, then the directors of that IP and both holders are emitted, nobody else', () => {
    const { ev, s } = cluster();
    s.given(
      ev.node('node-3', { labels: { egress: 'yes' } }),
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      egressPolicy(ev),
    );
    const holder = s.assignments()['198.51.100.1']?.active as string;
    const other = holder === 'gw-1' ? 'node-3' : 'gw-1';
    const out = s.when(ev.nodeLost(holder));
    assert.deepEqual(out.nodeRules.map((r) => r.node).sort(), [holder, other, 'node-1'].sort());
    assert.equal(s.rules('node-1')?.steers[0]?.gatewayNode, other);
    assert.equal(s.rules('node-1')?.steers[0]?.gatewayIP, nodeIP(other));
  });

  void it("given a gateway's InternalIP changes, then its directors' tunnels follow", () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      egressPolicy(ev),
    );
    const out = s.when(ev.node('gw-1', { labels: { egress: 'yes' }, ip: '192.0.2.200' }));
    assert.deepEqual(
      out.nodeRules.map((r) => r.node),
      ['gw-1', 'node-1'],
    );
    assert.equal(s.rules('node-1')?.steers[0]?.gatewayIP, '192.0.2.200');
  });

  void it('given a pod that moves away from a node, then the old node is emitted without it', () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      egressPolicy(ev),
    );
    s.when(
      ev.podDeleted('default', 'w1'),
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.2.7', node: 'node-2' }),
    );
    assert.deepEqual(s.rules('node-1')?.steers, []);
    assert.deepEqual(s.rules('node-2')?.steers[0]?.podIPs, ['10.0.2.7']);
  });

  void it('given repeated destinations and an exception, then the steer carries them normalized and nothing else (never an implicit pod or service CIDR)', () => {
    const { ev, s } = cluster();
    s.given(
      ev.pod('default', 'w1', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.policy('default', 'eip', [
        rule({ podSelector: {}, to: ['203.0.113.0/24', '203.0.113.0/24'], except: ['203.0.113.0/28'] }),
      ]),
    );
    const steer = s.rules('node-1')?.steers[0];
    assert.deepEqual(steer?.destinations, ['203.0.113.0/24']);
    assert.deepEqual(steer?.exceptions, ['203.0.113.0/28']);
  });
});
