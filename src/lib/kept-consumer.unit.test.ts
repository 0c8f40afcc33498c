// keepConsumer with fake consumers and a manual clock: given a running consumer, when kafkajs gives
// up on it (CRASH), then a new one is made in a new group after a backoff; a replacement that
// crashes while it is being made (its first join failed) is replaced again; stop() ends it.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { Consumer } from 'kafkajs';
import { pino } from 'pino';
import { createManualClock } from './clock.ts';
import { keepConsumer } from './kept-consumer.ts';

const EVENTS = { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join' } as const;

class FakeConsumer extends EventEmitter {
  readonly events = EVENTS;
  disconnected = false;
  readonly groupId: string;
  constructor(groupId: string) {
    super();
    this.groupId = groupId;
  }
  override on(event: string, listener: (e: unknown) => void): this {
    return super.on(event, listener);
  }
  crash(): void {
    this.emit(EVENTS.CRASH, { payload: { error: new Error('No broker available'), restart: false } });
  }
  join(): void {
    this.emit(EVENTS.GROUP_JOIN, { payload: {} });
  }
  disconnect(): Promise<void> {
    this.disconnected = true;
    return Promise.resolve();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

void test('a crashed consumer is made again in a new group, also when the replacement crashes at once', async () => {
  const clock = createManualClock();
  const made: FakeConsumer[] = [];
  const counts = { restarts: 0, rejoins: 0 };
  /** Consumers whose run() "fails its first join": kafkajs reports that as a CRASH, run() resolves. */
  const crashOnRun = new Set<number>([1]);
  const kept = keepConsumer({
    groupIdBase: 'kseip-test',
    what: 'test consumer',
    log: pino({ level: 'silent' }),
    clock,
    counters: {
      restarts: { inc: () => counts.restarts++ },
      rejoins: { inc: () => counts.rejoins++ },
    },
    make: (groupId) => {
      const c = new FakeConsumer(groupId);
      made.push(c);
      return c as unknown as Consumer;
    },
    run: (c) => {
      const fake = c as unknown as FakeConsumer;
      if (crashOnRun.has(made.indexOf(fake))) fake.crash();
      else fake.join();
      return Promise.resolve();
    },
  });

  await kept.start();
  assert.deepEqual(
    made.map((c) => c.groupId),
    ['kseip-test'],
  );
  assert.equal(kept.restarting(), false);

  made[0]!.crash();
  await settle();
  assert.equal(made[0]!.disconnected, true, 'the crashed consumer is disconnected');
  assert.equal(kept.restarting(), true);
  assert.equal(made.length, 1, 'nothing is made before the backoff');

  // The first replacement crashes while being made; the second runs.
  for (let i = 0; i < 20 && made.length < 3; i++) {
    clock.advance(5_000);
    await settle();
  }
  assert.deepEqual(
    made.map((c) => c.groupId),
    ['kseip-test', 'kseip-test-r1', 'kseip-test-r2'],
  );
  assert.equal(kept.current(), made[2] as unknown as Consumer);
  assert.equal(kept.restarting(), false);
  assert.deepEqual(counts, { restarts: 2, rejoins: 0 });

  // A crash of a consumer that was already replaced is not acted on.
  made[0]!.crash();
  await settle();
  assert.equal(kept.restarting(), false);

  // A second join of the same consumer is a re-join.
  made[2]!.join();
  assert.equal(counts.rejoins, 1);

  await kept.stop();
  assert.equal(made[2]!.disconnected, true);
  made[2]!.crash();
  clock.advance(10_000);
  await settle();
  assert.equal(made.length, 3, 'nothing is made after stop()');
});
