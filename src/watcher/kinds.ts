// The kinds the watcher publishes: where the API server serves each one and how its objects
// become events (src/watcher/parse.ts). Pure data.
import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../api/group.ts';
import type { Either } from 'fp-ts/lib/Either.js';
import type { ClusterEventType } from '../contracts/cluster-events.ts';
import type { ObjectKind } from '../contracts/primitives.ts';
import { eventTypesOf, parseObject, samePayload, type AnyParsed, type ParseError } from './parse.ts';

export { GROUP_VERSION };

export interface KindSpec {
  readonly kind: ObjectKind;
  /** Collection across all namespaces (list and watch). */
  readonly path: string;
  readonly observed: ClusterEventType;
  readonly deleted: ClusterEventType;
  readonly parse: (obj: KubernetesObject) => Either<ParseError, AnyParsed>;
  /** Whether two payloads of one object say the same to projections (then nothing is published). */
  readonly same: (a: unknown, b: unknown) => boolean;
}

const paths: Record<ObjectKind, string> = {
  StaticEgressIP: `/apis/${GROUP_VERSION}/staticegressips`,
  ClusterStaticEgressIP: `/apis/${GROUP_VERSION}/clusterstaticegressips`,
  StaticEgressIPPool: `/apis/${GROUP_VERSION}/staticegressippools`,
  Service: '/api/v1/services',
  EndpointSlice: '/apis/discovery.k8s.io/v1/endpointslices',
  Pod: '/api/v1/pods',
  Node: '/api/v1/nodes',
  Namespace: '/api/v1/namespaces',
  ServiceCIDR: '/apis/networking.k8s.io/v1/servicecidrs',
};

function spec(kind: ObjectKind): KindSpec {
  return {
    kind,
    path: paths[kind],
    observed: eventTypesOf[kind].observed,
    deleted: eventTypesOf[kind].deleted,
    parse: (obj) => parseObject(kind, obj),
    same: (a, b) => samePayload(a, b),
  };
}

/**
 * Policies and pools first: a reader folding a fresh log then meets the policies before the
 * (many) pods they select. Order within the log is otherwise whatever the API server delivers.
 */
export const watchedKinds: readonly KindSpec[] = (
  [
    'StaticEgressIPPool',
    'ClusterStaticEgressIP',
    'StaticEgressIP',
    'Namespace',
    'Node',
    'ServiceCIDR',
    'Service',
    'EndpointSlice',
    'Pod',
  ] as const
).map(spec);
