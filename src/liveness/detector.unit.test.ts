// Liveness verdicts (./detector.ts), given/when/then with explicit timestamps and no clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  evolveDetector,
  initialDetectorState,
  selectCurrentVerdicts,
  type DetectorInput,
  type DetectorState,
  type Verdict,
} from './detector.ts';

const thresholds = { lostAfterMs: 500, blindAfterMs: 200 };
const wall = (ms: number): string => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
const hb = (node: string, at: number): DetectorInput => ({
  type: 'HeartbeatArrived',
  node,
  at,
  wall: wall(at),
});
const tick = (now: number): DetectorInput => ({ type: 'Tick', now });

function run(inputs: DetectorInput[], state: DetectorState = initialDetectorState()) {
  const verdicts: Verdict[] = [];
  for (const input of inputs) verdicts.push(...evolveDetector(state, input, thresholds));
  return { state, verdicts };
}

/** Heartbeats every 100 ms from `from` (inclusive) to `to` (exclusive), with ticks every 50 ms. */
function steady(node: string, from: number, to: number): DetectorInput[] {
  const inputs: DetectorInput[] = [];
  for (let t = from; t < to; t += 50) inputs.push(t % 100 === 0 ? hb(node, t) : tick(t));
  return inputs;
}

void describe('liveness detector', () => {
  void test('given nothing heard yet, when a node heartbeats for the first time, then NodeBack', () => {
    const { verdicts } = run([tick(0), hb('node-a', 10)]);
    assert.deepEqual(verdicts, [{ type: 'NodeBack', node: 'node-a', heartbeatAt: wall(10) }]);
  });

  void test('given a node heartbeating steadily, then only the first heartbeat yields a verdict', () => {
    const { verdicts } = run(steady('node-a', 0, 5_000));
    assert.deepEqual(
      verdicts.map((v) => v.type),
      ['NodeBack'],
    );
  });

  void test('a node that never heartbeats gets no verdict, however long time passes', () => {
    const { verdicts } = run([tick(0), tick(10_000), tick(100_000)]);
    assert.deepEqual(verdicts, []);
  });

  void test('when a node falls silent, then NodeLost once the silence exceeds the threshold, and only once', () => {
    const { verdicts } = run([hb('node-a', 0), tick(450), tick(500), tick(550), tick(600), tick(5_000)]);
    assert.deepEqual(verdicts, [
      { type: 'NodeBack', node: 'node-a', heartbeatAt: wall(0) },
      { type: 'NodeLost', node: 'node-a', lastHeartbeatAt: wall(0), silenceMs: 550 },
    ]);
  });

  void test('silence exactly at the threshold is not yet lost', () => {
    const { verdicts } = run([hb('node-a', 0), tick(500)]);
    assert.deepEqual(
      verdicts.map((v) => v.type),
      ['NodeBack'],
    );
  });

  void test('when a lost node heartbeats again, then NodeBack', () => {
    const { verdicts } = run([hb('node-a', 0), tick(600), hb('node-a', 2_000)]);
    assert.deepEqual(
      verdicts.map((v) => `${v.type} ${v.node}`),
      ['NodeBack node-a', 'NodeLost node-a', 'NodeBack node-a'],
    );
  });

  void test('nodes are judged independently', () => {
    const inputs = [...steady('node-a', 0, 2_000)];
    inputs.splice(2, 0, hb('node-b', 60));
    const { verdicts } = run(inputs);
    assert.deepEqual(
      verdicts.map((v) => `${v.type} ${v.node}`),
      ['NodeBack node-a', 'NodeBack node-b', 'NodeLost node-b'],
    );
  });

  void test('several nodes lost in one tick are reported in name order', () => {
    const { verdicts } = run([hb('node-c', 0), hb('node-a', 0), hb('node-b', 0), tick(1_000)]);
    assert.deepEqual(
      verdicts.filter((v) => v.type === 'NodeLost').map((v) => v.node),
      ['node-a', 'node-b', 'node-c'],
    );
  });

  void describe('seeding at start-up', () => {
    const seeded: DetectorInput = {
      type: 'Seeded',
      nodes: [
        { node: 'node-a', lastWall: wall(-300) },
        { node: 'node-b', lastWall: wall(-200) },
      ],
      at: 0,
    };

    void test('given seeded nodes, when one stays silent past the threshold, then NodeLost for it only', () => {
      const { verdicts } = run([seeded, hb('node-b', 100), tick(600)]);
      assert.deepEqual(verdicts, [
        { type: 'NodeBack', node: 'node-b', heartbeatAt: wall(100) },
        { type: 'NodeLost', node: 'node-a', lastHeartbeatAt: wall(-300), silenceMs: 600 },
      ]);
    });

    void test('a seed does not override what live heartbeats already said', () => {
      const { verdicts } = run([hb('node-a', 0), { ...seeded, at: 50 }, hb('node-a', 100), tick(550)]);
      assert.deepEqual(
        verdicts.map((v) => `${v.type} ${v.node}`),
        ['NodeBack node-a'],
      );
    });
  });

  void describe('blindness', () => {
    const sighted = (at: number): DetectorInput => ({ type: 'Sighted', at });

    void test('given liveness cannot fetch heartbeats, when nodes fall silent, then nobody is declared lost', () => {
      const { state, verdicts } = run([sighted(0), hb('node-a', 0), sighted(100), tick(400), tick(2_000)]);
      assert.deepEqual(
        verdicts.map((v) => v.type),
        ['NodeBack'],
      );
      assert.ok(state.blind);
    });

    void test('when fetches complete again, silence restarts from then: only a node that stays silent is lost', () => {
      const inputs: DetectorInput[] = [sighted(0), hb('node-a', 0), hb('node-b', 0), tick(2_000)];
      // From 2 000 on, fetches complete every 100 ms again and only node-a heartbeats.
      for (let t = 2_000; t <= 2_600; t += 100) inputs.push(sighted(t), hb('node-a', t), tick(t));
      const { verdicts } = run(inputs);
      assert.deepEqual(
        verdicts.map((v) => `${v.type} ${v.node}`),
        ['NodeBack node-a', 'NodeBack node-b', 'NodeLost node-b'],
      );
      const lost = verdicts.at(-1);
      assert.equal(lost?.type === 'NodeLost' ? lost.silenceMs : undefined, 600, 'silence counted from 2 000');
    });

    void test('a node cut off alone is still lost while liveness keeps fetching', () => {
      const inputs: DetectorInput[] = [hb('node-a', 0)];
      for (let t = 0; t <= 700; t += 50) inputs.push(sighted(t), tick(t));
      const { verdicts } = run(inputs);
      assert.deepEqual(
        verdicts.map((v) => v.type),
        ['NodeBack', 'NodeLost'],
      );
    });
  });

  void test('a new leader re-publishes the current verdict of every known node', () => {
    const { state } = run([hb('node-b', 0), hb('node-a', 0), tick(600), hb('node-b', 700)]);
    assert.deepEqual(
      selectCurrentVerdicts(state).map((v) => `${v.type} ${v.node}`),
      ['NodeLost node-a', 'NodeBack node-b'],
    );
  });
});
