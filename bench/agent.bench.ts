// Benchmark of the node agent's dataplane (not a test; budgets live here, never in tests).
// Effectful: builds a 2-node network-namespace cluster (src/devenv/netcluster.ts) and measures,
// in the same run on the same machine:
//   - raw `nft -f` of one table holding a 10,000-address set (process start included): the floor;
//   - a full apply of 10,000 local pod IPs into an existing steer (goal ≤ 1.5× the raw load), and
//     the same from a bare node (kernel reads, tunnel device, routes, rule, fdb, nft transaction);
//   - a one-pod delta, a no-op reconcile, a drift check, a full resync;
//   - the process RSS while holding that state.
// Run: node --disable-warning=ExperimentalWarning bench/agent.bench.ts [--pods 10000] [--runs 7]
import { parseArgs } from 'node:util';
import { createDataplane, DEFAULT_DATAPLANE_CONFIG, type Dataplane } from '../src/agents/dataplane.ts';
import { NODE_RULES_SCHEMA, type NodeRules } from '../src/contracts/node-rules.ts';
import {
  CLUSTER_POD_CIDR,
  createNetCluster,
  EXTERNAL_HOST_IP,
  type NetNode,
} from '../src/devenv/netcluster.ts';
import { createLogger } from '../src/lib/log.ts';
import { createKernelRunner, runChecked } from '../src/agents/kernel-exec.ts';
import { podsSetName, steerKey } from '../src/dataplane/kernel-state.ts';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '10000' }, runs: { type: 'string', default: '7' } },
});
const PODS = Number(values.pods);
const RUNS = Number(values.runs);
const log = createLogger('agent-bench');

/** Addresses inside 10.128.0.0/9: they exist only as set elements in the bench's namespace. */
const podIPs = (n: number, offset = 0): string[] =>
  Array.from({ length: n }, (_, i) => {
    const v = 0x0a800000 + offset + i + 1;
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const cluster = await createNetCluster({ nodes: 2, podNetwork: 'host-gw', log });
const rssBefore = process.memoryUsage().rss;
try {
  const [n1, n2] = cluster.nodes() as [NetNode, NetNode];
  const runner = createKernelRunner(n1.ns);
  const pods = podIPs(PODS);
  const rules = (ips: string[]): NodeRules => ({
    schema: NODE_RULES_SCHEMA,
    node: n1.name,
    generation: 1,
    nodeIP: n1.ip,
    egressIPs: [],
    steers: [
      {
        slot: 1,
        egressIP: '198.51.100.10',
        gatewayNode: n2.name,
        gatewayIP: n2.ip,
        podIPs: ips,
        destinations: [`${EXTERNAL_HOST_IP}/32`, '203.0.113.128/25'],
        exceptions: [],
        sources: ['bench/eip#0'],
      },
    ],
  });
  const newDataplane = (): Dataplane =>
    createDataplane(
      {
        ...DEFAULT_DATAPLANE_CONFIG,
        netns: n1.ns,
        uplink: 'eth0',
        neverSteer: [CLUSTER_POD_CIDR, '10.96.0.0/12'],
      },
      log,
    );

  // The floor: the same 10,000-element set loaded by one raw `nft -f`, process start included.
  const rawText = `table ip rawbench {\n  set pods { type ipv4_addr; elements = { ${pods.join(', ')} } }\n}\n`;
  const raw: number[] = [];
  const cold: number[] = [];
  const warm: number[] = [];
  // Interleaved, so that machine noise hits all alike.
  for (let i = 0; i < RUNS; i++) {
    raw.push(await time(() => runChecked(runner, 'nft', ['-f', '-'], { input: rawText })));
    await runChecked(runner, 'nft', ['delete', 'table', 'ip', 'rawbench']);
    // Cold: a fresh agent on a bare node: kernel reads, tunnel device, routes, rule, fdb, nft.
    const first = newDataplane();
    cold.push(await time(() => first.reconcile(rules(pods))));
    await first.removeAll();
    // Warm: the steer and its tunnel exist; its 10,000 pods arrive (an empty set is filled).
    const second = newDataplane();
    await second.reconcile(rules([]));
    warm.push(await time(() => second.reconcile(rules(pods))));
    await second.removeAll();
  }

  const dp = newDataplane();
  await dp.reconcile(rules(pods));
  const extra = podIPs(1, PODS + 10)[0] ?? '';
  const delta: number[] = [];
  const noop: number[] = [];
  const drift: number[] = [];
  for (let i = 0; i < RUNS * 3; i++) {
    delta.push(await time(() => dp.reconcile(rules(i % 2 === 0 ? [...pods, extra] : pods))));
    noop.push(await time(() => dp.reconcile(rules(i % 2 === 0 ? [...pods, extra] : pods))));
  }
  for (let i = 0; i < RUNS; i++) drift.push(await time(() => dp.checkDrift()));
  // A full resync (after a failed apply): flush and re-add every set and chain in one transaction.
  await runChecked(runner, 'nft', [
    'delete',
    'element',
    'ip',
    'kseip',
    podsSetName(steerKey(1, ['bench/eip#0'])),
    `{ ${pods[0] ?? ''} }`,
  ]);
  await dp.checkDrift();
  const resync = await time(() => dp.reconcile(rules(pods)));
  global.gc?.();
  const mem = process.memoryUsage();
  await dp.removeAll();

  const result = {
    pods: PODS,
    runs: RUNS,
    rawNftMs: +median(raw).toFixed(1),
    coldFullApplyMs: +median(cold).toFixed(1),
    coldVsRaw: +(median(cold) / median(raw)).toFixed(2),
    podsFullApplyMs: +median(warm).toFixed(1),
    podsVsRaw: +(median(warm) / median(raw)).toFixed(2),
    goal: 'podsVsRaw <= 1.5',
    onePodDeltaMs: +median(delta).toFixed(1),
    noopReconcileMs: +median(noop).toFixed(2),
    checkDriftMs: +median(drift).toFixed(1),
    repairAfterDriftMs: +resync.toFixed(1),
    rssMiB: +(mem.rss / 2 ** 20).toFixed(1),
    rssGrowthMiB: +((mem.rss - rssBefore) / 2 ** 20).toFixed(1),
    heapUsedMiB: +(mem.heapUsed / 2 ** 20).toFixed(1),
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} finally {
  await cluster.destroy();
}
