// The agent's catch-up and generation rules (./node-rules-follower.ts), given/when/then.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyNodeRules, NODE_RULES_SCHEMA, type NodeRules } from '../contracts/node-rules.ts';
import {
  evolveFollower,
  isCaughtUp,
  startFollower,
  type FollowerInput,
  type FollowerStep,
} from './node-rules-follower.ts';

const node = 'node-a';

function rules(generation: number, egressIP = '198.51.100.10'): NodeRules {
  return {
    schema: NODE_RULES_SCHEMA,
    node,
    generation,
    nodeIP: '192.0.2.1',
    steers: [],
    egressIPs: [{ slot: 1, egressIP }],
  };
}

const read = (offset: number, r: NodeRules | null): FollowerInput => ({
  type: 'RecordRead',
  record: { offset: BigInt(offset), rules: r },
});
const position = (offset: number): FollowerInput => ({ type: 'PositionReached', offset: BigInt(offset) });

/** Runs inputs from a start, collecting every delivered state. */
function run(start: FollowerStep, inputs: FollowerInput[]): { last: FollowerStep; delivered: NodeRules[] } {
  const delivered: NodeRules[] = start.deliver === undefined ? [] : [start.deliver];
  let last = start;
  for (const input of inputs) {
    last = evolveFollower(last.state, input);
    if (last.deliver !== undefined) delivered.push(last.deliver);
  }
  return { last, delivered };
}

void describe('catching up', () => {
  void test('given an empty partition, then the empty state is delivered at once', () => {
    const { last, delivered } = run(startFollower(node, 0n, 0n), []);
    assert.deepEqual(delivered, [emptyNodeRules(node, 0)]);
    assert.ok(isCaughtUp(last.state));
  });

  void test('given records below the start end offset, nothing is delivered before the end is read', () => {
    const { last, delivered } = run(startFollower(node, 0n, 10n), [
      read(2, rules(5)),
      read(6, rules(9)),
      position(8),
    ]);
    assert.deepEqual(delivered, []);
    assert.ok(!isCaughtUp(last.state));
  });

  void test('when the end offset is read, only the latest record of the node is delivered', () => {
    const { delivered } = run(startFollower(node, 0n, 10n), [
      read(2, rules(5)),
      read(6, rules(9)),
      position(7),
      position(9),
    ]);
    assert.deepEqual(delivered, [rules(9)]);
  });

  void test("when the record at end - 1 is the node's own, catch-up happens on that record", () => {
    const { last, delivered } = run(startFollower(node, 0n, 4n), [read(1, rules(2)), read(3, rules(3))]);
    assert.deepEqual(delivered, [rules(3)]);
    assert.ok(isCaughtUp(last.state));
  });

  void test('given no record of the node up to the end, the empty state is delivered', () => {
    const { delivered } = run(startFollower(node, 3n, 10n), [position(9)]);
    assert.deepEqual(delivered, [emptyNodeRules(node, 0)]);
  });

  void test('given the latest record is a tombstone, the empty state is delivered', () => {
    const { delivered } = run(startFollower(node, 0n, 10n), [read(2, rules(5)), read(7, null), position(9)]);
    assert.deepEqual(delivered, [emptyNodeRules(node, 5)]);
  });

  void test('given the end offset is a transaction marker (no record there), the batch position catches up', () => {
    const { delivered } = run(startFollower(node, 0n, 3n), [read(1, rules(4)), position(2)]);
    assert.deepEqual(delivered, [rules(4)]);
  });
});

void describe('following', () => {
  // Caught up on generation 10 (already delivered, so not counted below).
  const caughtUp = (): FollowerStep => ({
    state: run(startFollower(node, 0n, 2n), [read(1, rules(10))]).last.state,
  });

  void test('when a newer generation arrives, it is delivered', () => {
    const { delivered } = run(caughtUp(), [read(5, rules(11))]);
    assert.deepEqual(delivered, [rules(11)]);
  });

  void test('when an older or equal generation arrives at a later offset, it is ignored', () => {
    const { delivered } = run(caughtUp(), [read(5, rules(10)), read(6, rules(9))]);
    assert.deepEqual(delivered, []);
  });

  void test('when the partition is re-read from the start (consumer re-joined), nothing is delivered again', () => {
    const { delivered } = run(caughtUp(), [
      read(5, rules(12)),
      read(6, null),
      read(1, rules(10)),
      read(5, rules(12)),
      read(6, null),
    ]);
    assert.deepEqual(delivered, [rules(12), emptyNodeRules(node, 12)]);
  });

  void test('when a tombstone arrives, the empty state is delivered, and a later record applies again', () => {
    const { delivered } = run(caughtUp(), [read(5, null), read(8, rules(15))]);
    assert.deepEqual(delivered, [emptyNodeRules(node, 10), rules(15)]);
  });

  void test('the latest generation seen is tracked even while catching up', () => {
    const { last } = run(startFollower(node, 0n, 10n), [read(2, rules(5)), read(6, rules(9))]);
    assert.equal(last.state.latestGeneration, 9);
  });
});
