// Test support (not used by production code): builders for cluster events with documentation
// addresses (destinations 203.0.113.0/24, egress IPs 198.51.100.0/24, node IPs 192.0.2.0/24,
// pod IPs 10.x), and a given/when harness around the pure projection. Pure; ids and timestamps
// are deterministic so outputs can be compared byte for byte.
import type { ClusterEvent, EgressRule, EventOf } from '../../src/contracts/cluster-events.ts';
import { CLUSTER_EVENTS_SCHEMA } from '../../src/contracts/cluster-events.ts';
import type { Decision } from '../../src/contracts/decisions.ts';
import type { NodeRules } from '../../src/contracts/node-rules.ts';
import type { LabelSelector, Labels, ObjectKind, ObjectRef } from '../../src/contracts/primitives.ts';
import {
  evolve,
  initialState,
  selectAssignments,
  type Outputs,
  type State,
} from '../../src/projection/projection.ts';
import { selectNodeRules } from '../../src/projection/queries.ts';

export const DEST = '203.0.113.0/24';
export const EGRESS_1 = '198.51.100.1';
export const EGRESS_2 = '198.51.100.2';
export const EGRESS_POOL = '198.51.100.0/24';

export interface RuleInput {
  egressIP?: string;
  to?: string[];
  except?: string[];
  gateways?: number;
  service?: string;
  podSelector?: LabelSelector;
  gatewaySelector?: LabelSelector;
}

export function rule(r: RuleInput = {}): EgressRule {
  return {
    egressIP: r.egressIP ?? EGRESS_1,
    destinations: r.to ?? [DEST],
    exceptions: r.except ?? [],
    gateways: r.gateways ?? 1,
    ...(r.service !== undefined ? { serviceName: r.service } : {}),
    ...(r.podSelector !== undefined ? { podSelector: r.podSelector } : {}),
    ...(r.gatewaySelector !== undefined ? { gatewaySelector: r.gatewaySelector } : {}),
  };
}

export interface PodInput {
  labels?: Labels;
  ip?: string | string[];
  node?: string;
  hostNetwork?: boolean;
  terminal?: boolean;
}

export interface NodeInput {
  ip?: string;
  labels?: Labels;
  ready?: boolean;
  unschedulable?: boolean;
  /** status.addresses' IPs (absent: the field is left out, as in events before issue 12). */
  addresses?: string[];
  podCIDRs?: string[];
}

type Component = 'watcher' | 'liveness';

/**
 * Event builders. Each builder instance numbers its event ids e1, e2, ... and writes as the
 * current term of each component (leadership() moves it forward, as a new leader would).
 */
export function events() {
  let n = 0;
  const terms: Record<Component, number> = { watcher: 1, liveness: 1 };
  const make = <K extends ClusterEvent['type']>(
    type: K,
    object: ObjectRef,
    payload: EventOf<K>['payload'],
    by: Component = 'watcher',
  ): EventOf<K> =>
    ({
      schema: CLUSTER_EVENTS_SCHEMA,
      id: `e${++n}`,
      type,
      observedAt: '2026-01-01T00:00:00.000Z',
      producer: { component: by, term: terms[by] },
      object,
      payload,
    }) as EventOf<K>;
  const liveness: Component = 'liveness';
  return {
    pool: (
      name: string,
      addresses: string[] = [EGRESS_POOL],
      sel: {
        namespaceSelector?: LabelSelector;
        nodeSelector?: LabelSelector;
        creationTimestamp?: string;
      } = {},
      uid?: string,
    ) =>
      make(
        'StaticEgressIPPoolObserved',
        { kind: 'StaticEgressIPPool', name, ...(uid === undefined ? {} : { uid }) },
        { generation: 1, addresses, ...sel },
      ),
    poolDeleted: (name: string) =>
      make('StaticEgressIPPoolDeleted', { kind: 'StaticEgressIPPool', name }, {}),
    policy: (namespace: string, name: string, rules: EgressRule[], generation = 1) =>
      make('StaticEgressIPObserved', { kind: 'StaticEgressIP', namespace, name }, { generation, rules }),
    policyDeleted: (namespace: string, name: string) =>
      make('StaticEgressIPDeleted', { kind: 'StaticEgressIP', namespace, name }, {}),
    clusterPolicy: (name: string, namespaceSelector: LabelSelector, rules: EgressRule[], generation = 1) =>
      make(
        'ClusterStaticEgressIPObserved',
        { kind: 'ClusterStaticEgressIP', name },
        { generation, namespaceSelector, rules },
      ),
    clusterPolicyDeleted: (name: string) =>
      make('ClusterStaticEgressIPDeleted', { kind: 'ClusterStaticEgressIP', name }, {}),
    node: (name: string, o: NodeInput = {}) =>
      make(
        'NodeObserved',
        { kind: 'Node', name },
        {
          labels: o.labels ?? {},
          ready: o.ready ?? true,
          unschedulable: o.unschedulable ?? false,
          ...(o.ip === '' ? {} : { internalIP: o.ip ?? nodeIP(name) }),
          ...(o.addresses !== undefined ? { addresses: o.addresses } : {}),
          ...(o.podCIDRs !== undefined ? { podCIDRs: o.podCIDRs } : {}),
        },
      ),
    nodeDeleted: (name: string) => make('NodeDeleted', { kind: 'Node', name }, {}),
    nodeBack: (name: string) =>
      make('NodeBack', { kind: 'Node', name }, { heartbeatAt: '2026-01-01T00:00:00.000Z' }, liveness),
    nodeLost: (name: string) =>
      make(
        'NodeLost',
        { kind: 'Node', name },
        { lastHeartbeatAt: '2026-01-01T00:00:00.000Z', silenceMs: 900 },
        liveness,
      ),
    pod: (namespace: string, name: string, o: PodInput = {}) =>
      make(
        'PodObserved',
        { kind: 'Pod', namespace, name },
        {
          labels: o.labels ?? {},
          podIPs: o.ip === undefined ? [] : Array.isArray(o.ip) ? o.ip : [o.ip],
          hostNetwork: o.hostNetwork ?? false,
          terminal: o.terminal ?? false,
          ...(o.node !== undefined ? { nodeName: o.node } : {}),
        },
      ),
    podDeleted: (namespace: string, name: string) => make('PodDeleted', { kind: 'Pod', namespace, name }, {}),
    service: (namespace: string, name: string, selector?: Labels) =>
      make(
        'ServiceObserved',
        { kind: 'Service', namespace, name },
        selector === undefined ? {} : { selector },
      ),
    serviceDeleted: (namespace: string, name: string) =>
      make('ServiceDeleted', { kind: 'Service', namespace, name }, {}),
    slice: (namespace: string, name: string, serviceName: string, pods: { pod: string; ip: string }[]) =>
      make(
        'EndpointSliceObserved',
        { kind: 'EndpointSlice', namespace, name },
        { serviceName, endpoints: pods.map((p) => ({ addresses: [p.ip], podName: p.pod })) },
      ),
    sliceDeleted: (namespace: string, name: string) =>
      make('EndpointSliceDeleted', { kind: 'EndpointSlice', namespace, name }, {}),
    namespace: (name: string, labels: Labels = {}) =>
      make('NamespaceObserved', { kind: 'Namespace', name }, { labels }),
    namespaceDeleted: (name: string) => make('NamespaceDeleted', { kind: 'Namespace', name }, {}),
    serviceCIDR: (name: string, cidrs: string[]) =>
      make('ServiceCIDRObserved', { kind: 'ServiceCIDR', name }, { cidrs }),
    serviceCIDRDeleted: (name: string) => make('ServiceCIDRDeleted', { kind: 'ServiceCIDR', name }, {}),
    /** A new leader of `component` at `term`; later events of this builder write with it. */
    leadership: (component: Component, term: number) => {
      const e = make(
        'LeadershipAcquired',
        { kind: 'Node', name: component },
        { holder: `${component}-${term}` },
      );
      terms[component] = Math.max(terms[component], term);
      return { ...e, producer: { component, term } };
    },
    /** A LeadershipAcquired nobody won (a forged record): the builder's own term does not move. */
    forgedLeadership: (component: Component, term: number, holder = 'forged') => {
      const e = make('LeadershipAcquired', { kind: 'Node', name: component }, { holder });
      return { ...e, producer: { component, term } };
    },
    listStarted: (kind: ObjectKind, listId: string) =>
      make('ListStarted', { kind, name: listId }, { kind, listId }),
    listCompleted: (kind: ObjectKind, listId: string, count = 0) =>
      make('ListCompleted', { kind, name: listId }, { kind, listId, count }),
    /** The same event again (a redelivery): same id. */
    again: <E extends ClusterEvent>(e: E): E => structuredClone(e),
    /** Any event as written by another producer term (fencing tests). */
    by: <E extends ClusterEvent>(e: E, term: number): E => ({ ...e, producer: { ...e.producer, term } }),
  };
}

/** Node underlay IPs from 192.0.2.0/24, derived from the node name's trailing number. */
export function nodeIP(name: string): string {
  const m = /(\d+)$/.exec(name);
  return `192.0.2.${m ? (Number(m[1]) % 250) + 1 : 1}`;
}

/** A node that is observed Ready and alive: what a healthy gateway candidate looks like. */
export function healthyNode(ev: ReturnType<typeof events>, name: string, o: NodeInput = {}): ClusterEvent[] {
  return [ev.node(name, o), ev.nodeBack(name)];
}

/** given/when over the pure projection, with offsets 0, 1, 2, ... */
export class Scenario {
  readonly state: State = initialState();
  offset = 0;
  readonly log: ClusterEvent[] = [];
  readonly all: Outputs[] = [];

  given(...evs: (ClusterEvent | ClusterEvent[])[]): this {
    for (const e of evs.flat()) this.apply(e);
    return this;
  }

  when(...evs: (ClusterEvent | ClusterEvent[])[]): Outputs {
    const decisions: Decision[] = [];
    const nodeRules: NodeRules[] = [];
    let offset = this.offset;
    let refused: string | undefined;
    for (const e of evs.flat()) {
      const o = this.apply(e);
      offset = o.offset;
      decisions.push(...o.decisions);
      nodeRules.push(...o.nodeRules);
      refused ??= o.refused;
    }
    return refused === undefined
      ? { offset, decisions, nodeRules }
      : { offset, decisions, nodeRules, refused };
  }

  private apply(e: ClusterEvent): Outputs {
    this.log.push(e);
    const o = evolve(this.state, e, this.offset++);
    this.all.push(o);
    return o;
  }

  rules(node: string): NodeRules | undefined {
    return selectNodeRules(this.state, node);
  }

  assignments() {
    return selectAssignments(this.state);
  }

  /** The last PolicyStatusComputed emitted for a policy ("ns/name" or cluster "name"). */
  status(policy: string) {
    let last: Extract<Decision, { type: 'PolicyStatusComputed' }> | undefined;
    for (const o of this.all)
      for (const d of o.decisions)
        if (d.type === 'PolicyStatusComputed') {
          const key =
            d.policy.namespace === undefined ? d.policy.name : `${d.policy.namespace}/${d.policy.name}`;
          if (key === policy) last = d;
        }
    return last;
  }

  /** The last PoolStatusComputed emitted for a pool. */
  poolStatus(pool: string) {
    let last: Extract<Decision, { type: 'PoolStatusComputed' }> | undefined;
    for (const o of this.all)
      for (const d of o.decisions) if (d.type === 'PoolStatusComputed' && d.pool.name === pool) last = d;
    return last;
  }
}

export function decisionsOfType<K extends Decision['type']>(o: { decisions: readonly Decision[] }, type: K) {
  return o.decisions.filter((d): d is Extract<Decision, { type: K }> => d.type === type);
}
