// "Start the whole stack": the one place the demo and the e2e tests bring up everything. Kafka
// and the API server (in parallel), the topics, the CRDs, a netns cluster mirrored into the API
// server (cluster-sim.ts), the control plane and an agent per node (control-plane.ts). Plus the
// seed scenario both share: Service `frontend` with pods on two nodes, a pod it does not select,
// a pool over 198.51.100.0/24 and the seed's manifest with documentation IPs.
// Effectful: owns everything it started and stop() ends all of it (processes by PID, the broker
// container by id, namespaces through the netcluster harness); killAllSync() is the last resort
// for exit and signal handlers.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Either } from 'fp-ts/lib/Either.js';
import { readTopic } from '../lib/read-topic.ts';
import type { DecodeFailure } from '../contracts/decode.ts';
import { TOPICS, topicSpecs } from '../contracts/topics.ts';
import type { Logger } from '../lib/log.ts';
import { startApiServer, type ApiServer } from './apiserver.ts';
import { repoRoot } from './artifacts.ts';
import { createClusterSim, type ClusterSim, type SimPod } from './cluster-sim.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { kafkaClient, startKafka, type KafkaBroker } from './kafka.ts';
import { aclEntries, componentCredentials } from './kafka-access.ts';
import {
  createNetCluster,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  type NetCluster,
  type NetNode,
} from './netcluster.ts';

export const SEED = {
  egressIP: '198.51.100.10',
  destination: `${EXTERNAL_HOST_IP}/32`,
  policyName: 'eip',
  namespace: 'default',
  service: 'frontend',
} as const;
export { EXTERNAL_HOST_IP, EXTERNAL_OTHER_IP };

export const POOL_YAML = `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: demo}
spec:
  addresses: [198.51.100.0/24]
`;

/** The seed project's manifest, unchanged but for documentation-range IPs. */
export function seedManifest(egressIP: string = SEED.egressIP, cidr: string = SEED.destination): string {
  return `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: ${SEED.policyName}, namespace: ${SEED.namespace}}
spec:
  rules:
  - egressip: ${egressIP}
    service-name: ${SEED.service}
    cidr: ${cidr}
`;
}

export interface StackOptions {
  readonly nodes?: number;
  /** Called as each step finishes, with its duration (the demo prints these). */
  readonly onStep?: (step: string, ms: number) => void;
  readonly logLevel?: string;
  readonly log?: Logger;
}

export interface Stack {
  readonly runDir: string;
  readonly kafka: KafkaBroker;
  readonly kube: ApiServer;
  readonly cluster: NetCluster;
  readonly sim: ClusterSim;
  readonly controlPlane: ControlPlane;
  kubectl(args: readonly string[], stdin?: string): Promise<string>;
  /** `kubectl apply -f -`, throwing with kubectl's stderr on failure. */
  apply(yaml: string): Promise<void>;
  stop(): Promise<void>;
  killAllSync(): void;
}

async function timed<T>(step: string, onStep: StackOptions['onStep'], work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await work();
  onStep?.(step, performance.now() - started);
  return result;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const runDir = mkdtempSync(path.join(tmpdir(), 'kseip-stack-'));
  const onStep = opts.onStep;
  let kafka: KafkaBroker | undefined;
  let kube: ApiServer | undefined;
  let cluster: NetCluster | undefined;
  let controlPlane: ControlPlane | undefined;
  const stopAll = async (): Promise<void> => {
    await controlPlane?.stop().catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
    await kube?.stop().catch(() => undefined);
    await kafka?.stop().catch(() => undefined);
  };
  try {
    // Every component connects as its own SCRAM user to a SASL listener with ACLs on
    // (src/contracts/topic-access.ts); the harness keeps the plaintext listener (super user).
    const credentials = componentCredentials(runDir);
    const kafkaStarting = timed('Kafka broker (SCRAM users, ACLs)', onStep, () =>
      startKafka({ secureListener: { users: credentials.users, acls: aclEntries() } }),
    );
    const kubeStarting = timed('API server (etcd, kube-apiserver, controller-manager)', onStep, () =>
      startApiServer(),
    );
    // Both settle before either error is thrown, so nothing started is left behind.
    const [k, a] = await Promise.allSettled([kafkaStarting, kubeStarting]);
    if (k.status === 'fulfilled') kafka = k.value;
    if (a.status === 'fulfilled') kube = a.value;
    if (k.status === 'rejected') throw k.reason;
    if (a.status === 'rejected') throw a.reason;
    const broker = kafka!;
    const api = kube!;
    const kubectl = async (args: readonly string[], stdin?: string): Promise<string> => {
      const r = await api.kubectl(args, stdin);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout;
    };

    await timed('topics and CRDs', onStep, async () => {
      const admin = kafkaClient(broker.brokers, 'kseip-stack-topics').admin();
      await admin.connect();
      try {
        await admin.createTopics({ topics: topicSpecs(1), waitForLeaders: true, timeout: 30_000 });
      } finally {
        await admin.disconnect();
      }
      await kubectl(['apply', '-k', path.join(repoRoot, 'k8s/crds')]);
      await kubectl(['wait', '--for', 'condition=established', '--timeout=60s', 'crd', '--all']);
    });

    const nodes = opts.nodes ?? 3;
    cluster = await timed(`${nodes}-node network-namespace cluster (host-gw)`, onStep, () =>
      createNetCluster({
        nodes,
        podNetwork: 'host-gw',
        keepRunDir: true,
        ...(opts.log ? { log: opts.log } : {}),
      }),
    );
    const net = cluster;
    const sim = createClusterSim(net, api.kubeConfig);
    await timed('Node objects', onStep, async () => {
      for (const node of net.nodes()) await sim.syncNode(node);
    });

    controlPlane = await timed('control plane and agents', onStep, async () => {
      const cp = await startControlPlane({
        brokers: broker.secureBrokers!,
        kafkaArgs: credentials.kafkaArgs,
        kubeconfigPath: api.kubeconfigPath,
        logDir: runDir,
        ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
      });
      controlPlane = cp;
      for (const node of net.nodes()) await cp.startAgent(node);
      await waitForHeartbeats(
        broker.brokers,
        net.nodes().map((n) => n.name),
        cp,
      );
      return cp;
    });
    const cp = controlPlane;
    return {
      runDir,
      kafka: broker,
      kube: api,
      cluster: net,
      sim,
      controlPlane: cp,
      kubectl,
      async apply(yaml) {
        await kubectl(['apply', '-f', '-'], yaml);
      },
      stop: stopAll,
      // The netcluster harness removes its namespaces in its own exit and signal handlers.
      killAllSync() {
        cp.killAllSync();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Resolves once every node's agent has heartbeated (so liveness knows them); fails if one died. */
async function waitForHeartbeats(
  brokers: readonly string[],
  nodes: string[],
  cp: ControlPlane,
): Promise<void> {
  const kafka = kafkaClient([...brokers], 'kseip-stack-heartbeats');
  const consumer = kafka.consumer({
    groupId: `kseip-stack-hb-${process.pid}-${Date.now()}`,
    maxWaitTimeInMs: 100,
  });
  const heard = new Set<string>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPICS.heartbeats, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        const key = message.key?.toString();
        if (key !== undefined) heard.add(key);
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + 90_000;
    while (!nodes.every((n) => heard.has(n))) {
      for (const [name, proc] of [...cp.agents, ...cp.components]) {
        if (!proc.running)
          throw new Error(`${name} exited (${await proc.exited}) during start-up:\n${proc.logTail(20)}`);
      }
      if (Date.now() > deadline)
        throw new Error(`no heartbeat after 90 s from ${nodes.filter((n) => !heard.has(n)).join(', ')}`);
      await sleep(100);
    }
  } finally {
    await consumer.disconnect();
  }
}

// ---- the seed scenario --------------------------------------------------------------------------

export interface SeedWorkload {
  /** frontend pods: one on node 1, one on node 2. */
  readonly selected: SimPod[];
  /** A pod on node 1 that Service frontend does not select. */
  readonly other: SimPod;
}

/** Service `frontend` (selector app=frontend) and its pods, plus one pod it leaves out. */
export async function addSeedWorkload(stack: Stack): Promise<SeedWorkload> {
  const [n1, n2] = stack.cluster.nodes() as [NetNode, NetNode];
  await stack.apply(`apiVersion: v1
kind: Service
metadata: {name: ${SEED.service}, namespace: ${SEED.namespace}}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: 8080}]
`);
  const selected = [
    await stack.sim.addPod(n1.name, 'frontend-1', { labels: { app: 'frontend' } }),
    await stack.sim.addPod(n2.name, 'frontend-2', { labels: { app: 'frontend' } }),
  ];
  const other = await stack.sim.addPod(n1.name, 'backend-1', { labels: { app: 'backend' } });
  return { selected, other };
}

/** Polls whoami from `ns` until the external host sees `want`; returns how long that took. */
export async function waitForSource(
  cluster: NetCluster,
  ns: string,
  dst: string,
  want: string,
  timeoutMs = 60_000,
): Promise<number> {
  const started = performance.now();
  let last = '';
  for (;;) {
    last = await cluster.whoami(ns, dst, { timeoutMs: 1000 }).catch((err: Error) => err.message);
    if (last === want) return performance.now() - started;
    if (performance.now() - started > timeoutMs)
      throw new Error(
        `${ns} → ${dst}: still seen as ${JSON.stringify(last)} after ${timeoutMs} ms, want ${want}`,
      );
    await sleep(100);
  }
}

/** The node whose uplink holds `ip` (the gateway of that egress IP), if any. */
export async function selectHolder(cluster: NetCluster, ip: string): Promise<NetNode | undefined> {
  for (const node of cluster.nodes()) {
    if (node.killed) continue;
    const r = await cluster.exec(node.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', node.uplink]);
    if (r.code === 0 && r.stdout.includes(`"${ip}"`)) return node;
  }
  return undefined;
}

// ---- failover measurement -----------------------------------------------------------------------

export interface FailoverResult {
  readonly oldGateway: string;
  readonly newGateway: string | undefined;
  /** Last reply via the old gateway → first reply via the new one, on the external host's clock. */
  readonly gapMs: number;
  readonly probesSent: number;
  readonly probesAnswered: number;
  /** Answers with a source other than the egress IP: traffic that leaked (must be 0). */
  readonly probesLeaked: number;
  /** Date.now() once the old gateway was off the network, and the external host's time of the
   *  first reply after that (for breakdowns against the components' own timestamps). */
  readonly killedAt: number;
  readonly firstReplyAt: number;
  /** MAC the router holds for the egress IP after the failover (gratuitous ARP moved it). */
  readonly routerMac: string | undefined;
}

/** The router's neighbour entry (MAC) for `ip`, if it has one. */
export async function selectRouterMac(cluster: NetCluster, ip: string): Promise<string | undefined> {
  const r = await cluster.exec(cluster.router.ns, ['ip', '-j', 'neigh', 'show', ip]);
  if (r.code !== 0 || r.stdout.trim() === '') return undefined;
  const entries = JSON.parse(r.stdout) as { lladdr?: string }[];
  return entries.find((e) => e.lladdr !== undefined)?.lladdr;
}

/**
 * Kills the gateway node holding `egressIP` (router port down + SIGKILL of its agent) while a
 * selected pod on another node probes the external host every ~20 ms, and measures, from the
 * external host's own log, the time from the last reply before the kill (necessarily via the
 * old gateway) to the first one after it (necessarily via the new one: the old one is off the
 * network). Nothing here asserts durations; callers report them.
 */
export async function measureFailover(
  stack: Stack,
  probePodNs: string,
  egressIP: string,
  oldGateway: NetNode,
  options: { readonly dst?: string } = {},
): Promise<FailoverResult> {
  const { cluster } = stack;
  const dst = options.dst ?? EXTERNAL_HOST_IP;
  const runTag = `fo-${Date.now().toString(36)}`;
  let sent = 0;
  let inFlight = 0;
  let answered = 0;
  let leaked = 0;
  let answeredAfterKill = 0;
  let killed = false;
  let stop = false;
  const probes: Promise<void>[] = [];
  const probeLoop = (async () => {
    while (!stop) {
      // Probes stuck in the outage wait out their timeout; the cap must leave room for new ones
      // every 20 ms meanwhile, or the measured gap is the probe timeout, not the failover.
      if (inFlight < 150) {
        const tag = `${runTag}-${sent++}`;
        inFlight++;
        probes.push(
          cluster
            .whoami(probePodNs, dst, { timeoutMs: 2000, tag })
            .then((src) => {
              if (src !== egressIP) {
                leaked++;
                return;
              }
              answered++;
              if (killed) answeredAfterKill++;
            })
            .catch(() => undefined)
            .finally(() => inFlight--),
        );
      }
      await sleep(20);
    }
  })();
  await sleep(600);
  // A node dies all at once: its uplink and its agent (heartbeats) together. Once killNode has
  // resolved the old gateway is off the network, so every later reply came via the new one.
  const agentKilled = stack.controlPlane.killAgent(oldGateway.name);
  await cluster.killNode(oldGateway.name);
  const killedAt = Date.now();
  await agentKilled;
  killed = true;
  const deadline = Date.now() + 20_000;
  while (answeredAfterKill < 10 && Date.now() < deadline) await sleep(50);
  stop = true;
  await probeLoop;
  await Promise.all(probes);
  const seen = (await cluster.observations())
    .filter((o) => o.tag?.startsWith(runTag) === true && o.src === egressIP)
    .map((o) => Date.parse(o.time));
  const before = seen.filter((t) => t <= killedAt);
  const after = seen.filter((t) => t > killedAt);
  if (before.length === 0 || after.length === 0)
    throw new Error(
      `failover not observed: ${before.length} replies before the kill, ${after.length} after (of ${sent} probes)`,
    );
  const newGateway = await selectHolder(cluster, egressIP);
  return {
    oldGateway: oldGateway.name,
    newGateway: newGateway?.name,
    gapMs: Math.min(...after) - Math.max(...before),
    probesSent: sent,
    probesAnswered: answered,
    probesLeaked: leaked,
    killedAt,
    firstReplyAt: Math.min(...after),
    routerMac: await selectRouterMac(cluster, egressIP),
  };
}

// ---- helpers for the e2e tests and benchmarks -----------------------------------------------------

/** Every node whose uplink holds `ip`, killed ones included (a killed node keeps its addresses). */
export async function selectHolders(cluster: NetCluster, ip: string): Promise<NetNode[]> {
  const holders: NetNode[] = [];
  for (const node of cluster.nodes()) {
    const r = await cluster.exec(node.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', node.uplink]);
    if (r.code === 0 && r.stdout.includes(`"${ip}"`)) holders.push(node);
  }
  return holders;
}

/**
 * Brings a killed node back: its uplink first, then a fresh agent, as a machine that reboots and
 * whose DaemonSet pod starts again. The node keeps the kernel state it had (a netns does not
 * reboot); the new agent reconciles it.
 */
export async function reviveNode(stack: Stack, name: string): Promise<void> {
  await stack.cluster.reviveNode(name);
  await stack.controlPlane.startAgent(stack.cluster.node(name));
}

export interface FollowedRecord<T> {
  readonly offset: number;
  readonly key: string | null;
  readonly value: T;
  /** Date.now() when this process received the record. */
  readonly receivedAt: number;
  /** The record's Kafka timestamp (ms; the producer's clock at send, this machine's). */
  readonly timestamp: number;
}

export interface FollowedTopic<T> {
  readonly records: FollowedRecord<T>[];
  /** Records that did not decode: `offset: reason`. */
  readonly undecodable: string[];
  /** Resolves with the first record (already received or arriving later) that `pick` accepts. */
  waitFor<U>(what: string, pick: (r: FollowedRecord<T>) => U | undefined, timeoutMs?: number): Promise<U>;
  stop(): Promise<void>;
}

/**
 * Reads `topic` from the beginning and on and on (riding out broker restarts), decoding each
 * record with `decode`. For tests and benchmarks that watch what the components publish
 * (decisions, node-rules, node-status).
 */
export function followRecords<T>(
  stack: Pick<Stack, 'kafka'>,
  topic: string,
  decode: (value: Buffer | null) => Either<DecodeFailure, T>,
): FollowedTopic<T> {
  const records: FollowedRecord<T>[] = [];
  const undecodable: string[] = [];
  const abort = new AbortController();
  const kafka = kafkaClient(stack.kafka.brokers, `kseip-follow-${topic}`);
  const done = readTopic({
    kafka,
    topic,
    start: { kind: 'beginning' },
    follow: true,
    signal: abort.signal,
    onRecord: (r) => {
      const decoded = decode(r.value);
      if (decoded._tag === 'Left') undecodable.push(`${r.offset}: ${decoded.left.reason}`);
      else
        records.push({
          offset: Number(r.offset),
          key: r.key,
          value: decoded.right,
          receivedAt: Date.now(),
          timestamp: Number(r.timestamp),
        });
    },
  }).catch((err: unknown) => {
    undecodable.push(`the follower stopped: ${String(err)}`);
  });
  return {
    records,
    undecodable,
    async waitFor(what, pick, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let seen = 0;
      for (;;) {
        for (; seen < records.length; seen++) {
          const picked = pick(records[seen]!);
          if (picked !== undefined) return picked;
        }
        if (Date.now() > deadline)
          throw new Error(`${topic}: no record ${what} within ${timeoutMs} ms (${records.length} read)`);
        await sleep(20);
      }
    },
    async stop() {
      abort.abort();
      await done;
    },
  };
}

export interface ProbeResult {
  readonly tag: string;
  /** Date.now() when the probe was sent and when it ended (answer or failure). */
  readonly sentAt: number;
  readonly endedAt: number;
  /** The source the external host saw, or undefined when the probe failed (timeout, reset). */
  readonly src: string | undefined;
}

export interface ProbeLoop {
  /** Every probe's tag is `<tagPrefix>-<n>`. */
  readonly tagPrefix: string;
  readonly results: ProbeResult[];
  /** Stops sending and resolves once every probe in flight has ended. */
  stop(): Promise<ProbeResult[]>;
}

/**
 * whoami from `ns` to `dst` every `intervalMs` (default 25) with at most `maxInFlight` (default
 * 100) outstanding, each with its own tag in the external host's log. Probes stuck in an outage
 * wait out their timeout, so the cap must leave room for new ones meanwhile.
 */
export function startProbes(
  cluster: NetCluster,
  ns: string,
  dst: string,
  options: { intervalMs?: number; maxInFlight?: number; timeoutMs?: number } = {},
): ProbeLoop {
  const runTag = `pr-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const results: ProbeResult[] = [];
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let n = 0;
  const loop = (async () => {
    while (!stopped) {
      if (inFlight.size < (options.maxInFlight ?? 100)) {
        const tag = `${runTag}-${n++}`;
        const sentAt = Date.now();
        const p: Promise<void> = cluster
          .whoami(ns, dst, { timeoutMs: options.timeoutMs ?? 2000, tag })
          .then(
            (src) => void results.push({ tag, sentAt, endedAt: Date.now(), src }),
            () => void results.push({ tag, sentAt, endedAt: Date.now(), src: undefined }),
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(options.intervalMs ?? 25);
    }
  })();
  return {
    tagPrefix: runTag,
    results,
    async stop() {
      stopped = true;
      await loop;
      await Promise.all([...inFlight]);
      return [...results].sort((a, b) => a.sentAt - b.sentAt);
    },
  };
}

/** The longest interval between consecutive times (ms) within [from, to]; 0 with fewer than two. Pure. */
export function computeLongestGap(times: readonly number[], from = -Infinity, to = Infinity): number {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let longest = 0;
  for (let i = 1; i < inside.length; i++) longest = Math.max(longest, inside[i]! - inside[i - 1]!);
  return longest;
}

/** When the external host saw this loop's probes with source `src` (its own clock, ms). */
export async function selectObservedTimes(
  cluster: NetCluster,
  loop: ProbeLoop,
  src: string,
): Promise<number[]> {
  return (await cluster.observations())
    .filter((o) => o.tag?.startsWith(`${loop.tagPrefix}-`) === true && o.src === src)
    .map((o) => Date.parse(o.time));
}

/** p-th percentile (0-100) by nearest rank; NaN for no samples. Pure. */
export function computePercentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
