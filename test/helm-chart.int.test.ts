// The Helm chart (charts/kube-static-egress-ip) with the real tools: `helm lint --strict` passes;
// `helm template` with the default values describes the same objects as the kustomize base
// (`kubectl kustomize k8s`), compared object by object after normalising what only says who
// rendered it (Helm's standard labels) — the Namespace comes from `--create-namespace` unless
// createNamespace=true, with which even it is equal; and the values for brokers, Kafka security,
// uplink, mark mask, gateway selector, image and resources land where the components read them.
//
// helm is built from the Go module proxy (tools/helm, scripts/provision/helm.sh); kubectl is the
// one tools/kube builds. Effectful: runs both binaries, writes one temporary values file.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { repoRoot, requireArtifact } from '../src/devenv/artifacts.ts';
import { execTool, tailLines } from '../src/devenv/tool-exec.ts';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

const chart = path.join(repoRoot, 'charts/kube-static-egress-ip');
const NAMESPACE = 'kube-static-egress-ip';
/** Labels that say which tool and release rendered an object, not what the object is. */
const RENDERER_LABELS = [
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
  'helm.sh/chart',
];

let helm = '';
let kubectl = '';

before(() => {
  helm = requireArtifact('HELM_BIN');
  kubectl = path.join(requireArtifact('KUBE_BIN_DIR'), 'kubectl');
});

function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template` of the chart into the namespace, CRDs included; throws with helm's words. */
async function renderChart(args: readonly string[] = []): Promise<K8sObject[]> {
  const r = await execTool(helm, [
    'template',
    'kseip',
    chart,
    '--namespace',
    NAMESPACE,
    '--include-crds',
    ...args,
  ]);
  assert.equal(r.code, 0, `helm template failed:\n${tailLines(r.stderr)}`);
  return parseObjects(r.stdout);
}

const keyOf = (o: K8sObject): string => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** The object as the API server would take it, minus Helm's renderer labels. */
function normalise(o: K8sObject): K8sObject {
  const copy = structuredClone(o);
  const labels = copy.metadata.labels ?? {};
  for (const l of RENDERER_LABELS) delete labels[l];
  if (Object.keys(labels).length === 0) delete copy.metadata.labels;
  return copy;
}

const byKey = (objects: readonly K8sObject[]): Map<string, K8sObject> =>
  new Map(objects.map((o) => [keyOf(o), normalise(o)]));

function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} is not rendered`);
  return o;
}

interface Container {
  image: string;
  env?: { name: string; value?: string }[];
  resources?: unknown;
}
interface PodSpec {
  containers: Container[];
  nodeSelector?: Record<string, string>;
}
const podSpec = (o: K8sObject): PodSpec => (o.spec as { template: { spec: PodSpec } }).template.spec;

void test('helm lint --strict passes', async () => {
  const r = await execTool(helm, ['lint', '--strict', chart]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

void test('helm template with the default values means the same as kubectl kustomize k8s', async () => {
  const kustomized = await execTool(kubectl, ['kustomize', path.join(repoRoot, 'k8s')]);
  assert.equal(kustomized.code, 0, kustomized.stderr);
  const base = byKey(parseObjects(kustomized.stdout));
  const rendered = byKey(await renderChart());

  // The Namespace is Helm's (--create-namespace) by default; everything else is the chart's.
  assert.deepEqual(
    [...base.keys()].filter((k) => !rendered.has(k)),
    [`Namespace /${NAMESPACE}`],
    'the base objects the chart does not render by default',
  );
  assert.deepEqual(
    [...rendered.keys()].filter((k) => !base.has(k)),
    [],
    'objects only the chart renders',
  );
  for (const [key, object] of rendered) assert.deepEqual(object, base.get(key), key);

  // createNamespace=true renders it too, with the Pod Security label the agent needs.
  const withNamespace = byKey(await renderChart(['--set', 'createNamespace=true']));
  assert.deepEqual([...withNamespace.keys()].sort(), [...base.keys()].sort());
  assert.deepEqual(withNamespace.get(`Namespace /${NAMESPACE}`), base.get(`Namespace /${NAMESPACE}`));
  console.log(`${base.size} objects, equal after normalisation (Helm's own labels removed)`);
});

void test('values for brokers, Kafka security, uplink, mark mask, failover timing, gateway selector, image and resources take effect', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kseip-helm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const values = path.join(dir, 'values.yaml');
  writeFileSync(
    values,
    stringify({
      kafka: {
        brokers: 'b-1.kafka:9093,b-2.kafka:9093',
        createTopics: false,
        security: {
          createSecret: true,
          tls: true,
          saslMechanism: 'scram-sha-512',
          saslUsername: 'kseip',
          saslPassword: 's3cret',
        },
      },
      agent: { uplink: 'bond0', markMask: '0x00f00000', resources: { limits: { memory: '1Gi' } } },
      failover: { heartbeatInterval: '200ms', fenceAfter: '1s', lostAfter: '1500ms' },
      image: { repository: 'registry.example/kseip', tag: '1.2.3' },
      egressPool: {
        enabled: true,
        addresses: ['198.51.100.0/28'],
        gatewaySelector: { matchLabels: { egress: 'true' } },
      },
    }),
  );
  const objects = await renderChart(['--values', values]);
  const config = find(objects, 'ConfigMap', 'kseip-config') as K8sObject & { data: Record<string, string> };
  assert.equal(config.data.KSEIP_BROKERS, 'b-1.kafka:9093,b-2.kafka:9093');
  assert.equal(config.data.KSEIP_UPLINK, 'bond0');
  assert.equal(config.data.KSEIP_MARK_MASK, '0x00f00000');
  assert.equal(config.data.KSEIP_CREATE_TOPICS, 'false');
  assert.equal(config.data.KSEIP_CREATE_TOPIC, 'false');
  assert.equal(config.data.KSEIP_HEARTBEAT_INTERVAL, '200ms');
  assert.equal(config.data.KSEIP_FENCE_AFTER, '1s');
  assert.equal(config.data.KSEIP_LOST_AFTER, '1500ms');

  const secret = find(objects, 'Secret', 'kseip-kafka') as K8sObject & { stringData: Record<string, string> };
  assert.deepEqual(secret.stringData, {
    tls: 'true',
    'sasl-mechanism': 'scram-sha-512',
    'sasl-username': 'kseip',
    'sasl-password': 's3cret',
  });
  for (const [kind, name] of [
    ['Deployment', 'kseip-watcher'],
    ['Deployment', 'kseip-projector'],
    ['Deployment', 'kseip-liveness'],
    ['Deployment', 'kseip-status-writer'],
    ['DaemonSet', 'kseip-agent'],
  ] as const) {
    const container = podSpec(find(objects, kind, name)).containers[0]!;
    assert.equal(container.image, 'registry.example/kseip:1.2.3', name);
    // The password is never an environment variable; the Secret's other keys are.
    const names = (container.env ?? []).map((e) => e.name);
    assert.ok(names.includes('KSEIP_KAFKA_SASL_MECHANISM') && !names.some((n) => /PASSWORD/.test(n)), name);
  }
  assert.deepEqual(podSpec(find(objects, 'DaemonSet', 'kseip-agent')).containers[0]!.resources, {
    requests: { cpu: '50m', memory: '128Mi' },
    limits: { memory: '1Gi' },
  });
  const pool = find(objects, 'StaticEgressIPPool', 'default') as K8sObject & { spec: unknown };
  assert.deepEqual(pool.spec, {
    addresses: ['198.51.100.0/28'],
    nodeSelector: { matchLabels: { egress: 'true' } },
  });
});

void test('inconsistent Kafka security values are refused with the reason', async () => {
  const r = await execTool(helm, [
    'template',
    'kseip',
    chart,
    '--set',
    'kafka.security.createSecret=true',
    '--set',
    'kafka.security.saslMechanism=plain',
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /kafka\.security\.saslMechanism needs saslUsername and saslPassword/);
});

void test('every replicated Deployment has a PodDisruptionBudget that keeps one replica, the singleton none', async () => {
  const objects = await renderChart();
  const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget') as (K8sObject & {
    spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
  })[];
  for (const d of objects.filter((o) => o.kind === 'Deployment')) {
    const spec = d.spec as { replicas: number; selector: { matchLabels: Record<string, string> } };
    const covering = budgets.filter((b) => JSON.stringify(b.spec.selector) === JSON.stringify(spec.selector));
    if (spec.replicas > 1) {
      assert.equal(covering.length, 1, `${d.metadata.name} has one budget`);
      assert.ok(covering[0]!.spec.maxUnavailable < spec.replicas, d.metadata.name);
    } else assert.deepEqual(covering, [], `${d.metadata.name} (one replica) would only block drains`);
  }
  assert.equal(budgets.length, 3);
});
