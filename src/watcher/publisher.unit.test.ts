// The publisher's buffer discipline, against a fake Kafka producer whose acknowledgements the
// test controls: order, retry of the same batch, the capacity bound with backpressure callbacks,
// waiting list publication, discard on leadership loss. (Real Kafka: test/watcher.int.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, Message } from 'kafkajs';
import type { ClusterEvent } from '../contracts/cluster-events.ts';
import { createLogger } from '../lib/log.ts';
import { createPublisher, type Pending } from './publisher.ts';

interface Send {
  readonly messages: Message[];
  ack(): void;
  fail(err: Error): void;
}

/** A kafkajs stand-in: every send waits until the test acks or fails it. */
function fakeKafka(): { kafka: Kafka; sends: Send[] } {
  const sends: Send[] = [];
  const producer = {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    send: ({ messages }: { messages: Message[] }) =>
      new Promise((resolve, reject) => sends.push({ messages, ack: () => resolve([]), fail: reject })),
  };
  return { kafka: { producer: () => producer, admin: () => ({}) } as unknown as Kafka, sends };
}

const event = (n: number): Pending => ({
  key: `Pod/ns/p${n}`,
  event: {
    schema: 1,
    id: `id-${n}`,
    type: 'PodDeleted',
    observedAt: '2026-01-01T00:00:00.000Z',
    producer: { component: 'watcher', term: 1 },
    object: { kind: 'Pod', namespace: 'ns', name: `p${n}` },
    payload: {},
  } satisfies ClusterEvent,
});

const names = (s: Send): string[] => s.messages.map((m) => String(m.key));
const log = createLogger('publisher-test');

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(2);
  assert.ok(check(), 'condition not reached');
}

void test('given events offered while a send is in flight, then they go out next, in order, as one batch', async () => {
  const { kafka, sends } = fakeKafka();
  const p = createPublisher({ kafka, topic: 't', capacity: 100, log });
  p.offer(event(1));
  await until(() => sends.length === 1);
  p.offer(event(2));
  p.offer(event(3));
  sends[0]!.ack();
  await until(() => sends.length === 2);
  assert.deepEqual(names(sends[0]!), ['Pod/ns/p1']);
  assert.deepEqual(names(sends[1]!), ['Pod/ns/p2', 'Pod/ns/p3']);
  sends[1]!.ack();
  assert.equal(await p.flush(1_000), true);
  assert.equal(p.depth, 0);
  await p.stop();
});

void test('given a failed send, then the same batch is retried before anything newer', async () => {
  const { kafka, sends } = fakeKafka();
  const p = createPublisher({ kafka, topic: 't', capacity: 100, log, initialBackoffMs: 1 });
  p.offer(event(1));
  await until(() => sends.length === 1);
  p.offer(event(2));
  sends[0]!.fail(new Error('broker away'));
  await until(() => sends.length === 2);
  assert.deepEqual(names(sends[1]!), ['Pod/ns/p1', 'Pod/ns/p2']);
  sends[1]!.ack();
  assert.equal(await p.flush(1_000), true);
  await p.stop();
});

void test('given a full buffer, then onFull fires, waiting offers wait, and onSpace fires at half capacity', async () => {
  const { kafka, sends } = fakeKafka();
  const p = createPublisher({ kafka, topic: 't', capacity: 4, maxBatch: 1, log });
  let fulls = 0;
  let spaces = 0;
  p.onFull(() => fulls++);
  p.onSpace(() => spaces++);
  for (let n = 1; n <= 4; n++) p.offer(event(n));
  assert.equal(p.full, true);
  assert.equal(fulls, 1);
  let listed = false;
  const waiting = p.offerWhenSpace(event(5)).then(() => (listed = true));
  await until(() => sends.length === 1);
  sends[0]!.ack(); // depth 3: still above half
  await until(() => sends.length === 2);
  assert.equal(listed, false);
  assert.equal(p.depth, 3);
  sends[1]!.ack(); // depth 2 = half: room again
  await waiting;
  assert.equal(spaces, 1);
  assert.equal(p.depth, 3, 'the waiting offer went in');
  assert.ok(p.depth <= 4);
  for (let i = 2; i < 5; i++) {
    await until(() => sends.length === i + 1);
    sends[i]!.ack();
  }
  assert.equal(await p.flush(1_000), true);
  assert.deepEqual(
    sends.map((s) => names(s)[0]),
    ['Pod/ns/p1', 'Pod/ns/p2', 'Pod/ns/p3', 'Pod/ns/p4', 'Pod/ns/p5'],
  );
  await p.stop();
});

void test('given leadership ends, then discard drops the buffer and an in-flight ack does not shift the next term', async () => {
  const { kafka, sends } = fakeKafka();
  const p = createPublisher({ kafka, topic: 't', capacity: 10, log });
  p.offer(event(1));
  p.offer(event(2));
  await until(() => sends.length === 1);
  assert.equal(p.discard(), 2);
  p.offer(event(3));
  sends[0]!.ack(); // the discarded batch's late ack
  await until(() => sends.length === 2);
  assert.deepEqual(names(sends[1]!), ['Pod/ns/p3']);
  sends[1]!.ack();
  assert.equal(await p.flush(1_000), true);
  await p.stop();
});
