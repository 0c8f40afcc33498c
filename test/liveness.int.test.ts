// The liveness service (src/liveness/liveness.ts) against a real Kafka broker and, for leader
// election, a real kube-apiserver (src/devenv/): heartbeats in, NodeLost / NodeBack events in
// cluster-events out, with the liveness envelope; silence gives NodeLost, heartbeats again give
// NodeBack; a node that never heartbeats gets nothing; bad heartbeats go to the dead-letter
// topic; nodes seen just before a start are declared lost if they stay silent; with a Lease only
// the leader publishes, and a new leader writes LeadershipAcquired with a higher term. Effectful:
// one broker container and one API server for the file, stopped at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, Producer } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { decodeClusterEvent, type ClusterEvent } from '../src/contracts/cluster-events.ts';
import type { Heartbeat } from '../src/contracts/node-reports.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import { DEAD_LETTER_HEADERS, createDeadLetterSink } from '../src/lib/dead-letter.ts';
import { createLeaderElector } from '../src/lib/leader-election.ts';
import { createLiveness, type Liveness, type LivenessOptions } from '../src/liveness/liveness.ts';

const log = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
let broker: KafkaBroker;
let kafka: Kafka;
let producer: Producer;
let api: ApiServer | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

/** Everything published to cluster-events, decoded, with its arrival time here. */
const published: { event: ClusterEvent; at: number }[] = [];
const deadLetters: { value: string; reason: string }[] = [];

before(async () => {
  broker = await startKafka();
  kafka = kafkaClient(broker.brokers, 'liveness-int');
  await createTopics(broker.brokers, [
    { topic: TOPICS.heartbeats },
    { topic: TOPICS.clusterEvents },
    { topic: TOPICS.deadLetter },
  ]);
  producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: `tail-${randomUUID()}`, maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPICS.clusterEvents, TOPICS.deadLetter], fromBeginning: true });
  await consumer.run({
    eachMessage: ({ topic, message }) => {
      if (topic === TOPICS.deadLetter) {
        deadLetters.push({
          value: message.value?.toString() ?? '',
          reason: message.headers?.[DEAD_LETTER_HEADERS.reason]?.toString() ?? '',
        });
        return Promise.resolve();
      }
      const decoded = decodeClusterEvent(message.value);
      if (decoded._tag === 'Left')
        throw new Error(`liveness wrote an undecodable event: ${decoded.left.reason}`);
      published.push({ event: decoded.right, at: performance.now() });
      return Promise.resolve();
    },
  });
  cleanups.push(() => consumer.disconnect());
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await producer?.disconnect().catch(() => undefined);
  await api?.stop();
  await broker?.stop();
});

async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const about = (node: string) => published.filter((p) => p.event.object.name === node);
const types = (node: string) => about(node).map((p) => p.event.type);

/** An agent's heartbeats, every 100 ms, until stopped. */
function heartbeating(node: string): { stop(): void } {
  let seq = 0;
  const bootId = randomUUID();
  const timer = setInterval(() => {
    const hb: Heartbeat = { schema: 1, node, sentAt: new Date().toISOString(), seq: seq++, bootId };
    producer
      .send({ topic: TOPICS.heartbeats, messages: [{ key: node, value: JSON.stringify(hb) }] })
      .catch((err: unknown) => log.warn({ err }, 'test heartbeat failed'));
  }, 100);
  return { stop: () => clearInterval(timer) };
}

async function startLiveness(extra: Partial<LivenessOptions> = {}): Promise<Liveness> {
  const dlq = kafka.producer({ allowAutoTopicCreation: false });
  await dlq.connect();
  cleanups.push(() => dlq.disconnect());
  const liveness = createLiveness({
    kafka: kafkaClient(broker.brokers, `liveness-${randomUUID().slice(0, 6)}`),
    thresholds: { lostAfterMs: 500, blindAfterMs: 250 },
    seedWindowMs: 0,
    standaloneTerm: 7,
    identity: 'liveness-int',
    deadLetter: createDeadLetterSink({ producer: dlq, component: 'liveness', log }),
    registry: new Registry(),
    log,
    ...extra,
  });
  cleanups.push(() => liveness.stop());
  await liveness.start();
  return liveness;
}

void describe('liveness', () => {
  void test('silence gives NodeLost, heartbeats again give NodeBack; a silent node gets nothing; bad heartbeats are dead letters', async () => {
    const liveness = await startLiveness();
    const node = `node-${randomUUID().slice(0, 6)}`;
    const neverHeard = `silent-${randomUUID().slice(0, 6)}`;
    await waitFor('ready', () => liveness.ready());

    const beats = heartbeating(node);
    await waitFor('NodeBack', () => types(node).length === 1);
    const back = about(node)[0]!.event;
    assert.equal(back.type, 'NodeBack');
    assert.deepEqual(back.producer, { component: 'liveness', term: 7 });
    assert.deepEqual(back.object, { kind: 'Node', name: node });

    // A steady node gets no further verdict.
    await sleep(1_500);
    assert.deepEqual(types(node), ['NodeBack']);

    beats.stop();
    await waitFor('NodeLost', () => types(node).length === 2);
    const lost = about(node)[1]!.event;
    assert.equal(lost.type, 'NodeLost');
    if (lost.type === 'NodeLost')
      assert.ok(lost.payload.silenceMs > 500, `silence ${lost.payload.silenceMs} ms`);

    const again = heartbeating(node);
    try {
      await waitFor('NodeBack again', () => types(node).length === 3);
      assert.deepEqual(types(node), ['NodeBack', 'NodeLost', 'NodeBack']);
    } finally {
      again.stop();
    }

    await producer.send({ topic: TOPICS.heartbeats, messages: [{ key: neverHeard, value: '{"node": 42}' }] });
    await waitFor('dead letter', () => deadLetters.some((d) => d.value === '{"node": 42}'));
    assert.match(deadLetters.find((d) => d.value === '{"node": 42}')!.reason, /node/);
    assert.deepEqual(types(neverHeard), [], 'a node that never heartbeats gets no verdict');
    await liveness.stop();
  });

  void test('at start, nodes seen heartbeating just before are declared lost if they stay silent', async () => {
    const died = `died-${randomUUID().slice(0, 6)}`;
    const alive = `alive-${randomUUID().slice(0, 6)}`;
    const beatsDied = heartbeating(died);
    const beatsAlive = heartbeating(alive);
    await sleep(500);
    beatsDied.stop(); // dies while no liveness runs
    await sleep(300);
    try {
      const liveness = await startLiveness({ seedWindowMs: 30_000 });
      await waitFor('NodeLost for the dead node', () => types(died).includes('NodeLost'));
      assert.deepEqual(types(died), ['NodeLost'], 'no NodeBack for a node not heard since the start');
      await waitFor('NodeBack for the live node', () => types(alive).includes('NodeBack'));
      await sleep(1_000);
      assert.deepEqual(types(alive), ['NodeBack']);
      await liveness.stop();
    } finally {
      beatsAlive.stop();
    }
  });

  void test('with a Lease, only the leader publishes; a new leader writes LeadershipAcquired with a higher term and the current verdicts', async () => {
    api = await startApiServer({ waitForControllers: false });
    const lease = { namespace: 'default', name: `kseip-liveness-${randomUUID().slice(0, 6)}` };
    const elector = (identity: string) =>
      createLeaderElector({
        kubeConfig: api!.kubeConfig,
        ...lease,
        identity,
        leaseDurationMs: 2_000,
        renewDeadlineMs: 1_500,
        retryPeriodMs: 200,
        log,
      });
    const node = `node-${randomUUID().slice(0, 6)}`;
    const beats = heartbeating(node);
    try {
      const a = await startLiveness({ elector: elector('a'), lease, identity: 'a' });
      await waitFor('a leads', () => a.leading());
      const b = await startLiveness({ elector: elector('b'), lease, identity: 'b' });
      await waitFor('NodeBack from a', () => types(node).includes('NodeBack'));
      await sleep(1_000);
      assert.ok(!b.leading());
      const acquired = () =>
        published.filter((p) => p.event.type === 'LeadershipAcquired' && p.event.object.name === lease.name);
      assert.equal(acquired().length, 1);
      const termA = acquired()[0]!.event.producer.term;
      assert.ok(
        about(node).every((p) => p.event.producer.term === termA),
        'only the leader wrote',
      );

      await a.stop(); // releases the Lease
      await waitFor('b leads', () => b.leading(), 20_000);
      await waitFor('LeadershipAcquired from b', () => acquired().length === 2);
      const second = acquired()[1]!.event;
      assert.ok(second.producer.term > termA, `term ${second.producer.term} > ${termA}`);
      assert.equal(second.type === 'LeadershipAcquired' && second.payload.holder, 'b');
      await waitFor('b re-publishes the current verdict', () =>
        about(node).some(
          (p) => p.event.producer.term === second.producer.term && p.event.type === 'NodeBack',
        ),
      );
      await b.stop();
    } finally {
      beats.stop();
    }
  });
});
