// End to end: a real Prometheus (Debian's `prometheus`) scrapes the dev stack (src/devenv/stack.ts:
// Kafka, kube-apiserver, network-namespace nodes, the control plane and an agent per node) with
// the project's own alerting rules (k8s/monitoring/kseip.rules.yaml), and when the gateway of an
// egress IP is cut off from Kafka, KseipAgentFenced fires for that node (and only that node), as
// /api/v1/alerts shows; once the cut is healed the alert resolves.
//
// To cut one node off from Kafka alone, each agent runs inside its node's network namespace, where
// 127.0.0.1:<broker port> is a TCP bridge to the broker (the address the broker advertises), and
// its /metrics reach Prometheus through a Unix-socket relay. Cutting that node's bridge ('blackhole':
// a silent partition) leaves every other process's Kafka path alone.
//
// Effectful: one stack, one Prometheus on 127.0.0.1 with its own temporary directory, one relay per
// node; everything is stopped by its own PID or handle. Never skips: a Prometheus that cannot start
// fails the test with its log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { repoRoot } from '../src/devenv/artifacts.ts';
import { renderAgentArgs } from '../src/devenv/control-plane.ts';
import { freePort } from '../src/devenv/free-port.ts';
import type { ManagedProcess, NetNode, TcpBridge } from '../src/devenv/netcluster.ts';
import {
  addSeedWorkload,
  POOL_YAML,
  SEED,
  seedManifest,
  selectHolder,
  startStack,
  type Stack,
} from '../src/devenv/stack.ts';

/** The agent's health/metrics port inside its node's namespace (each namespace has its own loopback). */
const AGENT_PORT = 9464;
const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');

interface CuttableAgent {
  readonly node: NetNode;
  readonly bridge: TcpBridge;
  readonly agent: ManagedProcess;
  readonly relay: ManagedProcess;
  readonly server: Server;
  readonly metricsPort: number;
}

interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

let stack: Stack;
let workDir = '';
let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
const agents = new Map<string, CuttableAgent>();

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  explain = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${explain()}`);
    await sleep(250);
  }
}

const prometheusLog = (): string => {
  try {
    return readFileSync(path.join(workDir, 'prometheus.log'), 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-30)
      .join('\n');
  } catch {
    return '(no log)';
  }
};

async function promApi<T>(route: string): Promise<T> {
  const res = await fetch(`${prometheusUrl}/api/v1/${route}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${route}: ${body.error ?? res.status}`);
  return body.data;
}

const alerts = async (): Promise<PromAlert[]> => (await promApi<{ alerts: PromAlert[] }>('alerts')).alerts;

/**
 * Replaces the stack's agent for `node` with one inside the node's namespace, whose Kafka traffic
 * crosses a bridge this test can cut, and whose /metrics a relay brings to 127.0.0.1:<port> here.
 */
async function startCuttableAgent(node: NetNode, kafkaPort: number): Promise<CuttableAgent> {
  await stack.controlPlane.killAgent(node.name);
  const bridge = await stack.cluster.bridgeTcpIntoNamespace(node.ns, kafkaPort);
  const agent = await stack.cluster.spawn(
    node.ns,
    [
      nodeBin,
      '--disable-warning=ExperimentalWarning',
      path.join(repoRoot, 'src/agents/main.ts'),
      // The stack's own agent flags; inside the namespace this address is the cuttable bridge.
      ...renderAgentArgs(node, `127.0.0.1:${kafkaPort}`),
      '--health-port',
      String(AGENT_PORT),
    ],
    { name: `cuttable-agent-${node.name}`, env: { ...process.env, LOG_LEVEL: 'info' } },
  );
  // /metrics: a socat in the namespace serves a Unix socket (the filesystem is shared), and a
  // listener on this side's loopback pipes each scrape into it.
  const socket = path.join(workDir, `metrics-${node.name}.sock`);
  const relay = await stack.cluster.spawn(
    node.ns,
    ['socat', `UNIX-LISTEN:${socket},fork,unlink-early`, `TCP4:127.0.0.1:${AGENT_PORT}`],
    { name: `metrics-relay-${node.name}` },
  );
  const metricsPort = await freePort();
  const server = createServer((client) => {
    const upstream = connect(socket);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(metricsPort, '127.0.0.1', resolve));
  return { node, bridge, agent, relay, server, metricsPort };
}

function prometheusConfig(): string {
  const component = (job: string, port: number) => ({
    job_name: job,
    static_configs: [{ targets: [`127.0.0.1:${port}`], labels: { namespace: 'kseip-dev', pod: `${job}-0` } }],
  });
  const cp = stack.controlPlane;
  return stringify({
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: [path.join(repoRoot, 'k8s/monitoring/kseip.rules.yaml')],
    scrape_configs: [
      component('kseip-watcher', cp.component('watcher').healthPort),
      component('kseip-projector', cp.component('projector').healthPort),
      component('kseip-liveness', cp.component('liveness').healthPort),
      component('kseip-status-writer', cp.component('status-writer').healthPort),
      {
        job_name: 'kseip-agent',
        // As the ServiceMonitor's relabelling does on a cluster: the node the agent runs on.
        static_configs: [...agents.values()].map((a) => ({
          targets: [`127.0.0.1:${a.metricsPort}`],
          labels: { namespace: 'kseip-dev', pod: `kseip-agent-${a.node.name}`, node: a.node.name },
        })),
      },
    ],
  });
}

async function startPrometheus(): Promise<void> {
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  const configFile = path.join(workDir, 'prometheus.yml');
  writeFileSync(configFile, prometheusConfig());
  const log = path.join(workDir, 'prometheus.log');
  writeFileSync(log, '');
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(workDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus = child;
  child.stdout.on('data', (b: Buffer) => writeFileSync(log, b, { flag: 'a' }));
  child.stderr.on('data', (b: Buffer) => writeFileSync(log, b, { flag: 'a' }));
  let failure = '';
  child.once(
    'error',
    (err) => (failure = `prometheus could not be started (apt-get install prometheus): ${err.message}`),
  );
  child.once('exit', (code, signal) => (failure ||= `prometheus exited (${signal ?? `code ${code}`})`));
  await waitFor(
    'Prometheus ready',
    async () => {
      if (failure !== '') throw new Error(`${failure}\n${prometheusLog()}`);
      return (await fetch(`${prometheusUrl}/-/ready`)).ok ? true : undefined;
    },
    60_000,
    prometheusLog,
  ).catch((err: unknown) => {
    // A failure seen by the probe is the reason; do not retry it until the deadline.
    throw err instanceof Error && failure !== '' ? new Error(`${failure}\n${prometheusLog()}`) : err;
  });
}

before(async () => {
  workDir = mkdtempSync(path.join(tmpdir(), 'kseip-prometheus-'));
  stack = await startStack({ nodes: 2 });
  const kafkaPort = Number(stack.kafka.brokers[0]!.split(':')[1]);
  for (const node of stack.cluster.nodes()) agents.set(node.name, await startCuttableAgent(node, kafkaPort));
  await startPrometheus();
});

after(async () => {
  if (prometheus !== undefined && prometheus.exitCode === null && prometheus.signalCode === null) {
    const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
    prometheus.kill('SIGTERM');
    const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  for (const a of agents.values()) {
    a.server.close();
    await a.agent.stop();
    await a.relay.stop();
  }
  await stack?.stop();
  if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
});

void test('Prometheus scrapes every component and every agent of the dev stack', async () => {
  const targets = await waitFor(
    'every target up',
    async () => {
      const data = await promApi<{ activeTargets: { labels: Record<string, string>; health: string }[] }>(
        'targets',
      );
      return data.activeTargets.length === 6 && data.activeTargets.every((t) => t.health === 'up')
        ? data.activeTargets
        : undefined;
    },
    90_000,
    () => `${prometheusLog()}\n${stack.controlPlane.describe(10)}`,
  );
  assert.deepEqual(targets.map((t) => t.labels.job).sort(), [
    'kseip-agent',
    'kseip-agent',
    'kseip-liveness',
    'kseip-projector',
    'kseip-status-writer',
    'kseip-watcher',
  ]);
  const rules = await promApi<{ groups: { rules: { name: string; health: string }[] }[] }>('rules');
  const loaded = rules.groups.flatMap((g) => g.rules);
  assert.ok(loaded.length >= 6 && loaded.every((r) => r.health !== 'err'), JSON.stringify(loaded));
});

void test('a gateway cut off from Kafka fires KseipAgentFenced for its node, which resolves once healed', async () => {
  await addSeedWorkload(stack);
  await stack.apply(POOL_YAML);
  await stack.apply(seedManifest());
  const gateway = await waitFor(
    `a node holding ${SEED.egressIP}`,
    async () => (await selectHolder(stack.cluster, SEED.egressIP))?.name,
    90_000,
    () => stack.controlPlane.describe(10),
  );
  const cut = agents.get(gateway)!;
  const other = [...agents.keys()].find((n) => n !== gateway)!;
  // Healthy first: nothing fenced, as Prometheus sees it.
  await waitFor(
    'both agents scraped, unfenced',
    async () => {
      const r = await promApi<{ result: { metric: { node: string }; value: [number, string] }[] }>(
        'query?query=kseip_agent_fenced',
      );
      return r.result.length === 2 && r.result.every((s) => s.value[1] === '0') ? true : undefined;
    },
    60_000,
  );
  assert.deepEqual(
    (await alerts()).filter((a) => a.labels.alertname === 'KseipAgentFenced'),
    [],
  );

  const cutAt = performance.now();
  cut.bridge.cut('blackhole');
  const fired = await waitFor(
    `KseipAgentFenced firing for ${gateway}`,
    async () =>
      (await alerts()).find(
        (a) => a.labels.alertname === 'KseipAgentFenced' && a.labels.node === gateway && a.state === 'firing',
      ),
    180_000,
    prometheusLog,
  );
  console.log(
    `KseipAgentFenced firing for ${gateway} ${Math.round((performance.now() - cutAt) / 1000)} s after the cut (for: 30s)`,
  );
  console.log(`GET /api/v1/alerts (KseipAgentFenced): ${JSON.stringify(fired)}`);
  assert.equal(fired.labels.severity, 'critical');
  const fencedAlerts = (await alerts()).filter((a) => a.labels.alertname === 'KseipAgentFenced');
  assert.deepEqual(
    fencedAlerts.map((a) => a.labels.node),
    [gateway],
    `only the cut node is fenced, not ${other}`,
  );
  // The standby took the egress IP over meanwhile (liveness declared the cut node lost).
  assert.equal((await selectHolder(stack.cluster, SEED.egressIP))?.name, other);

  cut.bridge.restore();
  await waitFor(
    'KseipAgentFenced resolved',
    async () => ((await alerts()).some((a) => a.labels.alertname === 'KseipAgentFenced') ? undefined : true),
    180_000,
    prometheusLog,
  );
});
