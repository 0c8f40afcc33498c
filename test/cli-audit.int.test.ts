// The kseip CLI (bin/kseip, a child process) on a log produced by a real scenario: startStack
// (real Kafka, real kube-apiserver, the real watcher/projector/liveness/agents, a 3-node netns
// cluster) with pods, pod churn, a second policy, an egress IP change and a gateway failover.
// Ground truth is what the network did, never what the control plane says:
//   - the external host's whoami log (cluster.observations()): which source address a tagged
//     request from a known pod arrived with, and when;
//   - the nodes' conntrack tables: which node SNATed that very connection (the reply tuple's
//     destination and port are the address and port the external host saw), i.e. the gateway.
// Probes are taken only once the dataplane has converged after each step, so the audit's answer
// at a probe's time must be exactly what was observed; the failover probes of measureFailover
// run straight through the kill and are compared as well (no traffic flows between the kill and
// the failover decision, so there is no window in which the two may differ).
// It then checks: audit egress-ip --at/--from/--to, audit pod, audit failovers against that
// truth; what-if before two policy changes against what the projector then wrote (node rules
// and gateway decisions); verify on the real log and on tampered copies (a decision produced
// into Kafka, a node-rules line and an audit-index line edited in an export); export, then every
// command (events tail/grep included) --from the file with an unreachable broker, answering byte
// for byte the same, from the file's audit index and with --replay.
// Where the network did not do what the scenario intended (a pod seen with a node's address
// while its policy covers it: a dataplane leak), the step that saw it fails and says so; the
// audit checks leave such probes out, so they still judge the CLI.
// KSEIP_CLI_AUDIT_KEEP=<path> keeps the real export (docs/cli.md's examples come from one).
// Effectful: owns the stack it starts (stopped in `after`) and a temporary directory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Partitioners, type Kafka } from 'kafkajs';
import { kafkaClient } from '../src/devenv/kafka.ts';
import {
  addSeedWorkload,
  EXTERNAL_HOST_IP,
  measureFailover,
  POOL_YAML,
  SEED,
  seedManifest,
  selectHolder,
  selectRouterMac,
  startStack,
  waitForSource,
  type FailoverResult,
  type Stack,
} from '../src/devenv/stack.ts';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import type { Observation } from '../src/devenv/netcluster.ts';
import type { NodeRules } from '../src/contracts/node-rules.ts';
import type { Decision } from '../src/contracts/decisions.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { kafkaSource } from '../src/cli/log-source.ts';
import type { LogRecord } from '../src/cli/core/log-file.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const kseipBin = path.join(root, 'bin/kseip');

const EIP_SEED = SEED.egressIP; // 198.51.100.10: the seed policy's first IP
const EIP_CHANGED = '198.51.100.11'; // the seed policy after its egress IP change
const EIP_BACKEND = '198.51.100.12'; // a second policy, by pod selector
const EGRESS_IPS = [EIP_SEED, EIP_CHANGED, EIP_BACKEND];

const backendPolicy = `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: backend, namespace: default}
spec:
  rules:
  - egressip: ${EIP_BACKEND}
    podSelector: {matchLabels: {app: backend}}
    cidr: ${EXTERNAL_HOST_IP}/32
`;

// ---- the CLI as a child process -----------------------------------------------------------------

interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

async function cli(args: readonly string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(kseipBin, [...args], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    if (typeof e.code !== 'number') throw err;
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code };
  }
}

/** Against the stack's Kafka. */
const live = (args: readonly string[]) => cli(['--brokers', stack.kafka.brokers.join(','), ...args]);
/** Against an export file, with a broker address nothing listens on: any Kafka use would fail. */
const offline = (file: string, args: readonly string[]) =>
  cli(['--brokers', '127.0.0.1:1', ...args, '--from', file]);

async function liveJson<T>(args: readonly string[]): Promise<T> {
  const r = await live([...args, '-o', 'json']);
  assert.equal(r.code, 0, `kseip ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface Interval {
  pod: string;
  podIP: string;
  node: string;
  egressIP: string;
  gateway: string;
  from: { offset: number; time: string };
  to?: { offset: number; time: string };
}

// ---- ground truth: tagged probes, the external host's log, the nodes' conntrack ------------------

interface Probe {
  readonly phase: string;
  readonly pod: string; // ns/name
  readonly podIP: string;
  readonly node: string;
  /** From the external host's log. */
  readonly time: string;
  readonly src: string;
  readonly srcPort: number;
  /** The node whose conntrack holds this connection with reply destination src:srcPort. */
  gateway: string;
}

interface CtEntry {
  node: string;
  origSrc: string;
  origDst: string;
  replyDst: string;
  replyDport: number;
}

async function conntrack(node: string): Promise<CtEntry[]> {
  const n = stack.cluster.node(node);
  const r = await stack.cluster.exec(n.ns, ['conntrack', '-L', '-p', 'tcp', '--dport', '8080']);
  if (r.code !== 0) throw new Error(`conntrack -L in ${node}: ${r.stderr}`);
  const out: CtEntry[] = [];
  for (const line of r.stdout.split('\n')) {
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (src.length < 2 || dst.length < 2 || dport.length < 2) continue;
    out.push({ node, origSrc: src[0]!, origDst: dst[0]!, replyDst: dst[1]!, replyDport: dport[1]! });
  }
  return out;
}

/** Labels probes with the node that NATed them (TIME_WAIT keeps entries for 120 s: call promptly). */
async function labelGateways(probes: Probe[]): Promise<void> {
  const entries = (await Promise.all(stack.cluster.nodes().map((n) => conntrack(n.name)))).flat();
  for (const p of probes) {
    const nodes = new Set(
      entries
        .filter(
          (e) =>
            e.origSrc === p.podIP &&
            e.origDst === EXTERNAL_HOST_IP &&
            e.replyDst === p.src &&
            e.replyDport === p.srcPort,
        )
        .map((e) => e.node),
    );
    assert.equal(
      nodes.size,
      1,
      `probe ${p.phase} ${p.pod} as ${p.src}:${p.srcPort}: NATed on ${[...nodes].join(',') || 'no node'}`,
    );
    p.gateway = [...nodes][0]!;
  }
}

const probes: Probe[] = [];
let tagSeq = 0;
/**
 * What the network did that the scenario did not intend (a pod leaving with its node's IP while
 * a policy covers it, say). Collected rather than thrown, so the audit checks still run and show
 * whether the control plane's record agrees with the network; the scenario test reports them.
 */
const problems: string[] = [];

/**
 * Waits (bounded) until every live pod is seen as the source the scenario intends, then every
 * live pod asks the external host `count` times; returns the probes of this phase.
 */
async function probePhase(phase: string, want: (pod: SimPod) => string, count = 3): Promise<Probe[]> {
  const pods = stack.sim.pods().filter((p) => !stack.cluster.node(p.node).killed);
  for (const pod of pods)
    await waitForSource(stack.cluster, pod.net.ns, EXTERNAL_HOST_IP, want(pod), 60_000).catch((err: Error) =>
      problems.push(`${phase}: ${pod.namespace}/${pod.name} on ${pod.node}: ${err.message}`),
    );
  const sent = new Map<string, SimPod>();
  for (let i = 0; i < count; i++)
    for (const pod of pods) {
      const tag = `audit-${phase}-${tagSeq++}`;
      sent.set(tag, pod);
      await stack.cluster.whoami(pod.net.ns, EXTERNAL_HOST_IP, { timeoutMs: 3000, tag });
    }
  const observed = (await stack.cluster.observations()).filter((o) => o.tag !== undefined && sent.has(o.tag));
  assert.equal(observed.length, sent.size, `${phase}: every probe is in the external host's log`);
  const out = observed.map((o) => toProbe(phase, sent.get(o.tag!)!, o));
  await labelGateways(out);
  probes.push(...out);
  return out;
}

function toProbe(phase: string, pod: SimPod, o: Observation): Probe {
  return {
    phase,
    pod: `${pod.namespace}/${pod.name}`,
    podIP: pod.net.ip,
    node: pod.node,
    time: o.time,
    src: o.src,
    srcPort: o.srcPort,
    gateway: '',
  };
}

// ---- what the projector wrote --------------------------------------------------------------------

async function readAll(topic: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  await kafkaSource(kafka).read(topic, (r) => void out.push(r));
  return out;
}

/** Per node, the projector's last node rules caused by an event at or before `offset`. */
async function nodeRulesAsOf(offset: number): Promise<Map<string, NodeRules>> {
  const latest = new Map<string, NodeRules>();
  for (const r of await readAll(TOPICS.nodeRules)) {
    const rules = r.value as NodeRules;
    if (rules.generation <= offset) latest.set(r.key ?? '', rules);
  }
  return latest;
}

/** Resolves once the projector has committed past `offset` of cluster-events (its outputs are out). */
async function waitForProjector(offset: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await waitFor(`the projector past offset ${offset}`, async () => {
      const [entry] = await admin.fetchOffsets({
        groupId: 'kseip-projector',
        topics: [TOPICS.clusterEvents],
      });
      const committed = Number(entry?.partitions[0]?.offset ?? -1);
      return committed > offset ? true : undefined;
    });
  } finally {
    await admin.disconnect();
  }
}

type Assignment = { active: string; standbys: string[]; slot: number };

/**
 * The assignments the projector's gateway decisions add up to (its recorded outputs, not a fold),
 * counting the decisions caused by events at or before `offset`.
 */
async function assignmentsAsOf(offset: number): Promise<Map<string, Assignment>> {
  const out = new Map<string, Assignment>();
  for (const r of await readAll(TOPICS.decisions)) {
    const d = r.value as Decision;
    if (d.offset > offset) continue;
    if (d.type === 'GatewayAssigned')
      out.set(d.egressIP, { active: d.active, standbys: d.standbys, slot: d.slot });
    else if (d.type === 'GatewayFailedOver')
      out.set(d.egressIP, { active: d.to, standbys: d.standbys, slot: d.slot });
    else if (d.type === 'GatewayReleased') {
      if (d.reason === 'NotInUse') out.delete(d.egressIP);
      else out.set(d.egressIP, { active: '', standbys: d.standbys, slot: d.slot });
    }
  }
  return out;
}

interface WhatIfResult {
  events: { id: string; type: string; object: { name: string } }[];
  assignments: { egressIP: string; before: Assignment | null; after: Assignment | null }[];
  nodeRules: { node: string; before: NodeRules | null; after: NodeRules | null }[];
}

interface WhatIfCheck {
  readonly name: string;
  readonly predicted: WhatIfResult;
  /** The offset what-if gave the change, and the one the watcher's event really got. */
  readonly predictedOffset: number;
  readonly actualOffset: number;
  readonly rulesBefore: Map<string, NodeRules>;
  readonly rulesAfter: Map<string, NodeRules>;
  readonly assignmentsBefore: Map<string, Assignment>;
  readonly assignmentsAfter: Map<string, Assignment>;
}

const whatIfs: WhatIfCheck[] = [];

/**
 * what-if on the live log, then the same manifest applied; records both sides for the what-if
 * test. Both sides are taken at exact log positions (node rules by generation, decisions by
 * causing offset), so a projector that lags or events that come later change nothing.
 */
async function whatIfThenApply(name: string, yaml: string, converged: () => Promise<void>): Promise<void> {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const predicted = await liveJson<WhatIfResult>(['what-if', '-f', file]);
  // what-if names its events "what-if-<offset>": the offset it gave the change.
  const predictedOffset = Number(/^what-if-(\d+)$/.exec(predicted.events[0]!.id)?.[1]);
  assert.ok(Number.isInteger(predictedOffset), predicted.events[0]!.id);
  const endAfterWhatIf = (await readAll(TOPICS.clusterEvents)).at(-1)!.offset;
  assert.ok(endAfterWhatIf >= predictedOffset - 1, 'what-if read the whole log');
  await stack.apply(yaml);
  await converged();
  const policy = predicted.events[0]!.object.name;
  const actualOffset = await waitFor(`the watcher's event for ${name}`, async () => {
    const all = await readAll(TOPICS.clusterEvents);
    return all.find(
      (r) =>
        r.offset >= predictedOffset &&
        (r.value as { type?: string }).type === 'StaticEgressIPObserved' &&
        (r.value as { object: { name: string } }).object.name === policy,
    )?.offset;
  });
  await waitForProjector(actualOffset);
  whatIfs.push({
    name,
    predicted,
    predictedOffset,
    actualOffset,
    rulesBefore: await nodeRulesAsOf(predictedOffset - 1),
    rulesAfter: await nodeRulesAsOf(actualOffset),
    assignmentsBefore: await assignmentsAsOf(predictedOffset - 1),
    assignmentsAfter: await assignmentsAsOf(actualOffset),
  });
}

/** The last offset of cluster-events once nothing was written to it for `quietMs`. */
async function quietLog(quietMs = 5_000): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const end = async () => Number((await admin.fetchTopicOffsets(TOPICS.clusterEvents))[0]!.high) - 1;
    let last = await end();
    let since = Date.now();
    return await waitFor('a quiet cluster-events log', async () => {
      const now = await end();
      if (now !== last) [last, since] = [now, Date.now()];
      return Date.now() - since >= quietMs ? now : undefined;
    });
  } finally {
    await admin.disconnect();
  }
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

// ---- comparing audit answers with the ground truth -----------------------------------------------

const at = (iv: Interval, t: string): boolean =>
  Date.parse(iv.from.time) <= Date.parse(t) &&
  (iv.to === undefined || Date.parse(iv.to.time) > Date.parse(t));

const fact = (x: { pod: string; podIP: string; node?: string; gateway: string }, ip: string): string =>
  `${x.pod} ${x.podIP}${x.node === undefined ? '' : ` on ${x.node}`} as ${ip} via ${x.gateway}`;

/**
 * Each probe against the pod's own audit history: seen as an egress IP ⇒ exactly one interval
 * at that time, with that IP, pod IP, node and gateway; seen as its node's IP ⇒ no interval.
 */
async function checkAuditPod(subset: readonly Probe[]): Promise<number> {
  let checked = 0;
  for (const pod of [...new Set(subset.map((p) => p.pod))]) {
    const { intervals } = await liveJson<{ intervals: Interval[] }>(['audit', 'pod', pod]);
    for (const p of subset.filter((x) => x.pod === pod)) {
      const now = intervals.filter((iv) => at(iv, p.time));
      const nodeIP = stack.cluster.node(p.node).ip;
      const seen = p.src === nodeIP ? [] : [fact(p, p.src)];
      assert.deepEqual(
        now.map((iv) => fact(iv, iv.egressIP)),
        seen,
        `audit pod ${pod} at ${p.time} (${p.phase}): the external host saw ${p.src} via ${p.gateway}; audit pod said:${intervals.map((iv) => `\n  ${iv.from.time} → ${iv.to?.time ?? '(now)'} ${fact(iv, iv.egressIP)}`).join('')}`,
      );
      checked++;
    }
  }
  return checked;
}

const describeProbes = (ps: readonly Probe[]): string =>
  ps.map((p) => `\n  ${p.time} ${p.pod} on ${p.node} seen as ${p.src} via ${p.gateway}`).join('');

/** When each killed node was killed: their pods cannot be asked afterwards. */
const killTimes = new Map<string, string>();

/** Observable at some point: the pod's node was alive when the interval began. */
const observable = (iv: Interval): boolean => {
  const t = killTimes.get(iv.node);
  return t === undefined || iv.from.time < t;
};

/** Observable at `time`: the pod's node was alive then. */
const observableAt =
  (time: string) =>
  (iv: Interval): boolean => {
    const t = killTimes.get(iv.node);
    return t === undefined || time < t;
  };

/** At one probe time per phase: audit egress-ip <ip> --at names exactly the pods seen as <ip>. */
async function checkAuditAt(phases: readonly string[]): Promise<void> {
  for (const phase of phases) {
    const ofPhase = probes.filter((p) => p.phase === phase);
    const t = ofPhase[Math.floor(ofPhase.length / 2)]!.time;
    for (const ip of EGRESS_IPS) {
      const { intervals } = await liveJson<{ intervals: Interval[] }>(['audit', 'egress-ip', ip, '--at', t]);
      // Pods on a dead node cannot be asked; their (correct) open intervals are left out.
      const said = new Set(intervals.filter(observableAt(t)).map((iv) => fact(iv, iv.egressIP)));
      const seen = new Set(ofPhase.filter((p) => p.src === ip).map((p) => fact(p, ip)));
      assert.deepEqual(
        [...said].sort(),
        [...seen].sort(),
        `audit egress-ip ${ip} --at ${t} (${phase}); the external host saw:${describeProbes(ofPhase)}`,
      );
    }
  }
}

/** audit egress-ip <ip> --from/--to over a span of phases: the set of (pod, gateway) seen then. */
async function checkAuditWindow(ip: string, fromPhase: string, toPhase: string): Promise<void> {
  const phases = [...new Set(probes.map((p) => p.phase))];
  const span = phases.slice(phases.indexOf(fromPhase), phases.indexOf(toPhase) + 1);
  const inSpan = probes.filter((p) => span.includes(p.phase));
  const from = inSpan[0]!.time;
  const to = inSpan.at(-1)!.time;
  const { intervals } = await liveJson<{ intervals: Interval[] }>([
    'audit',
    'egress-ip',
    ip,
    '--from',
    from,
    '--to',
    to,
  ]);
  const said = new Set(intervals.filter(observable).map((iv) => fact(iv, iv.egressIP)));
  const seen = new Set(inSpan.filter((p) => p.src === ip).map((p) => fact(p, ip)));
  assert.deepEqual(
    [...said].sort(),
    [...seen].sort(),
    `audit egress-ip ${ip} --from ${from} --to ${to}; the external host saw:${describeProbes(inSpan)}`,
  );
}

// ---- the scenario ----------------------------------------------------------------------------------

let stack: Stack;
let kafka: Kafka;
let dir: string;
let failover: (FailoverResult & { killedIso: string; firstAfter: string }) | undefined;

void describe('kseip on the log of a real scenario', () => {
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'kseip-cli-audit-'));
    stack = await startStack();
    process.once('exit', () => stack.killAllSync());
    kafka = kafkaClient(stack.kafka.brokers, 'cli-audit-int-test');
  });

  after(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('scenario: pods, pod churn, a second policy and an egress IP change (each after what-if)', async () => {
    const nodeIP = (pod: SimPod): string => stack.cluster.node(pod.node).ip;
    const work = await addSeedWorkload(stack);
    await stack.apply(POOL_YAML);
    await stack.apply(seedManifest());
    const frontend = (pod: SimPod): boolean => pod.name.startsWith('frontend-');
    await probePhase('seed', (p) => (frontend(p) ? EIP_SEED : nodeIP(p)));

    // Pod churn: a new selected pod on node 3, frontend-2 gone.
    const node3 = stack.cluster.nodes()[2]!.name;
    await stack.sim.addPod(node3, 'frontend-3', { labels: { app: 'frontend' } });
    await stack.sim.removePod('frontend-2');
    await probePhase('churn', (p) => (frontend(p) ? EIP_SEED : nodeIP(p)));

    const other = work.other;
    await whatIfThenApply('backend-policy', backendPolicy, () =>
      waitForSource(stack.cluster, other.net.ns, EXTERNAL_HOST_IP, EIP_BACKEND).then(() => undefined),
    );
    await probePhase('backend-policy', (p) => (frontend(p) ? EIP_SEED : EIP_BACKEND));

    await whatIfThenApply('egress-ip-change', seedManifest(EIP_CHANGED), async () => {
      for (const pod of stack.sim.pods().filter(frontend))
        await waitForSource(stack.cluster, pod.net.ns, EXTERNAL_HOST_IP, EIP_CHANGED);
    });
    await probePhase('egress-ip-change', (p) => (frontend(p) ? EIP_CHANGED : EIP_BACKEND));

    assert.deepEqual(problems, [], 'the network did what the scenario intended');
  });

  void test('what-if predicted exactly the node rules and gateway assignments the projector then wrote', () => {
    assert.equal(whatIfs.length, 2, 'both what-if steps ran');
    for (const w of whatIfs) {
      // Generations are cluster-events offsets: what-if places the change right after the log it
      // read; the watcher's event lands there unless something else was written in between.
      const norm = (r: NodeRules | null | undefined, offset: number) =>
        r === null || r === undefined
          ? null
          : { ...r, generation: r.generation === offset ? 'change' : r.generation };
      const changed = new Set(w.predicted.nodeRules.map((d) => d.node));
      assert.ok(changed.size > 0, `${w.name}: what-if predicts some node rules change`);
      for (const d of w.predicted.nodeRules) {
        assert.deepEqual(d.before, w.rulesBefore.get(d.node) ?? null, `${w.name}: rules of ${d.node} before`);
        assert.deepEqual(
          norm(d.after, w.predictedOffset),
          norm(w.rulesAfter.get(d.node), w.actualOffset),
          `${w.name}: rules of ${d.node} after, as predicted`,
        );
      }
      for (const [node, rules] of w.rulesAfter)
        if (!changed.has(node))
          assert.deepEqual(
            rules,
            w.rulesBefore.get(node),
            `${w.name}: ${node}'s rules did not change, as predicted`,
          );
      const ips = new Set([...w.assignmentsBefore.keys(), ...w.assignmentsAfter.keys()]);
      const predictedIPs = new Set(w.predicted.assignments.map((a) => a.egressIP));
      for (const ip of ips) {
        const p = w.predicted.assignments.find((a) => a.egressIP === ip);
        const before = w.assignmentsBefore.get(ip) ?? null;
        const after = w.assignmentsAfter.get(ip) ?? null;
        if (p === undefined) assert.deepEqual(after, before, `${w.name}: ${ip} unchanged, as predicted`);
        else {
          assert.deepEqual(p.before, before, `${w.name}: ${ip} before`);
          assert.deepEqual(p.after, after, `${w.name}: ${ip} after, as predicted`);
        }
      }
      for (const ip of predictedIPs) assert.ok(ips.has(ip), `${w.name}: predicted ${ip} is real`);
    }
    // And the dataplane agrees: the predicted gateway of each new egress IP is the node that NATs it.
    for (const [name, ip, phase] of [
      ['backend-policy', EIP_BACKEND, 'backend-policy'],
      ['egress-ip-change', EIP_CHANGED, 'egress-ip-change'],
    ] as const) {
      const predicted = whatIfs
        .find((w) => w.name === name)!
        .predicted.assignments.find((a) => a.egressIP === ip);
      const natted = new Set(probes.filter((p) => p.phase === phase && p.src === ip).map((p) => p.gateway));
      assert.deepEqual([...natted], [predicted?.after?.active], `${name}: ${ip} NATed where what-if said`);
    }
  });

  void test('audit before the failover: egress-ip --at/--from/--to and pod match the external host', async () => {
    const phases = ['seed', 'churn', 'backend-policy', 'egress-ip-change'];
    await checkAuditAt(phases);
    await checkAuditWindow(EIP_SEED, 'seed', 'churn');
    await checkAuditWindow(EIP_SEED, 'seed', 'egress-ip-change');
    await checkAuditWindow(EIP_CHANGED, 'backend-policy', 'egress-ip-change');
    // A window after the change: nobody left as the old IP any more.
    const last = probes.filter((p) => p.phase === 'egress-ip-change');
    const { intervals } = await liveJson<{ intervals: Interval[] }>([
      'audit',
      'egress-ip',
      EIP_SEED,
      '--from',
      last[0]!.time,
      '--to',
      last.at(-1)!.time,
    ]);
    assert.deepEqual(intervals, [], `nobody is ${EIP_SEED} after the change`);
    const checked = await checkAuditPod(probes);
    assert.ok(checked >= 30, `${checked} probes checked`);
    // frontend-2 was deleted: its history ends.
    const { intervals: f2 } = await liveJson<{ intervals: Interval[] }>([
      'audit',
      'pod',
      'default/frontend-2',
    ]);
    assert.ok(
      f2.length > 0 && f2.every((iv) => iv.to !== undefined),
      'frontend-2 left as the egress IP, then stopped',
    );
  });

  void test('failover: the gateway of the changed egress IP is killed, traffic comes back through another node', async () => {
    const oldGateway = await selectHolder(stack.cluster, EIP_CHANGED);
    assert.ok(oldGateway !== undefined, `a node holds ${EIP_CHANGED}`);
    const prober = stack.sim.pods().find((p) => p.name.startsWith('frontend-') && p.node !== oldGateway.name);
    assert.ok(prober !== undefined, 'a selected pod off the gateway probes');
    const seenBefore = (await stack.cluster.observations()).length;
    const result = await measureFailover(stack, prober.net.ns, EIP_CHANGED, oldGateway);
    const killedIso = new Date(result.killedAt).toISOString();
    killTimes.set(oldGateway.name, killedIso);
    // measureFailover's own probes (tags fo-…) are ground truth too, through the kill.
    const fo = (await stack.cluster.observations())
      .slice(seenBefore)
      .filter((o) => o.tag?.startsWith('fo-') === true)
      .map((o) => toProbe('failover', prober, o));
    await labelGateways(fo);
    // The pod stays selected throughout: any other source is a leak (the director must drop
    // while no gateway holds the IP, never let traffic out with a node's address). Leaks are the
    // dataplane's failure, reported here; the audit checks leave them out.
    const leaked = fo.filter((p) => p.src !== EIP_CHANGED);
    for (const p of leaked)
      problems.push(`failover: ${p.pod} seen as ${p.src} (NATed on ${p.gateway}) at ${p.time}: leaked`);
    probes.push(...fo.filter((p) => p.src === EIP_CHANGED));
    const after = fo.filter((p) => p.gateway !== oldGateway.name && p.src === EIP_CHANGED);
    assert.ok(after.length > 0, 'replies through a new gateway');
    failover = { ...result, killedIso, firstAfter: after[0]!.time };
    process.stdout.write(
      `# failover ${result.oldGateway} → ${result.newGateway}: gap ${Math.round(result.gapMs)} ms, ` +
        `${fo.length} probes answered, ${leaked.length} leaked\n`,
    );
    assert.equal(result.newGateway, after[0]!.gateway, 'the new holder NATs the traffic');
    await probePhase('after-failover', (p) => (p.name.startsWith('frontend-') ? EIP_CHANGED : EIP_BACKEND));
    assert.deepEqual(problems, [], 'the network did what the scenario intended');
    const newNode = stack.cluster.node(result.newGateway);
    assert.equal(
      await selectRouterMac(stack.cluster, EIP_CHANGED),
      newNode.uplinkMac,
      'the router moved to the new gateway',
    );
  });

  void test('audit across the failover matches the external host; audit failovers names the change', async () => {
    assert.ok(failover !== undefined, 'the failover step succeeded');
    await checkAuditAt(['after-failover']);
    await checkAuditPod(probes.filter((p) => p.phase === 'failover' || p.phase === 'after-failover'));
    await checkAuditWindow(EIP_CHANGED, 'egress-ip-change', 'after-failover');

    const { decisions } = await liveJson<{
      decisions: (Decision & { time: string })[];
    }>(['audit', 'failovers', '--ip', EIP_CHANGED]);
    const fos = decisions.filter((d) => d.type === 'GatewayFailedOver');
    assert.equal(fos.length, 1, JSON.stringify(decisions));
    const d = fos[0]!;
    assert.ok(d.type === 'GatewayFailedOver');
    assert.equal(d.from, failover.oldGateway);
    assert.equal(d.to, failover.newGateway);
    assert.equal(d.reason, 'NodeLost');
    assert.ok(
      failover.killedIso <= d.time && d.time <= failover.firstAfter,
      `failover decided at ${d.time}, killed at ${failover.killedIso}, first reply via the new gateway at ${failover.firstAfter}`,
    );
    const first = decisions[0]!;
    assert.ok(first.type === 'GatewayAssigned');
    const natBefore = new Set(
      probes.filter((p) => p.phase === 'egress-ip-change' && p.src === EIP_CHANGED).map((p) => p.gateway),
    );
    assert.deepEqual(
      [...natBefore],
      [first.active],
      'the first assignment is the node that NATed before the kill',
    );
    // The old IP was released when the policy moved off it.
    const seedDecisions = (
      await liveJson<{ decisions: (Decision & { time: string })[] }>(['audit', 'failovers', '--ip', EIP_SEED])
    ).decisions;
    const released = seedDecisions.at(-1)!;
    assert.ok(
      released.type === 'GatewayReleased' && released.reason === 'NotInUse',
      JSON.stringify(released),
    );
    const lastSeed = probes.filter((p) => p.src === EIP_SEED).at(-1)!.time;
    const firstChanged = probes.find((p) => p.src === EIP_CHANGED)!.time;
    assert.ok(lastSeed < released.time && released.time < firstChanged, `released at ${released.time}`);
  });

  void test('export, then every command --from the file answers the same without Kafka', async () => {
    // Kafka and the file must hold the same log: export once the log is quiet, and check at the
    // end that it still ends where it did.
    const end = await quietLog();
    const file = path.join(dir, 'export.jsonl');
    const ex = await live(['export', '--to', file]);
    // KSEIP_CLI_AUDIT_KEEP=<path>: keep this real export (docs/cli.md's examples come from one).
    if (process.env.KSEIP_CLI_AUDIT_KEEP !== undefined) copyFileSync(file, process.env.KSEIP_CLI_AUDIT_KEEP);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, /kseip\.cluster-events\.v1 +\d+\n/);
    assert.match(ex.stdout, /audit index +\d+ intervals, \d+ gateway decisions/);
    const pods = [...new Set(probes.map((p) => p.pod))];
    const t = probes.filter((p) => p.phase === 'churn')[0]!.time;
    const commands: string[][] = [
      ['replay'],
      ['replay', '-o', 'json'],
      ['replay', '--until', t],
      ...EGRESS_IPS.flatMap((ip) => [
        ['audit', 'egress-ip', ip],
        ['audit', 'egress-ip', ip, '--at', t, '-o', 'json'],
        ['audit', 'egress-ip', ip, '--since', probes[0]!.time, '--to', t],
      ]),
      ...pods.flatMap((p) => [
        ['audit', 'pod', p, '-o', 'json'],
        ['explain', 'pod', p],
      ]),
      ['audit', 'failovers'],
      ['audit', 'failovers', '--ip', EIP_CHANGED, '-o', 'json'],
      ['what-if', '-f', path.join(dir, 'backend-policy.yaml'), '-o', 'json'],
      ['events', 'tail', '--from-beginning', '--kind', 'Pod,StaticEgressIP'],
      ['events', 'tail', '--topic', 'decisions', '--type', 'GatewayFailedOver', '--from-beginning'],
      ['events', 'grep', EIP_CHANGED.replace(/\./g, '\\.'), '--topic', 'node-rules', '-o', 'json'],
      ['events', 'grep', 'frontend-3', '--since', probes[0]!.time],
    ];
    // audit answers from the export's index, and by replaying the file (--replay): both as Kafka.
    const replayed = commands.filter((c) => c[0] === 'audit').map((c) => [...c, '--replay']);
    for (const args of [...commands, ...replayed]) {
      const a = await live(args.filter((x) => x !== '--replay'));
      const b = await offline(file, args);
      assert.equal(b.code, a.code, `kseip ${args.join(' ')}: exit codes (${b.stderr})`);
      assert.equal(b.stdout, a.stdout, `kseip ${args.join(' ')}: same answer from the file`);
    }
    // The window start as --from <time> next to --from <file>.
    const w = await offline(file, [
      'audit',
      'egress-ip',
      EIP_SEED,
      '--from',
      probes[0]!.time,
      '--to',
      t,
      '-o',
      'json',
    ]);
    const k = await live([
      'audit',
      'egress-ip',
      EIP_SEED,
      '--from',
      probes[0]!.time,
      '--to',
      t,
      '-o',
      'json',
    ]);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout, k.stdout);
    // verify on both: the file's also checks its audit index against the replay.
    const vk = await live(['verify', '-o', 'json']);
    const vf = await offline(file, ['verify', '-o', 'json']);
    assert.equal(vk.code, 0, vk.stdout);
    assert.equal(vf.code, 0, vf.stdout);
    const { auditIndex, ...rest } = JSON.parse(vf.stdout) as { auditIndex?: { intervals: number } };
    assert.deepEqual(rest, JSON.parse(vk.stdout));
    assert.ok((auditIndex?.intervals ?? 0) > 0, 'the export carries a verified audit index');
    assert.equal(await quietLog(0), end, 'nothing was written to cluster-events meanwhile');
  });

  void test('verify passes on the real log and finds a tampered record (Kafka and an export)', async () => {
    const ok = await live(['verify']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^ok: \d+ events replayed; \d+ decisions and \d+ node-rules records match/);

    // An export with one node-rules record edited: a pod IP that never was there.
    const file = path.join(dir, 'export-for-tamper.jsonl');
    assert.equal((await live(['export', '--to', file])).code, 0);
    const lines = readFileSync(file, 'utf8').split('\n');
    const victim = lines.findIndex(
      (l) => l.startsWith(`{"topic":"${TOPICS.nodeRules}"`) && l.includes('"podIPs":["10.'),
    );
    assert.ok(victim >= 0, 'a node-rules record steering a pod');
    const rec = JSON.parse(lines[victim]!) as LogRecord & { value: NodeRules };
    const steer = rec.value.steers.find((s) => s.podIPs.length > 0)!;
    steer.podIPs = [...steer.podIPs, '10.244.99.99'];
    lines[victim] = JSON.stringify(rec);
    const bad = path.join(dir, 'tampered.jsonl');
    writeFileSync(bad, lines.join('\n'));
    const vf = await offline(bad, ['verify']);
    assert.equal(vf.code, 3, vf.stdout + vf.stderr);
    assert.match(
      vf.stdout,
      new RegExp(
        `^DIVERGENCE at ${TOPICS.nodeRules.replace(/\./g, '\\.')} offset ${rec.offset} key ${rec.key}: `,
      ),
    );
    assert.match(vf.stdout, /10\.244\.99\.99/);
    assert.equal((await offline(file, ['verify'])).code, 0, 'the untouched export verifies');

    // The export's audit index with one gateway changed in place (same length: offsets hold).
    const indexLine = lines.findIndex((l) => l.startsWith('{"index":"audit","interval":'));
    assert.ok(indexLine >= 0, 'the export has an audit index');
    const original = readFileSync(file, 'utf8').split('\n');
    const forgedIndex = original[indexLine]!.replace(
      /"gateway":"node(\d)"/,
      (_m, n: string) => `"gateway":"node${n === '1' ? '2' : '1'}"`,
    );
    assert.notEqual(forgedIndex, original[indexLine]);
    original[indexLine] = forgedIndex;
    const badIndex = path.join(dir, 'tampered-index.jsonl');
    writeFileSync(badIndex, original.join('\n'));
    const vi = await offline(badIndex, ['verify']);
    assert.equal(vi.code, 3, vi.stdout + vi.stderr);
    const firstIndexLine = original.findIndex((l) => l.startsWith('{"index":'));
    assert.match(
      vi.stdout,
      new RegExp(`^DIVERGENCE at audit index line ${indexLine - firstIndexLine + 1}: `),
    );
    // …and audit answers from that file say what the forged index says until --replay is asked for:
    // which is why verify checks the index.
    const pod = (JSON.parse(forgedIndex) as { interval: Interval }).interval.pod;
    const fromIndex = await offline(badIndex, ['audit', 'pod', pod, '-o', 'json']);
    const replayed = await offline(badIndex, ['audit', 'pod', pod, '-o', 'json', '--replay']);
    assert.notEqual(fromIndex.stdout, replayed.stdout);

    // A forged decision produced into Kafka: a failover that never happened.
    const decisions = await readAll(TOPICS.decisions);
    const forged = {
      ...(decisions.at(-1)!.value as Record<string, unknown>),
      type: 'GatewayFailedOver',
      from: 'node-1',
      to: 'node-evil',
      reason: 'NodeLost',
    };
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const [sent] = await producer.send({
      topic: TOPICS.decisions,
      acks: -1,
      messages: [{ key: EIP_CHANGED, value: JSON.stringify(forged) }],
    });
    await producer.disconnect();
    const forgedOffset = Number(sent!.baseOffset);
    const vk = await live(['verify']);
    assert.equal(vk.code, 3, vk.stdout + vk.stderr);
    assert.match(
      vk.stdout,
      new RegExp(`^DIVERGENCE at ${TOPICS.decisions.replace(/\./g, '\\.')} offset ${forgedOffset} `),
    );
    assert.match(vk.stdout, /node-evil/);
    assert.match(vk.stderr, /divergence at kseip\.decisions\.v1 offset \d+/);
  });
});
