// Benchmark of the whole path (not a test; budgets live here, never in tests). Effectful: starts
// the full dev stack (src/devenv/stack.ts: Kafka, kube-apiserver, a 3-node netns cluster, the
// control plane and an agent per node as processes), and measures, each over --runs runs:
//   - CR apply → programmed on all nodes: from just before the API request that creates a
//     StaticEgressIP to the last ack of the nodes it involves (directors and gateway);
//   - new pod → programmed on its node: from just before the status patch that gives the pod its
//     IP (what a kubelet reports) to its node's ack;
//   - failover: last reply via the old gateway → first via the new one, on the external host's
//     clock (measureFailover: the gateway node is cut off and its agent killed; it is revived
//     between runs and takes its IP back);
//   - iperf3 throughput pod → director → tunnel → gateway → external vs node → external (the
//     issue's baseline) and vs a pod no policy selects (CNI masquerade), alternately in one run.
// "Programmed" = the node's agent acknowledged on kseip.node-status.v1 (ok) a generation at least
// the first kseip.node-rules.v1 generation for that node that contains the change; the time is
// the ack's appliedAt (the agent's wall clock, this machine's). The first CR run is also checked
// from outside: the external host sees the egress IP from every selected pod.
// Run: npm run bench:e2e [-- --runs 10 --iperf-seconds 3]   (root: network namespaces)
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { decodeClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeNodeApplyStatus } from '../src/contracts/node-reports.ts';
import { decodeNodeRules, type NodeRules } from '../src/contracts/node-rules.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import {
  addSeedWorkload,
  computePercentile,
  EXTERNAL_HOST_IP,
  followRecords,
  measureFailover,
  POOL_YAML,
  reviveNode,
  SEED,
  seedManifest,
  selectHolder,
  selectHolders,
  selectRouterMac,
  startStack,
  waitForSource,
  type Stack,
} from '../src/devenv/stack.ts';
import {
  computeStages,
  measurePolicyRun,
  ms,
  seedServicePolicies,
  say,
  sayStages,
  waitAcks,
  waitRules,
  type Followers,
  type Timed,
} from './e2e-programmed.ts';
import { benchRealNodes } from './e2e-real-nodes.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    'iperf-seconds': { type: 'string', default: '3' },
    // Then the same measurements on the real-node cluster, printed next to these.
    'real-nodes': { type: 'boolean', default: false },
    // Each real-node failover kills a node container and adds a new one (~30 s a run).
    'real-failover-runs': { type: 'string', default: '3' },
  },
});
const REAL_NODES = values['real-nodes'];
const REAL_FAILOVER_RUNS = Number(values['real-failover-runs']);
const RUNS = Number(values.runs);
const IPERF_SECONDS = Number(values['iperf-seconds']);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer`);

let stack: Stack | undefined;
let stopping: Promise<void> | undefined;
const cleanup = (): Promise<void> => (stopping ??= stack?.stop() ?? Promise.resolve());
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => void cleanup().finally(() => process.exit(130)));

// ---- the measurements --------------------------------------------------------------------------

async function benchPolicyApply(s: Stack, f: Followers, selected: readonly SimPod[]): Promise<Timed> {
  const policies = seedServicePolicies(s.kube.kubeConfig);
  const directors = new Set(selected.map((p) => p.node));
  const out: Timed = { samples: [], stages: [] };
  for (let run = 0; run < RUNS; run++) {
    const ip = `198.51.100.${20 + run}`;
    await measurePolicyRun(
      f,
      policies,
      directors,
      { name: `bench-${run}`, ip, cidr: SEED.destination },
      out,
      async () => {
        if (run > 0) return;
        for (const pod of selected) await waitForSource(s.cluster, pod.net.ns, EXTERNAL_HOST_IP, ip, 10_000);
      },
    );
  }
  return out;
}

async function benchNewPod(s: Stack, f: Followers): Promise<Timed> {
  const nodes = s.cluster.nodes();
  const out: Timed = { samples: [], stages: [] };
  for (let run = 0; run < RUNS; run++) {
    const node = nodes[run % nodes.length]!;
    const from = f.rules.records.length;
    let t0 = 0;
    const pod = await s.sim.addPod(node.name, `bench-pod-${run}`, {
      labels: { app: 'frontend' },
      beforeReady: () => (t0 = Date.now()),
    });
    const steered = (r: NodeRules): boolean => r.steers.some((st) => st.podIPs.includes(pod.net.ip));
    const records = await waitRules(
      f,
      from,
      (r) => r.node === node.name && steered(r),
      (found) => found.has(node.name),
      `pod ${pod.name}`,
    );
    const ack = (await waitAcks(f, records)).get(node.name)!;
    out.samples.push(Date.parse(ack.appliedAt) - t0);
    out.stages.push(await computeStages(f, t0, records.get(node.name)!, ack));

    const beforeDelete = f.rules.records.length;
    await s.sim.removePod(pod.name);
    const cleared = await waitRules(
      f,
      beforeDelete,
      (r) => r.node === node.name && !steered(r),
      (found) => found.has(node.name),
      `pod ${pod.name} removed`,
    );
    await waitAcks(f, cleared);
  }
  return out;
}

/** Where a failover's time went: kill → NodeLost → node-rules → applied → first reply. */
interface FailoverStages {
  /** Off the network → liveness' NodeLost in the log (its Kafka timestamp). */
  readonly detection: number;
  /** NodeLost → the new gateway's node-rules record. */
  readonly projector: number;
  /** That record → the new gateway's agent acked it (pickup and apply). */
  readonly agent: number;
  /** Applied → the first reply via the new gateway (gratuitous ARP, the probe's own timing). */
  readonly announce: number;
}

async function benchFailover(
  s: Stack,
  f: Followers,
  selected: readonly SimPod[],
): Promise<{ samples: number[]; stages: FailoverStages[] }> {
  const out = { samples: [] as number[], stages: [] as FailoverStages[] };
  for (let run = 0; run < RUNS; run++) {
    const old = await selectHolder(s.cluster, SEED.egressIP);
    if (old === undefined) throw new Error(`no node holds ${SEED.egressIP}`);
    const probe = selected.find((p) => p.node !== old.name);
    if (probe === undefined) throw new Error(`no selected pod off the gateway ${old.name}`);
    const fromEvent = f.events.records.at(-1)?.offset ?? -1;
    const result = await measureFailover(s, probe.net.ns, SEED.egressIP, old);
    if (result.probesLeaked > 0) throw new Error(`${result.probesLeaked} probes left with another source`);
    out.samples.push(result.gapMs);
    const lost = await f.events.waitFor(`NodeLost of ${old.name}`, (r) =>
      r.offset > fromEvent && r.value.type === 'NodeLost' && r.value.object.name === old.name ? r : undefined,
    );
    const fresh = result.newGateway ?? '';
    const rules = await f.rules.waitFor(`node-rules of ${fresh} holding ${SEED.egressIP}`, (r) =>
      r.value.node === fresh &&
      r.value.generation >= lost.offset &&
      r.value.egressIPs.some((e) => e.egressIP === SEED.egressIP)
        ? r
        : undefined,
    );
    const ack = (await waitAcks(f, new Map([[fresh, rules]]))).get(fresh)!;
    const appliedAt = Date.parse(ack.appliedAt);
    out.stages.push({
      detection: lost.timestamp - result.killedAt,
      projector: rules.timestamp - lost.timestamp,
      agent: appliedAt - rules.timestamp,
      announce: result.firstReplyAt - appliedAt,
    });
    say(`    run ${run + 1}: ${old.name} → ${fresh || '?'} ${ms(result.gapMs)}`);
    // Back for the next run: the old gateway ranks first and takes its IP back (Preempted).
    await reviveNode(s, old.name);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const holders = await selectHolders(s.cluster, SEED.egressIP);
      const mac = await selectRouterMac(s.cluster, SEED.egressIP);
      if (holders.length === 1 && holders[0]!.name === old.name && mac === old.uplinkMac) break;
      if (Date.now() > deadline) throw new Error(`${SEED.egressIP} did not settle on ${old.name} again`);
      await sleep(100);
    }
    await sleep(1000);
  }
  return out;
}

async function iperf3(s: Stack, ns: string, port: number): Promise<number> {
  const r = await s.cluster.exec(
    ns,
    ['iperf3', '-c', EXTERNAL_HOST_IP, '-p', String(port), '-t', String(IPERF_SECONDS), '-O', '1', '-J'],
    { timeoutMs: (IPERF_SECONDS + 20) * 1000 },
  );
  const json = JSON.parse(r.stdout || '{}') as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number } };
  };
  const bps = json.end?.sum_received?.bits_per_second;
  if (r.code !== 0 || bps === undefined)
    throw new Error(`iperf3 from ${ns} failed (${r.code}): ${json.error ?? r.stderr.slice(-500)}`);
  return bps;
}

interface Throughput {
  readonly gateway: number[];
  readonly direct: number[];
  readonly unselected: number[];
  /** gateway / direct and gateway / unselected pod, per run. */
  readonly ratio: number[];
  readonly ratioToPod: number[];
}

async function benchThroughput(s: Stack, selected: readonly SimPod[], other: SimPod): Promise<Throughput> {
  const holder = await selectHolder(s.cluster, SEED.egressIP);
  const pod = selected.find((p) => p.node === other.node && p.node !== holder?.name);
  if (holder === undefined || pod === undefined)
    throw new Error(`no gateway, or no selected pod next to ${other.name} off the gateway`);
  const node = s.cluster.node(pod.node);
  say(`    gateway path: ${pod.name} on ${node.name} → tunnel → ${holder.name} (SNAT) → external`);
  say(`    direct path:  ${node.name} itself → external (the issue's baseline)`);
  say(`    pod path:     ${other.name} (not selected) on ${node.name} → CNI masquerade → external`);
  const server = await s.cluster.startIperf3();
  const out: Throughput = { gateway: [], direct: [], unselected: [], ratio: [], ratioToPod: [] };
  try {
    for (let run = 0; run < RUNS; run++) {
      const viaGateway = await iperf3(s, pod.net.ns, server.port);
      const direct = await iperf3(s, node.ns, server.port);
      const unselected = await iperf3(s, other.net.ns, server.port);
      out.gateway.push(viaGateway / 1e6);
      out.direct.push(direct / 1e6);
      out.unselected.push(unselected / 1e6);
      out.ratio.push(viaGateway / direct);
      out.ratioToPod.push(viaGateway / unselected);
    }
  } finally {
    await server.stop();
  }
  return out;
}

// ---- report ------------------------------------------------------------------------------------

interface Row {
  readonly what: string;
  readonly samples: readonly number[];
  readonly unit: (v: number) => string;
  readonly budget: string;
  readonly pass: boolean;
  /** For throughput, the tail that matters is the low one. */
  readonly lowIsBad?: boolean;
}

function report(rows: readonly Row[]): void {
  say();
  say(
    `${'measurement'.padEnd(44)}${'runs'.padStart(5)}${'p50'.padStart(12)}${'p99'.padStart(12)}   ${'budget'.padEnd(24)}verdict`,
  );
  for (const r of rows) {
    const p50 = computePercentile(r.samples, 50);
    const p99 = r.lowIsBad ? computePercentile(r.samples, 1) : computePercentile(r.samples, 99);
    say(
      `${r.what.padEnd(44)}${String(r.samples.length).padStart(5)}${r.unit(p50).padStart(12)}${r.unit(p99).padStart(12)}   ${r.budget.padEnd(24)}${r.pass ? 'PASS' : 'OVER'}`,
    );
  }
  say('(throughput rows: p99 is the low tail, i.e. the 1st percentile)');
}

async function main(): Promise<void> {
  const began = Date.now();
  say(`e2e benchmark: ${RUNS} runs each; full stack on this machine (load average ${loadAverage()})`);
  stack = await startStack({ log: pino({ level: 'error' }) });
  const s = stack;
  const f: Followers = {
    events: followRecords(s, TOPICS.clusterEvents, decodeClusterEvent),
    rules: followRecords(s, TOPICS.nodeRules, decodeNodeRules),
    acks: followRecords(s, TOPICS.nodeStatus, decodeNodeApplyStatus),
  };
  try {
    const work = await addSeedWorkload(s);
    await s.apply(POOL_YAML);
    // Let the pods and the pool settle into the log first, so the first run measures the policy.
    await sleep(2000);

    say('\n1. CR apply → programmed on all nodes (node-status acks)');
    const policyRuns = await benchPolicyApply(s, f, work.selected);
    const policy = policyRuns.samples;
    say(`    samples: ${policy.map(ms).join(', ')}`);
    sayStages(policyRuns.stages);

    await s.apply(seedManifest());
    for (const pod of work.selected)
      await waitForSource(s.cluster, pod.net.ns, EXTERNAL_HOST_IP, SEED.egressIP, 60_000);

    say('\n2. new pod → programmed on its node (node-status ack)');
    const podRuns = await benchNewPod(s, f);
    const pod = podRuns.samples;
    say(`    samples: ${pod.map(ms).join(', ')}`);
    sayStages(podRuns.stages);

    say('\n3. iperf3, pod → gateway → external vs node → external, alternately');
    const tp = await benchThroughput(s, work.selected, work.other);
    say(`    gateway Mbit/s: ${tp.gateway.map((v) => v.toFixed(0)).join(', ')}`);
    say(`    direct  Mbit/s: ${tp.direct.map((v) => v.toFixed(0)).join(', ')}`);
    say(`    pod     Mbit/s: ${tp.unselected.map((v) => v.toFixed(0)).join(', ')}`);

    say('\n4. failover (last reply via the old gateway → first via the new one)');
    const failoverRuns = await benchFailover(s, f, work.selected);
    const failover = failoverRuns.samples;
    const fp50 = (pick: (x: FailoverStages) => number): string =>
      ms(computePercentile(failoverRuns.stages.map(pick), 50));
    say(
      `    p50 by stage: kill → NodeLost ${fp50((x) => x.detection)} · projector ${fp50((x) => x.projector)} · ` +
        `agent ${fp50((x) => x.agent)} · applied → first reply ${fp50((x) => x.announce)}`,
    );

    const mbit = (v: number): string => `${v.toFixed(0)} Mb/s`;
    const pct = (v: number): string => `${(v * 100).toFixed(0)} %`;
    report([
      {
        what: 'CR apply → programmed on all nodes',
        samples: policy,
        unit: ms,
        budget: 'p99 < 300 ms',
        pass: computePercentile(policy, 99) < 300,
      },
      {
        what: 'new pod → programmed on its node',
        samples: pod,
        unit: ms,
        budget: 'p99 < 200 ms',
        pass: computePercentile(pod, 99) < 200,
      },
      {
        what: 'failover (traffic gap)',
        samples: failover,
        unit: ms,
        budget: 'p99 < 1000 ms',
        pass: computePercentile(failover, 99) < 1000,
      },
      {
        what: 'throughput pod → gateway → external',
        samples: tp.gateway,
        unit: mbit,
        budget: 'reported',
        pass: true,
        lowIsBad: true,
      },
      {
        what: 'throughput node → external (direct)',
        samples: tp.direct,
        unit: mbit,
        budget: 'baseline',
        pass: true,
        lowIsBad: true,
      },
      {
        what: 'throughput unselected pod → external',
        samples: tp.unselected,
        unit: mbit,
        budget: 'reported',
        pass: true,
        lowIsBad: true,
      },
      {
        what: 'gateway / unselected pod, per run',
        samples: tp.ratioToPod,
        unit: pct,
        budget: 'reported',
        pass: true,
        lowIsBad: true,
      },
      {
        what: 'gateway / direct, per run',
        samples: tp.ratio,
        unit: pct,
        budget: 'p50 ≥ 90 % of direct',
        pass: computePercentile(tp.ratio, 50) >= 0.9,
        lowIsBad: true,
      },
    ]);
    if (REAL_NODES) {
      await f.events.stop();
      await f.rules.stop();
      await f.acks.stop();
      await cleanup();
      const real = await benchRealNodes(RUNS, REAL_FAILOVER_RUNS);
      reportSideBySide([
        ['CR apply → programmed on all nodes', policy, real.policy.samples, 'p99 < 300 ms'],
        ['new pod → programmed on its node', pod, real.pod.samples, 'p99 < 200 ms'],
        ['failover (traffic gap)', failover, real.failover, 'p99 < 1000 ms'],
      ]);
    }
    say(`\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s; load average now ${loadAverage()}`);
  } finally {
    await f.events.stop();
    await f.rules.stop();
    await f.acks.stop();
  }
}

/** The netns stack's and the real-node cluster's figures of one run, next to each other. */
function reportSideBySide(rows: readonly [string, readonly number[], readonly number[], string][]): void {
  say();
  say(
    `${'measurement'.padEnd(38)}${'netns p50/p99 (n)'.padStart(24)}${'real nodes p50/p99 (n)'.padStart(28)}   budget`,
  );
  const cell = (v: readonly number[]): string =>
    `${ms(computePercentile(v, 50))} / ${ms(computePercentile(v, 99))} (${v.length})`;
  for (const [what, netns, real, budget] of rows) {
    say(`${what.padEnd(38)}${cell(netns).padStart(24)}${cell(real).padStart(28)}   ${budget}`);
  }
}

function loadAverage(): string {
  return loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
}

try {
  await main();
  await cleanup();
  process.exit(0);
} catch (err) {
  process.stderr.write(
    `e2e bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  if (stack !== undefined)
    process.stderr.write(`${stack.controlPlane.describe(10)}\ncomponent logs: ${stack.runDir}\n`);
  await cleanup();
  process.exit(1);
}
