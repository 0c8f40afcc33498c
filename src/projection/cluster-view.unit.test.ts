// The envelope rules of the cluster view: idempotence, term fencing, list markers, liveness.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';

const podA = { labels: { app: 'a' }, ip: '10.0.1.1', node: 'node-1' };

function cluster() {
  const ev = events();
  const s = new Scenario().given(
    ev.pool('pool'),
    ev.namespace('default'),
    healthyNode(ev, 'node-1'),
    healthyNode(ev, 'node-2'),
    ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'a' } } })]),
  );
  return { ev, s };
}

void describe('idempotence', () => {
  void it('given a pod event applied, when the same event (same id) arrives again, then nothing changes', () => {
    const { ev, s } = cluster();
    const pod = ev.pod('default', 'web-1', podA);
    const first = s.when(pod);
    assert.equal(first.nodeRules.length, 1);
    const again = s.when(ev.again(pod));
    assert.deepEqual(again.decisions, []);
    assert.deepEqual(again.nodeRules, []);
    assert.equal(s.state.ignored.duplicate, 1);
  });

  void it('given a redelivered old event after newer facts, when it arrives, then it does not roll the object back', () => {
    const { ev, s } = cluster();
    const v1 = ev.pod('default', 'web-1', podA);
    s.given(v1, ev.pod('default', 'web-1', { ...podA, ip: '10.0.1.2' }));
    const out = s.when(ev.again(v1));
    assert.deepEqual(out.nodeRules, []);
    assert.deepEqual(s.rules('node-1')?.steers[0]?.podIPs, ['10.0.1.2']);
  });

  void it('given an object, when an Observed with an identical payload (new id) arrives, then nothing is emitted', () => {
    const { ev, s } = cluster();
    s.given(ev.pod('default', 'web-1', podA));
    const out = s.when(ev.pod('default', 'web-1', podA));
    assert.deepEqual(out, { offset: out.offset, decisions: [], nodeRules: [] });
    assert.equal(s.state.ignored.unchanged, 1);
  });
});

void describe('term fencing', () => {
  void it('given a watcher leader at term 2, when the deposed term-1 watcher still writes, then its events are ignored', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 2));
    const zombie = ev.by(ev.pod('default', 'web-1', podA), 1);
    const out = s.when(zombie);
    assert.deepEqual(out.nodeRules, []);
    assert.equal(s.state.pods.size, 0);
    assert.equal(s.state.ignored.fenced, 1);
  });

  void it('given a watcher leader at term 2, when it writes at term 2, then its events count', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 2));
    s.given(ev.pod('default', 'web-1', podA));
    assert.equal(s.state.pods.size, 1);
  });

  void it('given a fenced watcher term, when liveness (another component) writes at its own term, then it counts', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 5));
    s.when(ev.nodeLost('node-1'));
    assert.equal(s.state.liveness.get('node-1'), false);
  });

  void it('given term 3 seen, when a LeadershipAcquired of term 2 arrives late, then the fence stays at 3', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 3), ev.by(ev.leadership('watcher', 2), 2));
    assert.equal(s.state.terms.get('watcher'), 3);
  });
});

void describe('list markers', () => {
  void it('given pods web-1 and web-2, when a relist re-observes only web-1, then web-2 is dropped at ListCompleted', () => {
    const { ev, s } = cluster();
    s.given(ev.pod('default', 'web-1', podA), ev.pod('default', 'web-2', { ...podA, ip: '10.0.1.2' }));
    s.given(ev.listStarted('Pod', 'list-1'), ev.pod('default', 'web-1', podA));
    assert.equal(s.state.pods.size, 2, 'nothing is dropped before the list completes');
    const out = s.when(ev.listCompleted('Pod', 'list-1', 1));
    assert.deepEqual([...s.state.pods.keys()], ['default/web-1']);
    assert.deepEqual(out.nodeRules[0]?.steers[0]?.podIPs, ['10.0.1.1']);
  });

  void it('given a ListCompleted whose listId never started, when it arrives, then nothing is dropped', () => {
    const { ev, s } = cluster();
    s.given(ev.pod('default', 'web-1', podA), ev.listStarted('Pod', 'list-1'));
    s.when(ev.listCompleted('Pod', 'other-list'));
    assert.equal(s.state.pods.size, 1);
  });

  void it('given a relist of Pods, when it completes, then objects of other kinds are untouched', () => {
    const { ev, s } = cluster();
    s.given(ev.pod('default', 'web-1', podA), ev.listStarted('Pod', 'l'), ev.listCompleted('Pod', 'l'));
    assert.equal(s.state.pods.size, 0);
    assert.equal(s.state.nodes.size, 2);
    assert.equal(s.state.policies.size, 1);
  });

  void it('given a policy, when a relist of StaticEgressIP does not re-observe it, then its gateway is released', () => {
    const { ev, s } = cluster();
    s.given(ev.pod('default', 'web-1', podA), ev.listStarted('StaticEgressIP', 'l'));
    const out = s.when(ev.listCompleted('StaticEgressIP', 'l'));
    assert.equal(decisionsOfType(out, 'GatewayReleased')[0]?.reason, 'NotInUse');
    assert.deepEqual(s.rules('node-1')?.steers, []);
  });
});

void describe('liveness', () => {
  void it('given a Ready node never heard of by liveness, then it is not an eligible gateway', () => {
    const ev = events();
    const s = new Scenario().given(ev.pool('pool'), ev.node('node-1'));
    const out = s.when(ev.policy('default', 'eip', [rule({ podSelector: {} })]));
    assert.equal(decisionsOfType(out, 'GatewayAssigned').length, 0);
    assert.deepEqual(s.assignments(), { '198.51.100.1': { active: '', standbys: [], slot: 1 } });
  });

  void it('given a node that was lost, when NodeBack arrives, then it is eligible again', () => {
    const ev = events();
    const s = new Scenario().given(ev.pool('pool'), ev.node('node-1'), ev.nodeLost('node-1'));
    s.given(ev.policy('default', 'eip', [rule({ podSelector: {} })]));
    const out = s.when(ev.nodeBack('node-1'));
    assert.equal(decisionsOfType(out, 'GatewayAssigned')[0]?.active, 'node-1');
  });
});
