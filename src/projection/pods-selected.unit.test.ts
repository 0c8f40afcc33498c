// Policies that would do nothing (issue 12, finding 6): the PodsSelected condition (a missing
// Service, a selector that matches no running pod) and Accepted=False NoDestinations (exceptions
// that together empty every destination).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition } from '../contracts/decisions.ts';
import { Scenario, decisionsOfType, events, healthyNode, rule } from '../../test/support/fixtures.ts';

function base() {
  const ev = events();
  const s = new Scenario().given(ev.pool('pool'), ev.namespace('default'), healthyNode(ev, 'node-1'));
  return { ev, s };
}

/** The policy-level condition of a type, as last emitted. */
function condition(s: Scenario, policy: string, type: Condition['type']): Condition | undefined {
  return s.status(policy)?.conditions.find((c) => c.type === type);
}

const summary = (c: Condition | undefined) => [c?.status, c?.reason];

void describe('PodsSelected', () => {
  void it('given a service-name whose Service does not exist, then PodsSelected=False ServiceNotFound names it; when it appears selecting nothing, NoPodsSelected; when a pod matches, True with the count', () => {
    const { ev, s } = base();
    s.when(ev.policy('default', 'eip', [rule({ service: 'frontend' })]));
    const missing = condition(s, 'default/eip', 'PodsSelected');
    assert.deepEqual(summary(missing), ['False', 'ServiceNotFound']);
    assert.match(missing?.message ?? '', /^rule 0: Service default\/frontend does not exist/);
    assert.equal(s.status('default/eip')?.rules[0]?.selectedPods, 0);

    // No pod joins or leaves here: the status must be emitted for the Service alone.
    const out = s.when(ev.service('default', 'frontend', { app: 'fe' }));
    assert.equal(decisionsOfType(out, 'PolicyStatusComputed').length, 1);
    const empty = condition(s, 'default/eip', 'PodsSelected');
    assert.deepEqual(summary(empty), ['False', 'NoPodsSelected']);
    assert.match(empty?.message ?? '', /Service default\/frontend selects no running pod/);

    s.when(ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }));
    assert.deepEqual(summary(condition(s, 'default/eip', 'PodsSelected')), ['True', 'PodsSelected']);
    assert.equal(condition(s, 'default/eip', 'PodsSelected')?.message, '1 pod(s) selected');

    s.when(ev.serviceDeleted('default', 'frontend'));
    assert.deepEqual(summary(condition(s, 'default/eip', 'PodsSelected')), ['False', 'ServiceNotFound']);
  });

  void it('given a podSelector that matches no pod, then NoPodsSelected; a matching pod makes it True, and its finishing makes it False again', () => {
    const { ev, s } = base();
    s.when(ev.policy('default', 'eip', [rule({ podSelector: { matchLabels: { app: 'api' } } })]));
    const none = condition(s, 'default/eip', 'PodsSelected');
    assert.deepEqual(summary(none), ['False', 'NoPodsSelected']);
    assert.match(none?.message ?? '', /podSelector matches no running pod in namespace default/);
    s.when(ev.pod('default', 'api-1', { labels: { app: 'api' } }));
    const pending = condition(s, 'default/eip', 'PodsSelected');
    assert.deepEqual(summary(pending), ['True', 'PodsSelected']);
    assert.match(pending?.message ?? '', /^1 pod\(s\) selected, 1 of them without a node or an IP/);
    s.when(ev.pod('default', 'api-1', { labels: { app: 'api' }, terminal: true }));
    assert.deepEqual(summary(condition(s, 'default/eip', 'PodsSelected')), ['False', 'NoPodsSelected']);
  });

  void it('given a cluster policy whose namespaceSelector selects nothing, then it says so; when a namespace comes into scope without pods, the message follows', () => {
    const { ev, s } = base();
    s.when(ev.clusterPolicy('pay', { matchLabels: { team: 'pay' } }, [rule({ podSelector: {} })]));
    assert.match(condition(s, 'pay', 'PodsSelected')?.message ?? '', /no namespace is in scope/);
    s.when(ev.namespace('billing', { team: 'pay' }));
    const c = condition(s, 'pay', 'PodsSelected');
    assert.deepEqual(summary(c), ['False', 'NoPodsSelected']);
    assert.match(c?.message ?? '', /podSelector matches no running pod in the namespaces in scope/);
  });

  void it('given a rule no pool admits, then PodsSelected=False NotAccepted', () => {
    const { ev, s } = base();
    s.when(ev.policy('default', 'eip', [rule({ egressIP: '192.0.2.77', podSelector: {} })]));
    assert.deepEqual(summary(condition(s, 'default/eip', 'PodsSelected')), ['False', 'NotAccepted']);
  });

  void it('given two rules of which only the second selects nothing, then the policy-level condition is False and names rule 1', () => {
    const { ev, s } = base();
    s.given(ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }));
    s.when(
      ev.policy('default', 'eip', [
        rule({ podSelector: { matchLabels: { app: 'fe' } } }),
        rule({ egressIP: '198.51.100.2', podSelector: { matchLabels: { app: 'db' } } }),
      ]),
    );
    const c = condition(s, 'default/eip', 'PodsSelected');
    assert.deepEqual(summary(c), ['False', 'NoPodsSelected']);
    assert.match(c?.message ?? '', /^rule 1: /);
    assert.deepEqual(
      s.status('default/eip')?.rules.map((r) => r.conditions.find((x) => x.type === 'PodsSelected')?.status),
      ['True', 'False'],
    );
  });
});

void describe('NoDestinations', () => {
  void it('given exceptions that together cover the only destination, then Accepted=False NoDestinations, and nothing is steered or held', () => {
    const { ev, s } = base();
    s.given(ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }));
    const out = s.when(
      ev.policy('default', 'eip', [
        rule({
          podSelector: { matchLabels: { app: 'fe' } },
          to: ['203.0.113.0/24'],
          except: ['203.0.113.0/25', '203.0.113.128/25'],
        }),
      ]),
    );
    const accepted = condition(s, 'default/eip', 'Accepted');
    assert.deepEqual(summary(accepted), ['False', 'NoDestinations']);
    assert.match(accepted?.message ?? '', /the exceptions cover every destination/);
    assert.deepEqual(decisionsOfType(out, 'GatewayAssigned'), []);
    assert.deepEqual(s.rules('node-1')?.steers ?? [], []);
    assert.deepEqual(s.assignments(), {});
  });

  void it('given exceptions that empty one destination of two, then the rule is Accepted and steers the other', () => {
    const { ev, s } = base();
    s.given(ev.pod('default', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.1', node: 'node-1' }));
    s.when(
      ev.policy('default', 'eip', [
        rule({
          podSelector: { matchLabels: { app: 'fe' } },
          to: ['203.0.113.0/25', '203.0.113.128/25'],
          except: ['203.0.113.128/26', '203.0.113.192/26'],
        }),
      ]),
    );
    assert.deepEqual(summary(condition(s, 'default/eip', 'Accepted')), ['True', 'Accepted']);
    assert.deepEqual(
      s.rules('node-1')?.steers.map((st) => st.podIPs),
      [['10.0.1.1']],
    );
  });
});
