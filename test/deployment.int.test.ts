// The k8s/ kustomize tree against a real kube-apiserver, a real Kafka broker and a real
// network-namespace node:
// - the rendered manifests hold no wildcard verb, resource or API group, only the components that
//   use the API server get a token, and every workload serves /healthz and /readyz on the port
//   its KSEIP_HEALTH_PORT names;
// - every component, started with its manifest's environment plus one bad value, exits with code
//   2 and a message naming the option;
// - `kubectl apply --dry-run=server -k k8s/` and then the real apply succeed;
// - `kubectl auth can-i --as=<each ServiceAccount>` grants each component exactly what its code
//   uses: the Kafka-only projector nothing, the agent only a watch on its own DaemonSet (to tell
//   an uninstall from a restart); no policies, Secrets or nodes;
// - each component, started with the environment its Deployment or DaemonSet gives it and, where
//   its pod mounts a token, a kubeconfig holding nothing but its ServiceAccount's bound token
//   (TokenRequest), does its job with only those permissions: the watcher publishes a new policy,
//   liveness holds its Lease, and all five together turn a policy (a Service with one pod) into
//   Ready status, a Kubernetes Event and the egress IP on the node (the projector with no
//   credentials at all, the agent with a token that can only watch its DaemonSet);
// - the Strimzi overlay renders, its KafkaTopics match src/contracts/topics.ts, its only listener
//   is TLS + SCRAM with authorization on, and each workload connects as its own KafkaUser.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Kafka } from 'kafkajs';
import { readTopic } from '../src/lib/read-topic.ts';
import { startApiServer, type ApiServer } from '../src/devenv/apiserver.ts';
import { createClusterSim } from '../src/devenv/cluster-sim.ts';
import { createTopics, startKafka, type KafkaBroker, kafkaClient } from '../src/devenv/kafka.ts';
import { createNetCluster, type NetCluster } from '../src/devenv/netcluster.ts';
import {
  decodeHeartbeat,
  decodeNodeApplyStatus,
  type NodeApplyStatus,
} from '../src/contracts/node-reports.ts';
import { TOPICS, topicSpecs } from '../src/contracts/topics.ts';
import { WORKLOAD_PRINCIPALS } from '../src/contracts/strimzi-access.ts';
import { KAFKA_PRINCIPAL_NAMES, KAFKA_PRINCIPALS } from '../src/contracts/topic-access.ts';
import {
  find,
  podSpecOf,
  renderKustomize,
  renderTokenKubeconfig,
  repoRoot,
  resolveEnv,
  rulesOf,
  type Container,
  type K8sObject,
} from './support/manifests.ts';
import { followTopic, freePort, waitFor, type TopicFollower } from './support/watcher-harness.ts';

const NS = 'kube-static-egress-ip';
const sa = (name: string): string => `system:serviceaccount:${NS}:${name}`;
const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

type WorkloadKind = 'Deployment' | 'DaemonSet';
/** Every workload, and whether its pods talk to the API server (and so get a token). */
const WORKLOADS: readonly { kind: WorkloadKind; name: string; usesApi: boolean }[] = [
  { kind: 'Deployment', name: 'kseip-watcher', usesApi: true },
  { kind: 'Deployment', name: 'kseip-liveness', usesApi: true },
  { kind: 'Deployment', name: 'kseip-status-writer', usesApi: true },
  { kind: 'Deployment', name: 'kseip-projector', usesApi: false },
  { kind: 'DaemonSet', name: 'kseip-agent', usesApi: true },
];

let objects: K8sObject[];

before(async () => {
  objects = await renderKustomize('k8s');
});

const containerOf = (kind: WorkloadKind, name: string): Container =>
  podSpecOf(find(objects, kind, name)).containers[0]!;

void test('the rendered manifests hold no wildcard and mount tokens only where the API is used', () => {
  const rules = rulesOf(objects);
  assert.ok(rules.length > 0, 'no RBAC rules rendered');
  for (const { owner, rule } of rules) {
    for (const field of ['verbs', 'resources', 'apiGroups', 'resourceNames', 'nonResourceURLs'] as const) {
      for (const value of rule[field] ?? []) {
        assert.ok(!value.includes('*'), `${owner} has a wildcard in ${field}: ${JSON.stringify(rule)}`);
      }
    }
  }
  // Every binding names one of our ServiceAccounts, and nothing binds a built-in role.
  for (const b of objects.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
    const { roleRef, subjects } = b as unknown as {
      roleRef: { kind: string; name: string };
      subjects: { kind: string; name: string; namespace: string }[];
    };
    assert.ok(roleRef.name.startsWith('kseip-'), `${b.metadata.name} binds ${roleRef.kind} ${roleRef.name}`);
    find(objects, roleRef.kind, roleRef.name);
    for (const s of subjects) assert.deepEqual([s.kind, s.namespace], ['ServiceAccount', NS]);
  }
  for (const { kind, name, usesApi } of WORKLOADS) {
    const pod = podSpecOf(find(objects, kind, name));
    assert.equal(pod.automountServiceAccountToken !== false, usesApi, `${name} automountServiceAccountToken`);
    const account = find(objects, 'ServiceAccount', pod.serviceAccountName);
    if (!usesApi) {
      assert.equal(
        (account as { automountServiceAccountToken?: boolean }).automountServiceAccountToken,
        false,
      );
      const bound = objects.some(
        (o) =>
          (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') &&
          JSON.stringify((o as { subjects?: unknown }).subjects).includes(`"${pod.serviceAccountName}"`),
      );
      assert.ok(!bound, `${pod.serviceAccountName} must have no binding`);
    }
  }
  // The agent: host network, NET_ADMIN + NET_RAW and nothing else, never privileged.
  const agent = podSpecOf(find(objects, 'DaemonSet', 'kseip-agent'));
  assert.equal(agent.hostNetwork, true);
  const sc = agent.containers[0]!.securityContext as {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities: { add: string[]; drop: string[] };
  };
  assert.notEqual(sc.privileged, true);
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
  assert.deepEqual(agent.tolerations, [{ operator: 'Exists' }]);
  const nodeName = agent.containers[0]!.env?.find((e) => e.name === 'NODE_NAME');
  assert.equal(nodeName?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  // Control-plane containers never run as root.
  for (const { kind, name } of WORKLOADS.filter((w) => w.kind === 'Deployment')) {
    const c = containerOf(kind, name);
    assert.equal((c.securityContext as { runAsNonRoot?: boolean }).runAsNonRoot, true, name);
  }
  for (const { kind, name } of WORKLOADS) {
    const c = containerOf(kind, name);
    // Every command names a file that exists.
    const [, file] = c.command;
    assert.ok(file !== undefined && existsSync(path.join(repoRoot, file)), `${name} runs ${file}, missing`);
    // One spelling of the health port everywhere, and the probes and the port name agree with it.
    const env = c.env ?? [];
    assert.ok(
      !env.some((e) => e.name === 'KSEIP_METRICS_PORT'),
      `${name} sets the deprecated KSEIP_METRICS_PORT`,
    );
    const port = Number(env.find((e) => e.name === 'KSEIP_HEALTH_PORT')?.value);
    const ports = c.ports as { name: string; containerPort: number }[];
    assert.deepEqual(ports, [{ name: 'health', containerPort: port }], `${name} ports`);
    const probe = (p: unknown) => (p as { httpGet: { path: string; port: string } }).httpGet;
    assert.deepEqual(probe(c.livenessProbe), { path: '/healthz', port: 'health' }, `${name} livenessProbe`);
    assert.deepEqual(probe(c.readinessProbe), { path: '/readyz', port: 'health' }, `${name} readinessProbe`);
  }
});

void test('the Strimzi overlay renders, points the components at its bootstrap service, and its topics match topics.ts', async () => {
  const overlay = await renderKustomize('k8s/overlays/strimzi');
  const kafka = find(overlay, 'Kafka', 'kseip');
  assert.equal(kafka.metadata.namespace, NS);
  const config = find(overlay, 'ConfigMap', 'kseip-config') as unknown as { data: Record<string, string> };
  assert.equal(config.data.KSEIP_BROKERS, `kseip-kafka-bootstrap.${NS}.svc:9093`);
  // Authenticated and authorised (issue 12 finding 3): the only listener is TLS + SCRAM, ACLs on,
  // and each workload connects as the KafkaUser the matrix names, with that user's Secret.
  const kafkaSpec = (kafka as unknown as { spec: { kafka: { listeners: object[]; authorization: object } } })
    .spec.kafka;
  assert.deepEqual(kafkaSpec.listeners, [
    { name: 'tls', port: 9093, type: 'internal', tls: true, authentication: { type: 'scram-sha-512' } },
  ]);
  assert.deepEqual(kafkaSpec.authorization, { type: 'simple' });
  const users = overlay.filter((o) => o.kind === 'KafkaUser').map((o) => o.metadata.name);
  assert.deepEqual(users.sort(), KAFKA_PRINCIPAL_NAMES.map((n) => KAFKA_PRINCIPALS[n].user).sort());
  for (const w of WORKLOAD_PRINCIPALS) {
    const spec = podSpecOf(find(overlay, w.kind, w.name));
    const env = (spec.containers[0]!.env ?? []) as { name: string; value?: string }[];
    const user = KAFKA_PRINCIPALS[w.principal].user;
    assert.equal(env.find((e) => e.name === 'KSEIP_KAFKA_SASL_USERNAME')?.value, user, `${w.name} user`);
    assert.equal(env.find((e) => e.name === 'KSEIP_KAFKA_SASL_MECHANISM')?.value, 'scram-sha-512');
    const volume = (
      spec.volumes as { name: string; projected?: { sources: { secret: { name: string } }[] } }[]
    ).find((v) => v.name === 'kafka-secret');
    assert.deepEqual(
      volume?.projected?.sources.map((src) => src.secret.name),
      ['kseip-cluster-ca-cert', user],
      `${w.name} secret volume`,
    );
  }
  const topics = overlay
    .filter((o) => o.kind === 'KafkaTopic')
    .map((o) => {
      const spec = (o as unknown as { spec: { topicName: string; partitions: number; config: object } }).spec;
      return {
        topic: spec.topicName,
        partitions: spec.partitions,
        config: Object.fromEntries(Object.entries(spec.config).map(([k, v]) => [k, String(v)])),
      };
    })
    .sort((a, b) => a.topic.localeCompare(b.topic));
  const expected = topicSpecs(3)
    .map((s) => ({
      topic: s.topic,
      partitions: s.numPartitions,
      config: Object.fromEntries((s.configEntries ?? []).map((e) => [e.name, e.value])),
    }))
    .sort((a, b) => a.topic.localeCompare(b.topic));
  assert.deepEqual(topics, expected);
});

/** Runs a workload's command with `env` only (plus PATH) until it exits; kills it after 60 s. */
async function runToExit(
  container: Container,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const [, ...args] = container.command;
  const child = spawn(nodeBin, ['--disable-warning=ExperimentalWarning', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stderr };
}

void test('each component, given its manifest environment and a bad value, exits 2 naming the option', async () => {
  const podEnv = (kind: WorkloadKind, name: string, secrets: Record<string, Record<string, string>> = {}) =>
    resolveEnv(
      objects,
      containerOf(kind, name),
      { name: `${name}-0`, namespace: NS, nodeName: 'node-a' },
      secrets,
    );
  const wrong: string[] = [];
  // Two at a time: each start loads the whole component.
  for (let i = 0; i < WORKLOADS.length; i += 2) {
    await Promise.all(
      WORKLOADS.slice(i, i + 2).map(async ({ kind, name }) => {
        // A typo in the ConfigMap (no port) and in the Deployment (port out of range).
        const r = await runToExit(containerOf(kind, name), {
          ...podEnv(kind, name),
          KSEIP_BROKERS: 'kafka-bootstrap.kafka.svc',
          KSEIP_HEALTH_PORT: '99999',
        });
        const expected = [
          /invalid configuration:/,
          /--brokers \(env KSEIP_BROKERS\): expected a comma-separated list of host:port, got "kafka-bootstrap\.kafka\.svc"/,
          /--health-port \(env KSEIP_HEALTH_PORT\).*: expected an integer from 0 to 65535, got "99999"/,
        ];
        if (r.code !== 2) wrong.push(`${name}: exit ${r.code}, expected 2\n${r.stderr}`);
        for (const re of expected)
          if (!re.test(r.stderr)) wrong.push(`${name}: stderr lacks ${re}\n${r.stderr}`);
      }),
    );
  }
  // The Kafka Secret, half filled: SASL mechanism without a user name (and no password file).
  // The check is shared code, so two components stand for all.
  await Promise.all(
    WORKLOADS.filter((w) => w.name === 'kseip-watcher' || w.name === 'kseip-agent').map(
      async ({ kind, name }) => {
        const r = await runToExit(containerOf(kind, name), {
          ...podEnv(kind, name, { 'kseip-kafka': { 'sasl-mechanism': 'scram-sha-512' } }),
          KSEIP_BROKERS: '127.0.0.1:1',
        });
        if (r.code !== 2) wrong.push(`${name} (half a Secret): exit ${r.code}, expected 2\n${r.stderr}`);
        if (
          !/--kafka-sasl-username \(env KSEIP_KAFKA_SASL_USERNAME\) is required with --kafka-sasl-mechanism/.test(
            r.stderr,
          )
        )
          wrong.push(`${name} (half a Secret): stderr does not name the missing user name\n${r.stderr}`);
      },
    ),
  );
  assert.deepEqual(wrong, []);
});

void describe('k8s/ applied to a real API server', () => {
  let api: ApiServer;
  let broker: KafkaBroker;
  let kafka: Kafka;
  let cluster: NetCluster | undefined;
  const children: ChildProcess[] = [];
  const followers: TopicFollower[] = [];
  const readers: AbortController[] = [];
  const dirs: string[] = [];

  before(async () => {
    [api, broker] = await Promise.all([startApiServer(), startKafka()]);
    kafka = kafkaClient(broker.brokers, 'deployment-test');
  });

  after(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const r of readers) r.abort();
    await Promise.all(followers.map((f) => f.stop().catch(() => undefined)));
    await cluster?.destroy();
    await Promise.all([broker?.stop(), api?.stop()]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
    const r = await api.kubectl(args, stdin);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };

  void test('kubectl apply --dry-run=server -k k8s/ succeeds, then the real apply', async () => {
    const dir = path.join(repoRoot, 'k8s');
    // On an empty cluster a server-side dry run cannot pass: it persists nothing, so the objects
    // inside the namespace it would create are refused. Everything else must already validate.
    const empty = await api.kubectl(['apply', '--dry-run=server', '-k', dir]);
    const errors = empty.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.ok(errors.length > 0, 'expected the dry run on an empty cluster to miss the namespace');
    for (const line of errors) assert.match(line, new RegExp(`namespaces "${NS}" not found`), line);
    assert.match(empty.stdout, /customresourcedefinition.* created \(server dry run\)/);
    // So the namespace comes first (docs/deployment.md); then the whole tree passes the dry run.
    await kubectl(['create', 'namespace', NS]);
    const dry = await kubectl(['apply', '--dry-run=server', '-k', dir]);
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
      assert.ok(
        dry.includes(`/${o.metadata.name} created (server dry run)`),
        `${o.kind} ${o.metadata.name} not in the dry run:\n${dry}`,
      );
    }
    // A dry run persists nothing.
    assert.notEqual(
      (await api.kubectl(['get', 'crd', 'staticegressips.staticegressips.nirmata.io'])).code,
      0,
    );
    assert.notEqual((await api.kubectl(['-n', NS, 'get', 'serviceaccount', 'kseip-watcher'])).code, 0);
    const applied = await kubectl(['apply', '-k', dir]);
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
      assert.ok(applied.includes(`/${o.metadata.name} created`), `${o.kind} ${o.metadata.name} not created`);
    }
    assert.match(applied, new RegExp(`namespace/${NS} configured`));
    // Applying again changes nothing (what an operator's second `kubectl apply -k` does).
    // kubectl's client-side apply always sends a PodDisruptionBudget's selector (its patch strategy
    // is `replace`) and so prints "configured" for it, although the server changes nothing: the
    // resourceVersions stay. Every other object must print "unchanged".
    const budgetVersions = (): Promise<string> =>
      kubectl(['-n', NS, 'get', 'pdb', '-o', 'jsonpath={.items[*].metadata.resourceVersion}']);
    const versionsBefore = await budgetVersions();
    const again = await kubectl(['apply', '-k', dir]);
    const changed = again.split('\n').filter((l) => / (created|configured)$/.test(l));
    assert.deepEqual(
      changed.filter((l) => !l.startsWith('poddisruptionbudget.policy/')),
      [],
      again,
    );
    assert.equal(await budgetVersions(), versionsBefore, 'the PodDisruptionBudgets did not change');
    await kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  });

  // [ServiceAccount, kubectl auth can-i arguments, allowed]
  type Check = [string, string[], boolean];
  const inNs = ['-n', NS];
  const everywhere = ['--all-namespaces'];
  const policyResources = [
    'staticegressips.staticegressips.nirmata.io',
    'clusterstaticegressips.staticegressips.nirmata.io',
    'staticegressippools.staticegressips.nirmata.io',
  ];
  const watched = [
    ...policyResources,
    'services',
    'pods',
    'nodes',
    'namespaces',
    'endpointslices.discovery.k8s.io',
    'servicecidrs.networking.k8s.io',
  ];
  const leaseChecks = (account: string, lease: string): Check[] => [
    [account, ['create', 'leases.coordination.k8s.io', ...inNs], true],
    [account, ['get', `leases.coordination.k8s.io/${lease}`, ...inNs], true],
    [account, ['update', `leases.coordination.k8s.io/${lease}`, ...inNs], true],
    [account, ['delete', `leases.coordination.k8s.io/${lease}`, ...inNs], false],
    [account, ['get', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system'], false],
    [account, ['update', 'leases.coordination.k8s.io/some-other-lease', ...inNs], false],
    [account, ['list', 'leases.coordination.k8s.io', ...inNs], false],
  ];
  // What nobody may do: touch Secrets, edit policies' spec, modify nodes, create pods, escalate.
  const forbiddenToAll = (account: string): Check[] => [
    [account, ['get', 'secrets', ...inNs], false],
    [account, ['list', 'secrets', ...everywhere], false],
    [account, ['create', 'secrets', ...inNs], false],
    ...policyResources.flatMap((r): Check[] => [
      [account, ['create', r, ...everywhere], false],
      [account, ['update', r, ...everywhere], false],
      [account, ['patch', r, ...everywhere], false],
      [account, ['delete', r, ...everywhere], false],
    ]),
    [account, ['patch', 'nodes'], false],
    [account, ['update', 'nodes'], false],
    [account, ['delete', 'nodes'], false],
    [account, ['patch', 'nodes', '--subresource=status'], false],
    [account, ['create', 'pods', ...inNs], false],
    [account, ['delete', 'pods', ...everywhere], false],
    [account, ['create', 'pods', '--subresource=exec', ...inNs], false],
    [account, ['create', 'serviceaccounts', '--subresource=token', ...inNs], false],
    [account, ['create', 'clusterrolebindings.rbac.authorization.k8s.io'], false],
    [account, ['bind', 'clusterroles.rbac.authorization.k8s.io'], false],
    [account, ['escalate', 'clusterroles.rbac.authorization.k8s.io'], false],
    [account, ['update', 'configmaps', ...inNs], false],
  ];
  const checks: Check[] = [
    // watcher: list + watch everything it informs on, cluster-wide; nothing else on them.
    ...watched.flatMap((r): Check[] => [
      ['kseip-watcher', ['list', r, ...everywhere], true],
      ['kseip-watcher', ['watch', r, ...everywhere], true],
      ['kseip-watcher', ['get', r, ...everywhere], false],
    ]),
    ...leaseChecks('kseip-watcher', 'kseip-watcher'),
    ...forbiddenToAll('kseip-watcher'),
    // liveness: its Lease, nothing else.
    ...leaseChecks('kseip-liveness', 'kseip-liveness'),
    ['kseip-liveness', ['list', 'nodes'], false],
    ['kseip-liveness', ['list', 'pods', ...everywhere], false],
    ...forbiddenToAll('kseip-liveness'),
    // status writer: read the policy kinds (for an Event's uid), patch their status and the
    // pools' status, create core Events, its Lease; nothing else.
    ...[
      'staticegressips.staticegressips.nirmata.io',
      'clusterstaticegressips.staticegressips.nirmata.io',
    ].flatMap((r): Check[] => [
      ['kseip-status-writer', ['patch', r, '--subresource=status', ...everywhere], true],
      ['kseip-status-writer', ['get', r, ...everywhere], true],
      ['kseip-status-writer', ['get', r, '--subresource=status', ...everywhere], false],
      ['kseip-status-writer', ['update', r, '--subresource=status', ...everywhere], false],
      ['kseip-status-writer', ['list', r, ...everywhere], false],
      ['kseip-status-writer', ['watch', r, ...everywhere], false],
    ]),
    [
      'kseip-status-writer',
      ['patch', 'staticegressippools.staticegressips.nirmata.io', '--subresource=status', ...everywhere],
      true,
    ],
    [
      'kseip-status-writer',
      ['update', 'staticegressippools.staticegressips.nirmata.io', '--subresource=status', ...everywhere],
      false,
    ],
    ['kseip-status-writer', ['patch', 'staticegressippools.staticegressips.nirmata.io'], false],
    ['kseip-status-writer', ['get', 'staticegressippools.staticegressips.nirmata.io'], false],
    ['kseip-status-writer', ['create', 'events', ...everywhere], true],
    ['kseip-status-writer', ['patch', 'events', ...everywhere], false],
    ['kseip-status-writer', ['delete', 'events', ...everywhere], false],
    ['kseip-status-writer', ['list', 'events', ...everywhere], false],
    ['kseip-status-writer', ['create', 'events.events.k8s.io', ...everywhere], false],
    ...leaseChecks('kseip-status-writer', 'kseip-status-writer'),
    ...forbiddenToAll('kseip-status-writer'),
    // agent: its own DaemonSet, read and watched, and nothing else.
    ['kseip-agent', ['get', 'daemonsets.apps/kseip-agent', ...inNs], true],
    ['kseip-agent', ['watch', 'daemonsets.apps/kseip-agent', ...inNs], true],
    ['kseip-agent', ['list', 'daemonsets.apps/kseip-agent', ...inNs], true],
    ['kseip-agent', ['update', 'daemonsets.apps/kseip-agent', ...inNs], false],
    ['kseip-agent', ['delete', 'daemonsets.apps/kseip-agent', ...inNs], false],
    ['kseip-agent', ['list', 'daemonsets.apps', ...inNs], false],
    ['kseip-agent', ['get', 'daemonsets.apps/other', ...inNs], false],
    ['kseip-agent', ['get', 'daemonsets.apps/kseip-agent', '-n', 'kube-system'], false],
    // projector: Kafka only, so nothing at all; the agent likewise beyond its DaemonSet.
    ...['kseip-projector', 'kseip-agent'].flatMap((account): Check[] => [
      ...watched.map((r): Check => [account, ['list', r, ...everywhere], false]),
      [account, ['get', 'nodes'], false],
      [account, ['get', 'leases.coordination.k8s.io', ...inNs], false],
      [account, ['create', 'leases.coordination.k8s.io', ...inNs], false],
      [account, ['create', 'events', ...everywhere], false],
      [
        account,
        ['patch', 'staticegressips.staticegressips.nirmata.io', '--subresource=status', ...everywhere],
        false,
      ],
      ...forbiddenToAll(account),
    ]),
  ];

  void test('kubectl auth can-i: each ServiceAccount can do exactly what its component needs', async () => {
    const wrong: string[] = [];
    // A few at a time: each is one kubectl process, and the machine has 2 cores.
    for (let i = 0; i < checks.length; i += 6) {
      await Promise.all(
        checks.slice(i, i + 6).map(async ([account, args, allowed]) => {
          const r = await api.kubectl(['auth', 'can-i', ...args, `--as=${sa(account)}`]);
          const answer = r.stdout.trim();
          if (answer !== 'yes' && answer !== 'no') {
            wrong.push(`${account} can-i ${args.join(' ')}: unexpected answer ${r.stdout} ${r.stderr}`);
          } else if ((answer === 'yes') !== allowed) {
            wrong.push(`${account} can-i ${args.join(' ')}: ${answer}, expected ${allowed ? 'yes' : 'no'}`);
          }
        }),
      );
    }
    // And `--list` shows no grant to the Kafka-only accounts beyond what every authenticated
    // identity gets from the cluster's defaults (discovery, self reviews), in their namespace
    // and in default.
    for (const account of ['kseip-projector', 'kseip-agent']) {
      for (const ns of [NS, 'default']) {
        // The agent's one grant (its DaemonSet, checked above) is expected in its namespace.
        const allowed = account === 'kseip-agent' && ns === NS ? ['daemonsets.apps'] : [];
        const list = await kubectl(['auth', 'can-i', '--list', '-n', ns, `--as=${sa(account)}`]);
        const rows = list.split('\n').slice(1);
        assert.ok(
          rows.some((r) => r.startsWith('selfsubjectreviews')),
          `unexpected --list output:\n${list}`,
        );
        const granted = rows
          .map((l) => l.trim().split(/\s+/)[0] ?? '')
          // Non-resource URLs (discovery, /healthz ...) print with an empty first column.
          .filter((r) => r !== '' && !r.startsWith('['))
          .filter(
            (r) =>
              !/^(selfsubject\w+\.authorization\.k8s\.io|selfsubjectreviews\.authentication\.k8s\.io)$/.test(
                r,
              ),
          );
        if (granted.join(',') !== allowed.join(',')) {
          wrong.push(
            `${account} in ${ns} has grants: ${granted.join(', ')}; expected ${allowed.join(', ') || 'none'}`,
          );
        }
      }
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${checks.length} checks and the --list checks failed`);
  });

  interface Started {
    child: ChildProcess;
    logPath: string;
    env: Record<string, string>;
    exited: Promise<number | null>;
    /** SIGTERM; resolves with the exit code. */
    stop(): Promise<number | null>;
  }

  /**
   * Starts a workload's container command the way its pod would run it: only the environment the
   * manifest builds (ConfigMap, literals, downward API) plus PATH and `overrides`, an empty HOME,
   * and, only if the pod mounts a ServiceAccount token, a kubeconfig holding nothing but a bound
   * token of that ServiceAccount (the in-cluster identity, minus the fixed in-cluster paths).
   */
  async function startWorkload(
    kind: WorkloadKind,
    name: string,
    overrides: Record<string, string>,
    nodeName?: string,
  ): Promise<Started> {
    const pod = podSpecOf(find(objects, kind, name));
    const container = pod.containers[0]!;
    const podName = `${name}-test-0`;
    const env = resolveEnv(objects, container, {
      name: podName,
      namespace: NS,
      ...(nodeName === undefined ? {} : { nodeName }),
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'kseip-deployment-test-'));
    dirs.push(dir);
    const credentials: Record<string, string> = {};
    if (pod.automountServiceAccountToken !== false) {
      const token = await api.serviceAccountToken(NS, pod.serviceAccountName);
      const admin = JSON.parse(readFileSync(api.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: { 'certificate-authority-data': string } }[];
      };
      const kubeconfig = path.join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        renderTokenKubeconfig(api.server, admin.clusters[0]!.cluster['certificate-authority-data'], token),
        { mode: 0o600 },
      );
      credentials.KUBECONFIG = kubeconfig;
    }
    const [cmd, ...args] = container.command;
    assert.equal(cmd, 'node');
    const logPath = path.join(dir, `${name}.log`);
    const log = createWriteStream(logPath);
    const argv = [nodeBin, '--disable-warning=ExperimentalWarning', ...args];
    // setpriv: the component dies with this test process even if the test is SIGKILLed.
    const [bin, ...rest] = setpriv === undefined ? argv : [setpriv, '--pdeathsig', 'KILL', '--', ...argv];
    const child = spawn(bin!, rest, {
      cwd: repoRoot,
      // Only what the pod would have: no admin kubeconfig or test variables leak in.
      env: { PATH: process.env.PATH, HOME: dir, ...env, ...credentials, LOG_LEVEL: 'info', ...overrides },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    children.push(child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return {
      child,
      logPath,
      env: { ...env, ...credentials },
      exited,
      stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        return exited;
      },
    };
  }

  const logTail = (s: Started, lines = 30): string =>
    `--- ${path.basename(s.logPath)}\n${readFileSync(s.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')}`;
  const assertNoForbidden = (s: Started): void => {
    const forbidden = readFileSync(s.logPath, 'utf8')
      .split('\n')
      .filter((l) => /forbidden|"code":403|HTTP-Code: 403|Unauthorized|"code":401/i.test(l));
    assert.deepEqual(forbidden, [], `${path.basename(s.logPath)} was refused by the API server`);
  };
  const httpStatus = async (port: number, p: string): Promise<number | undefined> =>
    (await fetch(`http://127.0.0.1:${port}${p}`).catch(() => undefined))?.status;

  async function holderOf(lease: string): Promise<string | undefined> {
    const coordination = api.kubeConfig.makeApiClient(CoordinationV1Api);
    try {
      return (
        (await coordination.readNamespacedLease({ name: lease, namespace: NS })).spec?.holderIdentity ??
        undefined
      );
    } catch {
      return undefined;
    }
  }

  async function createAllTopics(): Promise<void> {
    // Topics are the operator's (or the Strimzi overlay's) to create; Kafka-only components
    // only read and write them.
    await createTopics(
      broker.brokers,
      topicSpecs(1).map((s) => ({
        topic: s.topic,
        config: Object.fromEntries((s.configEntries ?? []).map((e) => [e.name, e.value])),
      })),
    );
  }

  void test('the watcher with its ServiceAccount token leads and publishes a new policy to Kafka', async () => {
    const healthPort = await freePort();
    const watcher = await startWorkload('Deployment', 'kseip-watcher', {
      KSEIP_BROKERS: broker.brokers.join(','),
      KSEIP_REPLICATION_FACTOR: '1',
      KSEIP_HEALTH_PORT: String(healthPort),
    });
    // The Deployment's settings, not the test's, decide the Lease and the Kafka security.
    assert.equal(watcher.env.POD_NAMESPACE, NS);
    assert.equal(watcher.env.KSEIP_KAFKA_SECRET_DIR, '/etc/kseip/kafka');
    const diag = (): string => logTail(watcher);
    await waitFor(
      'the watcher to hold the Lease kseip-watcher',
      async () => (await holderOf('kseip-watcher'))?.startsWith('kseip-watcher-test-0'),
      90_000,
      diag,
    );
    await waitFor(
      'the watcher to be ready',
      async () => (await httpStatus(healthPort, '/readyz')) === 200,
      90_000,
      diag,
    );
    // Ready means its first lists are out, possibly still in its buffer: the topic it creates
    // may not exist yet, and a follower of a missing topic stops at once.
    const admin = kafka.admin();
    await admin.connect();
    try {
      await waitFor(
        'the watcher to create kseip.cluster-events.v1',
        async () => (await admin.listTopics()).includes(TOPICS.clusterEvents),
        90_000,
        diag,
      );
    } finally {
      await admin.disconnect();
    }
    const follower = followTopic(broker, TOPICS.clusterEvents);
    followers.push(follower);
    const custom = api.kubeConfig.makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({
      group: 'staticegressips.nirmata.io',
      version: 'v1alpha1',
      namespace: 'default',
      plural: 'staticegressips',
      body: {
        apiVersion: 'staticegressips.nirmata.io/v1alpha1',
        kind: 'StaticEgressIP',
        metadata: { name: 'deployment-test', namespace: 'default' },
        spec: { rules: [{ egressip: '198.51.100.20', 'service-name': 'frontend', cidr: '203.0.113.0/24' }] },
      },
    });
    await waitFor(
      'StaticEgressIPObserved for default/deployment-test on kseip.cluster-events.v1',
      () =>
        follower.events.some(
          (e) =>
            e.event.type === 'StaticEgressIPObserved' &&
            JSON.stringify(e.event).includes('"deployment-test"'),
        ),
      90_000,
      () => `${follower.describe(20)}\n${follower.undecodable.join('\n')}\n${diag()}`,
    );
    // Every kind it informs on was listed (one Observed per existing Namespace proves the
    // cluster-wide list of the core kinds worked too).
    assert.ok(
      follower.events.some((e) => e.event.type === 'NamespaceObserved'),
      follower.describe(20),
    );
    assert.deepEqual(follower.undecodable, []);
    assert.equal(await httpStatus(healthPort, '/healthz'), 200);
    assert.match(
      await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text(),
      /^process_cpu_seconds_total /m,
    );
    assertNoForbidden(watcher);
    // SIGTERM: a graceful stop (exit 0) that hands the Lease back.
    assert.equal(await watcher.stop(), 0, diag());
    assert.ok(!(await holderOf('kseip-watcher')), 'the Lease was not released');
  });

  void test('liveness with its ServiceAccount token holds its Lease', async () => {
    await createAllTopics();
    const healthPort = await freePort();
    const liveness = await startWorkload('Deployment', 'kseip-liveness', {
      KSEIP_BROKERS: broker.brokers.join(','),
      KSEIP_HEALTH_PORT: String(healthPort),
    });
    assert.equal(liveness.env.KSEIP_LEASE_NAME, 'kseip-liveness');
    const diag = (): string => logTail(liveness);
    await waitFor(
      'liveness to hold the Lease kseip-liveness',
      async () => (await holderOf('kseip-liveness'))?.startsWith('kseip-liveness-test-0'),
      90_000,
      diag,
    );
    await waitFor(
      'liveness to be healthy',
      async () => (await httpStatus(healthPort, '/healthz')) === 200,
      90_000,
      diag,
    );
    assertNoForbidden(liveness);
    assert.equal(await liveness.stop(), 0, diag());
    assert.ok(!(await holderOf('kseip-liveness')), 'the Lease was not released');
  });

  void test('all five together, each with only its own identity: a policy gets Ready status, an Event and its egress IP on the node', async () => {
    const EGRESS_IP = '198.51.100.30';
    cluster = await createNetCluster({ nodes: 1, podNetwork: 'host-gw' });
    const node = cluster.nodes()[0]!;
    // The Node object a kubelet would keep (InternalIP = the netns node's uplink address), and
    // the pod and Service the policy selects: a policy that selects no pod is not Ready.
    const sim = createClusterSim(cluster, api.kubeConfig);
    await sim.syncNode(node);
    await sim.addPod(node.name, 'frontend-1', { labels: { app: 'frontend' } });
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'frontend', namespace: 'default' },
        spec: { selector: { app: 'frontend' }, ports: [{ port: 80 }] },
      }),
    );
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'staticegressips.nirmata.io/v1alpha1',
        kind: 'StaticEgressIPPool',
        metadata: { name: 'deployment-test' },
        spec: { addresses: [`${EGRESS_IP}/32`] },
      }),
    );
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'staticegressips.nirmata.io/v1alpha1',
        kind: 'StaticEgressIP',
        metadata: { name: 'deployment-e2e', namespace: 'default' },
        spec: { rules: [{ egressip: EGRESS_IP, 'service-name': 'frontend', cidr: '203.0.113.10/32' }] },
      }),
    );
    await createAllTopics();

    // The agent's acks, read as the status writer reads them.
    const acks: NodeApplyStatus[] = [];
    const heartbeats: string[] = [];
    for (const [topic, onValue] of [
      [
        TOPICS.nodeStatus,
        (v: Buffer | null) => {
          const d = decodeNodeApplyStatus(v);
          if (d._tag === 'Right') acks.push(d.right);
        },
      ],
      [
        TOPICS.heartbeats,
        (v: Buffer | null) => {
          const d = decodeHeartbeat(v);
          if (d._tag === 'Right') heartbeats.push(d.right.node);
        },
      ],
    ] as const) {
      const abort = new AbortController();
      readers.push(abort);
      void readTopic({
        kafka,
        topic,
        start: { kind: 'beginning' },
        follow: true,
        signal: abort.signal,
        onRecord: (r) => onValue(r.value),
      }).catch(() => undefined);
    }

    const brokers = broker.brokers.join(',');
    const ports = {
      watcher: await freePort(),
      liveness: await freePort(),
      projector: await freePort(),
      statusWriter: await freePort(),
      agent: await freePort(),
    };
    // Test-only overrides, each for a reason: brokers and ports are this machine's; one broker
    // means replication 1; timings are slack so that a busy 2-core machine never fences the only
    // gateway (the defaults, 100/250/500 ms, are for real nodes); the agent programs the netns
    // node rather than this machine (--netns, development only).
    const started = await Promise.all([
      startWorkload('Deployment', 'kseip-watcher', {
        KSEIP_BROKERS: brokers,
        KSEIP_REPLICATION_FACTOR: '1',
        KSEIP_HEALTH_PORT: String(ports.watcher),
      }),
      startWorkload('Deployment', 'kseip-liveness', {
        KSEIP_BROKERS: brokers,
        KSEIP_HEALTH_PORT: String(ports.liveness),
        KSEIP_LOST_AFTER: '10s',
        KSEIP_BLIND_AFTER: '2s',
        KSEIP_TICK: '100ms',
        KSEIP_SEED_WINDOW: '0',
      }),
      startWorkload('Deployment', 'kseip-projector', {
        KSEIP_BROKERS: brokers,
        KSEIP_REPLICATION_FACTOR: '1',
        KSEIP_HEALTH_PORT: String(ports.projector),
      }),
      startWorkload('Deployment', 'kseip-status-writer', {
        KSEIP_BROKERS: brokers,
        KSEIP_HEALTH_PORT: String(ports.statusWriter),
      }),
      startWorkload(
        'DaemonSet',
        'kseip-agent',
        {
          KSEIP_BROKERS: brokers,
          KSEIP_HEALTH_PORT: String(ports.agent),
          KSEIP_NETNS: node.ns,
          KSEIP_HEARTBEAT_INTERVAL: '200ms',
          KSEIP_FENCE_AFTER: '5s',
        },
        node.name,
      ),
    ]);
    const [watcher, liveness, projector, statusWriter, agent] = started;
    // The Kafka-only projector runs with no credentials at all; the agent with its token.
    assert.equal(projector.env.KUBECONFIG, undefined);
    assert.notEqual(agent.env.KUBECONFIG, undefined);
    assert.equal(agent.env.NODE_NAME, node.name);
    // No kubelet restarts a workload here: one that exits ends the wait at once, naming itself.
    const exited = (): string[] =>
      started.flatMap((s) =>
        s.child.exitCode === null && s.child.signalCode === null
          ? []
          : [`${path.basename(s.logPath)} exited (${s.child.exitCode ?? s.child.signalCode})`],
      );
    const diag = (): string =>
      `${started.map((s) => logTail(s, 15)).join('\n')}\nacks: ${JSON.stringify(acks.slice(-3))}\nexited: ${exited().join(', ') || 'none'}`;

    const custom = api.kubeConfig.makeApiClient(CustomObjectsApi);
    interface Policy {
      status?: {
        rules?: { activeGateway?: string; programmedNodes?: number }[];
        conditions?: { type: string; status: string; reason: string }[];
      };
    }
    let lastSeen: Policy | undefined;
    const policy = await waitFor(
      'default/deployment-e2e to be Ready',
      async () => {
        const p = (await custom.getNamespacedCustomObject({
          group: 'staticegressips.nirmata.io',
          version: 'v1alpha1',
          namespace: 'default',
          plural: 'staticegressips',
          name: 'deployment-e2e',
        })) as Policy;
        lastSeen = p;
        if (exited().length > 0) throw new Error(`a workload exited before Ready\n${diag()}`);
        return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p : undefined;
      },
      180_000,
      () => `${diag()}\nlast status seen: ${JSON.stringify(lastSeen?.status)}`,
    );
    // status writer: patched the status (as only the projector's decisions say).
    assert.equal(policy.status?.rules?.[0]?.activeGateway, node.name);
    // agent: applied the node's rules (from Kafka alone), and holds the egress IP.
    assert.ok(
      acks.some((a) => a.node === node.name && a.ok),
      diag(),
    );
    assert.ok(heartbeats.includes(node.name));
    const addr = await cluster.exec(node.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', node.uplink]);
    assert.match(addr.stdout, new RegExp(`inet ${EGRESS_IP.replaceAll('.', '\\.')}/`), addr.stdout);
    // status writer: created the GatewayAssigned Event (reading the policy for its uid first).
    const core = api.kubeConfig.makeApiClient(CoreV1Api);
    const event = await waitFor(
      'a GatewayAssigned Event for default/deployment-e2e',
      async () =>
        (await core.listNamespacedEvent({ namespace: 'default' })).items.find(
          (e) => e.reason === 'GatewayAssigned' && e.involvedObject.name === 'deployment-e2e',
        ),
      60_000,
      diag,
    );
    assert.equal(event.source?.component, 'kseip-status-writer');
    assert.ok(event.involvedObject.uid, 'the Event names the policy uid');
    // Every Lease holder is the component started here, every health port answers.
    assert.ok((await holderOf('kseip-watcher'))?.startsWith('kseip-watcher-test-0'));
    assert.ok((await holderOf('kseip-liveness'))?.startsWith('kseip-liveness-test-0'));
    assert.ok((await holderOf('kseip-status-writer'))?.startsWith('kseip-status-writer-test-0'));
    for (const [component, port] of Object.entries(ports)) {
      assert.equal(await httpStatus(port, '/healthz'), 200, `${component} /healthz`);
      assert.equal(await httpStatus(port, '/readyz'), 200, `${component} /readyz`);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^process_cpu_seconds_total /m, `${component} /metrics`);
      assert.match(metrics, /^kseip_\w+/m, `${component} /metrics has no kseip_ metric`);
    }
    // pino JSON on stdout: every line of every log is one JSON object (stderr carries nothing).
    for (const s of started) {
      const lines = readFileSync(s.logPath, 'utf8').trimEnd().split('\n');
      const notJson = lines.filter((l) => {
        try {
          return typeof (JSON.parse(l) as { level?: unknown }).level !== 'string';
        } catch {
          return true;
        }
      });
      assert.deepEqual(notJson, [], `${path.basename(s.logPath)} has lines that are not pino JSON`);
    }
    for (const s of started) assertNoForbidden(s);
    // SIGTERM: each stops gracefully (exit 0); the agent leaves the dataplane in place.
    const codes = await Promise.all([watcher, liveness, projector, statusWriter, agent].map((s) => s.stop()));
    assert.deepEqual(codes, [0, 0, 0, 0, 0], diag());
  });
});
