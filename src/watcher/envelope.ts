// Builds cluster-event envelopes and their Kafka keys. Pure: ids and times are passed in.
import type { ClusterEventType, EventOf, PayloadOf, Producer } from '../contracts/cluster-events.ts';
import { CLUSTER_EVENTS_SCHEMA } from '../contracts/cluster-events.ts';
import type { ObjectKind, ObjectRef } from '../contracts/primitives.ts';

/**
 * The record key: kind/namespace/name, with an empty namespace for cluster-scoped objects and
 * for markers ("Node//node-a", "Pod/default/web-0", "Pod//" for a Pod list marker). One partition
 * carries everything, so the key orders nothing; it lets readers and tools select one object.
 */
export function eventKey(object: ObjectRef): string {
  return `${object.kind}/${object.namespace ?? ''}/${object.name}`;
}

/** The ObjectRef of a Kubernetes object as the API server returned it. */
export function objectRefOf(
  kind: ObjectKind,
  obj: { metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string } },
): ObjectRef {
  const m = obj.metadata ?? {};
  const ref: ObjectRef = { kind, name: m.name ?? '' };
  if (m.namespace) ref.namespace = m.namespace;
  if (m.uid) ref.uid = m.uid;
  if (m.resourceVersion) ref.resourceVersion = m.resourceVersion;
  return ref;
}

export interface EnvelopeContext {
  readonly id: string;
  readonly observedAt: string;
  readonly producer: Producer;
}

export function buildEvent<K extends ClusterEventType>(
  type: K,
  object: ObjectRef,
  payload: PayloadOf<K>,
  ctx: EnvelopeContext,
): EventOf<K> {
  return {
    schema: CLUSTER_EVENTS_SCHEMA,
    id: ctx.id,
    type,
    observedAt: ctx.observedAt,
    producer: ctx.producer,
    object,
    payload,
  } as EventOf<K>;
}
