// Int test of a node agent restart (issue 5): real Kafka (src/devenv/kafka.ts), a real
// network-namespace cluster (src/devenv/netcluster.ts) and the real agent binary
// (src/agents/main.ts, run from the machine's namespace with --netns, as a separate process so
// that it can be killed with SIGKILL like a crashed DaemonSet pod). The test produces NodeRules
// to kseip.node-rules.v1 itself. Given a long-lived TCP connection from a selected pod through
// its gateway to the external host, when the director's and the gateway's agents are SIGKILLed
// and started again, then the connection keeps working, its conntrack entries are still there,
// and the nft/ip state equals the state before (the restarted agents find nothing to change).
// When the desired state changed while an agent was down, it converges to it on start.
// Effectful: one broker, one netns cluster and the agent processes, all stopped at the end.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { decodeNodeApplyStatus, type NodeApplyStatus } from '../src/contracts/node-reports.ts';
import { NODE_RULES_SCHEMA, type NodeRules, type Steer } from '../src/contracts/node-rules.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { createTopics, kafkaClient, startKafka, type KafkaBroker } from '../src/devenv/kafka.ts';
import {
  CLUSTER_POD_CIDR,
  createNetCluster,
  EXTERNAL_HOST_IP,
  type NetCluster,
  type NetNode,
  type NetPod,
} from '../src/devenv/netcluster.ts';
import { createLogger } from '../src/lib/log.ts';

const log = createLogger('agent-restart-test');
const EGRESS_IP = '198.51.100.10';
const SLOT = 1;
const ECHO_PORT = 7070;
const repoRoot = path.join(import.meta.dirname, '..');

/** One agent process (src/agents/main.ts) for one node, killed only through its own handle. */
interface AgentProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A long-lived TCP session from a pod: `socat` with its stdin and stdout kept by the test, so
 * bytes can be sent at any time and their echo read back on the same connection.
 */
class PodSession {
  private received = '';
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  constructor(ns: string, dst: string, port: number) {
    this.child = spawn('ip', ['netns', 'exec', ns, 'socat', '-', `TCP:${dst}:${port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (b: Buffer) => (this.received += b.toString()));
    this.child.stderr.on('data', (b: Buffer) => log.warn({ stderr: b.toString() }, 'pod session'));
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
  }
  /** Sends a line and waits for its echo on the same connection. */
  async echo(line: string, timeoutMs = 10_000): Promise<void> {
    assert.equal(this.child.exitCode, null, 'the pod session is still open');
    this.child.stdin.write(`${line}\n`);
    await waitFor(
      `echo of ${line}`,
      () => (this.received.includes(`${line}\n`) ? true : undefined),
      timeoutMs,
    );
  }
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

/** The conntrack entries of the echo connection in a namespace, without timers and counters. */
async function conntrackTuples(cluster: NetCluster, ns: string): Promise<string[]> {
  const r = await cluster.exec(ns, ['conntrack', '-L', '-p', 'tcp', '--dport', String(ECHO_PORT)]);
  assert.equal(r.code, 0, `conntrack -L in ${ns}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((line) => line.includes('ESTABLISHED'))
    .map((line) =>
      line
        .split(/\s+/)
        .filter((f) => /^(src|dst|sport|dport)=/.test(f))
        .join(' '),
    )
    .sort();
}

/** Everything of ours in a node's namespace, as text; link indexes show a device re-created. */
async function dataplaneDump(cluster: NetCluster, node: NetNode): Promise<string> {
  const r = await cluster.exec(
    node.ns,
    [
      'sh',
      '-c',
      // Details only for VXLAN devices, and only permanent fdb entries: bridge timers and
      // learned MACs of the harness's own bridge change by themselves.
      'nft list table ip kseip; ip rule; ip route show table all; ip link show; ip -d link show type vxlan; ' +
        'ip addr; ip neigh show nud permanent; bridge fdb show | grep permanent; ' +
        'sysctl net.ipv4.conf.kseip-v1.rp_filter',
    ],
    { check: true },
  );
  // A held egress IP's remaining lifetime counts down by itself (the agent renews it); whether
  // it has one ("dynamic") is still compared.
  return r.stdout.replace(
    /valid_lft \d+sec preferred_lft \d+sec/g,
    'valid_lft <renewed> preferred_lft <renewed>',
  );
}

void describe('agent restart: kill -9 and start again', () => {
  let broker: KafkaBroker;
  let kafka: Kafka;
  let producer: Producer;
  let statusConsumer: Consumer;
  const acks: NodeApplyStatus[] = [];
  let cluster: NetCluster;
  let director: NetNode, gateway: NetNode;
  let selected: NetPod, other: NetPod;
  let session: PodSession;
  const agents = new Map<string, AgentProcess>();
  const suffix = randomUUID().slice(0, 6);
  let generation = 10;
  /** The gateway's conntrack view of the echo session, once established. */
  let tracked: string[] = [];

  function startAgent(node: NetNode): AgentProcess {
    const logFile = createWriteStream(path.join(cluster.runDir, `agent-${node.name}.log`), { flags: 'a' });
    const child = spawn(
      process.execPath,
      [
        '--disable-warning=ExperimentalWarning',
        path.join(repoRoot, 'src/agents/main.ts'),
        '--node-name',
        node.name,
        '--brokers',
        broker.brokers.join(','),
        '--netns',
        node.ns,
        '--uplink',
        node.uplink,
        '--never-steer',
        CLUSTER_POD_CIDR,
        '--health-port',
        '0',
        // Generous on a shared 2-core machine: this test is about restarts, not self-fencing,
        // and a fence at start-up (a slow first heartbeat) would withdraw and re-add the egress IP.
        '--heartbeat-interval',
        '200ms',
        '--fence-after',
        '10s',
        // And about a crash that is restarted at once: a SIGKILLed agent's egress IP outlives
        // it only for its lifetime (failures.e2e tests that bound), which must cover the restart.
        '--egress-address-lifetime',
        '60s',
      ],
      { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
    );
    child.stdout.pipe(logFile, { end: false });
    child.stderr.pipe(logFile, { end: false });
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        logFile.end();
        resolve(code);
      }),
    );
    const agent = { child, exited };
    agents.set(node.name, agent);
    return agent;
  }

  async function killAgent(node: NetNode): Promise<void> {
    const agent = agents.get(node.name);
    assert.ok(agent !== undefined);
    agent.child.kill('SIGKILL');
    await agent.exited;
    assert.equal(agent.child.signalCode, 'SIGKILL');
    agents.delete(node.name);
  }

  async function publish(rules: NodeRules): Promise<void> {
    await producer.send({
      topic: TOPICS.nodeRules,
      messages: [{ key: rules.node, value: JSON.stringify(rules) }],
    });
  }

  /** The next ack of `node` after position `from` in the acks seen so far. */
  async function nextAck(node: string, from: number, generationWanted: number): Promise<NodeApplyStatus> {
    return waitFor(`${node} acking generation ${generationWanted}`, () =>
      acks.slice(from).find((a) => a.node === node && a.generation === generationWanted),
    );
  }

  const steer = (pods: readonly NetPod[]): Steer => ({
    slot: SLOT,
    egressIP: EGRESS_IP,
    gatewayNode: gateway.name,
    gatewayIP: gateway.ip,
    podIPs: pods.map((p) => p.ip).sort(),
    destinations: [`${EXTERNAL_HOST_IP}/32`],
    exceptions: [],
    sources: ['default/eip#0'],
  });
  const rulesFor = (node: NetNode, over: Partial<NodeRules>): NodeRules => ({
    schema: NODE_RULES_SCHEMA,
    node: node.name,
    generation,
    nodeIP: node.ip,
    steers: [],
    egressIPs: [],
    ...over,
  });
  const directorRules = (pods: readonly NetPod[]): NodeRules => rulesFor(director, { steers: [steer(pods)] });
  const gatewayRules = (): NodeRules =>
    rulesFor(gateway, { egressIPs: [{ slot: SLOT, egressIP: EGRESS_IP }] });

  before(async () => {
    broker = await startKafka();
    await createTopics(broker.brokers, [
      { topic: TOPICS.nodeRules, config: { 'cleanup.policy': 'compact' } },
      { topic: TOPICS.heartbeats },
      { topic: TOPICS.nodeStatus },
      { topic: TOPICS.deadLetter },
    ]);
    kafka = kafkaClient(broker.brokers, 'agent-restart-int');
    producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    statusConsumer = kafka.consumer({ groupId: `restart-acks-${suffix}`, maxWaitTimeInMs: 100 });
    await statusConsumer.connect();
    await statusConsumer.subscribe({ topic: TOPICS.nodeStatus, fromBeginning: true });
    await statusConsumer.run({
      eachMessage: ({ message }) => {
        const decoded = decodeNodeApplyStatus(message.value);
        if (decoded._tag === 'Right') acks.push(decoded.right);
        return Promise.resolve();
      },
    });

    cluster = await createNetCluster({ nodes: 2, podNetwork: 'host-gw', log });
    [director, gateway] = cluster.nodes() as [NetNode, NetNode];
    selected = await cluster.addPod(director.name, 'selected');
    other = await cluster.addPod(director.name, 'other');
    await cluster.spawn(
      cluster.external.ns,
      ['socat', '-d', '-d', `TCP-LISTEN:${ECHO_PORT},bind=${EXTERNAL_HOST_IP},fork,reuseaddr`, 'PIPE'],
      { name: 'echo-server', readyPattern: /listening on/ },
    );
  });

  after(async () => {
    await session?.close().catch(() => undefined);
    for (const agent of agents.values()) {
      agent.child.kill('SIGTERM');
      await Promise.race([agent.exited, sleep(5_000)]);
      if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
    }
    await statusConsumer?.disconnect().catch(() => undefined);
    await producer?.disconnect().catch(() => undefined);
    await cluster?.destroy();
    await broker?.stop();
  });

  void it('an established flow survives SIGKILL of both agents, and the restarted agents change nothing', async () => {
    // Given both agents running and applied, and a TCP session from the selected pod.
    await publish(directorRules([selected]));
    await publish(gatewayRules());
    let from = acks.length;
    startAgent(director);
    startAgent(gateway);
    for (const node of [director, gateway])
      assert.equal((await nextAck(node.name, from, generation)).ok, true);
    assert.equal(
      await waitFor('traffic through the gateway', async () => {
        const src = await cluster.whoami(selected.ns, EXTERNAL_HOST_IP).catch(() => undefined);
        return src === EGRESS_IP ? src : undefined;
      }),
      EGRESS_IP,
    );
    session = new PodSession(selected.ns, EXTERNAL_HOST_IP, ECHO_PORT);
    await session.echo('before');
    // The external host sees the session coming from the egress IP.
    const peers = await cluster.exec(cluster.external.ns, [
      'ss',
      '-tnH',
      'state',
      'established',
      `( sport = :${ECHO_PORT} )`,
    ]);
    assert.match(peers.stdout, new RegExp(`${EGRESS_IP.replace(/\./g, '\\.')}:\\d+`));
    const dumpsBefore = [await dataplaneDump(cluster, director), await dataplaneDump(cluster, gateway)];
    const tracksBefore = [
      await conntrackTuples(cluster, director.ns),
      await conntrackTuples(cluster, gateway.ns),
    ];
    assert.equal(tracksBefore[0]?.length, 1, 'one tracked echo flow on the director');
    assert.equal(tracksBefore[1]?.length, 1, 'one tracked echo flow on the gateway');
    tracked = tracksBefore[1] ?? [];
    assert.match(
      tracksBefore[1]?.[0] ?? '',
      new RegExp(`dst=${EGRESS_IP.replace(/\./g, '\\.')} `),
      'SNAT on the gateway',
    );

    // When both agents are killed with SIGKILL: no shutdown code runs at all.
    await killAgent(director);
    await killAgent(gateway);
    // Then the flow does not need the agents: the kernel state they left keeps carrying it.
    await session.echo('while-down');

    // When they start again, with the same desired state in the log.
    from = acks.length;
    startAgent(director);
    startAgent(gateway);
    for (const node of [director, gateway]) {
      const ack = await nextAck(node.name, from, generation);
      assert.equal(ack.ok, true, `${node.name}: ${ack.error ?? ''}`);
      assert.equal(ack.reason, 'startup');
      assert.equal(ack.unchanged, true, `${node.name}'s restarted agent found nothing to change`);
    }
    // Then the same connection still carries data, both ways.
    await session.echo('after-restart');
    assert.deepEqual(
      [await conntrackTuples(cluster, director.ns), await conntrackTuples(cluster, gateway.ns)],
      tracksBefore,
      'conntrack entries kept',
    );
    assert.deepEqual(
      [await dataplaneDump(cluster, director), await dataplaneDump(cluster, gateway)],
      dumpsBefore,
      'nft and ip state as before the restart',
    );
  });

  void it('a state published while the director was down is applied on start; the flow survives', async () => {
    // Given the director killed, and a newer desired state (one more pod steered) published meanwhile.
    await killAgent(director);
    generation++;
    await publish(directorRules([selected, other]));
    assert.notEqual(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), EGRESS_IP, 'nothing applies it yet');
    // When it starts again.
    const from = acks.length;
    startAgent(director);
    const ack = await nextAck(director.name, from, generation);
    // Then it converges to the latest state, and the established flow is untouched.
    assert.equal(ack.ok, true, ack.error);
    assert.equal(ack.reason, 'startup');
    assert.equal(ack.unchanged, false);
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), EGRESS_IP, 'the newly steered pod');
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP);
    await session.echo('after-convergence');
    assert.deepEqual(await conntrackTuples(cluster, gateway.ns), tracked, 'the flow is still tracked');
  });
});
