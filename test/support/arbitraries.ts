// Test support (not used by production code): fast-check arbitraries for cluster-event logs
// over a small universe (2-3 namespaces, 5 nodes, a dozen pods, a few policies, pools,
// services and slices), so that random logs hit the interesting collisions: shared egress IPs,
// overlapping destinations, pools that do not admit, nodes that die, lists that drop objects,
// duplicates and fenced writers.
import fc from 'fast-check';
import type { ClusterEvent, EgressRule } from '../../src/contracts/cluster-events.ts';
import type { LabelSelector, ObjectKind } from '../../src/contracts/primitives.ts';
import { events } from './fixtures.ts';

export const NAMESPACES = ['ns-a', 'ns-b', 'ns-c'];
export const NODES = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'];
export const PODS = ['pod-1', 'pod-2', 'pod-3', 'pod-4'];
export const EGRESS_IPS = ['198.51.100.1', '198.51.100.2', '198.51.100.9', '198.51.100.40'];
// 10.0.0.0/24 and 0.0.0.0/0 overlap the pod IPs, pod CIDRs and node addresses (never-steer).
const DESTS = [
  '203.0.113.0/24',
  '203.0.113.0/25',
  '203.0.113.128/25',
  '203.0.113.7/32',
  '10.0.0.0/24',
  '0.0.0.0/0',
];
// 198.51.100.9 is also an egress IP: a pod that squats on it (reserved addresses).
const POD_IPS = [
  '10.0.0.1',
  '10.0.0.2',
  '10.0.0.3',
  '10.0.0.4',
  '10.0.0.5',
  '10.0.0.6',
  'fd00::1',
  '198.51.100.9',
];

type Ev = ReturnType<typeof events>;
/** A log entry before ids exist: a function of the builder, so ids are assigned in log order. */
export type Step = (ev: Ev, earlier: readonly ClusterEvent[]) => ClusterEvent;

const label = fc.constantFrom('x', 'y');
/** `value` one time in five, else `otherwise`. */
const rarely = <T>(value: T, otherwise: T): fc.Arbitrary<T> =>
  fc.integer({ min: 0, max: 4 }).map((i) => (i === 0 ? value : otherwise));
const selector: fc.Arbitrary<LabelSelector> = fc.oneof(
  fc.constant<LabelSelector>({}),
  label.map((v): LabelSelector => ({ matchLabels: { app: v } })),
  label.map((v): LabelSelector => ({ matchExpressions: [{ key: 'app', operator: 'In', values: [v] }] })),
  fc.constant<LabelSelector>({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['x'] }] }),
);
const nodeSelector: fc.Arbitrary<LabelSelector | undefined> = fc.oneof(
  fc.constant<LabelSelector | undefined>(undefined),
  fc.constant<LabelSelector | undefined>({ matchLabels: { role: 'gw' } }),
  fc.constant<LabelSelector | undefined>({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }),
);

const egressRule = (kind: 'ns' | 'cluster'): fc.Arbitrary<EgressRule> =>
  fc
    .record({
      egressIP: fc.constantFrom(...EGRESS_IPS),
      destinations: fc.uniqueArray(fc.constantFrom(...DESTS), { minLength: 1, maxLength: 2 }),
      exceptions: fc.constantFrom<string[]>([], ['203.0.113.0/28']),
      gateways: fc.integer({ min: 1, max: 3 }),
      service: kind === 'ns' ? fc.boolean() : fc.constant(false),
      podSelector: selector,
      gatewaySelector: nodeSelector,
    })
    .map((r): EgressRule => ({
      egressIP: r.egressIP,
      destinations: r.destinations,
      exceptions: r.exceptions,
      gateways: r.gateways,
      ...(r.service ? { serviceName: 'svc' } : { podSelector: r.podSelector }),
      ...(r.gatewaySelector !== undefined ? { gatewaySelector: r.gatewaySelector } : {}),
    }));

const ns = fc.constantFrom(...NAMESPACES);
const node = fc.constantFrom(...NODES);
const pod = fc.constantFrom(...PODS);

export const objectStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({
        ns,
        pod,
        app: label,
        ips: fc.subarray(POD_IPS, { maxLength: 2 }),
        node: fc.option(node),
        host: fc.boolean(),
        term: fc.boolean(),
      })
      .map(
        (p): Step =>
          (ev) =>
            ev.pod(p.ns, p.pod, {
              labels: { app: p.app },
              ip: p.ips,
              ...(p.node !== null ? { node: p.node } : {}),
              hostNetwork: p.host && p.pod === 'pod-4',
              terminal: p.term && p.pod === 'pod-3',
            }),
      ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ ns, pod }).map(
      (p): Step =>
        (ev) =>
          ev.podDeleted(p.ns, p.pod),
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        node,
        gw: fc.boolean(),
        zone: fc.boolean(),
        // Mostly healthy nodes, so that gateways exist often enough to be interesting.
        ready: rarely(false, true),
        cordon: rarely(true, false),
        noIP: rarely(true, false),
        otherIP: rarely(true, false),
        // Reserved addresses: sometimes an egress IP among its addresses, sometimes a pod CIDR.
        squat: rarely(true, false),
        podCIDR: fc.boolean(),
      })
      .map(
        (n): Step =>
          (ev) =>
            ev.node(n.node, {
              labels: { ...(n.gw ? { role: 'gw' } : {}), ...(n.zone ? { zone: 'z1' } : {}) },
              ready: n.ready,
              unschedulable: n.cordon,
              ...(n.noIP ? { ip: '' } : n.otherIP ? { ip: `192.0.2.${200 + NODES.indexOf(n.node)}` } : {}),
              ...(n.squat ? { addresses: ['198.51.100.40'] } : {}),
              ...(n.podCIDR ? { podCIDRs: [`10.0.${NODES.indexOf(n.node)}.0/28`] } : {}),
            }),
      ),
  },
  {
    weight: 1,
    arbitrary: node.map(
      (n): Step =>
        (ev) =>
          ev.nodeDeleted(n),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<string[]>(['198.51.100.0/31'], ['10.96.0.0/16'], []).map(
      (cidrs): Step =>
        (ev) =>
          cidrs.length === 0 ? ev.serviceCIDRDeleted('kubernetes') : ev.serviceCIDR('kubernetes', cidrs),
    ),
  },
  {
    weight: 3,
    arbitrary: node.map(
      (n): Step =>
        (ev) =>
          ev.nodeBack(n),
    ),
  },
  {
    weight: 2,
    arbitrary: node.map(
      (n): Step =>
        (ev) =>
          ev.nodeLost(n),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ ns, team: fc.constantFrom('a', 'b') }).map(
      (n): Step =>
        (ev) =>
          ev.namespace(n.ns, { team: n.team }),
    ),
  },
  {
    weight: 1,
    arbitrary: ns.map(
      (n): Step =>
        (ev) =>
          ev.namespaceDeleted(n),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ ns, withSelector: fc.boolean(), app: label }).map(
      (s): Step =>
        (ev) =>
          ev.service(s.ns, 'svc', s.withSelector ? { app: s.app } : undefined),
    ),
  },
  {
    weight: 1,
    arbitrary: ns.map(
      (n): Step =>
        (ev) =>
          ev.serviceDeleted(n, 'svc'),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ ns, name: fc.constantFrom('svc-1', 'svc-2'), pods: fc.subarray(PODS) }).map(
      (s): Step =>
        (ev) =>
          ev.slice(
            s.ns,
            s.name,
            'svc',
            s.pods.map((p) => ({ pod: p, ip: '10.0.0.1' })),
          ),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({ ns, name: fc.constantFrom('svc-1', 'svc-2') }).map(
      (s): Step =>
        (ev) =>
          ev.sliceDeleted(s.ns, s.name),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        name: fc.constantFrom('pool-a', 'pool-b'),
        nsSel: fc.option(fc.constantFrom<LabelSelector>({ matchLabels: { team: 'a' } }, {})),
        nodeSel: nodeSelector,
        // The two pools overlap: which one is older decides which one is Accepted.
        created: fc.option(fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z')),
      })
      .map(
        (p): Step =>
          (ev) =>
            ev.pool(p.name, p.name === 'pool-a' ? ['198.51.100.0/29'] : ['198.51.100.2-198.51.100.20'], {
              ...(p.nsSel !== null ? { namespaceSelector: p.nsSel } : {}),
              ...(p.nodeSel !== undefined ? { nodeSelector: p.nodeSel } : {}),
              ...(p.created !== null ? { creationTimestamp: p.created } : {}),
            }),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('pool-a', 'pool-b').map(
      (n): Step =>
        (ev) =>
          ev.poolDeleted(n),
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        ns,
        name: fc.constantFrom('pol-1', 'pol-2'),
        rules: fc.array(egressRule('ns'), { minLength: 1, maxLength: 2 }),
        gen: fc.nat(5),
      })
      .map(
        (p): Step =>
          (ev) =>
            ev.policy(p.ns, p.name, p.rules, p.gen),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.record({ ns, name: fc.constantFrom('pol-1', 'pol-2') }).map(
      (p): Step =>
        (ev) =>
          ev.policyDeleted(p.ns, p.name),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        name: fc.constantFrom('cpol-1', 'cpol-2'),
        nsSel: fc.constantFrom<LabelSelector>(
          {},
          { matchLabels: { team: 'a' } },
          { matchLabels: { team: 'b' } },
        ),
        rules: fc.array(egressRule('cluster'), { minLength: 1, maxLength: 2 }),
      })
      .map(
        (p): Step =>
          (ev) =>
            ev.clusterPolicy(p.name, p.nsSel, p.rules),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('cpol-1', 'cpol-2').map(
      (n): Step =>
        (ev) =>
          ev.clusterPolicyDeleted(n),
    ),
  },
);

const KINDS: ObjectKind[] = [
  'Pod',
  'Node',
  'Namespace',
  'Service',
  'EndpointSlice',
  'StaticEgressIP',
  'ClusterStaticEgressIP',
  'StaticEgressIPPool',
  'ServiceCIDR',
];

/** Steps about the log itself: duplicates, list markers, leadership and fenced writers. */
export const metaStep: fc.Arbitrary<Step> = fc.oneof(
  fc.nat().map(
    (i): Step =>
      (ev, earlier) =>
        earlier.length === 0 ? ev.nodeBack('node-1') : ev.again(earlier[i % earlier.length] as ClusterEvent),
  ),
  fc.record({ kind: fc.constantFrom(...KINDS), id: fc.constantFrom('l1', 'l2') }).map(
    (l): Step =>
      (ev) =>
        ev.listStarted(l.kind, l.id),
  ),
  fc.record({ kind: fc.constantFrom(...KINDS), id: fc.constantFrom('l1', 'l2') }).map(
    (l): Step =>
      (ev) =>
        ev.listCompleted(l.kind, l.id),
  ),
  fc.integer({ min: 1, max: 3 }).map(
    (term): Step =>
      (ev) =>
        ev.leadership('watcher', term),
  ),
  // Forged terms: refused (too far ahead), or announced and never confirmed by their writer.
  fc.constantFrom(2, 4, 1_000, 2 ** 53 - 1).map(
    (term): Step =>
      (ev) =>
        ev.forgedLeadership('watcher', term),
  ),
  fc.tuple(objectStep, fc.integer({ min: 0, max: 2 })).map(
    ([s, term]): Step =>
      (ev, earlier) =>
        ev.by(s(ev, earlier), term),
  ),
);

export const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: objectStep },
  { weight: 1, arbitrary: metaStep },
);

/** Materialize steps into events with ids e1, e2, ... in log order. */
export function toLog(steps: readonly Step[]): ClusterEvent[] {
  const ev = events();
  const out: ClusterEvent[] = [];
  for (const s of steps) out.push(s(ev, out));
  return out;
}

/**
 * A random log: a random bootstrap that populates the universe (namespaces, live nodes, pools,
 * a service, pods, policies; otherwise most random logs would never select anything), then
 * random steps of every kind.
 */
export const logArb = (maxLength = 60): fc.Arbitrary<ClusterEvent[]> =>
  fc
    .tuple(
      fc.shuffledSubarray(bootstrap, { minLength: bootstrap.length - 4 }),
      fc.array(objectStep, { minLength: 8, maxLength: 16 }),
      fc.array(step, { minLength: 1, maxLength, size: 'max' }),
    )
    .map(([boot, objects, rest]) => toLog([...boot, ...objects, ...rest]));

const bootstrap: Step[] = [
  (ev) => ev.namespace('ns-a', { team: 'a' }),
  (ev) => ev.namespace('ns-b', { team: 'b' }),
  (ev) => ev.pool('pool-a', ['198.51.100.0/29']),
  (ev) =>
    ev.pool('pool-b', ['198.51.100.2-198.51.100.20'], { namespaceSelector: { matchLabels: { team: 'a' } } }),
  (ev) => ev.service('ns-a', 'svc', { app: 'x' }),
  ...NODES.flatMap((n, i): Step[] => [
    (ev) => ev.node(n, { labels: i % 2 === 0 ? { role: 'gw', zone: 'z1' } : {} }),
    (ev) => ev.nodeBack(n),
  ]),
];
