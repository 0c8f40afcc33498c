// A synthetic cluster as a cluster-events log, for the projection benchmark. Pure and
// deterministic (a seeded PRNG), so every run measures the same log.
//
// Shape per `nodes` N (the benchmark's 5,000 nodes give 150,000 pods and 1,000 policies):
// - N nodes, every tenth labelled egress=true (the candidate gateways of half the policies);
// - 30 pods per node on average, spread at random, in namespaces of 300 pods, each namespace
//   with 6 apps of 50 pods;
// - per namespace two policies: one through a Service (app-0, with its EndpointSlice), one by
//   pod selector (app-1); so N/5 policies, each with its own egress IP, a third of all pods
//   selected;
// - one pool covering every egress IP. Egress IPs come from 198.18.0.0/15 (RFC 2544's
//   benchmarking range): 1,000 distinct IPs do not fit in a documentation /24, and these never
//   leave this process. Destinations stay in 203.0.113.0/24, pod IPs in 10.0.0.0/8.
import type { ClusterEvent } from '../src/contracts/cluster-events.ts';
import { events, rule } from '../test/support/fixtures.ts';
import { mulberry32 } from '../test/support/seeded-random.ts';

export const PODS_PER_NODE = 30;
export const PODS_PER_NAMESPACE = 300;
const APPS = 6;

const ipv4 = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
export const egressIPOf = (i: number) => ipv4(0xc6120000 + 1 + i); // 198.18.0.1 + i
const podIPOf = (i: number) => ipv4(0x0a000000 + 1 + i); // 10.0.0.1 + i
export const nodeIPOf = (i: number): string => ipv4(0x0a800000 + 1 + i); // underlay 10.128.0.1 + i (bench only)

export interface SyntheticCluster {
  readonly events: ClusterEvent[];
  readonly nodes: string[];
  readonly pods: { namespace: string; name: string; app: string; node: string; ip: string }[];
  readonly namespaces: string[];
  readonly policies: number;
  /** Builds further events with the same id sequence (for the churn phase). */
  readonly ev: ReturnType<typeof events>;
}

export function buildSyntheticCluster(nodeCount: number, seed = 1): SyntheticCluster {
  const rnd = mulberry32(seed);
  const ev = events();
  const out: ClusterEvent[] = [];
  const nodes = Array.from({ length: nodeCount }, (_, i) => `node-${String(i).padStart(5, '0')}`);
  const podCount = nodeCount * PODS_PER_NODE;
  const nsCount = Math.max(1, Math.ceil(podCount / PODS_PER_NAMESPACE));
  const namespaces = Array.from({ length: nsCount }, (_, i) => `tenant-${String(i).padStart(4, '0')}`);

  out.push(ev.pool('bench', ['198.18.0.0/15']));
  for (const ns of namespaces) out.push(ev.namespace(ns, { tenant: ns }));
  nodes.forEach((n, i) =>
    out.push(
      ev.node(n, {
        ip: nodeIPOf(i),
        labels: { zone: `z${i % 3}`, ...(i % 10 === 0 ? { egress: 'true' } : {}) },
      }),
    ),
  );
  for (const n of nodes) out.push(ev.nodeBack(n));

  let policies = 0;
  namespaces.forEach((ns, i) => {
    out.push(
      ev.policy(ns, 'via-service', [rule({ egressIP: egressIPOf(2 * i), service: 'app-0', gateways: 2 })]),
      ev.policy(ns, 'via-labels', [
        rule({
          egressIP: egressIPOf(2 * i + 1),
          podSelector: { matchLabels: { app: 'app-1' } },
          gatewaySelector: { matchLabels: { egress: 'true' } },
          gateways: 2,
          to: ['203.0.113.0/25'],
        }),
      ]),
      ev.service(ns, 'app-0', { app: 'app-0' }),
    );
    policies += 2;
  });

  const pods: SyntheticCluster['pods'] = [];
  for (let i = 0; i < podCount; i++) {
    const namespace = namespaces[Math.floor(i / PODS_PER_NAMESPACE)] as string;
    const app = `app-${i % APPS}`;
    const node = nodes[Math.floor(rnd() * nodeCount)] as string;
    const p = { namespace, name: `${app}-${i}`, app, node, ip: podIPOf(i) };
    pods.push(p);
    out.push(ev.pod(namespace, p.name, { labels: { app }, ip: p.ip, node }));
  }
  for (const ns of namespaces) {
    const members = pods.filter((p) => p.namespace === ns && p.app === 'app-0');
    out.push(
      ev.slice(
        ns,
        'app-0-abcde',
        'app-0',
        members.map((p) => ({ pod: p.name, ip: p.ip })),
      ),
    );
  }
  return { events: out, nodes, pods, namespaces, policies, ev };
}

/**
 * Steady-state churn after the initial list, in realistic proportions: mostly pod lifecycle
 * (new pods, IP assignment, deletions, label changes), some slice updates, node readiness and
 * liveness flaps, cordons, policy edits and namespace relabels.
 */
export function buildChurn(cluster: SyntheticCluster, count: number, seed = 2): ClusterEvent[] {
  const rnd = mulberry32(seed);
  const { ev, nodes, pods, namespaces } = cluster;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const out: ClusterEvent[] = [];
  let next = pods.length;
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.3) {
      const ns = pick(namespaces);
      const app = `app-${Math.floor(rnd() * APPS)}`;
      const node = pick(nodes);
      const name = `${app}-new-${next}`;
      const ip = podIPOf(next++);
      out.push(ev.pod(ns, name, { labels: { app }, node }), ev.pod(ns, name, { labels: { app }, node, ip }));
      pods.push({ namespace: ns, name, app, node, ip });
    } else if (r < 0.55) {
      const idx = Math.floor(rnd() * pods.length);
      const p = pods[idx];
      if (p === undefined) continue;
      out.push(ev.podDeleted(p.namespace, p.name));
      pods[idx] = pods[pods.length - 1] as (typeof pods)[number];
      pods.pop();
    } else if (r < 0.75) {
      const p = pick(pods);
      p.app = p.app === 'app-1' ? 'app-2' : 'app-1';
      out.push(ev.pod(p.namespace, p.name, { labels: { app: p.app }, ip: p.ip, node: p.node }));
    } else if (r < 0.85) {
      const ns = pick(namespaces);
      const members = pods.filter((p) => p.namespace === ns && p.app === 'app-0' && rnd() < 0.9);
      out.push(
        ev.slice(
          ns,
          'app-0-abcde',
          'app-0',
          members.map((p) => ({ pod: p.name, ip: p.ip })),
        ),
      );
    } else if (r < 0.9) {
      const n = pick(nodes);
      out.push(rnd() < 0.5 ? ev.nodeLost(n) : ev.nodeBack(n));
    } else if (r < 0.95) {
      const i = nodes.indexOf(pick(nodes));
      const labels = { zone: `z${i % 3}`, ...(i % 10 === 0 ? { egress: 'true' } : {}) };
      out.push(
        ev.node(nodes[i] as string, {
          ip: nodeIPOf(i),
          labels,
          ready: rnd() < 0.7,
          unschedulable: rnd() < 0.2,
        }),
      );
    } else if (r < 0.98) {
      const i = Math.floor(rnd() * namespaces.length);
      const ns = namespaces[i] as string;
      out.push(
        ev.policy(
          ns,
          'via-labels',
          [
            rule({
              egressIP: egressIPOf(2 * i + 1),
              podSelector: { matchLabels: { app: rnd() < 0.5 ? 'app-1' : 'app-2' } },
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
      out.push(ev.namespace(ns, { tenant: ns, touched: String(i) }));
    }
  }
  return out;
}
