// Self-fencing decisions (./fencing.ts) over explicit timestamps: given/when/then, no clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { evolveFence, initialFenceState, isFenced, type FenceInput, type FenceStep } from './fencing.ts';

const fenceAfterMs = 250;

function run(inputs: FenceInput[], startedAt = 0): { last: FenceStep; effects: string[] } {
  let last: FenceStep = { state: initialFenceState(startedAt) };
  const effects: string[] = [];
  for (const input of inputs) {
    last = evolveFence(last.state, input, fenceAfterMs);
    if (last.effect !== undefined) effects.push(last.effect.type);
  }
  return { last, effects };
}

const ack = (sentAt: number, now: number): FenceInput => ({ type: 'ContactConfirmed', sentAt, now });
const tick = (now: number): FenceInput => ({ type: 'Tick', now });
const recovered = (epoch: number, now: number): FenceInput => ({ type: 'Recovered', epoch, now });

void describe('fencing', () => {
  void test('given heartbeats acknowledged every 100 ms, the agent never fences', () => {
    const inputs: FenceInput[] = [];
    for (let t = 0; t < 2_000; t += 100) inputs.push(ack(t, t + 20), tick(t + 50));
    const { last, effects } = run(inputs);
    assert.deepEqual(effects, []);
    assert.ok(!isFenced(last.state));
  });

  void test('when no heartbeat is acknowledged for longer than the bound, it withdraws once', () => {
    const { last, effects } = run([ack(0, 10), tick(200), tick(250), tick(251), tick(400)]);
    assert.deepEqual(effects, ['Withdraw']);
    assert.equal(last.state.phase, 'fenced');
  });

  void test('silence is measured from the send time of the last acknowledged heartbeat, not its ack', () => {
    // Sent at 0, acknowledged only at 240: liveness may have seen it at ~0, so fence at 251.
    const { effects } = run([ack(0, 240), tick(251)]);
    assert.deepEqual(effects, ['Withdraw']);
  });

  void test('given a fresh agent that never reaches Kafka, it fences fenceAfterMs after its start', () => {
    const { effects } = run([tick(1_000), tick(1_251)], 1_000);
    assert.deepEqual(effects, ['Withdraw']);
  });

  void test('when a stale heartbeat is acknowledged late while fenced, it stays fenced', () => {
    const { last, effects } = run([tick(300), ack(100, 900)]);
    assert.deepEqual(effects, ['Withdraw']);
    assert.equal(last.state.phase, 'fenced');
  });

  void test('when a fresh heartbeat is acknowledged while fenced, recovery begins; it unfences only once recovered', () => {
    const { last, effects } = run([tick(300), ack(1_000, 1_010)]);
    assert.deepEqual(effects, ['Withdraw', 'BeginRecovery']);
    assert.ok(isFenced(last.state));
    const done = evolveFence(last.state, recovered(last.state.epoch, 1_100), fenceAfterMs);
    assert.equal(done.effect?.type, 'Unfenced');
    assert.ok(!isFenced(done.state));
  });

  void test('when contact is lost again during recovery, it fences again and the old recovery is ignored', () => {
    const { last, effects } = run([tick(300), ack(1_000, 1_010), tick(1_300)]);
    assert.deepEqual(effects, ['Withdraw', 'BeginRecovery', 'Withdraw']);
    const stale = evolveFence(last.state, recovered(1, 1_310), fenceAfterMs);
    assert.equal(stale.effect, undefined);
    assert.ok(isFenced(stale.state));
  });

  void test('when recovery completes after the silence bound passed again, it withdraws instead of unfencing', () => {
    const { last } = run([tick(300), ack(1_000, 1_010)]);
    const late = evolveFence(last.state, recovered(last.state.epoch, 1_400), fenceAfterMs);
    assert.equal(late.effect?.type, 'Withdraw');
  });
});
