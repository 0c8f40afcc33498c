// The envelope rules of the cluster view: idempotence, term fencing, list markers, liveness.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent } from '../contracts/cluster-events.ts';
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
  void it('given a watcher leader at term 2 that has written, when the deposed term-1 watcher still writes, then its events are ignored', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 2), ev.namespace('other'));
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
    s.given(ev.leadership('watcher', 5), ev.namespace('other'));
    s.when(ev.nodeLost('node-1'));
    assert.equal(s.state.liveness.get('node-1'), false);
  });

  void it('given term 3 confirmed, when a LeadershipAcquired of term 2 arrives late, then it is fenced and the fence stays at 3', () => {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 3), ev.namespace('other'));
    const out = s.when(ev.by(ev.leadership('watcher', 2), 2));
    assert.equal(out.refused, undefined, 'a late term is fenced, not refused');
    assert.equal(s.state.terms.get('watcher')?.fence, 3);
    assert.equal(s.state.ignored.fenced, 1);
  });
});

void describe('terms that cannot be forged into a freeze', () => {
  /** The real watcher at term 1 has announced its term and written in it. */
  function led() {
    const { ev, s } = cluster();
    s.given(ev.leadership('watcher', 1), ev.namespace('other'));
    return { ev, s };
  }

  void it('given the watcher at term 1, when a forged LeadershipAcquired of term 2^53-1 arrives, then it is refused with the reason and the real watcher goes on', () => {
    const { ev, s } = led();
    const out = s.when(ev.forgedLeadership('watcher', 2 ** 53 - 1));
    assert.match(
      out.refused ?? '',
      /^LeadershipAcquired of watcher refused: term 9007199254740991 is not a Lease/,
    );
    assert.deepEqual(out.decisions, []);
    assert.equal(s.state.terms.get('watcher')?.fence, 1);

    const next = s.when(ev.pod('default', 'web-1', podA));
    assert.deepEqual(next.nodeRules[0]?.steers[0]?.podIPs, ['10.0.1.1']);
    assert.equal(s.state.ignored.fenced, 0);
  });

  void it('given the watcher at term 1, when a LeadershipAcquired jumps more than TERM_STEP ahead, then it is refused', () => {
    const { ev, s } = led();
    const out = s.when(ev.forgedLeadership('watcher', 1_000));
    assert.equal(
      out.refused,
      'LeadershipAcquired of watcher refused: term 1000 jumps more than 16 past term 1, the newest the log holds for watcher',
    );
    s.given(ev.pod('default', 'web-1', podA));
    assert.equal(s.state.pods.size, 1);
  });

  void it('given the watcher at term 1, when a forged LeadershipAcquired of the next term arrives alone, then it fences nothing: nobody writes in that term', () => {
    const { ev, s } = led();
    const out = s.when(ev.forgedLeadership('watcher', 2));
    assert.equal(out.refused, undefined);
    s.given(ev.pod('default', 'web-1', podA));
    assert.equal(s.state.pods.size, 1);
    assert.equal(s.state.terms.get('watcher')?.fence, 1);
  });

  void it('given a forged term, when a real successor wins a term a few transitions on, then its writes fence the deposed watcher', () => {
    const { ev, s } = led();
    s.given(ev.forgedLeadership('watcher', 2 ** 53 - 1), ev.forgedLeadership('watcher', 2));
    s.given(ev.leadership('watcher', 4), ev.pod('default', 'web-1', podA));
    assert.equal(s.state.terms.get('watcher')?.fence, 4);
    const zombie = s.when(ev.by(ev.podDeleted('default', 'web-1'), 1));
    assert.deepEqual(zombie.nodeRules, []);
    assert.equal(s.state.pods.size, 1);
    assert.equal(s.state.ignored.fenced, 1);
  });

  void it('given a log with a forged term, when it is replayed, then the refusals and outputs are the same', () => {
    const run = () => {
      const { ev, s } = led();
      s.given(ev.forgedLeadership('watcher', 2 ** 53 - 1), ev.pod('default', 'web-1', podA));
      return s.all;
    };
    assert.deepEqual(run(), run());
  });
});

void describe('a policy re-created under the same name', () => {
  void it('given a policy with uid u1, when the same name and spec is observed with uid u2 (its delete missed), then its status is emitted again naming u2', () => {
    const { ev, s } = cluster();
    const withUid = <E extends ClusterEvent>(e: E, uid: string): E => ({
      ...e,
      object: { ...e.object, uid },
    });
    const spec = [rule({ podSelector: { matchLabels: { app: 'a' } } })];
    s.given(withUid(ev.policy('default', 'other', spec), 'u1'));
    assert.equal(s.status('default/other')?.policy.uid, 'u1');
    const out = s.when(withUid(ev.policy('default', 'other', spec), 'u2'));
    assert.deepEqual(
      decisionsOfType(out, 'PolicyStatusComputed').map((d) => d.policy),
      [{ kind: 'StaticEgressIP', namespace: 'default', name: 'other', uid: 'u2' }],
    );
    assert.deepEqual(s.when(withUid(ev.policy('default', 'other', spec), 'u2')).decisions, []);
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
