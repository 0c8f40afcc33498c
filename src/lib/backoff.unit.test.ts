// The shared retry delay policy (./backoff.ts): bounds, jitter spread across many retriers,
// reset after success, and sleepFor on a manual clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, createBackoff, sleepFor } from './backoff.ts';
import { createManualClock } from './clock.ts';
import { mulberry32 as seeded } from '../../test/support/seeded-random.ts';

void describe('backoff', () => {
  void test('given the top of the random range, the delays are the plain capped doubling', () => {
    const b = createBackoff({ initialMs: 100, maxMs: 1_000, random: () => 1 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      [100, 200, 400, 800, 1_000, 1_000],
    );
  });

  void test('given the bottom of the random range, every delay is the floor (half the first by default)', () => {
    const b = createBackoff({ initialMs: 100, maxMs: 1_000, random: () => 0 });
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.next()),
      [50, 50, 50, 50, 50],
    );
    assert.equal(backoffDelay({ initialMs: 100, maxMs: 1_000, minMs: 10, random: () => 0 }, 3), 10);
  });

  void test('every delay stays within [floor, cap] whatever the draw and the attempt', () => {
    const random = seeded(1);
    for (let attempt = 0; attempt < 2_000; attempt += 7) {
      const d = backoffDelay({ initialMs: 200, maxMs: 5_000, random }, attempt);
      assert.ok(d >= 100 && d <= 5_000, `attempt ${attempt}: ${d}`);
    }
    // A floor above the cap is clamped to the cap; out-of-range draws are clamped too.
    assert.equal(backoffDelay({ initialMs: 100, maxMs: 30, random: () => 0 }, 0), 30);
    assert.equal(backoffDelay({ initialMs: 100, maxMs: 1_000, random: () => 7 }, 0), 100);
    assert.equal(backoffDelay({ initialMs: 100, maxMs: 1_000, random: () => -1 }, 0), 50);
  });

  void test('given 100 agents failing together, their retries are spread, not in lockstep', () => {
    const random = seeded(42);
    for (const attempt of [0, 3, 8]) {
      const delays = Array.from({ length: 100 }, () =>
        backoffDelay({ initialMs: 200, maxMs: 5_000, random }, attempt),
      );
      const ceiling = Math.min(5_000, 200 * 2 ** attempt);
      const spread = Math.max(...delays) - Math.min(...delays);
      // A uniform draw over [100, ceiling]: 100 samples cover most of it.
      assert.ok(spread >= 0.8 * (ceiling - 100), `attempt ${attempt}: spread ${spread} of ${ceiling}`);
      // Cut the range into 20 slices: none holds more than an eighth of them (expected: 5).
      const width = (ceiling - 100) / 20;
      const slices = new Map<number, number>();
      for (const d of delays) {
        const s = Math.min(19, Math.floor((d - 100) / width));
        slices.set(s, (slices.get(s) ?? 0) + 1);
      }
      assert.ok(Math.max(...slices.values()) <= 12, `attempt ${attempt}: ${[...slices.values()].join(',')}`);
    }
  });

  void test('when a retry succeeds, reset starts the next failure from the first delay again', () => {
    const b = createBackoff({ initialMs: 100, maxMs: 10_000, random: () => 1 });
    b.next();
    b.next();
    assert.equal(b.next(), 400);
    assert.equal(b.attempts, 3);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 100);
  });

  void test('sleepFor waits on the clock, and returns at once when aborted', async () => {
    const clock = createManualClock();
    let done = false;
    const p = sleepFor(clock, 100).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1);
    await p;
    assert.equal(done, true);

    const ac = new AbortController();
    const q = sleepFor(clock, 1_000, ac.signal);
    ac.abort();
    await q;
    assert.equal(clock.pending(), 0, 'the timer is cancelled on abort');
    await sleepFor(clock, 1_000, ac.signal);
    assert.equal(clock.pending(), 0, 'an aborted signal does not even set a timer');
  });
});
