// `kseip events tail` (bin/kseip) against a real Kafka broker holding a small known log: the
// output of several invocations (filters, formats, start positions) is compared with a snapshot
// (test/snapshots/events-tail.txt; KSEIP_UPDATE_SNAPSHOTS=1 rewrites it), and --follow prints a
// record produced after it started. Effectful: starts one broker for the file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Partitioners, type Kafka } from 'kafkajs';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { createTopics, startKafka, type KafkaBroker, kafkaClient } from '../src/devenv/kafka.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { waitFor } from './support/watcher-harness.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const kseip = path.join(root, 'bin/kseip');
const snapshotPath = path.join(import.meta.dirname, 'snapshots/events-tail.txt');

let broker: KafkaBroker;
let kafka: Kafka;

const watcher = (term: number) => ({ component: 'watcher' as const, term });
const t0 = Date.parse('2026-03-01T12:00:00Z');
const at = (s: number): string => new Date(t0 + s * 1000).toISOString();
const id = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

type Draft = Omit<ClusterEvent, 'schema' | 'id' | 'observedAt' | 'producer'> & {
  producer?: ClusterEvent['producer'];
};

/** One record of the known log: event number n, written at second n. */
function ev(n: number, e: Draft): { key: string; second: number; value: string } {
  const { object } = e;
  return {
    key: `${object.kind}/${object.namespace ?? ''}/${object.name}`,
    second: n,
    value: JSON.stringify({ schema: 1, id: id(n), observedAt: at(n), producer: watcher(2), ...e }),
  };
}

/** The known log: every kind of line tail prints, two undecodable records among them. */
const log: { key: string; second: number; value: string }[] = [
  ev(0, {
    type: 'LeadershipAcquired',
    object: { kind: 'StaticEgressIP', namespace: 'kube-system', name: 'kseip-watcher' },
    payload: { holder: 'watcher-0-1234-abcdef' },
  }),
  ev(1, {
    type: 'ListStarted',
    object: { kind: 'Pod', name: '' },
    payload: { kind: 'Pod', listId: 'list-1' },
  }),
  ev(2, {
    type: 'PodObserved',
    object: { kind: 'Pod', namespace: 'shop', name: 'web-0', uid: 'u-web-0', resourceVersion: '101' },
    payload: {
      labels: { app: 'web' },
      podIPs: ['10.1.0.5'],
      hostNetwork: false,
      terminal: false,
      nodeName: 'node-a',
    },
  }),
  ev(3, {
    type: 'ListCompleted',
    object: { kind: 'Pod', name: '' },
    payload: { kind: 'Pod', listId: 'list-1', count: 1 },
  }),
  ev(4, {
    type: 'NodeObserved',
    object: { kind: 'Node', name: 'node-a', uid: 'u-node-a', resourceVersion: '102' },
    payload: { labels: { zone: 'a' }, ready: true, unschedulable: false, internalIP: '192.0.2.11' },
  }),
  { key: 'Pod/shop/web-1', second: 5, value: 'this is not JSON' },
  { key: 'Pod/shop/web-1', second: 6, value: JSON.stringify({ schema: 1, type: 'PodObserved', id: id(6) }) },
  ev(7, {
    type: 'PodDeleted',
    object: { kind: 'Pod', namespace: 'shop', name: 'web-0', uid: 'u-web-0', resourceVersion: '108' },
    payload: {},
  }),
  ev(8, {
    type: 'StaticEgressIPObserved',
    object: {
      kind: 'StaticEgressIP',
      namespace: 'default',
      name: 'eip',
      uid: 'u-eip',
      resourceVersion: '109',
    },
    payload: {
      generation: 1,
      rules: [
        {
          egressIP: '198.51.100.10',
          destinations: ['203.0.113.0/24'],
          exceptions: [],
          gateways: 1,
          serviceName: 'frontend',
        },
      ],
    },
  }),
  ev(9, {
    type: 'NodeLost',
    object: { kind: 'Node', name: 'node-a' },
    payload: { lastHeartbeatAt: at(1), silenceMs: 8000 },
    producer: { component: 'liveness', term: 1 },
  }),
];

before(async () => {
  broker = await startKafka();
  kafka = kafkaClient(broker.brokers, 'cli-test');
  await createTopics(broker.brokers, [{ topic: TOPICS.clusterEvents, config: { 'retention.ms': '-1' } }]);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // One record per request, with fixed record timestamps, so offsets and times are known.
  for (const r of log) {
    await producer.send({
      topic: TOPICS.clusterEvents,
      acks: -1,
      messages: [{ key: r.key, value: r.value, timestamp: String(t0 + r.second * 1000) }],
    });
  }
  await producer.disconnect();
});

after(async () => {
  await broker?.stop();
});

async function tail(args: string[]): Promise<string> {
  const { stdout } = await run(kseip, ['--brokers', broker.brokers.join(','), 'events', 'tail', ...args], {
    cwd: root,
  });
  return stdout;
}

void test('kseip events tail prints the known log as in the snapshot', async () => {
  const invocations: string[][] = [
    ['--from-beginning'],
    ['--from-beginning', '--kind', 'Pod'],
    ['shop/web-0', '--from-beginning', '--output', 'json'],
    ['--from-beginning', '--type', 'NodeObserved,NodeLost'],
    ['--from-beginning', '--name', 'node-a', '--kind', 'node'],
    ['--last', '3'],
    ['--since', at(7)],
    ['--from-beginning', '--until', at(2)],
    ['--topic', 'cluster-events', '--from-beginning', '--namespace', 'default'],
  ];
  const sections: string[] = [];
  for (const args of invocations) sections.push(`$ kseip events tail ${args.join(' ')}\n${await tail(args)}`);
  const output = sections.join('\n');
  if (process.env.KSEIP_UPDATE_SNAPSHOTS === '1' || !existsSync(snapshotPath))
    writeFileSync(snapshotPath, output);
  assert.equal(output, readFileSync(snapshotPath, 'utf8'));
});

void test('usage errors exit with code 2 and say what is wrong', async () => {
  await assert.rejects(
    run(kseip, ['--brokers', broker.brokers.join(','), 'events', 'tail', '--since', 'yesterday']),
    (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr ?? '', /--since: "yesterday" is neither an RFC 3339 time nor an age/);
      return true;
    },
  );
  await assert.rejects(
    run(kseip, [
      '--brokers',
      broker.brokers.join(','),
      'events',
      'tail',
      '--topic',
      'node-rules',
      '--kind',
      'Pod',
    ]),
    (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr ?? '', /--kind and --namespace apply to kseip\.cluster-events\.v1 only/);
      return true;
    },
  );
});

void test('--follow prints records produced after it started, until interrupted', async () => {
  const child = spawn(
    kseip,
    [
      '--brokers',
      broker.brokers.join(','),
      'events',
      'tail',
      '--follow',
      '--last',
      '0',
      '--kind',
      'Namespace',
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const event = {
      schema: 1,
      id: id(10),
      type: 'NamespaceObserved',
      observedAt: at(10),
      producer: watcher(2),
      object: { kind: 'Namespace', name: 'shop', uid: 'u-shop', resourceVersion: '110' },
      payload: { labels: { team: 'payments' } },
    };
    // The reader joins its group asynchronously: produce until it shows up.
    await waitFor(
      'the new record in the output',
      async () => {
        if (out.includes('NamespaceObserved')) return true;
        await producer.send({
          topic: TOPICS.clusterEvents,
          acks: -1,
          messages: [{ key: 'Namespace//shop', value: JSON.stringify(event) }],
        });
        await new Promise((r) => setTimeout(r, 500));
        return out.includes('NamespaceObserved');
      },
      60_000,
    );
    await producer.disconnect();
    assert.match(
      out,
      /^OFFSET +TIME +TERM +TYPE +OBJECT +DETAILS\n1\d +2026-03-01T12:00:10\.000Z 2 +NamespaceObserved +Namespace shop +labels=team=payments\n/,
    );
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0);
});
