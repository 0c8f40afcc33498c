// Which pods a rule selects: Services (selector ∪ EndpointSlices), pod selectors, cluster
// policies' namespace selectors, and the pods that are never or not yet programmable.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule } from '../../test/support/fixtures.ts';

function base() {
  const ev = events();
  const s = new Scenario().given(
    ev.pool('pool'),
    ev.namespace('default', { team: 'a' }),
    ev.namespace('other', { team: 'b' }),
    healthyNode(ev, 'node-1'),
    healthyNode(ev, 'node-2'),
  );
  return { ev, s };
}

const podIPsOn = (s: Scenario, node: string) => (s.rules(node)?.steers ?? []).flatMap((st) => st.podIPs);

void describe('Service selection', () => {
  void it('given the seed manifest (service-name), when the Service selects two pods, then both are steered', () => {
    const { ev, s } = base();
    s.given(
      ev.service('default', 'frontend', { app: 'fe' }),
      ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('default', 'fe-2', { labels: { app: 'fe' }, ip: '10.0.2.1', node: 'node-2' }),
      ev.pod('default', 'db-1', { labels: { app: 'db' }, ip: '10.0.1.9', node: 'node-1' }),
    );
    s.when(ev.policy('default', 'eip', [rule({ service: 'frontend', to: ['4.2.2.2/32'] })]));
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
    assert.deepEqual(podIPsOn(s, 'node-2'), ['10.0.2.1']);
    assert.deepEqual(s.rules('node-1')?.steers[0]?.destinations, ['4.2.2.2/32']);
  });

  void it('given a Service without selector, when a hand-made EndpointSlice names a pod, then that pod is selected', () => {
    const { ev, s } = base();
    s.given(
      ev.service('default', 'manual'),
      ev.pod('default', 'p-1', { ip: '10.0.1.1', node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ service: 'manual' })]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
    s.when(ev.slice('default', 'manual-abc', 'manual', [{ pod: 'p-1', ip: '10.0.1.1' }]));
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
  });

  void it('given a selected pod that turns NotReady and leaves the slice, when the Service still selects it, then it keeps its egress IP', () => {
    const { ev, s } = base();
    s.given(
      ev.service('default', 'fe', { app: 'fe' }),
      ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.slice('default', 'fe-x', 'fe', [{ pod: 'fe-1', ip: '10.0.1.1' }]),
      ev.policy('default', 'eip', [rule({ service: 'fe' })]),
    );
    const out = s.when(ev.slice('default', 'fe-x', 'fe', []));
    assert.deepEqual(out.nodeRules, [], 'no node rules change');
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
  });

  void it('given a pod selected only through a slice, when the slice drops it, then it is no longer steered', () => {
    const { ev, s } = base();
    s.given(
      ev.service('default', 'manual'),
      ev.pod('default', 'p-1', { ip: '10.0.1.1', node: 'node-1' }),
      ev.slice('default', 's1', 'manual', [{ pod: 'p-1', ip: '10.0.1.1' }]),
      ev.slice('default', 's2', 'manual', [{ pod: 'p-1', ip: '10.0.1.1' }]),
      ev.policy('default', 'eip', [rule({ service: 'manual' })]),
    );
    s.given(ev.sliceDeleted('default', 's1'));
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1'], 'still named by the second slice');
    s.given(ev.sliceDeleted('default', 's2'));
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
  });

  void it('given a Service in another namespace with the same name, then it does not select pods of the policy namespace', () => {
    const { ev, s } = base();
    s.given(
      ev.service('other', 'fe', { app: 'fe' }),
      ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('other', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ service: 'fe' })]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
  });
});

void describe('pod selectors', () => {
  void it('given a namespaced policy with a podSelector, then it selects matching pods of its own namespace only', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'a', { labels: { app: 'x' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('other', 'b', { labels: { app: 'x' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.pod('default', 'c', { labels: { app: 'y' }, ip: '10.0.1.3', node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'x' } } })]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
  });

  void it('given a selected pod, when its labels change so that it no longer matches, then it is no longer steered', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'a', { labels: { app: 'x' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'x' } } })]),
    );
    const out = s.when(ev.pod('default', 'a', { labels: { app: 'z' }, ip: '10.0.1.1', node: 'node-1' }));
    assert.deepEqual(
      out.nodeRules.map((r) => r.node),
      ['node-1'],
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
  });

  void it('given a cluster policy, then it selects namespaceSelector × podSelector', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'a', { labels: { app: 'x' }, ip: '10.0.1.1', node: 'node-1' }),
      ev.pod('other', 'b', { labels: { app: 'x' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.pod('default', 'c', { labels: { app: 'y' }, ip: '10.0.1.3', node: 'node-1' }),
      ev.clusterPolicy('c-eip', { matchLabels: { team: 'a' } }, [
        rule({ podSelector: { matchLabels: { app: 'x' } } }),
      ]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
    s.when(ev.namespace('other', { team: 'a' }));
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1', '10.0.1.2'], 'a namespace relabelled into scope');
    s.when(ev.namespaceDeleted('default'));
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.2'], 'a deleted namespace leaves the scope');
  });
});

void describe('pods that are never or not yet programmed', () => {
  void it('given hostNetwork and terminal pods that match, then they are never selected', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'host', { labels: { app: 'x' }, ip: '192.0.2.2', node: 'node-1', hostNetwork: true }),
      ev.pod('default', 'done', { labels: { app: 'x' }, ip: '10.0.1.2', node: 'node-1', terminal: true }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'x' } } })]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
    assert.equal(s.status('default/eip')?.rules[0]?.selectedPods, 0);
  });

  void it('given a selected running pod, when it turns terminal, then it leaves the selection', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'job', { labels: { app: 'x' }, ip: '10.0.1.2', node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'x' } } })]),
    );
    s.when(
      ev.pod('default', 'job', { labels: { app: 'x' }, ip: '10.0.1.2', node: 'node-1', terminal: true }),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), []);
  });

  void it('given selected pods without IP or without node, then they count as selected but not programmable', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'pending', { labels: { app: 'x' } }),
      ev.pod('default', 'scheduled', { labels: { app: 'x' }, node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'x' } } })]),
    );
    const st = s.status('default/eip')?.rules[0];
    assert.equal(st?.selectedPods, 2);
    assert.equal(st?.unprogrammablePods, 2);
    assert.equal(st?.selectedNodes, 0);
    s.when(ev.pod('default', 'scheduled', { labels: { app: 'x' }, node: 'node-1', ip: '10.0.1.7' }));
    assert.equal(s.status('default/eip')?.rules[0]?.unprogrammablePods, 1);
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.7']);
  });

  void it('given a dual-stack pod and an IPv4 egress IP, then only its IPv4 address is steered', () => {
    const { ev, s } = base();
    s.given(
      ev.pod('default', 'ds', { labels: { app: 'x' }, ip: ['10.0.1.1', 'fd00::1'], node: 'node-1' }),
      ev.policy('default', 'eip', [rule({ podSelector: {} })]),
    );
    assert.deepEqual(podIPsOn(s, 'node-1'), ['10.0.1.1']);
  });
});
