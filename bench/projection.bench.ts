// Benchmark of the pure projection (not a test; budgets live here, never in tests).
// Pure computation in this process, on the synthetic cluster of bench/synthetic-cluster.ts:
//   - replay throughput of the initial list (goal ≥ 100,000 events/s on one core);
//   - per-event incremental update time over steady-state churn, p50/p99 (goal p99 < 5 ms);
//   - heap used after the replay (projector memory);
//   - per-node rule-set size at 100 vs 5,000 nodes (goal: flat);
//   - load spread of active egress IPs over the gateway candidates;
// and, in the same run, the naive baseline "recompute everything per event"
// (src/projection/reference.ts) for the per-event cost and the replay rate it implies.
// Run: node --disable-warning=ExperimentalWarning bench/projection.bench.ts [--nodes 5000]
//        [--small 100] [--churn 20000] [--naive 5]
// Before/after: `--baseline <checkout>` (or KSEIP_BENCH_BASELINE=<checkout>, e.g. a `git worktree`
// of an older commit) runs that checkout's bench/projection.bench.ts and this one side by side in
// fresh processes (`--rounds`, default 3) and prints their figures next to each other
// (./compare.ts); `npm run bench -- projection` passes the variable through.
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { evolve, initialState, type State } from '../src/projection/projection.ts';
import { computeReference } from '../src/projection/reference.ts';
import { selectNodeRules } from '../src/projection/queries.ts';
import type { NodeRules } from '../src/contracts/node-rules.ts';
import { buildChurn, buildSyntheticCluster, egressIPOf } from './synthetic-cluster.ts';
import { events, rule } from '../test/support/fixtures.ts';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5000' },
    small: { type: 'string', default: '100' },
    churn: { type: 'string', default: '20000' },
    naive: { type: 'string', default: '3' },
    replays: { type: 'string', default: '3' },
    baseline: { type: 'string', default: process.env.KSEIP_BENCH_BASELINE ?? '' },
    rounds: { type: 'string', default: '3' },
  },
});
if (values.baseline !== '') {
  const { compareWithBaseline } = await import('./compare.ts');
  const passed = ['nodes', 'small', 'churn', 'naive', 'replays'].flatMap((k) => [
    `--${k}`,
    String(values[k as 'nodes']),
  ]);
  process.exit(
    await compareWithBaseline(import.meta.filename, values.baseline, passed, Number(values.rounds)),
  );
}
const NODES = Number(values.nodes);
const SMALL = Number(values.small);
const CHURN = Number(values.churn);
const NAIVE = Number(values.naive);
const REPLAYS = Number(values.replays);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const rows: [string, string, string, string][] = [];
const report = (what: string, value: string, goal: string, verdict: string) =>
  rows.push([what, value, goal, verdict]);

function replayAll(events: readonly ClusterEvent[], state: State, offset0 = 0) {
  let nodeRules = 0;
  let decisions = 0;
  const t0 = performance.now();
  for (let i = 0; i < events.length; i++) {
    const o = evolve(state, events[i] as ClusterEvent, offset0 + i);
    nodeRules += o.nodeRules.length;
    decisions += o.decisions.length;
  }
  return { ms: performance.now() - t0, nodeRules, decisions };
}

function ruleSizes(state: State) {
  const bytes: number[] = [];
  const steers: number[] = [];
  const podIPs: number[] = [];
  const held: number[] = [];
  for (const node of state.emittedNodeRules.keys()) {
    const rules = selectNodeRules(state, node) as NodeRules;
    bytes.push(JSON.stringify(rules).length);
    steers.push(rules.steers.length);
    podIPs.push(rules.steers.reduce((n, s) => n + s.podIPs.length, 0));
    if (rules.egressIPs.length > 0) held.push(rules.egressIPs.length);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    nodes: bytes.length,
    meanBytes: mean(bytes),
    p99Bytes: quantile(bytes, 0.99),
    maxBytes: Math.max(...bytes),
    meanSteers: mean(steers),
    meanPodIPs: mean(podIPs),
    meanHeld: mean(held),
    maxHeld: Math.max(0, ...held),
    gateways: held.length,
  };
}

// ---- warm-up (JIT) on the small cluster, which also gives the small rule sizes ----
const small = buildSyntheticCluster(SMALL);
const smallState = initialState();
replayAll(small.events, smallState);

// ---- the big cluster: replay (best of REPLAYS, fresh state each time), memory, churn ----
const big = buildSyntheticCluster(NODES);
console.log(
  `synthetic cluster: ${fmt(NODES)} nodes, ${fmt(big.pods.length)} pods, ${fmt(big.policies)} policies, ` +
    `${fmt(big.namespaces.length)} namespaces → ${fmt(big.events.length)} events`,
);
let state = initialState();
let best = { wall: Infinity, cpu: Infinity, heap: 0, nodeRules: 0, decisions: 0 };
for (let r = 0; r < REPLAYS; r++) {
  state = initialState(); // the previous one becomes garbage before the measurement
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const replayed = replayAll(big.events, state);
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  gc();
  const heap = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  console.log(
    `replay ${r + 1}: ${fmt(replayed.ms)} ms wall, ${fmt(cpuMs)} ms CPU (all threads, GC included), ` +
      `${fmt(replayed.nodeRules)} node-rules records and ${fmt(replayed.decisions)} decisions emitted`,
  );
  if (cpuMs < best.cpu)
    best = { ...best, cpu: cpuMs, heap, nodeRules: replayed.nodeRules, decisions: replayed.decisions };
  best.wall = Math.min(best.wall, replayed.ms);
}
const rate = big.events.length / (best.cpu / 1000);
const wallRate = big.events.length / (best.wall / 1000);
report(
  'replay throughput (per CPU-second)',
  `${fmt(rate)} events/s`,
  '≥ 100,000 events/s',
  rate >= 100_000 ? 'met' : 'MISSED',
);
report('replay throughput (wall, best run)', `${fmt(wallRate)} events/s`, '(shared machine)', '-');
report('heap after replay (projection state)', `${fmt(best.heap)} MiB`, 'reported', '-');

const churn = buildChurn(big, CHURN);
const offset0 = big.events.length;
const times: number[] = [];
const byType = new Map<string, number[]>();
for (let i = 0; i < churn.length; i++) {
  const e = churn[i] as ClusterEvent;
  const t0 = performance.now();
  evolve(state, e, offset0 + i);
  const dt = performance.now() - t0;
  times.push(dt);
  const list = byType.get(e.type) ?? [];
  list.push(dt);
  byType.set(e.type, list);
}
const p50 = quantile(times, 0.5);
const p99 = quantile(times, 0.99);
report('per-event update p50', `${fmt(p50 * 1000)} µs`, '-', '-');
report('per-event update p99', `${fmt(p99, 3)} ms`, '< 5 ms', p99 < 5 ? 'met' : 'MISSED');
report('per-event update max', `${fmt(Math.max(...times), 2)} ms`, '-', '-');
console.log(`churn: ${fmt(churn.length)} events; per type p50 / p99 / max (ms):`);
for (const [type, xs] of [...byType].sort(([a], [b]) => (a < b ? -1 : 1)))
  console.log(
    `  ${type.padEnd(24)} n=${String(xs.length).padStart(6)}  ${fmt(quantile(xs, 0.5), 3)} / ${fmt(quantile(xs, 0.99), 3)} / ${fmt(Math.max(...xs), 3)}`,
  );

// ---- naive baseline: recompute everything after each event ----
const naive: number[] = [];
const naiveEvents = buildChurn(big, NAIVE, 3);
for (let i = 0; i < naiveEvents.length; i++) {
  const t0 = performance.now();
  evolve(state, naiveEvents[i] as ClusterEvent, offset0 + churn.length + i);
  computeReference(state);
  naive.push(performance.now() - t0);
}
const naiveMs = quantile(naive, 0.5);
report(
  'naive per-event (full recompute) p50',
  `${fmt(naiveMs, 1)} ms`,
  'baseline',
  `${fmt(naiveMs / p50)}× slower`,
);
report(
  'naive replay rate (implied)',
  `${fmt(1000 / naiveMs, 1)} events/s`,
  'baseline',
  `${fmt(rate / (1000 / naiveMs))}× slower`,
);

// ---- load spread over gateway candidates ----
const bigSizes = ruleSizes(state);
report(
  'active egress IPs per gateway, synthetic cluster (mean / max)',
  `${fmt(bigSizes.meanHeld, 1)} / ${bigSizes.maxHeld} over ${bigSizes.gateways} nodes`,
  'reported',
  '-',
);
// Few dedicated gateways holding many IPs: where an uneven spread would hurt.
{
  const ev = events();
  const spread = initialState();
  const gws = Array.from({ length: 10 }, (_, i) => `egress-${i}`);
  const log: ClusterEvent[] = [ev.pool('spread', ['198.18.0.0/15'])];
  for (const n of gws) log.push(ev.node(n, { ip: '192.0.2.1' }), ev.nodeBack(n));
  log.push(
    ev.policy(
      'spread',
      'many',
      Array.from({ length: 32 }, (_, i) => rule({ egressIP: egressIPOf(i), podSelector: {} })),
    ),
  );
  for (let p = 1; p < 32; p++)
    log.push(
      ev.policy(
        'spread',
        `many-${p}`,
        Array.from({ length: 32 }, (_, i) => rule({ egressIP: egressIPOf(p * 32 + i), podSelector: {} })),
      ),
    );
  replayAll(log, spread);
  const held = gws.map((n) => spread.heldBy.get(n)?.size ?? 0);
  const mean = held.reduce((a, b) => a + b, 0) / held.length;
  const max = Math.max(...held);
  report(
    `active egress IPs per gateway, ${fmt(held.reduce((a, b) => a + b, 0))} IPs on 10 gateways (min / mean / max)`,
    `${Math.min(...held)} / ${fmt(mean)} / ${max} (max ${fmt((max / mean - 1) * 100)}% over mean)`,
    'max ≤ mean + 25%',
    max <= mean * 1.25 ? 'met' : 'MISSED',
  );
}

// ---- per-node rule-set size: small vs big cluster ----
const smallSizes = ruleSizes(smallState);
const growth = bigSizes.meanBytes / smallSizes.meanBytes;
for (const [label, s] of [
  [`${fmt(SMALL)} nodes`, smallSizes],
  [`${fmt(NODES)} nodes`, bigSizes],
] as const)
  console.log(
    `node rules at ${label}: mean ${fmt(s.meanBytes)} B (p99 ${fmt(s.p99Bytes)} B, max ${fmt(s.maxBytes)} B), ` +
      `${fmt(s.meanSteers, 1)} steers and ${fmt(s.meanPodIPs, 1)} pod IPs per node, ` +
      `${fmt(s.meanHeld, 1)} held IPs per gateway`,
  );
report(
  `node rule size ${fmt(SMALL)} → ${fmt(NODES)} nodes (mean)`,
  `${fmt(smallSizes.meanBytes)} B → ${fmt(bigSizes.meanBytes)} B (×${fmt(growth, 2)})`,
  'flat (≤ ×1.5)',
  growth <= 1.5 ? 'met' : 'MISSED',
);

console.log('');
const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]?.length ?? 0), 6));
const line = (r: readonly string[]) => r.map((x, i) => x.padEnd(widths[i] as number)).join('  ');
console.log(line(['measure', 'value', 'goal', 'verdict']));
for (const r of rows) console.log(line(r));
