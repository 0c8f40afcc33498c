// Given decisions, node rules and acks, then this status and these Events (src/status/status-model.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition, Decision, PolicyRef, RuleStatus } from '../contracts/decisions.ts';
import type { NodeApplyStatus } from '../contracts/node-reports.ts';
import type { NodeRules, Steer } from '../contracts/node-rules.ts';
import {
  evolveStatus,
  initialStatusState,
  parseRuleOwner,
  selectPolicyEvents,
  selectPolicyStatus,
  selectPoolStatus,
  type StatusInput,
  type StatusState,
} from './status-model.ts';

const T = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const policy = { kind: 'StaticEgressIP' as const, namespace: 'default', name: 'eip' };
const cond = (type: Condition['type'], ok: boolean, reason: string): Condition => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message: reason,
});

function rule(over: Partial<RuleStatus> = {}): RuleStatus {
  return {
    index: 0,
    egressIP: '198.51.100.10',
    active: 'node-a',
    standbys: ['node-b'],
    selectedPods: 2,
    unprogrammablePods: 0,
    selectedNodes: 1,
    conditions: [
      cond('Accepted', true, 'Accepted'),
      cond('Assigned', true, 'GatewayAssigned'),
      cond('Conflict', false, 'NoConflict'),
    ],
    ...over,
  };
}

function computed(offset: number, rules: RuleStatus[], conflict = false, p: PolicyRef = policy): Decision {
  return {
    schema: 1,
    id: `${offset}.0`,
    type: 'PolicyStatusComputed',
    offset,
    policy: p,
    observedGeneration: 1,
    rules,
    conditions: [
      cond('Accepted', true, 'Accepted'),
      cond('Assigned', !conflict, conflict ? 'ConflictLost' : 'GatewayAssigned'),
      cond('Conflict', conflict, conflict ? 'EgressIPClaimed' : 'NoConflict'),
    ],
  };
}

const steer = (podIPs: string[], sources = ['default/eip#0']): Steer => ({
  slot: 1,
  egressIP: '198.51.100.10',
  gatewayNode: 'node-a',
  gatewayIP: '10.0.0.1',
  podIPs,
  destinations: ['203.0.113.10/32'],
  exceptions: [],
  sources,
});
const nodeRules = (node: string, generation: number, steers: Steer[], held = false): NodeRules => ({
  schema: 1,
  node,
  generation,
  nodeIP: node === 'node-a' ? '10.0.0.1' : '10.0.0.2',
  steers,
  egressIPs: held ? [{ slot: 1, egressIP: '198.51.100.10' }] : [],
});
const ack = (node: string, generation: number, ok = true): NodeApplyStatus => ({
  schema: 1,
  node,
  generation,
  ok,
  appliedAt: T(0),
  durationMs: 1,
  unchanged: false,
  ...(ok ? {} : { error: 'nft: syntax error' }),
});

function fold(inputs: StatusInput[], state: StatusState = initialStatusState()): StatusState {
  for (const i of inputs) evolveStatus(state, i);
  return state;
}
const status = (s: StatusState) => selectPolicyStatus(s, 'default/eip')!.status;
const condOf = (s: StatusState, type: string) => status(s).conditions.find((c) => c.type === type)!;

// node-b directs (pod 10.1.0.5), node-a is the gateway.
const seeded = (): StatusInput[] => [
  { kind: 'decision', decision: computed(5, [rule({ active: 'node-a' })]), at: T(1) },
  { kind: 'nodeRules', rules: nodeRules('node-a', 5, [], true), at: T(1) },
  { kind: 'nodeRules', rules: nodeRules('node-b', 5, [steer(['10.1.0.5'])]), at: T(1) },
];

void describe('status model', () => {
  void test('given a status decision and no acks, then Programmed and Ready are False (Pending)', () => {
    const s = fold(seeded());
    assert.equal(condOf(s, 'Programmed').status, 'False');
    assert.equal(condOf(s, 'Programmed').reason, 'Pending');
    assert.equal(condOf(s, 'Ready').reason, 'NotProgrammed');
    assert.equal(status(s).rules[0]!.programmedNodes, 0);
    assert.equal(status(s).egressIPs, '198.51.100.10');
    assert.equal(status(s).activeGateways, 'node-a');
  });

  void test('when every involved node acks a generation >= the one carrying the rule, then Programmed and Ready are True, at the ack time', () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 7), at: T(3) },
    ]);
    assert.equal(condOf(s, 'Programmed').status, 'True');
    assert.equal(condOf(s, 'Ready').status, 'True');
    assert.equal(condOf(s, 'Ready').lastTransitionTime, T(3));
    assert.equal(condOf(s, 'Accepted').lastTransitionTime, T(1));
    assert.equal(status(s).rules[0]!.programmedNodes, 2);
  });

  void test('given a Ready policy, when the same status is decided for a re-created object (another uid), then its ref names the new uid and its conditions start afresh', () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 7), at: T(3) },
    ]);
    const again = computed(9, [rule({ active: 'node-a' })], false, { ...policy, uid: 'u2' });
    fold([{ kind: 'decision', decision: again, at: T(9) }], s);
    assert.equal(selectPolicyStatus(s, 'default/eip')?.ref.uid, 'u2');
    assert.equal(condOf(s, 'Ready').status, 'True');
    assert.equal(condOf(s, 'Ready').lastTransitionTime, T(9));
  });

  void test('given a decision whose PodsSelected is False, when every node acked, then the status carries it and Ready is False (NoPodsSelected)', () => {
    const noPods = cond('PodsSelected', false, 'ServiceNotFound');
    const d = computed(5, [rule({ active: 'node-a' })]);
    if (d.type !== 'PolicyStatusComputed') throw new Error('not a status');
    const withPods = { ...d, conditions: [d.conditions[0]!, noPods, ...d.conditions.slice(1)] };
    const s = fold([
      { kind: 'decision', decision: withPods, at: T(1) },
      ...seeded().slice(1),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 5), at: T(2) },
    ]);
    assert.deepEqual(
      status(s).conditions.map((c) => c.type),
      ['Accepted', 'PodsSelected', 'Assigned', 'Programmed', 'Conflict', 'Ready'],
    );
    assert.equal(condOf(s, 'PodsSelected').reason, 'ServiceNotFound');
    assert.equal(condOf(s, 'Programmed').status, 'True');
    assert.deepEqual(
      [condOf(s, 'Ready').status, condOf(s, 'Ready').reason, condOf(s, 'Ready').message],
      ['False', 'NoPodsSelected', 'ServiceNotFound'],
    );
    const selected = withPods.conditions.map((c) =>
      c === noPods ? cond('PodsSelected', true, 'PodsSelected') : c,
    );
    evolveStatus(s, { kind: 'decision', decision: { ...withPods, conditions: selected }, at: T(4) });
    assert.equal(condOf(s, 'Ready').status, 'True');
    assert.equal(condOf(s, 'Ready').lastTransitionTime, T(4));
  });

  void test('given a decision of a projector from before PodsSelected (none in it), then the status leaves it out and Ready does not wait for it', () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 5), at: T(2) },
    ]);
    assert.deepEqual(
      status(s).conditions.map((c) => c.type),
      ['Accepted', 'Assigned', 'Programmed', 'Conflict', 'Ready'],
    );
    assert.equal(condOf(s, 'Ready').status, 'True');
  });

  void test('an ack of an older generation than the one that carries the rule does not count', () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 4), at: T(3) },
    ]);
    assert.equal(status(s).rules[0]!.programmedNodes, 1);
    assert.equal(condOf(s, 'Programmed').reason, 'Pending');
  });

  void test("an unrelated change of a node's rules keeps it programmed; a change of this rule's part does not", () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 5), at: T(2) },
      {
        kind: 'nodeRules',
        rules: nodeRules('node-b', 9, [steer(['10.1.0.5']), steer(['10.1.0.9'], ['default/other#0'])]),
        at: T(4),
      },
    ]);
    assert.equal(condOf(s, 'Ready').status, 'True');
    evolveStatus(s, {
      kind: 'nodeRules',
      rules: nodeRules('node-b', 11, [steer(['10.1.0.5', '10.1.0.6'])]),
      at: T(5),
    });
    assert.equal(condOf(s, 'Programmed').status, 'False');
    assert.equal(condOf(s, 'Ready').lastTransitionTime, T(5));
    evolveStatus(s, { kind: 'ack', ack: ack('node-b', 11), at: T(6) });
    assert.equal(condOf(s, 'Ready').status, 'True');
    assert.equal(condOf(s, 'Ready').lastTransitionTime, T(6));
  });

  void test('a failed apply makes Programmed False with reason ApplyFailed naming the node', () => {
    const s = fold([
      ...seeded(),
      { kind: 'ack', ack: ack('node-a', 5), at: T(2) },
      { kind: 'ack', ack: ack('node-b', 5, false), at: T(3) },
    ]);
    assert.equal(condOf(s, 'Programmed').reason, 'ApplyFailed');
    assert.match(condOf(s, 'Programmed').message, /node-b/);
  });

  void test('a conflict loser programs nothing and is not Ready because of the Conflict', () => {
    const loser = rule({
      active: '',
      standbys: [],
      conditions: [
        cond('Accepted', true, 'Accepted'),
        cond('Assigned', false, 'ConflictLost'),
        cond('Conflict', true, 'EgressIPClaimed'),
      ],
    });
    const s = fold([{ kind: 'decision', decision: computed(8, [loser], true), at: T(8) }]);
    const st = status(s);
    assert.equal(st.rules[0]!.activeGateway, undefined);
    assert.equal(st.activeGateways, '<none>');
    assert.equal(condOf(s, 'Conflict').status, 'True');
    assert.equal(condOf(s, 'Programmed').reason, 'NothingToProgram');
    assert.equal(condOf(s, 'Ready').status, 'False');
    assert.equal(condOf(s, 'Ready').reason, 'NotAssigned');
  });

  void test('the same inputs give the same status (times come from the inputs, not a clock)', () => {
    const inputs: StatusInput[] = [...seeded(), { kind: 'ack', ack: ack('node-a', 5), at: T(2) }];
    assert.deepEqual(status(fold(inputs)), status(fold(inputs)));
  });

  void test('a rule an agent left out is NotProgrammable with the reason; the other policy on the same nodes stays Ready', () => {
    // Given node-b directs both policies and node-a holds both egress IPs; tenant/v6's rule
    // has an IPv6 egress IP, which neither agent can program.
    const v6 = { kind: 'StaticEgressIP' as const, namespace: 'tenant', name: 'v6' };
    const v6Steer: Steer = { ...steer(['10.1.0.6'], ['tenant/v6#0']), slot: 2, egressIP: '2001:db8::10' };
    const both = (node: string, generation: number): NodeRules => ({
      ...nodeRules(
        node,
        generation,
        node === 'node-b' ? [steer(['10.1.0.5']), v6Steer] : [],
        node === 'node-a',
      ),
      ...(node === 'node-a'
        ? {
            egressIPs: [
              { slot: 1, egressIP: '198.51.100.10' },
              { slot: 2, egressIP: '2001:db8::10' },
            ],
          }
        : {}),
    });
    const reason = 'egress IP is not IPv4';
    const leftOut = (node: string, generation: number): NodeApplyStatus => ({
      ...ack(node, generation),
      unprogrammable: [
        node === 'node-a'
          ? { role: 'gateway', slot: 2, egressIP: '2001:db8::10', sources: [], reason }
          : { role: 'steer', slot: 2, egressIP: '2001:db8::10', sources: ['tenant/v6#0'], reason },
      ],
    });
    const s = fold([
      { kind: 'decision', decision: computed(5, [rule()]), at: T(1) },
      {
        kind: 'decision',
        decision: { ...computed(5, [rule({ egressIP: '2001:db8::10' })], false, v6), id: '5.1' },
        at: T(1),
      },
      { kind: 'nodeRules', rules: both('node-a', 5), at: T(1) },
      { kind: 'nodeRules', rules: both('node-b', 5), at: T(1) },
      { kind: 'ack', ack: leftOut('node-a', 5), at: T(2) },
      { kind: 'ack', ack: leftOut('node-b', 5), at: T(2) },
    ]);
    assert.equal(condOf(s, 'Programmed').status, 'True');
    assert.equal(condOf(s, 'Ready').status, 'True');
    const broken = selectPolicyStatus(s, 'tenant/v6')!.status;
    const programmed = broken.conditions.find((c) => c.type === 'Programmed')!;
    assert.deepEqual(
      [programmed.status, programmed.reason, programmed.message],
      [
        'False',
        'NotProgrammable',
        'rule 0 (egress IP 2001:db8::10): not programmable on node-a, node-b: egress IP is not IPv4',
      ],
    );
    assert.equal(broken.conditions.find((c) => c.type === 'Ready')!.reason, 'NotProgrammed');
    assert.equal(broken.rules[0]!.programmedNodes, 0);

    // When the agents can program it after all (same generation, re-acked), it is Programmed.
    evolveStatus(s, { kind: 'ack', ack: ack('node-a', 5), at: T(3) });
    evolveStatus(s, { kind: 'ack', ack: ack('node-b', 5), at: T(3) });
    assert.equal(
      selectPolicyStatus(s, 'tenant/v6')!.status.conditions.find((c) => c.type === 'Ready')!.status,
      'True',
    );
  });

  void test('a status decision keeps lastTransitionTime of conditions whose status did not change', () => {
    const s = fold(seeded());
    evolveStatus(s, { kind: 'decision', decision: computed(9, [rule({ selectedPods: 3 })]), at: T(9) });
    assert.equal(condOf(s, 'Accepted').lastTransitionTime, T(1));
    assert.equal(status(s).rules[0]!.selectedPods, 3);
  });
});

void describe('policy events', () => {
  const base = {
    schema: 1 as const,
    offset: 3,
    egressIP: '198.51.100.10',
    slot: 1,
    owner: 'default/eip#0',
    standbys: ['node-b'],
  };
  void test('GatewayAssigned and GatewayFailedOver go to the owner policy; ConflictDetected to the loser', () => {
    const assigned = selectPolicyEvents(
      { ...base, id: '3.0', type: 'GatewayAssigned', active: 'node-a', previous: '', previousStandbys: [] },
      T(3),
    );
    assert.deepEqual(
      assigned.map((e) => [e.policy, e.reason, e.type]),
      [[policy, 'GatewayAssigned', 'Normal']],
    );
    const failed = selectPolicyEvents(
      { ...base, id: '4.0', type: 'GatewayFailedOver', from: 'node-a', to: 'node-b', reason: 'NodeLost' },
      T(4),
    );
    assert.match(failed[0]!.message, /from node-a to node-b \(NodeLost\)/);
    const loserPolicy = { kind: 'StaticEgressIP' as const, namespace: 'default', name: 'eip2' };
    const conflict = selectPolicyEvents(
      {
        schema: 1,
        id: '5.0',
        type: 'ConflictDetected',
        offset: 5,
        conflict: 'EgressIPClaimed',
        loser: 'default/eip2#0',
        loserPolicy,
        winner: 'default/eip#0',
        winnerPolicy: policy,
        egressIP: '198.51.100.10',
        pods: 0,
        message: 'claimed',
      },
      T(5),
    );
    assert.deepEqual(
      conflict.map((e) => [e.policy, e.type]),
      [[loserPolicy, 'Warning']],
    );
  });
  void test('rule ids name their policy', () => {
    assert.deepEqual(parseRuleOwner('cluster/pay#1'), { kind: 'ClusterStaticEgressIP', name: 'pay' });
    assert.equal(parseRuleOwner(''), undefined);
  });
});

void describe('pool status', () => {
  const poolDecision = (
    offset: number,
    over: { uid?: string; accepted?: boolean; conflict?: boolean; allocations?: number } = {},
  ): Decision => ({
    schema: 1,
    id: `${offset}.0`,
    type: 'PoolStatusComputed',
    offset,
    pool: { name: 'pool', uid: over.uid ?? 'p1' },
    observedGeneration: 2,
    allocations: Array.from({ length: over.allocations ?? 1 }, (_, i) => ({
      egressIP: `198.51.100.${10 + i}`,
      policy: 'default/eip',
    })),
    conditions: [
      over.accepted === false ? cond('Accepted', false, 'Overlaps') : cond('Accepted', true, 'Accepted'),
      over.conflict === true
        ? cond('Conflict', true, 'NamespaceNotAdmitted')
        : cond('Conflict', false, 'NoConflict'),
    ],
  });
  const fold = (s: StatusState, d: Decision, at: string) =>
    evolveStatus(s, { kind: 'decision', decision: d, at });

  void test('given a PoolStatusComputed, then the pool gets allocated, allocations and Accepted, Conflict, Ready', () => {
    const s = initialStatusState();
    assert.deepEqual(fold(s, poolDecision(3), T(3)).touchedPools, ['pool']);
    const view = selectPoolStatus(s, 'pool')!;
    assert.equal(view.ref.uid, 'p1');
    assert.equal(view.status.allocated, 1);
    assert.deepEqual(view.status.allocations, [{ egressip: '198.51.100.10', policy: 'default/eip' }]);
    assert.deepEqual(
      view.status.conditions.map((c) => [
        c.type,
        c.status,
        c.reason,
        c.lastTransitionTime,
        c.observedGeneration,
      ]),
      [
        ['Accepted', 'True', 'Accepted', T(3), 2],
        ['Conflict', 'False', 'NoConflict', T(3), 2],
        ['Ready', 'True', 'Ready', T(3), 2],
      ],
    );
  });

  void test('given a Conflict, then Ready is False; a condition keeps its lastTransitionTime while its status stays', () => {
    const s = initialStatusState();
    fold(s, poolDecision(3), T(3));
    fold(s, poolDecision(5, { conflict: true, allocations: 2 }), T(5));
    const conds = selectPoolStatus(s, 'pool')!.status.conditions;
    assert.deepEqual(
      conds.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime]),
      [
        ['Accepted', 'True', 'Accepted', T(3)],
        ['Conflict', 'True', 'NamespaceNotAdmitted', T(5)],
        ['Ready', 'False', 'Conflict', T(5)],
      ],
    );
    assert.equal(selectPoolStatus(s, 'pool')!.status.allocated, 2);
    fold(s, poolDecision(7, { accepted: false, conflict: true }), T(7));
    assert.equal(selectPoolStatus(s, 'pool')!.status.conditions[2]?.reason, 'NotAccepted');
  });

  void test('given a re-created pool (another uid), then its conditions start afresh', () => {
    const s = initialStatusState();
    fold(s, poolDecision(3), T(3));
    fold(s, poolDecision(9, { uid: 'p2' }), T(9));
    const view = selectPoolStatus(s, 'pool')!;
    assert.equal(view.ref.uid, 'p2');
    assert.ok(view.status.conditions.every((c) => c.lastTransitionTime === T(9)));
  });
});
