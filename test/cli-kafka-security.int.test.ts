// kseip against a real broker that requires TLS + SASL/SCRAM (a SASL_SSL listener of the dev
// broker, src/devenv/kafka.ts secureListener, its certificate from the real API server's CA), with
// the settings from each place the CLI takes them: the cluster's kseip-config ConfigMap and
// kseip-kafka Secret in a real kube-apiserver (--kubeconfig, and `kubectl kseip` by default), the
// components' environment and secret directory (as inside a Pod, `kubectl exec … -- kseip`), and
// flags. The listener is shown to refuse plaintext and a wrong password, so nothing here passes
// by reaching Kafka some other way. Effectful: one broker, one API server, temporary files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Partitioners } from 'kafkajs';
import { stringify } from 'yaml';
import { TOPICS } from '../src/contracts/topics.ts';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import { createKafka } from '../src/lib/kafka.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const NS = 'kube-static-egress-ip';
const USER = 'kseip-cli';
const PASSWORD = 'scram-pw-0f3a9c';

let api: ApiServer;
let broker: KafkaBroker;
let secure: string;
const dir = mkdtempSync(path.join(tmpdir(), 'kseip-cli-security-'));

async function cli(
  bin: 'kseip' | 'kubectl-kseip',
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  // Only PATH and HOME from this process: no KSEIP_* or KUBECONFIG leaks into the CLI by accident.
  const base = { PATH: process.env.PATH ?? '', HOME: dir };
  try {
    const { stdout, stderr } = await run(path.join(root, 'bin', bin), args, {
      cwd: root,
      env: { ...base, ...env },
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const pod = (n: number) => ({
  schema: 1,
  id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  observedAt: new Date(Date.parse('2026-03-01T12:00:00Z') + n * 1000).toISOString(),
  producer: { component: 'watcher', term: 1 },
  type: 'PodObserved',
  object: {
    kind: 'Pod',
    namespace: 'shop',
    name: `web-${n}`,
    uid: `u-${n}`,
    resourceVersion: String(100 + n),
  },
  payload: {
    labels: { app: 'web' },
    podIPs: [`10.1.0.${n + 1}`],
    hostNetwork: false,
    terminal: false,
    nodeName: 'node-a',
  },
});

async function applySecret(password: string): Promise<void> {
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'kseip-kafka', namespace: NS },
    stringData: {
      'sasl-mechanism': 'scram-sha-512',
      'sasl-username': USER,
      'sasl-password': password,
      'ca.crt': readFileSync(api.caCertFile, 'utf8'),
    },
  };
  const r = await api.kubectl(['apply', '-f', '-'], stringify(secret));
  assert.equal(r.code, 0, r.stderr);
}

before(async () => {
  api = await startApiServer();
  const cert = await api.issueCertificate('kafka-broker', 'kafka-broker', { serverIps: ['127.0.0.1'] });
  broker = await startKafka({
    secureListener: { ...cert, users: [{ username: USER, password: PASSWORD, mechanism: 'scram-sha-512' }] },
  });
  secure = broker.secureBrokers![0]!;
  // The log is written over the plaintext listener, which the CLI is never told about.
  await createTopics(broker.brokers, [{ topic: TOPICS.clusterEvents }]);
  const producer = kafkaClient(broker.brokers, 'cli-security-setup').producer({
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  await producer.send({
    topic: TOPICS.clusterEvents,
    messages: [0, 1, 2].map((n) => ({ key: `Pod/shop/web-${n}`, value: JSON.stringify(pod(n)) })),
  });
  await producer.disconnect();
  // The install's settings as the manifests hold them, with this broker's secure address.
  const configMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'kseip-config', namespace: NS },
    data: { KSEIP_BROKERS: secure, KSEIP_KAFKA_SECRET_DIR: '/etc/kseip/kafka', LOG_LEVEL: 'info' },
  };
  assert.equal((await api.kubectl(['create', 'namespace', NS])).code, 0);
  const r = await api.kubectl(['apply', '-f', '-'], stringify(configMap));
  assert.equal(r.code, 0, r.stderr);
  await applySecret(PASSWORD);
  // A secret directory as the Pods mount it (the Secret's keys as files).
  const secretDir = path.join(dir, 'kafka');
  await run('mkdir', ['-p', secretDir]);
  writeFileSync(path.join(secretDir, 'ca.crt'), readFileSync(api.caCertFile));
  writeFileSync(path.join(secretDir, 'sasl-password'), `${PASSWORD}\n`);
});

after(async () => {
  await broker?.stop();
  await api?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const secretDir = (): string => path.join(dir, 'kafka');

void test('the secure listener refuses plaintext and a wrong SCRAM password, and admits the right one', async () => {
  const tryAdmin = async (config: Parameters<typeof createKafka>[2]): Promise<string> => {
    const admin = createKafka([secure], 'cli-security-probe', {
      connectionTimeout: 3_000,
      authenticationTimeout: 10_000,
      retry: { retries: 0 },
      ...config,
    }).admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return 'ok';
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
  const ssl = { ca: readFileSync(api.caCertFile, 'utf8') };
  assert.notEqual(await tryAdmin({}), 'ok', 'plaintext was accepted');
  assert.notEqual(
    await tryAdmin({ ssl, sasl: { mechanism: 'scram-sha-512', username: USER, password: 'wrong' } }),
    'ok',
    'a wrong password was accepted',
  );
  assert.equal(
    await tryAdmin({ ssl, sasl: { mechanism: 'scram-sha-512', username: USER, password: PASSWORD } }),
    'ok',
  );
});

void test('--kubeconfig: brokers, TLS and SCRAM from kseip-config and kseip-kafka; events tail reads the log', async () => {
  const r = await cli('kseip', [
    '--kubeconfig',
    api.kubeconfigPath,
    'events',
    'tail',
    '--from-beginning',
    '-o',
    'json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const ids = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { value: { id: string } }).value.id);
  assert.deepEqual(
    ids,
    [0, 1, 2].map((n) => pod(n).id),
  );
});

void test('kubectl kseip reads the current context’s cluster by default; export copies the log', async () => {
  const to = path.join(dir, 'export.jsonl');
  const r = await cli('kubectl-kseip', ['export', '--to', to, '--no-index', '-o', 'yaml'], {
    KUBECONFIG: api.kubeconfigPath,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /kseip\.cluster-events\.v1: 3\n/);
  assert.equal(readFileSync(to, 'utf8').trim().split('\n').length, 3);
});

void test('inside a Pod: the components’ environment and mounted secret directory', async () => {
  const r = await cli('kseip', ['events', 'tail', '--last', '1'], {
    KSEIP_BROKERS: secure,
    KSEIP_KAFKA_SECRET_DIR: secretDir(),
    KSEIP_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KSEIP_KAFKA_SASL_USERNAME: USER,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /PodObserved +Pod shop\/web-2 /);
});

void test('flags: --brokers, --kafka-secret-dir and SASL flags, no cluster and no environment', async () => {
  const r = await cli('kseip', [
    '--brokers',
    secure,
    '--kafka-secret-dir',
    secretDir(),
    '--kafka-sasl-mechanism',
    'scram-sha-512',
    '--kafka-sasl-username',
    USER,
    'events',
    'grep',
    'web-1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Pod shop\/web-1 /);
  // The same without SASL is refused by the broker: exit 1 with kafkajs' reason, nothing on stdout.
  const noSasl = await cli('kseip', [
    '--brokers',
    secure,
    '--kafka-secret-dir',
    secretDir(),
    'events',
    'tail',
  ]);
  assert.equal(noSasl.code, 1, noSasl.stdout + noSasl.stderr);
  assert.equal(noSasl.stdout, '');
});

void test('a wrong password in the Secret: exit 1 with the authentication failure; a bad setting: exit 2', async () => {
  await applySecret('not-the-password');
  try {
    const r = await cli('kseip', ['--kubeconfig', api.kubeconfigPath, 'events', 'tail']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^kseip: .*(SASL|authentication)/im);
  } finally {
    await applySecret(PASSWORD);
  }
  const bad = await cli('kseip', [
    '--kubeconfig',
    api.kubeconfigPath,
    '--kafka-sasl-mechanism',
    'md5',
    'events',
    'tail',
  ]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(
    bad.stderr,
    /Kafka connection \(ConfigMap kube-static-egress-ip\/kseip-config of context .*, flags win\):\n  - --kafka-sasl-mechanism/,
  );
});

void test('a user without access to kseip-config: exit 1 naming the ConfigMap and the API’s reason', async () => {
  const cert = await api.issueCertificate('nobody', 'nobody');
  const kubeconfig = path.join(dir, 'nobody.kubeconfig');
  writeFileSync(kubeconfig, api.renderKubeconfig(cert));
  const r = await cli('kseip', ['--kubeconfig', kubeconfig, 'replay']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /reading ConfigMap kseip-config in namespace kube-static-egress-ip of context .*: HTTP 403: .*forbidden/,
  );
});
