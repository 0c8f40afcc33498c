// The decisions contract: what the projector (src/projection/) decided, as one io-ts codec per
// decision type. Pure codecs. Topic: kseip.decisions.v1 (one partition, kept forever): the audit
// trail of gateway assignments, failovers and conflicts, plus the per-policy and per-pool status
// that the status writer turns into the objects' .status and Kubernetes Events.
//
// Every decision names the cluster-events offset that caused it (`offset`), and its `id`
// ("<offset>.<n>", n counting the decisions of that one event) is deterministic: replaying the
// log yields the same ids, so a consumer can de-duplicate and `kseip verify` can compare.
import * as t from 'io-ts';
import type { Either } from 'fp-ts/lib/Either.js';
import { decodeJson, type DecodeFailure } from './decode.ts';
import { IPAddress, KubeName, NamespaceName, NodeName, NodeNameOrNone, RuleRef } from './primitives.ts';

export const DECISIONS_SCHEMA = 1 as const;

function decision<T extends string, P extends t.Props>(type: T, props: P) {
  return t.type(
    {
      schema: t.literal(DECISIONS_SCHEMA),
      /** "<offset>.<n>": deterministic, unique per decision. */
      id: t.string,
      type: t.literal(type),
      /** The cluster-events offset of the event that caused this decision. */
      offset: t.number,
      ...props,
    },
    type,
  );
}

/**
 * A policy, as decisions name it. `namespace` is absent for a ClusterStaticEgressIP. `uid` is the
 * object's metadata.uid when the log has it: a policy deleted and re-created under the same name
 * is another object, and the status writer keeps what it wrote per uid.
 */
export const PolicyRef = t.intersection([
  t.type({ kind: t.keyof({ StaticEgressIP: null, ClusterStaticEgressIP: null }), name: KubeName }),
  t.partial({ namespace: NamespaceName, uid: t.string }),
]);
export type PolicyRef = t.TypeOf<typeof PolicyRef>;

/** Fields shared by the gateway decisions about one egress IP. */
const gatewayProps = {
  egressIP: IPAddress,
  /** The egress IP's slot (see node-rules.ts); 0 once the IP is no longer in use. */
  slot: t.number,
  /** The rule that owns the egress IP ("ns/name#0", "cluster/name#1"); "" once released. */
  owner: t.union([RuleRef, t.literal('')]),
  /** Standbys in takeover order (after the change). */
  standbys: t.array(NodeName),
};

/**
 * The egress IP has an active gateway where it had none, or its standbys changed while the
 * active holder stayed. `previousStandbys` tells the two apart for a reader of the audit trail.
 */
export const GatewayAssigned = decision('GatewayAssigned', {
  ...gatewayProps,
  active: NodeName,
  /** The active holder before this decision; "" when there was none. */
  previous: NodeNameOrNone,
  previousStandbys: t.array(NodeName),
});

/** Why an active holder stopped holding an egress IP. */
export const FailoverReason = t.keyof({
  /** Liveness declared the node's agent silent (NodeLost), or it never came back (no NodeBack). */
  NodeLost: null,
  /** The Node object is gone. */
  NodeDeleted: null,
  /** spec.unschedulable: a cordoned node hands its egress IPs over before it is drained. */
  Cordoned: null,
  /** The Node's Ready condition is not True. */
  NotReady: null,
  /** The Node has no InternalIP, so no director could tunnel to it. */
  NoNodeIP: null,
  /** The node no longer matches the rule's gatewaySelector or the pool's nodeSelector. */
  NotEligible: null,
  /** Still eligible, but a node that ranks higher for this egress IP became eligible. */
  Preempted: null,
});
export type FailoverReason = t.TypeOf<typeof FailoverReason>;

export const GatewayFailedOver = decision('GatewayFailedOver', {
  ...gatewayProps,
  from: NodeName,
  to: NodeName,
  reason: FailoverReason,
});

export const ReleaseReason = t.keyof({
  /** No accepted, winning rule uses the egress IP any more (policy deleted or changed). */
  NotInUse: null,
  /** The egress IP is still wanted but no node is eligible to hold it; its traffic is dropped
   *  by the directors (never sent with the node IP) until one is. */
  NoEligibleGateway: null,
});
export const GatewayReleased = decision('GatewayReleased', {
  ...gatewayProps,
  /** The node that held the egress IP until now. */
  from: NodeName,
  reason: ReleaseReason,
  /** Why `from` stopped holding it, when it is still a known node (see FailoverReason). */
  fromReason: t.union([FailoverReason, t.literal('')]),
});

export const ConflictKind = t.keyof({
  /** Two policies name the same egress IP: only the winner's rules use it. */
  EgressIPClaimed: null,
  /** A pod is selected by two rules with different egress IPs and overlapping destinations:
   *  the winner's rule steers it, the loser's rule leaves it out. */
  SelectionOverlap: null,
});
export type ConflictKind = t.TypeOf<typeof ConflictKind>;

const conflictProps = {
  conflict: ConflictKind,
  /** The losing rule ("ns/name#i") and its policy; its status shows Conflict=True. */
  loser: RuleRef,
  loserPolicy: PolicyRef,
  /** The rule that won (precedence: docs/api.md, "Conflicts"). */
  winner: RuleRef,
  winnerPolicy: PolicyRef,
  /** EgressIPClaimed: the contested IP. SelectionOverlap: the loser's egress IP. */
  egressIP: IPAddress,
};
export const ConflictDetected = decision('ConflictDetected', {
  ...conflictProps,
  /** SelectionOverlap: how many pods the loser leaves out at this point; EgressIPClaimed: 0. */
  pods: t.number,
  message: t.string,
});
export const ConflictResolved = decision('ConflictResolved', conflictProps);

export const ConditionStatus = t.keyof({ True: null, False: null, Unknown: null });
export const Condition = t.type({
  /** PodsSelected: whether the rule selects any pod (a projector before issue 12 did not emit it,
   *  so a decision already in the log may lack it; the status writer then does not wait for it). */
  type: t.keyof({ Accepted: null, PodsSelected: null, Assigned: null, Conflict: null }),
  status: ConditionStatus,
  /** CamelCase, stable for tools: see docs/api.md for the list. */
  reason: t.string,
  message: t.string,
});
export type Condition = t.TypeOf<typeof Condition>;

export const RuleStatus = t.type({
  index: t.number,
  egressIP: IPAddress,
  /** "" while no node holds the egress IP for this rule. */
  active: NodeNameOrNone,
  standbys: t.array(NodeName),
  /** Pods the rule selects (with or without IP or node). */
  selectedPods: t.number,
  /** Selected pods that cannot be programmed yet: no IP of the egress IP's family, or no node. */
  unprogrammablePods: t.number,
  /** Distinct nodes that steer this rule's pods (directors). The node set itself is in
   *  kseip.node-rules.v1: the steers whose `sources` name this rule. */
  selectedNodes: t.number,
  conditions: t.array(Condition),
});
export type RuleStatus = t.TypeOf<typeof RuleStatus>;

/**
 * The projector's view of one policy, emitted whenever any part of it changes. Programmed
 * (from agent acks) and Ready are the status writer's to add. Policy-level conditions aggregate
 * the rules' (False/True wins over True/False as documented in docs/api.md).
 */
export const PolicyStatusComputed = decision('PolicyStatusComputed', {
  policy: PolicyRef,
  /** The metadata.generation of the spec this status describes. */
  observedGeneration: t.number,
  rules: t.array(RuleStatus),
  conditions: t.array(Condition),
});

/** A pool, as decisions name it; `uid` as for PolicyRef (a re-created pool is another object). */
export const PoolRef = t.intersection([t.type({ name: t.string }), t.partial({ uid: t.string })]);
export type PoolRef = t.TypeOf<typeof PoolRef>;

/** One egress IP of a pool that a policy uses: an accepted rule of the policy that won the IP. */
export const PoolAllocation = t.type({
  egressIP: t.string,
  /** "namespace/name" for a StaticEgressIP, "name" for a ClusterStaticEgressIP. */
  policy: t.string,
});
export type PoolAllocation = t.TypeOf<typeof PoolAllocation>;

/**
 * The projector's view of one StaticEgressIPPool, emitted whenever it changes: which of its
 * egress IPs policies use, and the conditions Accepted (False when its addresses overlap a pool
 * that takes precedence) and Conflict (True when a StaticEgressIP asks for one of its addresses
 * from a namespace the pool does not admit). Ready is the status writer's to add.
 */
export const PoolStatusComputed = decision('PoolStatusComputed', {
  pool: PoolRef,
  observedGeneration: t.number,
  /** In address order. */
  allocations: t.array(PoolAllocation),
  conditions: t.array(Condition),
});

export const Decision = t.union([
  GatewayAssigned,
  GatewayFailedOver,
  GatewayReleased,
  ConflictDetected,
  ConflictResolved,
  PolicyStatusComputed,
  PoolStatusComputed,
]);
export type Decision = t.TypeOf<typeof Decision>;
export type DecisionType = Decision['type'];
export type DecisionOf<K extends DecisionType> = Extract<Decision, { type: K }>;
/** A decision before the projector numbers it (id is derived from offset and position). */
export type DecisionDraft = Decision extends infer D
  ? D extends { id: string }
    ? Omit<D, 'id'>
    : never
  : never;

const decisionCodecsByType: ReadonlyMap<string, t.Mixed> = new Map(Decision.types.map((c) => [c.name, c]));

export function decodeDecision(value: Buffer | string | null): Either<DecodeFailure, Decision> {
  return decodeJson(Decision, value, {
    byType: decisionCodecsByType,
    schema: { current: DECISIONS_SCHEMA },
  });
}

/** The Kafka key of a decision: its subject, so one subject's decisions are easy to filter. */
export function decisionKey(d: Decision): string {
  switch (d.type) {
    case 'GatewayAssigned':
    case 'GatewayFailedOver':
    case 'GatewayReleased':
    case 'ConflictDetected':
    case 'ConflictResolved':
      return d.egressIP;
    case 'PolicyStatusComputed':
      return d.policy.namespace === undefined ? d.policy.name : `${d.policy.namespace}/${d.policy.name}`;
    case 'PoolStatusComputed':
      // The kind spelled out: a pool and a cluster policy may share a name.
      return `StaticEgressIPPool/${d.pool.name}`;
    default: {
      const _exhaustive: never = d;
      return _exhaustive;
    }
  }
}
