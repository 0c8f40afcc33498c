// Proves that the pinned Kafka broker (tools/kafka, started by src/devenv/kafka.ts) and kafkajs
// 2.2.4 work together for everything the design leans on: idempotent produce, the projector's
// consume-produce-commit transaction with sendOffsets, aborted transactions hidden from
// read_committed readers, consumer-group rebalancing, a broker restart that keeps its data,
// pause/unpause, and operators reading topics with kcat. Effectful: starts one broker container
// for the whole file.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Partitioners, type Consumer, type Kafka, type Producer } from 'kafkajs';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';

const run = promisify(execFile);

let broker: KafkaBroker;
let kafka: Kafka;

before(async () => {
  broker = await startKafka();
  kafka = kafkaClient(broker.brokers, 'kafka-int-test');
});

after(async () => {
  await broker?.stop();
});

const unique = (name: string): string => `${name}-${randomUUID().slice(0, 8)}`;

/**
 * Disconnects the client when its test ends, so that no client outlives its test. A kafkajs
 * consumer still running when a later test restarts the broker, and disconnected only while it
 * is in its crash-restart backoff, keeps restarting itself forever and the file never ends.
 */
function track<T extends Producer | Consumer>(t: TestContext, client: T): T {
  t.after(() => client.disconnect());
  return client;
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

interface Received {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: string;
}

/**
 * Reads a topic from the beginning in a throwaway group until `done(records)` holds. The group
 * commits nothing, so it reads exactly what the isolation level lets it see.
 */
async function readTopic(
  topic: string,
  done: (records: Received[]) => boolean,
  opts: { readUncommitted?: boolean } = {},
): Promise<Received[]> {
  const consumer = kafka.consumer({
    groupId: unique('reader'),
    readUncommitted: opts.readUncommitted ?? false,
    heartbeatInterval: 500,
    // disconnect() waits for the fetch in flight, which idles up to maxWaitTimeInMs (5 s default).
    maxWaitTimeInMs: 250,
  });
  const records: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ topic: t, partition, message }) => {
        records.push({
          topic: t,
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
        });
        return Promise.resolve();
      },
    });
    await waitFor(`records in ${topic}`, () => done(records));
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** Offsets are only readable at the end of a read when a later record marks the end. */
const sawValue = (value: string) => (records: Received[]) => records.some((r) => r.value === value);

void describe('Kafka broker with kafkajs', { timeout: 300_000 }, () => {
  void test('idempotent producer: keyed records come back once each, in order per key', async (t) => {
    const topic = unique('roundtrip');
    await createTopics(broker.brokers, [{ topic, partitions: 3 }]);
    const producer = track(
      t,
      kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner }),
    );
    await producer.connect();
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `node-${i % 3}`, value: `event-${i}` }));
    for (let i = 0; i < sent.length; i += 10) {
      await producer.send({ topic, acks: -1, messages: sent.slice(i, i + 10) });
    }

    const got = await readTopic(topic, (records) => records.length >= sent.length);
    await sleep(500); // a duplicate, if any, would arrive right behind the last record

    assert.equal(got.length, sent.length, 'every record exactly once');
    for (const key of ['node-0', 'node-1', 'node-2']) {
      const sentForKey = sent.filter((m) => m.key === key).map((m) => m.value);
      const gotForKey = got.filter((r) => r.key === key);
      assert.deepEqual(
        gotForKey.map((r) => r.value),
        sentForKey,
        `${key}: same records in send order`,
      );
      assert.equal(new Set(gotForKey.map((r) => r.partition)).size, 1, `${key}: one partition`);
    }
  });

  void test('transaction: consume A, produce B and C with sendOffsets, commit; abort hides records', async (t) => {
    const [a, b, c] = [unique('tx-in'), unique('tx-out-b'), unique('tx-out-c')];
    const groupId = unique('projector');
    await createTopics(broker.brokers, [{ topic: a }, { topic: b }, { topic: c }]);

    const plain = track(t, kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    await plain.connect();
    await plain.send({ topic: a, messages: ['e1', 'e2', 'e3'].map((value) => ({ key: 'k', value })) });

    // The kafkajs transactional setup the projector will use: idempotent, one request in flight.
    const txProducer = track(
      t,
      kafka.producer({
        transactionalId: unique('projector-tx'),
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: 10_000,
        createPartitioner: Partitioners.DefaultPartitioner,
      }),
    );
    await txProducer.connect();

    const consumer = track(t, kafka.consumer({ groupId, heartbeatInterval: 500, maxWaitTimeInMs: 250 }));
    await consumer.connect();
    await consumer.subscribe({ topic: a, fromBeginning: true });
    let processed = 0;
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const txn = await txProducer.transaction();
        try {
          const value = message.value?.toString() ?? '';
          await txn.send({ topic: b, messages: [{ key: 'k', value: `b:${value}` }] });
          await txn.send({ topic: c, messages: [{ key: 'k', value: `c:${value}` }] });
          await txn.sendOffsets({
            consumerGroupId: groupId,
            topics: [{ topic, partitions: [{ partition, offset: String(Number(message.offset) + 1) }] }],
          });
          await txn.commit();
          processed++;
        } catch (err) {
          await txn.abort();
          throw err;
        }
      },
    });
    await waitFor('3 records processed in transactions', () => processed === 3);
    await consumer.disconnect();

    // A transaction that aborts must stay invisible to read_committed readers, while the
    // records themselves did reach the log (read_uncommitted sees them).
    const aborted = await txProducer.transaction();
    await aborted.send({ topic: b, messages: [{ key: 'k', value: 'b:aborted' }] });
    await aborted.send({ topic: c, messages: [{ key: 'k', value: 'c:aborted' }] });
    await aborted.abort();
    const marker = await txProducer.transaction();
    await marker.send({ topic: b, messages: [{ key: 'k', value: 'b:end' }] });
    await marker.send({ topic: c, messages: [{ key: 'k', value: 'c:end' }] });
    await marker.commit();

    const committedB = await readTopic(b, sawValue('b:end'));
    const committedC = await readTopic(c, sawValue('c:end'));
    assert.deepEqual(
      committedB.map((r) => r.value),
      ['b:e1', 'b:e2', 'b:e3', 'b:end'],
    );
    assert.deepEqual(
      committedC.map((r) => r.value),
      ['c:e1', 'c:e2', 'c:e3', 'c:end'],
    );
    const uncommittedB = await readTopic(b, sawValue('b:end'), { readUncommitted: true });
    assert.ok(
      uncommittedB.some((r) => r.value === 'b:aborted'),
      'the aborted record is in the log, only hidden from read_committed',
    );

    const admin = kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchOffsets({ groupId, topics: [a] });
      assert.deepEqual(offsets, [{ topic: a, partitions: [{ partition: 0, offset: '3', metadata: null }] }]);
    } finally {
      await admin.disconnect();
    }
  });

  void test('consumer group: two members split the partitions, one leaving hands them back', async (t) => {
    const topic = unique('rebalance');
    const groupId = unique('agents');
    await createTopics(broker.brokers, [{ topic, partitions: 4 }]);

    const assignment = new Map<string, number[]>();
    const received = new Map<string, Set<number>>();
    const member = async (name: string): Promise<Consumer> => {
      const consumer = track(
        t,
        kafka.consumer({
          groupId,
          heartbeatInterval: 300,
          sessionTimeout: 10_000,
          rebalanceTimeout: 10_000,
          maxWaitTimeInMs: 250,
        }),
      );
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        assignment.set(name, [...(e.payload.memberAssignment[topic] ?? [])].sort());
      });
      received.set(name, new Set());
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: ({ partition }) => {
          received.get(name)?.add(partition);
          return Promise.resolve();
        },
      });
      return consumer;
    };

    await member('one');
    await waitFor('first member owns all 4 partitions', () => assignment.get('one')?.length === 4);
    const two = await member('two');
    await waitFor(
      'two members with 2 partitions each',
      () => assignment.get('one')?.length === 2 && assignment.get('two')?.length === 2,
    );
    const one = assignment.get('one') ?? [];
    const other = assignment.get('two') ?? [];
    assert.deepEqual([...one, ...other].sort(), [0, 1, 2, 3], 'together they own every partition');
    assert.equal(new Set([...one, ...other]).size, 4, 'no partition owned twice');

    // Records on every partition reach exactly the member that owns it.
    const producer = track(t, kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner }));
    await producer.connect();
    await producer.send({ topic, messages: [0, 1, 2, 3].map((partition) => ({ partition, value: 'x' })) });
    await waitFor(
      'records on all partitions',
      () => (received.get('one')?.size ?? 0) + (received.get('two')?.size ?? 0) === 4,
    );
    assert.deepEqual([...(received.get('one') ?? [])].sort(), one);
    assert.deepEqual([...(received.get('two') ?? [])].sort(), other);

    await two.disconnect();
    await waitFor('the remaining member owns all 4 again', () => assignment.get('one')?.length === 4);
  });

  void test('kcat reads the JSON records the project produced', async (t) => {
    const topic = unique('kcat');
    await createTopics(broker.brokers, [{ topic }]);
    const producer = track(
      t,
      kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner }),
    );
    await producer.connect();
    const events = [
      { type: 'NodeLost', node: 'node-a', at: 1 },
      { type: 'GatewayAssigned', egressIp: '198.51.100.7', node: 'node-b' },
    ];
    await producer.send({
      topic,
      messages: events.map((e) => ({ key: e.node, value: JSON.stringify(e) })),
    });

    const { stdout } = await run('kcat', ['-b', broker.brokers[0]!, '-C', '-t', topic, '-e', '-J', '-q'], {
      timeout: 60_000,
    });
    const envelopes = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { topic: string; offset: number; key: string; payload: string });
    assert.deepEqual(
      envelopes.map((e) => ({ topic: e.topic, offset: e.offset, key: e.key })),
      [
        { topic, offset: 0, key: 'node-a' },
        { topic, offset: 1, key: 'node-b' },
      ],
    );
    assert.deepEqual(
      envelopes.map((e) => JSON.parse(e.payload) as unknown),
      events,
    );
  });

  void test('pause freezes the broker: requests time out; unpause brings it back', async () => {
    const probe = (): Promise<string[]> => {
      const admin = kafkaClient(broker.brokers, 'pause-probe', {
        connectionTimeout: 1_000,
        requestTimeout: 1_000,
      }).admin({ retry: { retries: 0 } });
      return admin
        .connect()
        .then(() => admin.listTopics())
        .finally(() => admin.disconnect());
    };
    await broker.pause();
    try {
      await assert.rejects(probe(), 'a frozen broker answers nothing');
    } finally {
      await broker.unpause();
    }
    assert.ok(Array.isArray(await probe()), 'answers again once unpaused');
  });

  void test('restart: same address, topics and records survive, consumers carry on', async (t) => {
    const topic = unique('durable');
    await createTopics(broker.brokers, [{ topic, partitions: 2 }]);
    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'a', value: 'before-restart' }] });
    await producer.disconnect();

    await broker.restart({ downMs: 500 });

    const again = track(
      t,
      kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner }),
    );
    await again.connect();
    await again.send({ topic, messages: [{ key: 'a', value: 'after-restart' }] });
    const got = await readTopic(topic, sawValue('after-restart'));
    assert.deepEqual(
      got.map((r) => r.value),
      ['before-restart', 'after-restart'],
    );
  });
});
