// The single-flight apply loop (./apply-loop.ts) with a fake dataplane and a manual clock:
// coalescing, one call at a time, backoff on failure (the only retries: the dataplane makes one
// attempt per call), fencing order, removal.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { NODE_RULES_SCHEMA, type NodeRules } from '../contracts/node-rules.ts';
import { createManualClock } from '../lib/clock.ts';
import { createApplyLoop, type ApplyOutcome } from './apply-loop.ts';
import { FakeDataplane, settle } from '../../test/support/agent-fakes.ts';

const log = pino({ level: 'silent' });

function rules(generation: number, ips = ['198.51.100.10']): NodeRules {
  return {
    schema: NODE_RULES_SCHEMA,
    node: 'node-a',
    generation,
    nodeIP: '192.0.2.1',
    steers: [],
    egressIPs: ips.map((egressIP, i) => ({ slot: i + 1, egressIP })),
  };
}

function setup() {
  const dataplane = new FakeDataplane();
  const clock = createManualClock();
  const outcomes: ApplyOutcome[] = [];
  let drifts = 0;
  const loop = createApplyLoop({
    dataplane,
    clock,
    log,
    onOutcome: (o) => outcomes.push(o),
    onDrift: () => drifts++,
    initialBackoffMs: 100,
    maxBackoffMs: 400,
    // The top of the jitter range: the delays are the exact ceilings (100, 200, 400 ms).
    random: () => 1,
  });
  return { dataplane, clock, loop, outcomes, drifts: () => drifts };
}

void describe('apply loop', () => {
  void test('given an apply in flight, when a burst of states arrives, then only the latest is applied next', async () => {
    const { dataplane, loop } = setup();
    dataplane.hold = true;
    loop.desire(rules(1), 'startup');
    await settle();
    for (const g of [2, 3, 4, 5]) loop.desire(rules(g), 'update');
    dataplane.releaseNext();
    await settle();
    dataplane.releaseNext();
    await loop.idle();
    assert.deepEqual(dataplane.calls, ['reconcile g=1 ips=198.51.100.10', 'reconcile g=5 ips=198.51.100.10']);
    assert.equal(dataplane.maxConcurrent, 1);
  });

  void test('when an apply fails, then it is retried after a doubling backoff, and success resets it', async () => {
    const { dataplane, clock, loop, outcomes } = setup();
    dataplane.failures.push(new Error('nft: busy'), new Error('nft: busy'));
    loop.desire(rules(1), 'startup');
    await settle();
    assert.equal(dataplane.calls.length, 1);
    clock.advance(99);
    await settle();
    assert.equal(dataplane.calls.length, 1, 'no retry before the backoff');
    clock.advance(1);
    await settle();
    assert.equal(dataplane.calls.length, 2, 'retried after 100 ms');
    clock.advance(199);
    await settle();
    assert.equal(dataplane.calls.length, 2, 'second backoff is 200 ms');
    clock.advance(1);
    await loop.idle();
    assert.equal(dataplane.calls.length, 3);
    assert.deepEqual(
      outcomes.map((o) => [o.applied.generation, o.ok, o.reason]),
      [
        [1, false, 'startup'],
        [1, false, 'startup'],
        [1, true, 'startup'],
      ],
    );
    assert.equal(loop.lastApplyOk(), true);
    assert.equal(loop.appliedGeneration(), 1);
  });

  void test('when a newer state arrives during a backoff, it is applied at once', async () => {
    const { dataplane, loop } = setup();
    dataplane.failures.push(new Error('boom'));
    loop.desire(rules(1), 'startup');
    await settle();
    loop.desire(rules(2), 'update');
    await loop.idle();
    assert.deepEqual(dataplane.calls, ['reconcile g=1 ips=198.51.100.10', 'reconcile g=2 ips=198.51.100.10']);
  });

  void test('when an error says it is not retriable, the same state is not retried', async () => {
    const { dataplane, clock, loop } = setup();
    dataplane.failures.push(Object.assign(new Error('bad slot'), { retriable: false }));
    loop.desire(rules(1), 'startup');
    await settle();
    clock.advance(10_000);
    await loop.idle();
    assert.equal(dataplane.calls.length, 1);
    assert.equal(loop.lastApplyOk(), false);
  });

  void test('given drift, then a repair apply follows with reason drift', async () => {
    const { dataplane, loop, outcomes, drifts } = setup();
    loop.desire(rules(1), 'startup');
    await loop.idle();
    loop.checkDrift();
    await loop.idle();
    dataplane.drift = true;
    loop.checkDrift();
    await loop.idle();
    assert.deepEqual(dataplane.calls, [
      'reconcile g=1 ips=198.51.100.10',
      'drift',
      'drift',
      'reconcile g=1 ips=198.51.100.10',
    ]);
    assert.equal(drifts(), 1);
    assert.equal(outcomes.at(-1)?.reason, 'drift');
  });

  void test('given an apply in flight, when fenced, then the withdrawal runs right after it and later applies carry no egress IP', async () => {
    const { dataplane, loop } = setup();
    dataplane.hold = true;
    loop.desire(rules(1), 'startup');
    await settle();
    loop.fence();
    loop.desire(rules(2), 'update');
    dataplane.releaseNext();
    await settle();
    assert.equal(dataplane.calls[1], 'withdraw', 'the withdrawal jumps ahead of the pending apply');
    dataplane.releaseNext();
    await settle();
    dataplane.releaseNext();
    await loop.idle();
    assert.deepEqual(dataplane.calls, ['reconcile g=1 ips=198.51.100.10', 'withdraw', 'reconcile g=2 ips=-']);
    assert.equal(dataplane.maxConcurrent, 1);
  });

  void test('when unfenced, the full state is applied again with reason fence, and unfence resolves after it', async () => {
    const { dataplane, loop, outcomes } = setup();
    loop.desire(rules(1), 'startup');
    loop.fence();
    await loop.idle();
    await loop.unfence();
    assert.deepEqual(dataplane.calls.slice(-1), ['reconcile g=1 ips=198.51.100.10']);
    assert.equal(outcomes.at(-1)?.reason, 'fence');
    assert.equal(outcomes.at(-1)?.fenced, false);
  });

  void test('given no desired state yet, when fenced, egress IPs left by a previous process are still withdrawn', async () => {
    const { dataplane, loop } = setup();
    loop.fence();
    await loop.idle();
    assert.deepEqual(dataplane.calls, ['withdraw']);
  });

  void test('after stop, nothing more reaches the dataplane', async () => {
    const { dataplane, loop } = setup();
    loop.desire(rules(1), 'startup');
    await loop.stop();
    loop.desire(rules(2), 'update');
    loop.fence();
    await settle();
    assert.deepEqual(dataplane.calls, ['reconcile g=1 ips=198.51.100.10']);
  });

  void test('given a pending state, when removal is asked for, then it supersedes the state and retries on the same backoff', async () => {
    const { dataplane, clock, loop } = setup();
    dataplane.hold = true;
    loop.desire(rules(1), 'startup');
    await settle();
    loop.desire(rules(2), 'update');
    dataplane.removeFailures.push(new Error('ip: busy'));
    const removed = loop.removeAll();
    dataplane.releaseNext();
    await settle();
    dataplane.releaseNext();
    await settle();
    assert.deepEqual(dataplane.calls, ['reconcile g=1 ips=198.51.100.10', 'removeAll']);
    clock.advance(99);
    await settle();
    assert.equal(dataplane.calls.length, 2, 'no retry before the backoff');
    clock.advance(1);
    await settle();
    dataplane.releaseNext();
    await removed;
    assert.deepEqual(dataplane.calls.slice(2), ['removeAll']);
    assert.equal(dataplane.maxConcurrent, 1);
  });

  void test('when removal keeps failing, then the loop gives up after the bounded attempts with the reason', async () => {
    const { dataplane, clock, loop } = setup();
    for (let i = 0; i < 4; i++) dataplane.removeFailures.push(new Error(`ip: busy ${i + 1}`));
    const removed = loop.removeAll();
    const outcome = removed.then(
      () => 'removed',
      (err: unknown) => String(err),
    );
    for (const wait of [100, 200, 400]) {
      await settle();
      clock.advance(wait);
    }
    assert.equal(await outcome, 'Error: ip: busy 4');
    assert.deepEqual(dataplane.calls, ['removeAll', 'removeAll', 'removeAll', 'removeAll']);
  });
});
