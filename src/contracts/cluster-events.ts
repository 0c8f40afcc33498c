// The cluster-events contract: every fact a projection may use, as one io-ts codec per event type.
// Pure. The codecs are the wire format (JSON, one event per Kafka record, see docs/topics.md);
// TypeScript types derive from them. Adding a type here fails compilation in every projection
// until it handles it (exhaustive switches).
import * as t from 'io-ts';
import type { Either } from 'fp-ts/lib/Either.js';
import {
  CIDR,
  IPAddress,
  KubeName,
  LabelSelector,
  Labels,
  NodeName,
  NonNegativeInt,
  Timestamp,
  ObjectKind,
  ObjectRef,
  PoolAddress,
  PositiveInt,
} from './primitives.ts';
import { decodeJson, decodeParsed, type DecodeFailure } from './decode.ts';

export const CLUSTER_EVENTS_SCHEMA = 1;

/**
 * Who wrote an event. `term` is the writer's leadership term (the Lease's transition count when it
 * won the election). Projections ignore a component's events from a term older than the newest
 * they have seen, which fences a deposed leader that keeps writing for a moment ("zombie").
 */
export const Producer = t.type({
  component: t.keyof({ watcher: null, liveness: null }),
  term: t.number,
});
export type Producer = t.TypeOf<typeof Producer>;

/** The highest term: spec.leaseTransitions is an int32 in the Kubernetes API. */
export const MAX_TERM = 2 ** 31 - 1;

function event<T extends string, P extends t.Mixed>(type: T, payload: P) {
  return t.type(
    {
      schema: t.literal(CLUSTER_EVENTS_SCHEMA),
      /** Unique id (UUID) of this fact; a redelivered duplicate carries the same id. */
      id: t.string,
      type: t.literal(type),
      /** When the writer observed the change (RFC 3339, ms). The only clock a projection sees. */
      observedAt: t.string,
      producer: Producer,
      object: ObjectRef,
      payload,
    },
    type,
  );
}
const Empty = t.type({});

// ---- policies and pools (trimmed, normalized specs; parsing lives in src/watcher/parse.ts) ----

/** One rule of a policy after normalization: the seed's `cidr` is folded into `destinations`. */
export const EgressRule = t.intersection([
  t.type({
    egressIP: IPAddress,
    destinations: t.array(CIDR),
    exceptions: t.array(CIDR),
    /** Active gateway plus standbys: 1 means one holder and no standby. */
    gateways: PositiveInt,
  }),
  t.partial({
    serviceName: KubeName,
    podSelector: LabelSelector,
    gatewaySelector: LabelSelector,
  }),
]);
export type EgressRule = t.TypeOf<typeof EgressRule>;

export const StaticEgressIPObserved = event(
  'StaticEgressIPObserved',
  t.type({ generation: NonNegativeInt, rules: t.array(EgressRule) }),
);
export const StaticEgressIPDeleted = event('StaticEgressIPDeleted', Empty);

export const ClusterStaticEgressIPObserved = event(
  'ClusterStaticEgressIPObserved',
  t.type({ generation: NonNegativeInt, namespaceSelector: LabelSelector, rules: t.array(EgressRule) }),
);
export const ClusterStaticEgressIPDeleted = event('ClusterStaticEgressIPDeleted', Empty);

export const StaticEgressIPPoolObserved = event(
  'StaticEgressIPPoolObserved',
  t.intersection([
    /** Each entry is a CIDR ("198.51.100.0/28") or an inclusive range ("198.51.100.20-198.51.100.30"). */
    t.type({ generation: NonNegativeInt, addresses: t.array(PoolAddress) }),
    t.partial({
      namespaceSelector: LabelSelector,
      nodeSelector: LabelSelector,
      /** metadata.creationTimestamp (RFC 3339): the precedence of overlapping pools, the older wins. */
      creationTimestamp: Timestamp,
    }),
  ]),
);
export const StaticEgressIPPoolDeleted = event('StaticEgressIPPoolDeleted', Empty);

// ---- workload objects ----

export const ServiceObserved = event(
  'ServiceObserved',
  /** A Service without a selector selects pods only through hand-made EndpointSlices. */
  t.partial({ selector: Labels }),
);
export const ServiceDeleted = event('ServiceDeleted', Empty);

export const SliceEndpoint = t.intersection([
  t.type({ addresses: t.array(IPAddress) }),
  t.partial({ podName: KubeName, nodeName: NodeName }),
]);
export const EndpointSliceObserved = event(
  'EndpointSliceObserved',
  t.type({ serviceName: KubeName, endpoints: t.array(SliceEndpoint) }),
);
export const EndpointSliceDeleted = event('EndpointSliceDeleted', Empty);

export const PodObserved = event(
  'PodObserved',
  t.intersection([
    t.type({
      labels: Labels,
      podIPs: t.array(IPAddress),
      hostNetwork: t.boolean,
      /** Succeeded/Failed pods hold no IP any more and are never selected. */
      terminal: t.boolean,
    }),
    t.partial({ nodeName: NodeName }),
  ]),
);
export const PodDeleted = event('PodDeleted', Empty);

export const NodeObserved = event(
  'NodeObserved',
  t.intersection([
    t.type({ labels: Labels, ready: t.boolean, unschedulable: t.boolean }),
    t.partial({
      internalIP: IPAddress,
      /** Every address in status.addresses that is an IP (InternalIP, ExternalIP), canonical and
       *  sorted: an egress IP must never be one of them, and pods' traffic to them is never steered.
       *  Optional: events written before issue 12 lack it (and podCIDRs). */
      addresses: t.array(IPAddress),
      /** spec.podCIDRs, canonical and sorted: never steered, and no egress IP inside them. */
      podCIDRs: t.array(CIDR),
    }),
  ]),
);
export const NodeDeleted = event('NodeDeleted', Empty);

export const NamespaceObserved = event('NamespaceObserved', t.type({ labels: Labels }));
export const NamespaceDeleted = event('NamespaceDeleted', Empty);

/** A ServiceCIDR (networking.k8s.io/v1): the ranges ClusterIPs come from. Never steered, and no
 *  egress IP inside them. */
export const ServiceCIDRObserved = event('ServiceCIDRObserved', t.type({ cidrs: t.array(CIDR) }));
export const ServiceCIDRDeleted = event('ServiceCIDRDeleted', Empty);

// ---- markers and liveness ----

/**
 * A writer won its election and starts a new term. Readers fence older terms from here on.
 * object: the Lease's kind is not an ObjectKind, so it names the component's own kind of interest.
 */
export const LeadershipAcquired = event('LeadershipAcquired', t.type({ holder: t.string }));

/**
 * The watcher finished a (re)list of `kind`: every object of that kind that exists was published
 * after the matching ListStarted. Readers drop objects of that kind not seen since then, which is
 * how deletions that happened while no watcher ran reach the log.
 */
export const ListStarted = event('ListStarted', t.type({ kind: ObjectKind, listId: t.string }));
export const ListCompleted = event(
  'ListCompleted',
  t.type({ kind: ObjectKind, listId: t.string, count: t.number }),
);

/** Liveness saw no heartbeat from the node's agent for longer than its threshold. */
export const NodeLost = event('NodeLost', t.type({ lastHeartbeatAt: t.string, silenceMs: t.number }));
/** The node's agent heartbeats (again). A node is an eligible gateway only after this. */
export const NodeBack = event('NodeBack', t.type({ heartbeatAt: t.string }));

export const ClusterEvent = t.union([
  StaticEgressIPObserved,
  StaticEgressIPDeleted,
  ClusterStaticEgressIPObserved,
  ClusterStaticEgressIPDeleted,
  StaticEgressIPPoolObserved,
  StaticEgressIPPoolDeleted,
  ServiceObserved,
  ServiceDeleted,
  EndpointSliceObserved,
  EndpointSliceDeleted,
  PodObserved,
  PodDeleted,
  NodeObserved,
  NodeDeleted,
  NamespaceObserved,
  NamespaceDeleted,
  ServiceCIDRObserved,
  ServiceCIDRDeleted,
  LeadershipAcquired,
  ListStarted,
  ListCompleted,
  NodeLost,
  NodeBack,
]);
export type ClusterEvent = t.TypeOf<typeof ClusterEvent>;
export type ClusterEventType = ClusterEvent['type'];
export type EventOf<K extends ClusterEventType> = Extract<ClusterEvent, { type: K }>;
export type PayloadOf<K extends ClusterEventType> = EventOf<K>['payload'];

/** Decode one Kafka record value; the caller sends failures to the dead-letter topic. */
const clusterEventCodecsByType: ReadonlyMap<string, t.Mixed> = new Map(
  ClusterEvent.types.map((codec) => [codec.name, codec]),
);

const clusterEventOptions = {
  byType: clusterEventCodecsByType,
  schema: { current: CLUSTER_EVENTS_SCHEMA },
};

export function decodeClusterEvent(value: Buffer | string | null): Either<DecodeFailure, ClusterEvent> {
  return decodeJson(ClusterEvent, value, clusterEventOptions);
}

/** decodeClusterEvent for a value already parsed from JSON. */
export function decodeClusterEventValue(value: unknown): Either<DecodeFailure, ClusterEvent> {
  return decodeParsed(ClusterEvent, value, clusterEventOptions);
}

export { ObjectKind };
