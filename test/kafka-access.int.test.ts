// Kafka authorisation against a real broker with the authorizer on (KRaft StandardAuthorizer, no
// access without an ACL), its SCRAM users and ACLs generated from src/contracts/topic-access.ts as
// the dev stack does (issue 12 finding 3: one forged node-rules record keyed node1 moved a pod of
// tenant-b to tenant-a's egress IP). Every client here connects to the SASL listener, the one the
// components use. Effectful: one broker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Partitioners, type Kafka, type SASLOptions } from 'kafkajs';
import {
  KAFKA_PRINCIPALS,
  KAFKA_PRINCIPAL_NAMES,
  type KafkaPrincipalName,
} from '../src/contracts/topic-access.ts';
import { TOPICS, topicSpecs } from '../src/contracts/topics.ts';
import { aclEntries, componentCredentials, type ComponentCredentials } from '../src/devenv/kafka-access.ts';
import { kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import { createKafka } from '../src/lib/kafka.ts';
import { readTopic } from '../src/lib/read-topic.ts';
import { pino } from 'pino';

let broker: KafkaBroker;
let credentials: ComponentCredentials;
const dir = mkdtempSync(path.join(tmpdir(), 'kseip-kafka-access-'));
const quiet = pino({ level: 'silent' });

function clientAs(principal: KafkaPrincipalName | { sasl?: SASLOptions }): Kafka {
  const sasl: SASLOptions | undefined =
    typeof principal === 'string'
      ? {
          mechanism: 'scram-sha-512',
          username: KAFKA_PRINCIPALS[principal].user,
          password: credentials.users.find((u) => u.username === KAFKA_PRINCIPALS[principal].user)!.password,
        }
      : principal.sasl;
  return createKafka(
    broker.secureBrokers!,
    `kafka-access-${typeof principal === 'string' ? principal : 'anon'}`,
    {
      log: quiet,
      connectionTimeout: 3_000,
      // Idempotent producers need retries; the first group join waits for __consumer_offsets.
      retry: { retries: 5, initialRetryTime: 100 },
      ...(sasl === undefined ? {} : { sasl }),
    },
  );
}

/** The error type of a send as `principal` ('ok' when it was accepted). */
async function trySend(kafka: Kafka, topic: string, key: string): Promise<string> {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    retry: { retries: 0 },
  });
  await producer.connect();
  try {
    await producer.send({ topic, messages: [{ key, value: '{"forged":true}' }] });
    return 'ok';
  } catch (err) {
    return errorType(err);
  } finally {
    await producer.disconnect();
  }
}

/** The Kafka error code name of a kafkajs error, also when wrapped (retries exhausted). */
function errorType(err: unknown): string {
  for (let e = err as { type?: string; cause?: unknown; name?: string } | undefined; e; e = e.cause as never)
    if (e.type !== undefined) return e.type;
  return (err as Error).name;
}

/** Every record of `topic` as the CLI reads it (src/lib/read-topic.ts, group kseip-cli-<uuid>). */
async function readAll(kafka: Kafka, topic: string): Promise<string[]> {
  const seen: string[] = [];
  await readTopic({
    kafka,
    topic,
    start: { kind: 'beginning' },
    follow: false,
    onRecord: (r) => void seen.push(`${r.key}=${r.value?.toString()}`),
  });
  return seen;
}

before(async () => {
  credentials = componentCredentials(dir);
  broker = await startKafka({ secureListener: { users: credentials.users, acls: aclEntries() } });
  // The harness creates the topics over the plaintext listener (the broker's super user).
  const admin = kafkaClient(broker.brokers, 'kafka-access-topics').admin();
  await admin.connect();
  await admin.createTopics({ topics: topicSpecs(1), waitForLeaders: true, timeout: 30_000 });
  await admin.disconnect();
});

after(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

void test('an agent cannot write node rules (the forged node1 record is refused); the projector can, in its transaction', async () => {
  assert.equal(await trySend(clientAs('agent'), TOPICS.nodeRules, 'node1'), 'TOPIC_AUTHORIZATION_FAILED');

  const producer = clientAs('projector').producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    transactionalId: 'kseip-projector',
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const tx = await producer.transaction();
  await tx.send({ topic: TOPICS.nodeRules, messages: [{ key: 'node1', value: '{"from":"projector"}' }] });
  await tx.commit();
  await producer.disconnect();

  // Only the projector's record is in the topic, as the auditor (read-only) sees it.
  assert.deepEqual(await readAll(clientAs('auditor'), TOPICS.nodeRules), ['node1={"from":"projector"}']);
});

void test('another transactional id is refused to the projector', async () => {
  const producer = clientAs('projector').producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    transactionalId: 'not-the-projector',
    idempotent: true,
    maxInFlightRequests: 1,
  });
  // The broker answers FindCoordinator with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which kafkajs
  // reports as a coordinator it cannot find; the same call with kseip-projector succeeds above.
  await assert.rejects(producer.connect().then(() => producer.transaction()));
  await producer.disconnect();
});

void test('each principal writes exactly the topics its grants name, the auditor none', async () => {
  const topics = Object.values(TOPICS);
  const expected: Record<string, string[]> = {};
  const actual: Record<string, string[]> = {};
  for (const name of KAFKA_PRINCIPAL_NAMES) {
    const grants = KAFKA_PRINCIPALS[name].grants;
    expected[name] = topics.filter((t) =>
      grants.some(
        (g) => g.resource.type === 'topic' && g.resource.name === t && g.operations.includes('Write'),
      ),
    );
    const kafka = clientAs(name);
    actual[name] = [];
    for (const t of topics) {
      const r = await trySend(kafka, t, `probe-${name}`);
      if (r === 'ok') actual[name].push(t);
      else assert.equal(r, 'TOPIC_AUTHORIZATION_FAILED', `${name} → ${t}`);
    }
  }
  assert.deepEqual(actual, expected);
  assert.deepEqual(actual.auditor, []);
  assert.deepEqual(actual.agent, [TOPICS.heartbeats, TOPICS.nodeStatus, TOPICS.deadLetter]);
});

void test('the auditor reads every topic', async () => {
  for (const t of Object.values(TOPICS)) await readAll(clientAs('auditor'), t);
});

void test('a client without credentials, or with a wrong password, is refused', async () => {
  const anonymous = clientAs({}).admin({ retry: { retries: 0 } });
  await assert.rejects(anonymous.connect().then(() => anonymous.listTopics()));
  await anonymous.disconnect();

  const wrong = clientAs({
    sasl: { mechanism: 'scram-sha-512', username: KAFKA_PRINCIPALS.projector.user, password: 'guessed' },
  }).admin({ retry: { retries: 0 } });
  await assert.rejects(wrong.connect(), (err: Error) => err.name === 'KafkaJSSASLAuthenticationError');
  await wrong.disconnect();
});
