// Benchmark of the offline audit (not a test; budgets live here, never in tests): a
// 1,000,000-event cluster-events log written as a `kseip export` file, then the real CLI
// (src/cli/main.ts in a child process, as an auditor runs it):
//   1. `kseip export --from raw --to indexed` appends the audit index (one replay of the whole
//      log, once per export: what `kseip export` does when it copies Kafka);
//   2. from the indexed file, the queries of issue 7, each timed end to end (process start
//      included) with the child's peak RSS; budget under 5 s each:
//      - audit egress-ip <ip> --from <time> --to <time>   (a one-day window in the middle)
//      - audit pod <ns/name>                              (a long-lived pod's whole history)
//   3. the same pod query with --replay (no index: the whole log folded), whose answer must be
//      byte for byte the indexed one.
// Baseline in the same run: the file read and decoded (every line parsed, every event through
// the cluster-events codec) by a child that folds nothing: the floor of any replay-based answer.
//
// The log (pure, seeded): bench/synthetic-cluster.ts's cluster (1,000 nodes, 30,000 pods, 200
// policies) listed once, then steady-state churn up to 1,000,000 events over a simulated week,
// mostly pod lifecycle (create pending → IP, delete, relabel) and EndpointSlice updates, with
// node readiness flaps and cordons, liveness NodeLost/NodeBack of gateway candidates (which fail
// egress IPs over), policy edits and namespace relabels.
// Run: node --disable-warning=ExperimentalWarning bench/audit.bench.ts [--events 1000000]
//        [--nodes 1000] [--keep]
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { rule } from '../test/support/fixtures.ts';
import { buildSyntheticCluster, egressIPOf, nodeIPOf } from './synthetic-cluster.ts';
import { mulberry32 } from '../test/support/seeded-random.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    nodes: { type: 'string', default: '1000' },
    keep: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(values.events);
const NODES = Number(values.nodes);
const BUDGET_MS = 5_000;

const root = path.resolve(import.meta.dirname, '..');
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

// ---- the log --------------------------------------------------------------------------------------

const T0 = Date.parse('2026-03-02T00:00:00Z');
const WEEK_MS = 7 * 86_400_000;
const timeOf = (i: number): number => T0 + Math.floor((i * WEEK_MS) / EVENTS);
const uuidOf = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

/** The pod the audit pod query follows: in tenant-0000, app-1 (selected by via-labels), never deleted. */
const AUDITED = { namespace: 'tenant-0000', name: 'app-1-1' };
/** via-labels of tenant-0000: the policy that selects it (synthetic-cluster.ts numbering). */
const AUDITED_IP = egressIPOf(1);

function writeLog(file: string): { events: number; bytes: number; counts: Map<string, number> } {
  const cluster = buildSyntheticCluster(NODES);
  const { ev, nodes, namespaces } = cluster;
  const rnd = mulberry32(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const fd = openSync(file, 'w');
  const counts = new Map<string, number>();
  let buffer: string[] = [];
  let bytes = 0;
  let offset = 0;
  const emit = (e: ClusterEvent): void => {
    const ts = timeOf(offset);
    const value = { ...e, id: uuidOf(offset), observedAt: new Date(ts).toISOString() };
    const { object } = e;
    const line = `${JSON.stringify({
      topic: TOPICS.clusterEvents,
      partition: 0,
      offset,
      timestamp: ts,
      key: `${object.kind}/${object.namespace ?? ''}/${object.name}`,
      value,
    })}\n`;
    buffer.push(line);
    bytes += line.length;
    counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    offset++;
    if (buffer.length >= 10_000) {
      writeSync(fd, buffer.join(''));
      buffer = [];
    }
  };
  for (const e of cluster.events) emit(e);

  // Live pods, indexed for O(1) picks and deletes; app-0 members per namespace for the slices.
  type Pod = { namespace: string; name: string; app: string; node: string; ip: string };
  const pods: Pod[] = cluster.pods.map((p) => ({ ...p }));
  const members = new Map<string, Set<Pod>>();
  const memberSet = (ns: string): Set<Pod> => {
    let s = members.get(ns);
    if (s === undefined) members.set(ns, (s = new Set()));
    return s;
  };
  for (const p of pods) if (p.app === 'app-0') memberSet(p.namespace).add(p);
  const lost = new Set<string>();
  let next = pods.length;
  const podIP = (i: number): string => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  const slice = (ns: string): ClusterEvent =>
    ev.slice(
      ns,
      'app-0-abcde',
      'app-0',
      [...memberSet(ns)].map((p) => ({ pod: p.name, ip: p.ip })),
    );

  while (offset < EVENTS) {
    const r = rnd();
    if (r < 0.4) {
      const ns = pick(namespaces);
      const app = `app-${Math.floor(rnd() * 6)}`;
      const node = pick(nodes);
      const p = { namespace: ns, name: `${app}-new-${next}`, app, node, ip: podIP(next++) };
      emit(ev.pod(ns, p.name, { labels: { app }, node }));
      emit(ev.pod(ns, p.name, { labels: { app }, node, ip: p.ip }));
      pods.push(p);
      if (app === 'app-0') {
        memberSet(ns).add(p);
        emit(slice(ns));
      }
    } else if (r < 0.75) {
      const idx = Math.floor(rnd() * pods.length);
      const p = pods[idx]!;
      if (p.namespace === AUDITED.namespace && p.name === AUDITED.name) continue;
      emit(ev.podDeleted(p.namespace, p.name));
      pods[idx] = pods[pods.length - 1]!;
      pods.pop();
      if (p.app === 'app-0') {
        memberSet(p.namespace).delete(p);
        emit(slice(p.namespace));
      }
    } else if (r < 0.87) {
      const p = pick(pods);
      if (p.app === 'app-0') continue;
      p.app = p.app === 'app-1' ? 'app-2' : 'app-1';
      emit(ev.pod(p.namespace, p.name, { labels: { app: p.app }, ip: p.ip, node: p.node }));
    } else if (r < 0.95) {
      emit(slice(pick(namespaces)));
    } else if (r < 0.975) {
      const i = Math.floor(rnd() * nodes.length);
      const labels = { zone: `z${i % 3}`, ...(i % 10 === 0 ? { egress: 'true' } : {}) };
      emit(ev.node(nodes[i]!, { ip: nodeIPOf(i), labels, ready: rnd() < 0.8, unschedulable: rnd() < 0.1 }));
    } else if (r < 0.99) {
      // Liveness: a gateway candidate (every tenth node) goes silent, or a silent one is back.
      if (lost.size > 0 && rnd() < 0.5) {
        const n = [...lost][Math.floor(rnd() * lost.size)]!;
        lost.delete(n);
        emit(ev.nodeBack(n));
      } else {
        const n = nodes[Math.floor(rnd() * (nodes.length / 10)) * 10]!;
        if (lost.has(n)) continue;
        lost.add(n);
        emit(ev.nodeLost(n));
      }
    } else if (r < 0.995) {
      const i = Math.floor(rnd() * namespaces.length);
      emit(
        ev.policy(
          namespaces[i]!,
          'via-labels',
          [
            rule({
              egressIP: egressIPOf(2 * i + 1),
              podSelector: { matchLabels: { app: rnd() < 0.8 ? 'app-1' : 'app-2' } },
              gatewaySelector: { matchLabels: { egress: 'true' } },
              gateways: 2,
              to: ['203.0.113.0/25'],
            }),
          ],
          2,
        ),
      );
    } else {
      const ns = pick(namespaces);
      emit(ev.namespace(ns, { tenant: ns, touched: String(offset) }));
    }
  }
  writeSync(fd, buffer.join(''));
  closeSync(fd);
  return { events: offset, bytes, counts };
}

// ---- measuring a child process ----------------------------------------------------------------------

/** Writes the child's peak RSS (KiB) to stderr as it exits. */
const rssProbe = `data:text/javascript,process.on('exit',()=>process.stderr.write('\\nkseip-bench-maxrss '+process.resourceUsage().maxRSS+'\\n'))`;

interface Measured {
  ms: number;
  maxRssMiB: number;
  stdout: string;
  stderr: string;
}

function measure(argv: readonly string[]): Measured {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', '--import', rssProbe, ...argv],
    { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
  );
  const ms = performance.now() - t0;
  const rss = /kseip-bench-maxrss (\d+)/.exec(r.stderr);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return {
    ms,
    maxRssMiB: rss === null ? NaN : Number(rss[1]) / 1024,
    stdout: r.stdout,
    stderr: r.stderr.replace(/\nkseip-bench-maxrss \d+\n/, ''),
  };
}

/** As bin/kseip runs it (its V8 flags included). */
const kseip = (args: readonly string[]) =>
  measure([
    '--no-concurrent-sparkplug',
    '--no-concurrent-recompilation',
    '--no-concurrent-osr',
    path.join(root, 'src/cli/main.ts'),
    ...args,
  ]);

/** The baseline: read and decode every cluster-events line of the file, fold nothing. */
const baselineScript = `
const { fileSource } = await import(${JSON.stringify(path.join(root, 'src/cli/log-source.ts'))});
const { decodeEventRecord } = await import(${JSON.stringify(path.join(root, 'src/cli/core/fold.ts'))});
let ok = 0, bad = 0;
await fileSource(process.argv[2]).read(${JSON.stringify(TOPICS.clusterEvents)}, (r) => { if (decodeEventRecord(r).ok) ok++; else bad++; });
process.stdout.write(JSON.stringify({ ok, bad }) + '\\n');
`;

// ---- run ----------------------------------------------------------------------------------------------

const dir = mkdtempSync(path.join(tmpdir(), 'kseip-audit-bench-'));
const raw = path.join(dir, 'raw.jsonl');
const indexed = path.join(dir, 'export.jsonl');
try {
  const t = performance.now();
  const written = writeLog(raw);
  console.log(
    `log: ${fmt(written.events)} cluster-events (${NODES} nodes, the week of ${new Date(T0).toISOString().slice(0, 10)}), ` +
      `${fmt(statSync(raw).size / 2 ** 20)} MiB, written in ${fmt((performance.now() - t) / 1000, 1)} s`,
  );
  console.log(
    `  mix: ${[...written.counts]
      .sort(([, a], [, b]) => b - a)
      .map(([type, n]) => `${type} ${fmt((100 * n) / written.events, 1)}%`)
      .join(', ')}`,
  );

  const exported = kseip(['export', '--from', raw, '--to', indexed, '-o', 'json']);
  const index = (JSON.parse(exported.stdout) as { index: { intervals: number; decisions: number } }).index;
  console.log(
    `export --from raw --to indexed: audit index of ${fmt(index.intervals)} intervals and ${fmt(index.decisions)} gateway decisions ` +
      `(${fmt((statSync(indexed).size - statSync(raw).size) / 2 ** 20)} MiB) in ${fmt(exported.ms / 1000, 1)} s, peak RSS ${fmt(exported.maxRssMiB)} MiB`,
  );

  // The first baseline run also warms the page cache, so every measured run reads from memory.
  const baselinePath = path.join(dir, 'baseline.mjs');
  writeFileSync(baselinePath, baselineScript);
  const warm = measure([baselinePath, indexed]);
  const decoded = JSON.parse(warm.stdout) as { ok: number; bad: number };
  if (decoded.ok !== written.events || decoded.bad !== 0)
    throw new Error(`baseline decoded ${decoded.ok} events (${decoded.bad} bad), wrote ${written.events}`);
  const baseline = measure([baselinePath, indexed]);

  const dayFrom = new Date(T0 + 3 * 86_400_000).toISOString();
  const dayTo = new Date(T0 + 4 * 86_400_000).toISOString();
  const egressArgs = ['audit', 'egress-ip', AUDITED_IP, '--from', dayFrom, '--to', dayTo, '-o', 'json'];
  const podArgs = ['audit', 'pod', `${AUDITED.namespace}/${AUDITED.name}`, '-o', 'json'];
  const egress = kseip([...egressArgs, '--from', indexed]);
  const pod = kseip([...podArgs, '--from', indexed]);
  const replayed = kseip([...podArgs, '--replay', '--from', indexed]);
  if (replayed.stdout !== pod.stdout) throw new Error('audit pod: the index and the replay disagree');

  const intervals = (JSON.parse(egress.stdout) as { intervals: { pod: string; gateway: string }[] })
    .intervals;
  const podIntervals = (JSON.parse(pod.stdout) as { intervals: { egressIP: string; gateway: string }[] })
    .intervals;
  console.log(
    `audit egress-ip ${AUDITED_IP} --from ${dayFrom} --to ${dayTo}: ${fmt(intervals.length)} intervals of ` +
      `${fmt(new Set(intervals.map((iv) => iv.pod)).size)} pods through ${new Set(intervals.map((iv) => iv.gateway)).size} gateways`,
  );
  console.log(
    `audit pod ${AUDITED.namespace}/${AUDITED.name}: ${fmt(podIntervals.length)} intervals through ` +
      `${new Set(podIntervals.map((iv) => iv.gateway)).size} gateways (same answer with --replay)`,
  );
  if (intervals.length === 0 || podIntervals.length < 2)
    throw new Error('the queries found (almost) nothing: the log does not exercise the audit');
  const progress = replayed.stderr.split('\n').filter((l) => l.startsWith('replayed')).length;
  console.log(`progress lines on stderr during the replay: ${progress}`);

  const row = (what: string, m: Measured, budget: boolean): [string, string, string, string] => [
    what,
    `${fmt(m.ms)} ms, peak RSS ${fmt(m.maxRssMiB)} MiB (${fmt(m.ms / baseline.ms, 2)}× baseline)`,
    budget ? `< ${fmt(BUDGET_MS)} ms` : 'reported',
    budget ? (m.ms < BUDGET_MS ? 'met' : 'MISSED') : '-',
  ];
  const rows: [string, string, string, string][] = [
    [
      'baseline: read + decode every event, no fold',
      `${fmt(baseline.ms)} ms, peak RSS ${fmt(baseline.maxRssMiB)} MiB`,
      'baseline',
      '-',
    ],
    row('audit egress-ip --from/--to (one day), from the index', egress, true),
    row('audit pod (whole history), from the index', pod, true),
    row('audit pod --replay (the whole log folded)', replayed, false),
    row('export --from: copy + build the audit index (once)', exported, false),
  ];
  console.log('');
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => (r[c] ?? '').length), 6));
  const line = (r: readonly string[]) => r.map((x, i) => x.padEnd(widths[i] as number)).join('  ');
  console.log(line(['measure', 'value', 'goal', 'verdict']));
  for (const r of rows) console.log(line(r));
} finally {
  if (values.keep) console.log(`kept ${indexed}`);
  else rmSync(dir, { recursive: true, force: true });
}
