// docker-compose.yml works from the host: `docker-compose config` (which resolves anchors, merges
// and interpolation exactly as on a laptop) shows the broker published and advertised on
// 127.0.0.1:9092 by default, a healthcheck on every service and depends_on with
// `condition: service_healthy` / `service_completed_successfully`; then the real stack runs: Kafka
// (the image provisioning built), the one-shot topic creator and the projector (both built from
// ./Dockerfile) reach Kafka over the compose network (kafka:19092) in that order, the projector
// turning healthy, and on the host kafkajs produces,
// kcat consumes and `bin/kseip events tail` decodes through 127.0.0.1:<published port>.
//
// Effectful: one compose project of its own (unique name), on a host port picked free (compose's
// KSEIP_KAFKA_PORT; the default stays 9092). It removes its own containers by their ids, then its
// network and volume by their names, and keeps the built image tag kube-static-egress-ip:compose-test
// (its layers are the cache that makes the next run fast).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners } from 'kafkajs';
import { parse } from 'yaml';
import { repoRoot, requireArtifact } from '../src/devenv/artifacts.ts';
import { freePort } from '../src/devenv/free-port.ts';
import { execTool, tailLines as tail, type ToolResult as Result } from '../src/devenv/tool-exec.ts';
import { createKafka } from '../src/lib/kafka.ts';
import { TOPICS } from '../src/contracts/topics.ts';

const IMAGE = 'kube-static-egress-ip:compose-test';

interface ComposeService {
  image: string;
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

/** `docker-compose config` with only the given variables (plus PATH), parsed. */
async function renderConfig(
  vars: Record<string, string>,
): Promise<Result & { services?: Record<string, ComposeService> }> {
  const r = await execTool('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    env: {
      PATH: process.env.PATH ?? '',
      KUBECONFIG: '/dev/null',
      ...vars,
    },
  });
  if (r.code !== 0) return r;
  return { ...r, services: (parse(r.stdout) as { services: Record<string, ComposeService> }).services };
}

void test('docker-compose config: broker on 127.0.0.1:9092 by default, healthchecks, depends_on with conditions', async () => {
  const missing = await renderConfig({});
  assert.notEqual(missing.code, 0, 'without KAFKA_IMAGE compose must refuse, naming it');
  assert.match(missing.stderr, /KAFKA_IMAGE/);

  const { code, stderr, services } = await renderConfig({ KAFKA_IMAGE: 'kseip/kafka:example' });
  assert.equal(code, 0, stderr);
  assert.ok(services);
  assert.deepEqual(Object.keys(services).sort(), [
    'kafka',
    'liveness',
    'projector',
    'status-writer',
    'topics',
    'watcher',
  ]);
  const kafka = services.kafka!;
  assert.equal(kafka.image, 'kseip/kafka:example');
  assert.deepEqual(kafka.ports, ['127.0.0.1:9092:9092/tcp']);
  const extra = kafka.environment?.KAFKA_EXTRA_PROPERTIES ?? '';
  assert.match(extra, /^advertised\.listeners=HOST:\/\/127\.0\.0\.1:9092,DOCKER:\/\/kafka:19092$/m);
  assert.equal(kafka.environment?.KAFKA_PORT, '9092');
  assert.ok(kafka.healthcheck?.test.length, 'kafka has a healthcheck');
  // The one-shot topic creator waits for a healthy broker; every service waits for its success.
  assert.deepEqual(services.topics?.depends_on, { kafka: { condition: 'service_healthy' } });
  assert.deepEqual(services.topics?.command, ['node', 'src/topics/main.ts']);
  for (const name of ['watcher', 'projector', 'liveness', 'status-writer']) {
    const svc: ComposeService | undefined = services[name];
    assert.ok(svc?.healthcheck?.test.length, `${name} has a healthcheck`);
    assert.deepEqual(svc?.depends_on, { topics: { condition: 'service_completed_successfully' } }, name);
    assert.equal(svc?.environment?.KSEIP_BROKERS, 'kafka:19092', name);
  }
  assert.deepEqual(services.watcher?.command, ['node', 'src/watcher/main.ts']);

  const moved = await renderConfig({ KAFKA_IMAGE: 'kseip/kafka:example', KSEIP_KAFKA_PORT: '19999' });
  assert.deepEqual(moved.services?.kafka?.ports, ['127.0.0.1:19999:19999/tcp']);
});

// ---- the running stack --------------------------------------------------------------------------

const project = `kseip-compose-${randomUUID().slice(0, 8)}`;
let env: NodeJS.ProcessEnv = {};
let hostPort = 0;
let projectorPort = 0;
const containerIds = new Set<string>();
const compose = (args: readonly string[]): Promise<Result> =>
  execTool('docker-compose', ['-f', 'docker-compose.yml', '-p', project, ...args], { env });

async function recordContainers(): Promise<void> {
  const ps = await compose(['ps', '-q']);
  for (const id of ps.stdout.split('\n').filter((l) => l !== '')) containerIds.add(id);
}

async function health(id: string): Promise<string> {
  const r = await execTool('docker', ['inspect', '-f', '{{.State.Health.Status}}', id]);
  return r.stdout.trim();
}

async function logsOf(service: string): Promise<string> {
  return tail((await compose(['logs', '--no-color', '--tail', '60', service])).stdout);
}

before(async () => {
  const info = await execTool('docker', ['info', '--format', '{{.ServerVersion}}']);
  assert.equal(info.code, 0, `no Docker engine (run scripts/provision.sh docker): ${info.stderr}`);
  const kafkaImage = requireArtifact('KAFKA_IMAGE');
  // The Dockerfile's base; idempotent (inspects one label when the image is current).
  const base = await execTool('bash', [path.join(repoRoot, 'scripts/provision/node-image.sh')]);
  assert.equal(base.code, 0, `the local node:24-slim could not be made:\n${tail(base.stdout + base.stderr)}`);
  hostPort = await freePort();
  projectorPort = await freePort();
  env = {
    ...process.env,
    KAFKA_IMAGE: kafkaImage,
    KSEIP_IMAGE: IMAGE,
    KSEIP_KAFKA_PORT: String(hostPort),
    KSEIP_PROJECTOR_PORT: String(projectorPort),
    KUBECONFIG: '/dev/null',
    // docker-py's builder (no buildx on this machine), which uses the local base image as it is.
    COMPOSE_DOCKER_CLI_BUILD: '0',
    DOCKER_BUILDKIT: '0',
  };
  const build = await compose(['build', 'topics']);
  assert.equal(build.code, 0, `docker-compose build failed:\n${tail(build.stdout + build.stderr)}`);
  // `up -d projector` starts kafka, then (once it is healthy) topics, then (once that exited 0) the projector.
  const up = await compose(['up', '-d', 'projector']);
  await recordContainers();
  assert.equal(
    up.code,
    0,
    `docker-compose up failed:\n${tail(up.stdout + up.stderr)}\n${await logsOf('kafka')}`,
  );
});

after(async () => {
  await recordContainers();
  if (containerIds.size > 0) await execTool('docker', ['rm', '-f', '-v', ...containerIds]);
  // What compose created besides the containers, by the names it gave them.
  await execTool('docker', ['network', 'rm', `${project}_default`]);
  await execTool('docker', ['volume', 'rm', `${project}_kafka-data`]);
});

void test('from the host: kafkajs produces, kcat consumes and kseip events tail decodes through 127.0.0.1', async () => {
  const brokers = [`127.0.0.1:${hostPort}`];
  const kafka = createKafka(brokers, 'compose-test', { retry: { retries: 8 } });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const ns = `compose-${randomUUID().slice(0, 6)}`;
  const event = {
    schema: 1,
    id: randomUUID(),
    type: 'NamespaceObserved',
    observedAt: new Date().toISOString(),
    producer: { component: 'watcher', term: 1 },
    object: { kind: 'Namespace', name: ns, uid: randomUUID(), resourceVersion: '1' },
    payload: { labels: { 'kubernetes.io/metadata.name': ns } },
  };
  try {
    // The topics service created every topic before the projector started (see above).
    await producer.send({
      topic: TOPICS.clusterEvents,
      messages: [{ key: `Namespace//${ns}`, value: JSON.stringify(event) }],
    });
  } finally {
    await producer.disconnect();
  }

  const kcat = await execTool('kcat', [
    '-b',
    brokers[0]!,
    '-C',
    '-t',
    TOPICS.clusterEvents,
    '-o',
    'beginning',
    '-e',
    '-f',
    '%k\n',
  ]);
  assert.equal(kcat.code, 0, kcat.stderr);
  assert.ok(kcat.stdout.split('\n').includes(`Namespace//${ns}`), `kcat read:\n${kcat.stdout}`);

  const consumer = kafka.consumer({ groupId: `compose-test-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  const seen: string[] = [];
  try {
    await consumer.subscribe({ topic: TOPICS.clusterEvents, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        seen.push(message.key?.toString() ?? '');
        return Promise.resolve();
      },
    });
    for (let i = 0; !seen.includes(`Namespace//${ns}`); i++) {
      assert.ok(i < 600, `kafkajs consumer saw only ${JSON.stringify(seen)}`);
      await sleep(100);
    }
  } finally {
    await consumer.disconnect();
  }

  const tailed = await execTool(path.join(repoRoot, 'bin/kseip'), [
    '--brokers',
    brokers[0]!,
    'events',
    'tail',
    '--from-beginning',
    '--kind',
    'Namespace',
    '--name',
    ns,
  ]);
  assert.equal(tailed.code, 0, tailed.stderr);
  assert.match(tailed.stdout, new RegExp(`NamespaceObserved +Namespace ${ns}\\b`), tailed.stdout);
});

void test('compose stack: Kafka healthy, then the topics, then the projector, which folds that event over kafka:19092 and turns healthy', async () => {
  const kafkaId = (await compose(['ps', '-q', 'kafka'])).stdout.trim();
  const topicsId = (await compose(['ps', '-q', 'topics'])).stdout.trim();
  const exitCode = await execTool('docker', ['inspect', '-f', '{{.State.ExitCode}}', topicsId]);
  assert.equal(exitCode.stdout.trim(), '0', `topics:\n${await logsOf('topics')}`);
  const projectorId = (await compose(['ps', '-q', 'projector'])).stdout.trim();
  assert.ok(kafkaId !== '' && projectorId !== '', 'both containers exist');
  assert.equal(await health(kafkaId), 'healthy', 'depends_on waited for a healthy broker');
  const started = async (id: string): Promise<number> =>
    Date.parse((await execTool('docker', ['inspect', '-f', '{{.State.StartedAt}}', id])).stdout.trim());
  assert.ok(
    (await started(projectorId)) > (await started(kafkaId)),
    'the projector started after the broker',
  );
  // The projector reports ready once it has caught up with a record of the log (so only after the
  // host's event above: on an empty kseip.cluster-events.v1 it stays unready).
  for (let i = 0; (await health(projectorId)) !== 'healthy'; i++) {
    assert.ok(i < 240, `projector not healthy (${await health(projectorId)}):\n${await logsOf('projector')}`);
    await sleep(500);
  }
  // Published on the host's loopback only: caught up (/readyz), having folded the host's event.
  const ready = await fetch(`http://127.0.0.1:${projectorPort}/readyz`);
  assert.equal(ready.status, 200);
  const metrics = await (await fetch(`http://127.0.0.1:${projectorPort}/metrics`)).text();
  const folded = /^kseip_projector_events_total\{phase="live"\} (\d+)$/m.exec(metrics);
  assert.ok(
    Number(folded?.[1] ?? 0) >= 1,
    `the projector folded the host's event:\n${folded?.[0] ?? metrics}`,
  );
});
