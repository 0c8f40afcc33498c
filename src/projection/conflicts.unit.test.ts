// Conflicts: the same egress IP claimed twice, and a pod steered to overlapping destinations
// through two egress IPs. The winner is deterministic (first seen in the log); the loser gets a
// ConflictDetected decision and a Conflict condition (docs/api.md, "Conflicts").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scenario, events, healthyNode, rule, decisionsOfType } from '../../test/support/fixtures.ts';

function cluster() {
  const ev = events();
  const s = new Scenario().given(
    ev.pool('pool'),
    ev.namespace('a'),
    ev.namespace('b'),
    healthyNode(ev, 'node-1'),
    healthyNode(ev, 'node-2'),
    ev.pod('a', 'web', { labels: { app: 'web' }, ip: '10.0.1.1', node: 'node-1' }),
    ev.pod('b', 'web', { labels: { app: 'web' }, ip: '10.0.1.2', node: 'node-1' }),
  );
  return { ev, s };
}

const conflict = (s: Scenario, policy: string) =>
  s.status(policy)?.conditions.find((c) => c.type === 'Conflict');
const steeredIPs = (s: Scenario) =>
  Object.fromEntries((s.rules('node-1')?.steers ?? []).map((st) => [st.egressIP, st.podIPs]));

void describe('the same egress IP claimed by two policies', () => {
  void it('given policy b/second claims the IP of a/first, then the first seen keeps it and the second gets Conflict', () => {
    const { ev, s } = cluster();
    s.given(ev.policy('b', 'first', [rule({ podSelector: {} })]));
    const out = s.when(ev.policy('a', 'second', [rule({ podSelector: {} })]));
    const d = decisionsOfType(out, 'ConflictDetected')[0];
    assert.deepEqual(
      { conflict: d?.conflict, winner: d?.winner, loser: d?.loser, ip: d?.egressIP },
      { conflict: 'EgressIPClaimed', winner: 'b/first#0', loser: 'a/second#0', ip: '198.51.100.1' },
    );
    assert.equal(conflict(s, 'a/second')?.status, 'True');
    assert.equal(conflict(s, 'a/second')?.reason, 'EgressIPClaimed');
    assert.equal(conflict(s, 'b/first')?.status, 'False');
    assert.equal(s.status('a/second')?.rules[0]?.active, '', 'the loser shows no gateway');
    assert.deepEqual(steeredIPs(s), { '198.51.100.1': ['10.0.1.2'] }, "only the winner's pods are steered");
  });

  void it('given a conflict, when the winner is deleted, then the loser takes the IP and the conflict is resolved', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('b', 'first', [rule({ podSelector: {} })]),
      ev.policy('a', 'second', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.policyDeleted('b', 'first'));
    assert.equal(decisionsOfType(out, 'ConflictResolved')[0]?.loser, 'a/second#0');
    assert.equal(conflict(s, 'a/second')?.status, 'False');
    assert.deepEqual(steeredIPs(s), { '198.51.100.1': ['10.0.1.1'] });
    assert.deepEqual(decisionsOfType(out, 'GatewayFailedOver'), [], 'the IP stays on its gateway');
  });

  void it('given a conflict, when the winner is updated, then it keeps precedence (first seen, not last written)', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('b', 'first', [rule({ podSelector: {} })]),
      ev.policy('a', 'second', [rule({ podSelector: {} })]),
    );
    const out = s.when(ev.policy('b', 'first', [rule({ podSelector: {}, to: ['203.0.113.0/25'] })], 2));
    assert.deepEqual(decisionsOfType(out, 'ConflictResolved'), []);
    assert.equal(conflict(s, 'a/second')?.status, 'True');
  });

  void it('given two rules of one policy with the same egress IP, then there is no conflict and they share the slot', () => {
    const { ev, s } = cluster();
    s.when(
      ev.policy('a', 'p', [
        rule({ podSelector: {}, to: ['203.0.113.0/25'] }),
        rule({ podSelector: {}, to: ['203.0.113.128/25'] }),
      ]),
    );
    assert.equal(conflict(s, 'a/p')?.status, 'False');
    const steers = s.rules('node-1')?.steers ?? [];
    assert.deepEqual(
      steers.map((st) => [st.slot, st.destinations[0], st.sources[0]]),
      [
        [1, '203.0.113.0/25', 'a/p#0'],
        [1, '203.0.113.128/25', 'a/p#1'],
      ],
    );
  });

  void it('given a claim that is not Accepted (no pool admits it), then it does not block the accepted one', () => {
    const ev = events();
    const s = new Scenario().given(
      ev.pool('pool', ['198.51.100.0/24'], { namespaceSelector: { matchLabels: { ok: 'yes' } } }),
      ev.namespace('a', { ok: 'yes' }),
      ev.namespace('b'),
      healthyNode(ev, 'node-1'),
      ev.policy('b', 'first', [rule({ podSelector: {} })]),
    );
    s.when(ev.policy('a', 'second', [rule({ podSelector: {} })]));
    assert.equal(conflict(s, 'a/second')?.status, 'False');
    assert.equal(s.status('a/second')?.rules[0]?.active, 'node-1');
  });
});

void describe('one pod, overlapping destinations, two egress IPs', () => {
  void it('given two policies selecting the same pod for overlapping destinations, then the first seen steers it and the other leaves it out', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('a', 'first', [rule({ egressIP: '198.51.100.1', podSelector: {}, to: ['203.0.113.0/24'] })]),
    );
    const out = s.when(
      ev.clusterPolicy('second', {}, [
        rule({ egressIP: '198.51.100.2', podSelector: {}, to: ['203.0.113.128/25'] }),
      ]),
    );
    const d = decisionsOfType(out, 'ConflictDetected')[0];
    assert.deepEqual(
      { conflict: d?.conflict, winner: d?.winner, loser: d?.loser, pods: d?.pods },
      { conflict: 'SelectionOverlap', winner: 'a/first#0', loser: 'cluster/second#0', pods: 1 },
    );
    assert.deepEqual(steeredIPs(s), { '198.51.100.1': ['10.0.1.1'], '198.51.100.2': ['10.0.1.2'] });
    assert.equal(conflict(s, 'second')?.reason, 'SelectionOverlap');
    assert.match(conflict(s, 'second')?.message ?? '', /1 selected pod/);
  });

  void it('given an exception that removes the overlap, then both steer the pod and there is no conflict', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('a', 'wide', [
        rule({
          egressIP: '198.51.100.1',
          podSelector: {},
          to: ['203.0.113.0/24'],
          except: ['203.0.113.128/25'],
        }),
      ]),
      ev.policy('a', 'narrow', [
        rule({ egressIP: '198.51.100.2', podSelector: {}, to: ['203.0.113.128/25'] }),
      ]),
    );
    assert.equal(conflict(s, 'a/narrow')?.status, 'False');
    assert.deepEqual(steeredIPs(s), { '198.51.100.1': ['10.0.1.1'], '198.51.100.2': ['10.0.1.1'] });
  });

  void it('given an overlap conflict, when the pod stops matching the winner, then the loser steers it and the conflict is resolved', () => {
    const { ev, s } = cluster();
    s.given(
      ev.policy('a', 'first', [
        rule({ egressIP: '198.51.100.1', podSelector: { matchLabels: { app: 'web' } } }),
      ]),
      ev.policy('a', 'second', [rule({ egressIP: '198.51.100.2', podSelector: {} })]),
    );
    const out = s.when(ev.pod('a', 'web', { labels: { app: 'other' }, ip: '10.0.1.1', node: 'node-1' }));
    assert.equal(decisionsOfType(out, 'ConflictResolved')[0]?.conflict, 'SelectionOverlap');
    assert.deepEqual(steeredIPs(s), { '198.51.100.2': ['10.0.1.1'] });
  });
});
