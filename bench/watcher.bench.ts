// Benchmark: watch event → Kafka ack latency of the watcher, on the real stack (kube-apiserver,
// etcd, one Kafka broker), against a baseline of bare kafkajs produce round trips in the same run.
// Effectful: starts and stops its own API server and broker.
//
//   node_modules/.bin/node --disable-warning=ExperimentalWarning bench/watcher.bench.ts [changes]
//
// The load comes from kubectl in a separate process (as in a cluster, the writers are not the
// watcher's process): `changes` pod creates and label updates (default 3000). The latency of one
// event runs from the moment the watch event reached the watcher (the reflector's callback) to
// the moment Kafka acknowledged the batch holding it (acks=all, idempotent producer, one request
// in flight), so it includes parsing, the equality check, queueing behind the request in flight,
// and the broker round trip. Budget: p99 < 20 ms.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { logLevel, Partitioners } from 'kafkajs';
import { startApiServer } from '../src/devenv/apiserver.ts';
import { createTopics, startKafka } from '../src/devenv/kafka.ts';
import { topicSpecs, TOPICS } from '../src/events/topics.ts';
import { createKafka } from '../src/lib/kafka.ts';
import { createLogger } from '../src/lib/log.ts';
import { createWatcher, type Pending } from '../src/watcher/watcher.ts';

const changes = Number(process.argv[2] ?? 3000);
const pods = Math.max(1, Math.min(500, Math.round(changes / 6)));
const rounds = Math.max(0, Math.ceil((changes - pods) / pods));
const budgetP99Ms = 20;

function percentiles(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.at(-1) ?? NaN };
}

const fmt = (ms: number): string => ms.toFixed(2).padStart(8);

function row(name: string, p: ReturnType<typeof percentiles>): string {
  return `${name.padEnd(34)}${String(p.n).padStart(7)}${fmt(p.p50)}${fmt(p.p90)}${fmt(p.p99)}${fmt(p.max)}`;
}

const log = createLogger('bench');
process.stderr.write(`starting kube-apiserver and Kafka…\n`);
const [api, broker] = await Promise.all([startApiServer({ waitForControllers: false }), startKafka()]);
try {
  const crds = await api.kubectl(['apply', '-k', path.resolve(import.meta.dirname, '../k8s/crds')]);
  if (crds.code !== 0) throw new Error(`applying the CRDs failed: ${crds.stderr}`);
  await api.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  const topic = `${TOPICS.clusterEvents}.bench-${randomUUID().slice(0, 6)}`;
  const spec = topicSpecs().find((s) => s.topic === TOPICS.clusterEvents)!;
  await createTopics(broker.brokers, [
    { topic, partitions: 1, config: Object.fromEntries(spec.configEntries!.map((c) => [c.name, c.value])) },
  ]);
  const kafka = createKafka(broker.brokers, 'kseip-bench', { logLevel: logLevel.NOTHING });

  // ---- baseline: bare kafkajs produce round trips, same producer settings, one at a time ----
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const baseline: number[] = [];
  const value = JSON.stringify({
    schema: 1,
    id: randomUUID(),
    type: 'PodObserved',
    padding: 'x'.repeat(300),
  });
  for (let i = 0; i < 200; i++)
    await producer.send({ topic, acks: -1, messages: [{ key: 'warmup', value }] });
  for (let i = 0; i < Math.min(changes, 3000); i++) {
    const started = performance.now();
    await producer.send({ topic, acks: -1, messages: [{ key: `Pod/bench/p${i}`, value }] });
    baseline.push(performance.now() - started);
  }
  await producer.disconnect();

  // ---- the watcher, in this process, with exact per-event latencies from its ack hook ----
  const latencies: number[] = [];
  const batchSizes: number[] = [];
  let measuring = false;
  const watcher = createWatcher({
    kubeConfig: api.kubeConfig,
    kafka,
    topic,
    identity: `bench-${process.pid}`,
    lease: { namespace: 'default', name: 'kseip-watcher-bench' },
    log,
    onAck: (batch: readonly Pending[], ackedAt: number) => {
      if (!measuring) return;
      batchSizes.push(batch.length);
      for (const p of batch) if (p.receivedAt !== undefined) latencies.push(ackedAt - p.receivedAt);
    },
  });
  const running = watcher.run();
  while (!watcher.ready()) await new Promise((r) => setTimeout(r, 100));
  await api.kubectl(['create', 'namespace', 'bench']);
  await new Promise((r) => setTimeout(r, 500));
  measuring = true;

  const started = performance.now();
  const manifests = Array.from(
    { length: pods },
    (_, i) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: bench, labels: {app: bench}}\nspec: {nodeName: node-${i % 10}, containers: [{name: c, image: none}]}`,
  ).join('\n---\n');
  const created = await api.kubectl(['apply', '-f', '-'], manifests);
  if (created.code !== 0) throw new Error(`creating pods failed: ${created.stderr}`);
  for (let r = 0; r < rounds; r++) {
    const labelled = await api.kubectl([
      'label',
      'pods',
      '--all',
      '-n',
      'bench',
      `round=${r}`,
      '--overwrite',
    ]);
    if (labelled.code !== 0) throw new Error(`labelling pods failed: ${labelled.stderr}`);
  }
  const expected = pods + rounds * pods;
  const deadline = Date.now() + 120_000;
  while (latencies.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const elapsedS = (performance.now() - started) / 1000;
  await watcher.stop(5_000);
  await running;

  const w = percentiles(latencies);
  const b = percentiles(baseline);
  const lines = [
    '',
    `watch event → Kafka ack (${w.n} of ${expected} changes acknowledged, ${(w.n / elapsedS).toFixed(0)} events/s, mean batch ${(batchSizes.reduce((a, c) => a + c, 0) / Math.max(1, batchSizes.length)).toFixed(1)})`,
    `${''.padEnd(34)}${'n'.padStart(7)}${'p50 ms'.padStart(8)}${'p90 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'max ms'.padStart(8)}`,
    row('watcher: watch event → ack', w),
    row('baseline: bare kafkajs send → ack', b),
    '',
    `budget p99 < ${budgetP99Ms} ms: ${w.p99 < budgetP99Ms ? 'met' : 'NOT met'} (p99 ${w.p99.toFixed(2)} ms; baseline p99 ${b.p99.toFixed(2)} ms)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (w.n < expected) process.exitCode = 1;
} finally {
  await Promise.all([api.stop(), broker.stop()]);
}
