// The node agent's runtime against a real Kafka broker (src/devenv/kafka.ts), with a recording
// fake dataplane (the kernel side has its own tests): the node-rules consumer reads only its own
// key, applies nothing before catch-up and then the latest state; acks and heartbeats reach
// their topics; an agent cut off from Kafka withdraws its egress IPs BEFORE liveness publishes
// NodeLost for it, and takes them back once it has caught up again. Effectful: one broker
// container for the whole file, stopped at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket, connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ISocketFactory, Kafka, Producer } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeNodeApplyStatus, decodeHeartbeat } from '../src/contracts/node-reports.ts';
import { NODE_RULES_SCHEMA, emptyNodeRules, type NodeRules } from '../src/contracts/node-rules.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import type { DeadLetter } from '../src/lib/dead-letter.ts';
import { startAgentService, type AgentService } from '../src/agents/agent-service.ts';
import { computeNodePartition, createNodeRulesConsumer } from '../src/agents/node-rules-consumer.ts';
import { FakeDataplane } from './support/agent-fakes.ts';
import { createLiveness, type Liveness } from '../src/liveness/liveness.ts';

const log = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
let broker: KafkaBroker;
let kafka: Kafka;
let producer: Producer;
const cleanups: (() => Promise<unknown>)[] = [];

const MULTI = 'kseip.node-rules.v1.int-3p';

before(async () => {
  broker = await startKafka();
  kafka = kafkaClient(broker.brokers, 'agent-runtime-int');
  await createTopics(broker.brokers, [
    { topic: TOPICS.nodeRules, config: { 'cleanup.policy': 'compact' } },
    { topic: MULTI, partitions: 3, config: { 'cleanup.policy': 'compact' } },
    { topic: TOPICS.heartbeats },
    { topic: TOPICS.nodeStatus },
    { topic: TOPICS.deadLetter },
    { topic: TOPICS.clusterEvents },
  ]);
  producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await producer?.disconnect().catch(() => undefined);
  await broker?.stop();
});

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

function rules(node: string, generation: number, egressIPs: string[] = []): NodeRules {
  return {
    schema: NODE_RULES_SCHEMA,
    node,
    generation,
    nodeIP: '192.0.2.1',
    steers: [],
    egressIPs: egressIPs.map((egressIP, i) => ({ slot: i + 1, egressIP })),
  };
}

/** Produces with kafkajs' default partitioner, as the projector does; returns the partition. */
async function publish(topic: string, node: string, value: NodeRules | string | null): Promise<number> {
  const [meta] = await producer.send({
    topic,
    messages: [
      { key: node, value: value === null || typeof value === 'string' ? value : JSON.stringify(value) },
    ],
  });
  return meta!.partition;
}

/** Collects every record of a topic from its beginning, in a throwaway group. */
async function tail(topic: string): Promise<{ key: string; value: string; at: number }[]> {
  const records: { key: string; value: string; at: number }[] = [];
  const consumer = kafka.consumer({ groupId: `tail-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      records.push({
        key: message.key?.toString() ?? '',
        value: message.value?.toString() ?? '',
        at: performance.now(),
      });
      return Promise.resolve();
    },
  });
  cleanups.push(() => consumer.disconnect());
  return records;
}

/** A node-rules consumer of MULTI for `node` that records what it delivers and dead-letters. */
async function startRecordingConsumer(node: string) {
  const delivered: NodeRules[] = [];
  const letters: DeadLetter[] = [];
  const consumer = createNodeRulesConsumer({
    kafka,
    node,
    partitions: 3,
    topic: MULTI,
    onDesired: (r) => delivered.push(r),
    deadLetter: { send: (l) => letters.push(l) },
    log,
  });
  cleanups.push(() => consumer.stop());
  await consumer.start();
  return { consumer, delivered, letters };
}

void describe('node-rules consumer', () => {
  void test('reads only its own key, from the partition the producer chose, and applies only the latest after catch-up', async () => {
    const me = `node-${randomUUID().slice(0, 6)}`;
    const others = Array.from({ length: 12 }, (_, i) => `other-${i}-${randomUUID().slice(0, 4)}`);
    // Before the agent starts: several generations of mine, interleaved with everybody else's,
    // and one record of mine that does not decode.
    let myPartition = -1;
    for (let g = 1; g <= 5; g++) {
      myPartition = await publish(MULTI, me, rules(me, g, [`198.51.100.${g}`]));
      for (const o of others) await publish(MULTI, o, rules(o, g + 100, ['198.51.100.200']));
    }
    await publish(MULTI, me, '{"schema":1,"node":"oops"');
    assert.equal(computeNodePartition(me, 3), myPartition, "the agent computes the producer's partition");
    const sharing = others.filter((o) => computeNodePartition(o, 3) === myPartition);
    assert.ok(sharing.length > 0, 'some other node shares my partition, so key filtering is exercised');

    const { consumer, delivered, letters } = await startRecordingConsumer(me);
    assert.equal(consumer.partition(), myPartition);
    await waitFor('catch-up', () => consumer.caughtUp());
    assert.deepEqual(
      delivered,
      [rules(me, 5, ['198.51.100.5'])],
      'nothing before catch-up, then only the latest',
    );
    assert.equal(letters.length, 1);
    assert.match(letters[0]!.reason, /not JSON/);

    // Following: newer generations apply, older ones and other nodes' records do not.
    await publish(MULTI, sharing[0]!, rules(sharing[0]!, 999));
    await publish(MULTI, me, rules(me, 4));
    await publish(MULTI, me, rules(me, 7, ['198.51.100.7']));
    await waitFor('generation 7', () => delivered.length === 2);
    await consumer.syncToEnd();
    assert.deepEqual(
      delivered.map((r) => r.generation),
      [5, 7],
    );
    assert.equal(consumer.latestSeenGeneration(), 7);

    // A tombstone means "nothing of ours on this node".
    await publish(MULTI, me, null);
    await waitFor('tombstone', () => delivered.length === 3);
    assert.deepEqual(delivered[2], emptyNodeRules(me, 7));
  });

  void test('given no record for the node, the empty state is applied once caught up', async () => {
    const me = `absent-${randomUUID().slice(0, 6)}`;
    const delivered: NodeRules[] = [];
    const consumer = createNodeRulesConsumer({
      kafka,
      node: me,
      partitions: 3,
      topic: MULTI,
      onDesired: (r) => delivered.push(r),
      deadLetter: { send: () => undefined },
      log,
    });
    cleanups.push(() => consumer.stop());
    await consumer.start();
    await waitFor('catch-up', () => consumer.caughtUp());
    assert.deepEqual(delivered, [emptyNodeRules(me, 0)]);
  });
});

/**
 * A socket factory whose connections the test can cut (and restore), for one client only. A cut
 * behaves like a firewall that rejects: open connections are reset, new ones are refused.
 * (kafkajs notices a dead connection only through 'error' or 'end', never through 'close'.)
 */
function cuttableSockets(): { factory: ISocketFactory; cut(): void; restore(): void } {
  const open = new Set<Socket>();
  let isCut = false;
  const refused = (): Error =>
    Object.assign(new Error('connection refused (cut by the test)'), { code: 'ECONNREFUSED' });
  return {
    factory: ({ host, port, onConnect }) => {
      if (isCut) {
        const socket = new Socket();
        setImmediate(() => socket.destroy(refused()));
        return socket;
      }
      const socket = connect({ host, port }, onConnect);
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      return socket;
    },
    cut() {
      isCut = true;
      for (const s of open)
        s.destroy(Object.assign(new Error('connection reset (cut by the test)'), { code: 'ECONNRESET' }));
    },
    restore() {
      isCut = false;
    },
  };
}

interface Harness {
  service: AgentService;
  dataplane: FakeDataplane;
  liveness: Liveness;
  events: { event: ClusterEvent; at: number }[];
}

async function startHarness(node: string, socketFactory?: ISocketFactory): Promise<Harness> {
  const dataplane = new FakeDataplane();
  const service = await startAgentService({
    config: {
      nodeName: node,
      brokers: broker.brokers,
      heartbeatIntervalMs: 100,
      fenceAfterMs: 250,
      driftIntervalMs: 5_000,
      metricsPort: 0,
      nodeRulesPartitions: 1,
      uninstall: false,
    },
    dataplane,
    registry: new Registry(),
    serveHealth: false,
    log: log.child({ node }),
    ...(socketFactory === undefined ? {} : { socketFactory }),
  });
  cleanups.push(() => service.stop());
  const events: { event: ClusterEvent; at: number }[] = [];
  const liveness = createLiveness({
    kafka: kafkaClient(broker.brokers, `liveness-${node}`),
    thresholds: { lostAfterMs: 500, blindAfterMs: 250 },
    seedWindowMs: 0,
    identity: `liveness-${node}`,
    deadLetter: { send: () => undefined },
    registry: new Registry(),
    log: log.child({ component: 'liveness' }),
    onPublished: (event) => events.push({ event, at: performance.now() }),
  });
  cleanups.push(() => liveness.stop());
  await liveness.start();
  return { service, dataplane, liveness, events };
}

const verdictsFor = (h: Harness, node: string, type: 'NodeLost' | 'NodeBack') =>
  h.events.filter((e) => e.event.type === type && e.event.object.name === node);
const withdrawals = (h: Harness) => h.dataplane.timeline.filter((c) => c.line === 'withdraw');

void describe('agent service', () => {
  void test('applies the latest state after catch-up, acks it, heartbeats; cut off alone it withdraws before NodeLost, then recovers', async () => {
    const node = `gw-${randomUUID().slice(0, 6)}`;
    await publish(TOPICS.nodeRules, node, rules(node, 1, ['198.51.100.1']));
    await publish(TOPICS.nodeRules, node, rules(node, 2, ['198.51.100.2']));
    const sockets = cuttableSockets();
    const statuses = await tail(TOPICS.nodeStatus);
    const heartbeats = await tail(TOPICS.heartbeats);
    const h = await startHarness(node, sockets.factory);

    await waitFor('first full apply', () => h.service.agent.ready() && !h.service.agent.fenced());
    // On a slow machine the first heartbeats can take longer than the fence bound, so a start
    // may begin fenced (withdraw, then the state without IPs); either way only generation 2.
    assert.equal(h.dataplane.calls.at(-1), 'reconcile g=2 ips=198.51.100.2');
    assert.ok(
      h.dataplane.calls.every((c) => c === 'withdraw' || c.startsWith('reconcile g=2 ')),
      `nothing before catch-up, only the latest: ${h.dataplane.calls.join('; ')}`,
    );
    const withdrawnAtStart = withdrawals(h).length;
    await waitFor('NodeBack', () => verdictsFor(h, node, 'NodeBack').length === 1);
    await waitFor('ack', () => statuses.some((s) => s.key === node));
    const ack = decodeNodeApplyStatus(statuses.find((s) => s.key === node)!.value);
    assert.equal(ack._tag, 'Right');
    if (ack._tag === 'Right') {
      assert.deepEqual([ack.right.generation, ack.right.ok, ack.right.reason], [2, true, 'startup']);
    }
    const mine = heartbeats.filter((r) => r.key === node).map((r) => decodeHeartbeat(r.value));
    assert.ok(mine.length > 0 && mine.every((hb) => hb._tag === 'Right'));

    // Cut this agent off from Kafka; liveness and the broker stay fine.
    sockets.cut();
    const cutAt = performance.now();
    await waitFor('NodeLost', () => verdictsFor(h, node, 'NodeLost').length === 1, 30_000);
    const lostAt = verdictsFor(h, node, 'NodeLost')[0]!.at;
    const withdrawn = withdrawals(h).slice(withdrawnAtStart);
    assert.equal(withdrawn.length, 1, 'withdrawn exactly once');
    assert.ok(
      withdrawn[0]!.at < lostAt,
      `withdraw (${Math.round(withdrawn[0]!.at - cutAt)} ms after the cut) must precede NodeLost (${Math.round(lostAt - cutAt)} ms)`,
    );
    assert.ok(h.service.agent.fenced());

    // Reconnected: it catches up, applies the full state again, and liveness says NodeBack.
    sockets.restore();
    await waitFor('unfenced', () => !h.service.agent.fenced(), 60_000);
    assert.equal(h.dataplane.calls.at(-1), 'reconcile g=2 ips=198.51.100.2');
    await waitFor('NodeBack again', () => verdictsFor(h, node, 'NodeBack').length === 2, 30_000);
    assert.ok(verdictsFor(h, node, 'NodeBack')[1]!.at > lostAt);
  });

  void test('a broker outage (pause) makes the gateway agent fence; liveness, blind too, declares nobody lost; both recover', async () => {
    const node = `gw-${randomUUID().slice(0, 6)}`;
    await publish(TOPICS.nodeRules, node, rules(node, 3, ['198.51.100.3']));
    const h = await startHarness(node);
    await waitFor('first full apply', () => h.service.agent.ready() && !h.service.agent.fenced());
    await waitFor('NodeBack', () => verdictsFor(h, node, 'NodeBack').length === 1);
    await sleep(300);
    const withdrawnBefore = withdrawals(h).length;

    await broker.pause();
    const pausedAt = performance.now();
    try {
      await waitFor('withdraw', () => withdrawals(h).length === withdrawnBefore + 1, 10_000);
      // Hold the outage well past liveness' lost threshold.
      await sleep(1_500);
    } finally {
      await broker.unpause();
    }
    const withdrawnAt = withdrawals(h)[withdrawnBefore]!.at;
    log.info({ withdrawMs: Math.round(withdrawnAt - pausedAt) }, 'fenced after broker pause');
    await waitFor('unfenced', () => !h.service.agent.fenced(), 60_000);
    assert.equal(h.dataplane.calls.at(-1), 'reconcile g=3 ips=198.51.100.3');
    // Give liveness time to publish anything it decided during the outage.
    await sleep(1_000);
    const lost = verdictsFor(h, node, 'NodeLost');
    assert.ok(
      lost.every((e) => e.at > withdrawnAt),
      'if liveness ever published NodeLost, it was after the agent withdrew',
    );
    assert.equal(lost.length, 0, 'a broker outage is not the death of every node');
  });
});

// Last in the file: it restarts the broker under every client above.
void describe('node-rules consumer across a broker restart', () => {
  void test('resumes where it was: no re-read from offset 0, so a bad record is dead-lettered once; later records apply', async () => {
    const me = `restart-${randomUUID().slice(0, 6)}`;
    await publish(MULTI, me, rules(me, 1, ['198.51.100.1']));
    await publish(MULTI, me, '{"schema":1,"node":"oops"');
    await publish(MULTI, me, rules(me, 2, ['198.51.100.2']));
    const { consumer, delivered, letters } = await startRecordingConsumer(me);
    await waitFor('catch-up', () => consumer.caughtUp());
    assert.equal(letters.length, 1);

    await broker.restart({ downMs: 25_000 });
    await publish(MULTI, me, rules(me, 3, ['198.51.100.3']));
    await waitFor('generation 3 after the restart', () => delivered.at(-1)?.generation === 3);
    // A consumer that re-joined from offset 0 would have decoded the bad record again.
    await consumer.syncToEnd();
    assert.deepEqual(
      letters.map((l) => l.offset),
      [letters[0]!.offset],
      'the bad record is dead-lettered exactly once',
    );
    assert.deepEqual(
      delivered.map((r) => r.generation),
      [2, 3],
    );
  });
});
