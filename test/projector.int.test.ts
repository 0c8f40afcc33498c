// Crash safety of the projector against a real Kafka broker (src/devenv/kafka.ts): the projector
// runs as a child process and SIGKILLs itself inside a transaction (after producing its outputs,
// or after adding the consumed offset, but before the commit). After a restart, the
// read_committed contents of the decisions and node-rules topics have no duplicate and no gap:
// they equal, record for record, what a pure replay of the same cluster events emits.
// Effectful: one broker container for the file, child processes it starts and stops by pid.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type Kafka } from 'kafkajs';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { DEAD_LETTER_HEADERS } from '../src/lib/dead-letter.ts';
import { events, healthyNode, rule } from './support/fixtures.ts';
import { evolve, initialState } from '../src/projection/projection.ts';
import type { CrashPoint } from '../src/projector/projector.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
let broker: KafkaBroker;
let kafka: Kafka;
const children = new Set<ChildProcess>();

before(async () => {
  broker = await startKafka();
  kafka = kafkaClient(broker.brokers, 'projector-int-test');
});

after(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await broker?.stop();
});

/** A cluster's life: set-up, selections, a conflict, failovers, a cordon, churn, a policy edit. */
function scenario(): { first: ClusterEvent[]; later: ClusterEvent[] } {
  const ev = events();
  const nodes = Array.from({ length: 6 }, (_, i) => `node-${i + 1}`);
  const first: ClusterEvent[] = [
    ev.pool('pool'),
    ev.namespace('shop', { team: 'a' }),
    ev.namespace('blog', { team: 'b' }),
    ...nodes.flatMap((n, i) => healthyNode(ev, n, { labels: i < 3 ? { egress: 'yes' } : {} })),
    ev.service('shop', 'frontend', { app: 'fe' }),
  ];
  for (let i = 0; i < 40; i++)
    first.push(
      ev.pod(i % 2 === 0 ? 'shop' : 'blog', `pod-${i}`, {
        labels: { app: i % 4 < 2 ? 'fe' : 'api' },
        ip: `10.0.${i % 6}.${i + 10}`,
        node: nodes[i % 6],
      }),
    );
  first.push(
    ev.slice('shop', 'frontend-x', 'frontend', [{ pod: 'pod-0', ip: '10.0.0.10' }]),
    ev.policy('shop', 'eip', [rule({ service: 'frontend', to: ['4.2.2.2/32'], gateways: 2 })]),
    ev.policy('blog', 'api', [
      rule({
        egressIP: '198.51.100.2',
        podSelector: { matchLabels: { app: 'api' } },
        gatewaySelector: { matchLabels: { egress: 'yes' } },
        gateways: 3,
      }),
    ]),
    ev.clusterPolicy('everyone', { matchLabels: { team: 'b' } }, [
      rule({ egressIP: '198.51.100.3', podSelector: {} }),
    ]),
    ev.policy('blog', 'copycat', [rule({ podSelector: {} })]), // claims 198.51.100.1 as well: conflict
  );
  for (const n of nodes) first.push(ev.nodeLost(n), ev.nodeBack(n));
  first.push(ev.node('node-2', { labels: { egress: 'yes' }, unschedulable: true }));
  for (let i = 0; i < 40; i += 3) first.push(ev.podDeleted(i % 2 === 0 ? 'shop' : 'blog', `pod-${i}`));
  first.push(ev.again(first[10] as ClusterEvent)); // a redelivered duplicate
  const later: ClusterEvent[] = [
    ev.policy(
      'shop',
      'eip',
      [rule({ service: 'frontend', to: ['4.2.2.2/32', '203.0.113.0/24'], gateways: 2 })],
      2,
    ),
    ev.policyDeleted('shop', 'eip'),
    ev.nodeLost('node-1'),
    ev.nodeLost('node-3'),
  ];
  for (let i = 40; i < 60; i++)
    later.push(ev.pod('blog', `pod-${i}`, { labels: { app: 'api' }, ip: `10.0.9.${i}`, node: nodes[i % 6] }));
  return { first, later };
}

interface Topics {
  clusterEvents: string;
  decisions: string;
  nodeRules: string;
  deadLetter: string;
}

/** Records of one topic as read_committed (or not) sees them, from the beginning. */
async function readAll(
  topic: string,
  enough: (n: number) => boolean,
  readUncommitted = false,
): Promise<{ key: string; value: string; headers: Record<string, string> }[]> {
  const consumer = kafka.consumer({
    groupId: `reader-${randomUUID()}`,
    readUncommitted,
    maxWaitTimeInMs: 200,
  });
  const records: { key: string; value: string; headers: Record<string, string> }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {}))
          if (v !== undefined) headers[k] = String(v);
        records.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '', headers });
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + 60_000;
    while (!enough(records.length)) {
      if (Date.now() > deadline) throw new Error(`${topic}: only ${records.length} records after 60 s`);
      await sleep(100);
    }
    await sleep(1_000); // a duplicate, if there were one, would arrive right behind
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** Spawns the projector with its flags; collects its output for failure messages. */
function projector(topics: Topics, id: string, crash?: `${CrashPoint}@${number}`) {
  const child = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      path.join(ROOT, 'src/projector/main.ts'),
      `--cluster-events-topic=${topics.clusterEvents}`,
      `--decisions-topic=${topics.decisions}`,
      `--node-rules-topic=${topics.nodeRules}`,
      `--dead-letter-topic=${topics.deadLetter}`,
      // Small transactions, so that some commit before the crash and some after the restart.
      '--max-events-per-transaction=7',
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        KSEIP_BROKERS: broker.brokers.join(','),
        KSEIP_PROJECTOR_GROUP: `projector-${id}`,
        KSEIP_PROJECTOR_TRANSACTIONAL_ID: `projector-tx-${id}`,
        // The crashed process's open transaction is aborted by the restarted one's
        // initTransactions; the timeout bounds the CONCURRENT_TRANSACTIONS wait if not.
        KSEIP_PROJECTOR_TRANSACTION_TIMEOUT: '10s',
        KSEIP_HEALTH_PORT: '0',
        KSEIP_PROJECTOR_CRASH: crash ?? 'none',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

async function committedOffset(groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Number(entry?.partitions[0]?.offset ?? -1);
  } catch (err) {
    // A group coordinator still loading (GROUP_LOAD_IN_PROGRESS on a fresh broker) is "nothing
    // committed yet" to the callers, which poll.
    if ((err as { retriable?: boolean }).retriable === true) return -1;
    throw err;
  } finally {
    await admin.disconnect();
  }
}

async function endOffset(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return Number((await admin.fetchTopicOffsets(topic))[0]?.high ?? 0);
  } finally {
    await admin.disconnect();
  }
}

/** Waits (generously) until the projector's committed offset reaches `end`. */
async function caughtUp(
  id: string,
  topics: Topics,
  end: number,
  proc: ReturnType<typeof projector>,
): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await committedOffset(`projector-${id}`, topics.clusterEvents)) < end) {
    if (Date.now() > deadline) throw new Error(`the projector did not catch up to ${end}:\n${proc.output()}`);
    if (proc.child.exitCode !== null) throw new Error(`the projector exited:\n${proc.output()}`);
    await sleep(200);
  }
}

/** What a pure replay of the log emits, record for record, with the offset that caused each. */
function pureReplay(log: readonly string[]) {
  const state = initialState();
  const decisions: { offset: number; value: string }[] = [];
  const nodeRules: { offset: number; value: string }[] = [];
  log.forEach((value, offset) => {
    const decoded = decodeClusterEvent(value);
    if (decoded._tag === 'Left') return;
    const out = evolve(state, decoded.right, offset);
    decisions.push(...out.decisions.map((d) => ({ offset, value: JSON.stringify(d) })));
    nodeRules.push(...out.nodeRules.map((r) => ({ offset, value: JSON.stringify(r) })));
  });
  return { decisions, nodeRules };
}

/** A fresh set of topic names for one run; the cluster-events topic is created. */
async function createRunTopics(id: string): Promise<Topics> {
  const topics: Topics = {
    clusterEvents: `cluster-events-${id}`,
    decisions: `decisions-${id}`,
    nodeRules: `node-rules-${id}`,
    deadLetter: `dead-letter-${id}`,
  };
  await createTopics(broker.brokers, [{ topic: topics.clusterEvents }]);
  return topics;
}

async function crashAndRecover(point: CrashPoint): Promise<void> {
  const id = `${point}-${randomUUID().slice(0, 8)}`;
  const topics = await createRunTopics(id);
  const { first, later } = scenario();
  const garbage = [
    { key: 'garbage-1', value: 'this is not JSON' },
    { key: 'garbage-2', value: JSON.stringify({ schema: 99, type: 'PodObserved' }) },
  ];
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const log: string[] = [];
  const write = async (values: { key: string; value: string }[]) => {
    await producer.send({ topic: topics.clusterEvents, acks: -1, messages: values });
    log.push(...values.map((v) => v.value));
  };
  const asRecords = (evs: ClusterEvent[]) =>
    evs.map((e) => ({
      key: `${e.object.kind}/${e.object.namespace ?? ''}/${e.object.name}`,
      value: JSON.stringify(e),
    }));
  await write(asRecords(first.slice(0, 30)));
  await write([garbage[0] as { key: string; value: string }]);
  await write(asRecords(first.slice(30)));
  // In the failovers: the transaction covering it has outputs, and several commit before it.
  const crashAt = log.findIndex((v) => v.includes('"type":"NodeLost"')) + 3;

  // 1. The projector dies by SIGKILL inside the transaction that covers offset `crashAt`.
  const a = projector(topics, id, `${point}@${crashAt}`);
  const exitA = await Promise.race([a.exited, sleep(120_000).then(() => undefined)]);
  assert.ok(exitA !== undefined, `the first projector did not crash within 120 s:\n${a.output()}`);
  assert.equal(exitA.signal, 'SIGKILL', `the first projector should die by SIGKILL:\n${a.output()}`);
  const committedAtCrash = await committedOffset(`projector-${id}`, topics.clusterEvents);
  assert.ok(
    committedAtCrash > 0 && committedAtCrash <= crashAt,
    `committed ${committedAtCrash} before the crash at ${crashAt}`,
  );
  // The dying transaction had produced records beyond the committed ones: they are in the log
  // (read_uncommitted sees them), and must never become visible to read_committed readers.
  const committedSoFar = pureReplay(log).nodeRules.filter((r) => r.offset < committedAtCrash).length;
  await readAll(topics.nodeRules, (n) => n > committedSoFar, true);

  // 2. It restarts (replays to the committed offset, then goes on) while more events arrive.
  const b = projector(topics, id);
  await write(asRecords(later));
  await write([garbage[1] as { key: string; value: string }]);
  const end = await endOffset(topics.clusterEvents);
  assert.equal(end, log.length);
  await caughtUp(id, topics, end, b);
  await producer.disconnect();

  // 3. What a pure replay of the same log emits, record for record.
  const expected = pureReplay(log);
  const expectedDecisions = expected.decisions.map((d) => d.value);
  const expectedNodeRules = expected.nodeRules.map((r) => r.value);
  assert.ok(expectedDecisions.length > 20 && expectedNodeRules.length > 20, 'the scenario decides things');

  const decisions = await readAll(topics.decisions, (n) => n >= expectedDecisions.length);
  const nodeRules = await readAll(topics.nodeRules, (n) => n >= expectedNodeRules.length);
  const ids = decisions.map((d) => (JSON.parse(d.value) as { id: string }).id);
  assert.equal(new Set(ids).size, ids.length, 'no decision twice');
  assert.deepEqual(
    decisions.map((d) => d.value),
    expectedDecisions,
    'decisions: no duplicate, no gap, same order',
  );
  assert.deepEqual(
    nodeRules.map((r) => r.value),
    expectedNodeRules,
    'node rules: no duplicate, no gap, same order',
  );
  assert.ok(
    nodeRules.every((r) => r.key === (JSON.parse(r.value) as { node: string }).node),
    'node rules are keyed by node',
  );

  // 4. The two undecodable records were dead-lettered once each, with the reason.
  const letters = await readAll(topics.deadLetter, (n) => n >= 2);
  // Keyed by source position (the topic is compacted on that key); the original key is a header.
  assert.deepEqual(
    letters.map((l) => l.headers[DEAD_LETTER_HEADERS.sourceKey]),
    ['garbage-1', 'garbage-2'],
  );
  assert.deepEqual(
    letters.map((l) => l.key),
    letters.map(
      (l) =>
        `projector:${topics.clusterEvents}/${l.headers[DEAD_LETTER_HEADERS.sourcePartition]}/${l.headers[DEAD_LETTER_HEADERS.sourceOffset]}`,
    ),
  );
  assert.match(letters[0]?.headers[DEAD_LETTER_HEADERS.reason] ?? '', /not JSON/);

  b.child.kill('SIGTERM');
  const exitB = await b.exited;
  assert.equal(exitB.code, 0, `the projector stops cleanly on SIGTERM:\n${b.output()}`);
}

/**
 * Issue 12, finding 2: a well-formed LeadershipAcquired with a forged huge term is dead-lettered
 * with the reason, and the real watcher's later changes still reach the decisions and the node
 * rules, also after a projector restart (whose replay refuses the record again, silently).
 */
async function forgedTermIsDeadLettered(): Promise<void> {
  const id = `forged-${randomUUID().slice(0, 8)}`;
  const topics = await createRunTopics(id);
  const ev = events();
  const policy = (generation: number, to: string) =>
    ev.policy('shop', 'eip', [rule({ podSelector: { matchLabels: { app: 'fe' } }, to: [to] })], generation);
  const forged = ev.forgedLeadership('watcher', 2 ** 53 - 1);
  const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let end = 0;
  const write = async (evs: ClusterEvent[]) => {
    const messages = evs.map((e) => ({ key: `forge-test/${e.type}`, value: JSON.stringify(e) }));
    await producer.send({ topic: topics.clusterEvents, acks: -1, messages });
    end += messages.length;
  };
  try {
    await write([
      ev.leadership('watcher', 1),
      ev.pool('pool'),
      ev.namespace('shop'),
      ...healthyNode(ev, 'node-1'),
      ...healthyNode(ev, 'node-2'),
      ev.pod('shop', 'fe-1', { labels: { app: 'fe' }, ip: '10.0.1.10', node: 'node-1' }),
      policy(1, '203.0.113.0/24'),
      forged,
    ]);
    const a = projector(topics, id);
    // The real watcher's next change, after the forged record.
    await write([policy(2, '203.0.113.0/25')]);
    await caughtUp(id, topics, end, a);

    const hasGeneration = (records: { value: string }[], g: number) =>
      records.some((r) => {
        const d = JSON.parse(r.value) as { type: string; observedGeneration?: number };
        return d.type === 'PolicyStatusComputed' && d.observedGeneration === g;
      });
    const steersTo = (records: { key: string; value: string }[], dest: string) =>
      records.some((r) => r.key === 'node-1' && r.value.includes(JSON.stringify(dest)));

    const letters = await readAll(topics.deadLetter, (n) => n >= 1);
    assert.equal(letters.length, 1, 'exactly the forged record is dead-lettered');
    assert.equal(letters[0]?.value, JSON.stringify(forged));
    assert.equal(
      letters[0]?.headers[DEAD_LETTER_HEADERS.reason],
      'LeadershipAcquired of watcher refused: term 9007199254740991 is not a Lease transition count (an integer from 0 to 2147483647)',
    );
    assert.equal(letters[0]?.headers[DEAD_LETTER_HEADERS.sourceOffset], String(end - 2));
    const decisions = await readAll(topics.decisions, (n) => n >= 2);
    assert.ok(hasGeneration(decisions, 2), 'the status of generation 2 is decided after the forgery');
    const nodeRules = await readAll(topics.nodeRules, (n) => n >= 1);
    assert.ok(steersTo(nodeRules, '203.0.113.0/25'), "node-1's rules steer to generation 2's destination");

    // A restart replays the forged record (refusing it again, without a second dead letter) and
    // goes on folding the real watcher's changes.
    a.child.kill('SIGTERM');
    assert.equal((await a.exited).code, 0, `the projector stops cleanly on SIGTERM:\n${a.output()}`);
    const b = projector(topics, id);
    await write([policy(3, '203.0.113.0/26')]);
    await caughtUp(id, topics, end, b);
    assert.ok(hasGeneration(await readAll(topics.decisions, (n) => n > decisions.length), 3));
    assert.ok(steersTo(await readAll(topics.nodeRules, (n) => n > nodeRules.length), '203.0.113.0/26'));
    assert.equal((await readAll(topics.deadLetter, (n) => n >= 1)).length, 1, 'no dead letter twice');
    b.child.kill('SIGTERM');
    assert.equal((await b.exited).code, 0, `the projector stops cleanly on SIGTERM:\n${b.output()}`);
  } finally {
    await producer.disconnect();
  }
}

void describe('projector refuses a forged term (real Kafka)', { timeout: 300_000 }, () => {
  void test('a LeadershipAcquired with a huge term is dead-lettered; later changes still reach decisions and node rules', () =>
    forgedTermIsDeadLettered());
});

void describe('projector crash safety (real Kafka)', { timeout: 600_000 }, () => {
  void test('SIGKILL after producing, before the offset: committed outputs equal a pure replay', () =>
    crashAndRecover('after-produce'));
  void test('SIGKILL after adding the offset, before the commit: committed outputs equal a pure replay', () =>
    crashAndRecover('after-offsets'));
});
