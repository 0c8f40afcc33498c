// The cluster view: the objects as the log last described them. Pure (mutates only the linear
// state it is given, see model.ts). It owns the envelope rules that decide whether an event
// counts at all, and turns each counted event into the list of object changes that the derived
// read models (selection, gateways, ...) react to:
// - Idempotence: an event id seen before is ignored (redelivery, a producer's retry). An
//   Observed whose payload equals the stored one changes nothing but the object's lastSeen.
// - Term fencing: a component's events from a term older than its fence are ignored, so a
//   deposed watcher that still writes cannot undo its successor's facts. A term must be
//   consistent with the log before it fences anything (docs/projector.md, "Term fencing"):
//   a LeadershipAcquired only *announces* its term, and is refused (dead-lettered by the
//   projector, the view unchanged) unless the term is a Lease transition count (an integer in
//   [0, 2^31-1]) no more than TERM_STEP past the newest term the log holds for the component.
//   The announced term becomes the fence at the first other event written in it: the new
//   leader's own work confirms it. So no single record can fence the component's real writer.
// - List markers: ListCompleted drops every object of its kind not (re-)observed since the
//   ListStarted with the same listId: how deletions missed while no watcher ran reach the view.
//   The drops come out in key order, so the outputs do not depend on map order.
// - Liveness: NodeBack makes a node alive, NodeLost not; a node never heard of is not alive.
import { MAX_TERM, type ClusterEvent, type PayloadOf } from '../contracts/cluster-events.ts';
import type { ObjectKind, ObjectRef } from '../contracts/primitives.ts';
import { isCanonicalIPv4, parseAddress } from './addresses.ts';
import type {
  NamespaceRec,
  TermRec,
  NodeRec,
  PodPayload,
  PodRec,
  PolicyKind,
  PolicyPayload,
  PolicyRec,
  PoolRec,
  ServiceRec,
  SliceRec,
  State,
} from './model.ts';
import { parsePoolEntry } from './addresses.ts';

export type ViewChange =
  | { readonly kind: 'Pod'; readonly rec: PodRec; readonly before: PodPayload | undefined }
  | { readonly kind: 'Node'; readonly name: string; readonly before: NodeRec['p'] | undefined }
  | { readonly kind: 'Liveness'; readonly name: string }
  | { readonly kind: 'Service'; readonly rec: ServiceRec }
  | {
      readonly kind: 'EndpointSlice';
      readonly rec: SliceRec;
      readonly beforeService: string | undefined;
      readonly beforePods: readonly string[];
      readonly deleted: boolean;
    }
  | { readonly kind: 'Namespace'; readonly name: string }
  | { readonly kind: 'Pool'; readonly name: string }
  | {
      readonly kind: 'ServiceCIDR';
      readonly name: string;
      readonly before: PayloadOf<'ServiceCIDRObserved'> | undefined;
    }
  | { readonly kind: 'Policy'; readonly rec: PolicyRec; readonly before: PolicyPayload | undefined };

/** The fold refused the event: it changed nothing, and the projector dead-letters it. */
export interface Refusal {
  readonly refused: string;
}

const NONE: readonly ViewChange[] = [];

/**
 * How far past the newest term the log holds a LeadershipAcquired may jump. Terms are the
 * Lease's spec.leaseTransitions, which grows by one per change of holder; the log misses a term
 * only when a leader lost the Lease before its LeadershipAcquired reached Kafka, so a real jump
 * is a few terms. A forged term far ahead is refused instead of fencing everything after it.
 */
export const TERM_STEP = 16;

/** Structural equality of decoded JSON values (key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let n = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue;
    n++;
    if (!Object.hasOwn(bo, k) || !jsonEqual(ao[k], bo[k])) return false;
  }
  for (const k in bo) if (bo[k] !== undefined) n--;
  return n === 0;
}

export function namespacedKey(ref: ObjectRef): string {
  return `${ref.namespace ?? ''}/${ref.name}`;
}

export function policyKey(kind: PolicyKind, namespace: string | undefined, name: string): string {
  return namespace === undefined ? `${kind}/${name}` : `${kind}/${namespace}/${name}`;
}

// Shared empty arrays for fields that are replaced, never mutated: one per pod would cost heap.
const NO_IPS: string[] = [];
const NO_RULES: PodRec['regRules'] = [];
const NO_PAIRS: PodRec['lost'] = [];

function canonicalIPs(texts: readonly string[], family: 4 | 6): string[] {
  if (texts.length === 0) return NO_IPS;
  if (texts.length === 1) {
    // The common case (one canonical IPv4 address), without a Set or a parse result: this runs
    // once per pod event.
    const text = texts[0] as string;
    if (isCanonicalIPv4(text)) return family === 4 ? [text] : NO_IPS;
    const a = parseAddress(text);
    return a !== undefined && a.family === family ? [a.text] : NO_IPS;
  }
  const out = new Set<string>();
  for (const t of texts) {
    const a = parseAddress(t);
    if (a !== undefined && a.family === family) out.add(a.text);
  }
  return [...out].sort();
}

function slicePodNames(p: SliceRec['p']): string[] {
  const names = new Set<string>();
  for (const e of p.endpoints) if (e.podName !== undefined && e.podName !== '') names.add(e.podName);
  return [...names].sort();
}

/**
 * Apply one event to the view. Returns the object changes it made (empty when the event does not
 * count). Derived models must treat the returned records as the current truth.
 */
export function evolveClusterView(
  state: State,
  event: ClusterEvent,
  offset: number,
): readonly ViewChange[] | Refusal {
  if (state.seenIds.has(event.id)) {
    state.ignored.duplicate++;
    return NONE;
  }
  const { component, term } = event.producer;
  let terms = state.terms.get(component);
  if (terms?.fence !== undefined && term < terms.fence) {
    state.ignored.fenced++;
    return NONE;
  }
  state.seenIds.add(event.id);
  if (event.type === 'LeadershipAcquired') return announceTerm(state, component, term, terms);
  if (terms === undefined)
    state.terms.set(component, (terms = { fence: undefined, announced: undefined, highest: term }));
  else if (terms.highest === undefined || term > terms.highest) terms.highest = term;
  if (terms.announced === term) {
    terms.fence = term;
    terms.announced = undefined;
  }
  const ref = event.object;

  switch (event.type) {
    case 'PodObserved': {
      const key = namespacedKey(ref);
      const rec = state.pods.get(key);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      const ipv4 = canonicalIPs(event.payload.podIPs, 4);
      const ipv6 = canonicalIPs(event.payload.podIPs, 6);
      if (rec !== undefined) {
        const before = rec.p;
        rec.p = event.payload;
        rec.lastSeen = offset;
        rec.ipv4 = ipv4;
        rec.ipv6 = ipv6;
        return [{ kind: 'Pod', rec, before }];
      }
      const created: PodRec = {
        key,
        namespace: ref.namespace ?? '',
        name: ref.name,
        p: event.payload,
        lastSeen: offset,
        ipv4,
        ipv6,
        deleted: false,
        reservedIPs: NO_IPS,
        selectedBy: [],
        prog4: false,
        prog6: false,
        lost: NO_PAIRS,
        regNode: undefined,
        regRules: NO_RULES,
        regIPs4: NO_IPS,
        regIPs6: NO_IPS,
      };
      state.pods.set(key, created);
      return [{ kind: 'Pod', rec: created, before: undefined }];
    }
    case 'PodDeleted':
      return deletePod(state, namespacedKey(ref));

    case 'NodeObserved': {
      const rec = state.nodes.get(ref.name);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      const before = rec?.p;
      if (rec !== undefined) {
        rec.p = event.payload;
        rec.lastSeen = offset;
      } else state.nodes.set(ref.name, { name: ref.name, p: event.payload, lastSeen: offset });
      return [{ kind: 'Node', name: ref.name, before }];
    }
    case 'NodeDeleted':
      return deleteNode(state, ref.name);

    case 'ServiceCIDRObserved': {
      const rec = state.serviceCIDRs.get(ref.name);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      const before = rec?.p;
      if (rec !== undefined) {
        rec.p = event.payload;
        rec.lastSeen = offset;
      } else state.serviceCIDRs.set(ref.name, { name: ref.name, p: event.payload, lastSeen: offset });
      return [{ kind: 'ServiceCIDR', name: ref.name, before }];
    }
    case 'ServiceCIDRDeleted':
      return deleteServiceCIDR(state, ref.name);

    case 'NodeBack':
    case 'NodeLost': {
      const alive = event.type === 'NodeBack';
      if (state.liveness.get(ref.name) === alive) return unchanged(state, undefined, offset);
      state.liveness.set(ref.name, alive);
      return [{ kind: 'Liveness', name: ref.name }];
    }

    case 'ServiceObserved': {
      const key = namespacedKey(ref);
      const rec = state.services.get(key);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      if (rec !== undefined) {
        rec.p = event.payload;
        rec.lastSeen = offset;
        return [{ kind: 'Service', rec }];
      }
      const created: ServiceRec = {
        key,
        namespace: ref.namespace ?? '',
        name: ref.name,
        p: event.payload,
        lastSeen: offset,
      };
      state.services.set(key, created);
      return [{ kind: 'Service', rec: created }];
    }
    case 'ServiceDeleted':
      return deleteService(state, namespacedKey(ref));

    case 'EndpointSliceObserved': {
      const key = namespacedKey(ref);
      const rec = state.slices.get(key);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      const podNames = slicePodNames(event.payload);
      if (rec !== undefined) {
        const beforeService = rec.p.serviceName;
        const beforePods = rec.podNames;
        rec.p = event.payload;
        rec.lastSeen = offset;
        rec.podNames = podNames;
        return [{ kind: 'EndpointSlice', rec, beforeService, beforePods, deleted: false }];
      }
      const created: SliceRec = {
        key,
        namespace: ref.namespace ?? '',
        p: event.payload,
        lastSeen: offset,
        podNames,
      };
      state.slices.set(key, created);
      return [
        { kind: 'EndpointSlice', rec: created, beforeService: undefined, beforePods: [], deleted: false },
      ];
    }
    case 'EndpointSliceDeleted':
      return deleteSlice(state, namespacedKey(ref));

    case 'NamespaceObserved': {
      const rec = state.namespaces.get(ref.name);
      if (rec !== undefined && jsonEqual(rec.p, event.payload)) return unchanged(state, rec, offset);
      if (rec !== undefined) {
        rec.p = event.payload;
        rec.lastSeen = offset;
      } else state.namespaces.set(ref.name, { name: ref.name, p: event.payload, lastSeen: offset });
      return [{ kind: 'Namespace', name: ref.name }];
    }
    case 'NamespaceDeleted':
      return deleteNamespace(state, ref.name);

    case 'StaticEgressIPPoolObserved': {
      const rec = state.pools.get(ref.name);
      // Another uid: re-created while no watcher ran (as for policies); its status names the new object.
      const recreated = rec !== undefined && ref.uid !== undefined && rec.ref.uid !== ref.uid;
      if (rec !== undefined && !recreated && jsonEqual(rec.p, event.payload))
        return unchanged(state, rec, offset);
      const ranges = event.payload.addresses.flatMap((a) => parsePoolEntry(a) ?? []);
      const poolRef = { name: ref.name, ...(ref.uid === undefined ? {} : { uid: ref.uid }) };
      if (rec !== undefined) {
        if (recreated) rec.ref = poolRef;
        rec.p = event.payload;
        rec.lastSeen = offset;
        rec.ranges = ranges;
      } else
        state.pools.set(ref.name, {
          name: ref.name,
          ref: poolRef,
          p: event.payload,
          lastSeen: offset,
          ranges,
        });
      return [{ kind: 'Pool', name: ref.name }];
    }
    case 'StaticEgressIPPoolDeleted':
      return deletePool(state, ref.name);

    case 'StaticEgressIPObserved':
      return observePolicy(state, 'StaticEgressIP', ref, event.payload, offset);
    case 'StaticEgressIPDeleted':
      return deletePolicy(state, policyKey('StaticEgressIP', ref.namespace ?? '', ref.name));
    case 'ClusterStaticEgressIPObserved':
      return observePolicy(state, 'ClusterStaticEgressIP', ref, event.payload, offset);
    case 'ClusterStaticEgressIPDeleted':
      return deletePolicy(state, policyKey('ClusterStaticEgressIP', undefined, ref.name));

    case 'ListStarted': {
      let lists = state.lists.get(event.payload.kind);
      if (lists === undefined) state.lists.set(event.payload.kind, (lists = new Map<string, number>()));
      lists.set(event.payload.listId, offset);
      return NONE;
    }
    case 'ListCompleted': {
      const lists = state.lists.get(event.payload.kind);
      const started = lists?.get(event.payload.listId);
      if (lists === undefined || started === undefined) return NONE;
      lists.delete(event.payload.listId);
      if (lists.size === 0) state.lists.delete(event.payload.kind);
      return dropUnseen(state, event.payload.kind, started);
    }
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

/**
 * A LeadershipAcquired that is not fenced: refused when its term is not consistent with the log,
 * else it becomes the component's announced term (the newest announcement wins; only the term's
 * own events make it the fence).
 */
function announceTerm(
  state: State,
  component: string,
  term: number,
  terms: TermRec | undefined,
): readonly ViewChange[] | Refusal {
  const refuse = (why: string): Refusal => {
    state.ignored.refused++;
    return { refused: `LeadershipAcquired of ${component} refused: term ${term} ${why}` };
  };
  if (!Number.isInteger(term) || term < 0 || term > MAX_TERM)
    return refuse(`is not a Lease transition count (an integer from 0 to ${MAX_TERM})`);
  const newest = Math.max(terms?.fence ?? -1, terms?.highest ?? -1);
  if (newest >= 0 && term > newest + TERM_STEP)
    return refuse(
      `jumps more than ${TERM_STEP} past term ${newest}, the newest the log holds for ${component}`,
    );
  if (terms === undefined) {
    state.terms.set(component, { fence: undefined, announced: term, highest: undefined });
    return NONE;
  }
  if (term === terms.fence) return unchanged(state, undefined, 0);
  terms.announced = term;
  return NONE;
}

function unchanged(
  state: State,
  rec: { lastSeen: number } | undefined,
  offset: number,
): readonly ViewChange[] {
  if (rec !== undefined) rec.lastSeen = offset;
  state.ignored.unchanged++;
  return NONE;
}

function observePolicy(
  state: State,
  kind: PolicyKind,
  object: ObjectRef,
  payload: PolicyPayload,
  offset: number,
): readonly ViewChange[] {
  const namespace = kind === 'ClusterStaticEgressIP' ? undefined : (object.namespace ?? '');
  const { name, uid } = object;
  const key = policyKey(kind, namespace, name);
  const rec = state.policies.get(key);
  // Another uid under the same name: the object was re-created and its delete is not in the log
  // (the watcher was down meanwhile); its statuses must name the new object. An event without a
  // uid (a what-if edit, a test) says nothing about identity: the same object.
  const recreated = rec !== undefined && uid !== undefined && rec.ref.uid !== uid;
  if (rec !== undefined && !recreated && jsonEqual(rec.p, payload)) return unchanged(state, rec, offset);
  if (rec !== undefined) {
    if (recreated) rec.ref = policyRef(kind, namespace, name, uid);
    const before = rec.p;
    rec.p = payload;
    rec.lastSeen = offset;
    return [{ kind: 'Policy', rec, before }];
  }
  const created: PolicyRec = {
    key,
    kind,
    namespace,
    name,
    ref: policyRef(kind, namespace, name, uid),
    firstSeen: offset,
    p: payload,
    lastSeen: offset,
    rules: [],
    deleted: false,
  };
  state.policies.set(key, created);
  return [{ kind: 'Policy', rec: created, before: undefined }];
}

function policyRef(
  kind: PolicyKind,
  namespace: string | undefined,
  name: string,
  uid: string | undefined,
): PolicyRec['ref'] {
  return {
    kind,
    ...(namespace === undefined ? {} : { namespace }),
    name,
    ...(uid === undefined ? {} : { uid }),
  };
}

function deletePod(state: State, key: string): readonly ViewChange[] {
  const rec = state.pods.get(key);
  if (rec === undefined) return NONE;
  state.pods.delete(key);
  rec.deleted = true;
  return [{ kind: 'Pod', rec, before: rec.p }];
}

function deleteNode(state: State, name: string): readonly ViewChange[] {
  const rec = state.nodes.get(name);
  if (rec === undefined) return NONE;
  state.nodes.delete(name);
  return [{ kind: 'Node', name, before: rec.p }];
}

function deleteServiceCIDR(state: State, name: string): readonly ViewChange[] {
  const rec = state.serviceCIDRs.get(name);
  if (rec === undefined) return NONE;
  state.serviceCIDRs.delete(name);
  return [{ kind: 'ServiceCIDR', name, before: rec.p }];
}

function deleteService(state: State, key: string): readonly ViewChange[] {
  const rec = state.services.get(key);
  if (rec === undefined) return NONE;
  state.services.delete(key);
  return [{ kind: 'Service', rec }];
}

function deleteSlice(state: State, key: string): readonly ViewChange[] {
  const rec = state.slices.get(key);
  if (rec === undefined) return NONE;
  state.slices.delete(key);
  return [
    { kind: 'EndpointSlice', rec, beforeService: rec.p.serviceName, beforePods: rec.podNames, deleted: true },
  ];
}

function deleteNamespace(state: State, name: string): readonly ViewChange[] {
  if (!state.namespaces.delete(name)) return NONE;
  return [{ kind: 'Namespace', name }];
}

function deletePool(state: State, name: string): readonly ViewChange[] {
  if (!state.pools.delete(name)) return NONE;
  return [{ kind: 'Pool', name }];
}

function deletePolicy(state: State, key: string): readonly ViewChange[] {
  const rec = state.policies.get(key);
  if (rec === undefined) return NONE;
  state.policies.delete(key);
  rec.deleted = true;
  return [{ kind: 'Policy', rec, before: rec.p }];
}

function dropUnseen(state: State, kind: ObjectKind, started: number): readonly ViewChange[] {
  const stale = <R extends { lastSeen: number }>(m: Map<string, R>): string[] =>
    [...m.entries()]
      .filter(([, r]) => r.lastSeen < started)
      .map(([k]) => k)
      .sort();
  const out: ViewChange[] = [];
  const drop = (keys: string[], del: (k: string) => readonly ViewChange[]) => {
    for (const k of keys) out.push(...del(k));
  };
  switch (kind) {
    case 'Pod':
      drop(stale(state.pods), (k) => deletePod(state, k));
      break;
    case 'Node':
      drop(stale(state.nodes), (k) => deleteNode(state, k));
      break;
    case 'Service':
      drop(stale(state.services), (k) => deleteService(state, k));
      break;
    case 'EndpointSlice':
      drop(stale(state.slices), (k) => deleteSlice(state, k));
      break;
    case 'Namespace':
      drop(stale(state.namespaces), (k) => deleteNamespace(state, k));
      break;
    case 'StaticEgressIPPool':
      drop(stale(state.pools), (k) => deletePool(state, k));
      break;
    case 'ServiceCIDR':
      drop(stale(state.serviceCIDRs), (k) => deleteServiceCIDR(state, k));
      break;
    case 'StaticEgressIP':
    case 'ClusterStaticEgressIP': {
      const ofKind = new Map([...state.policies].filter(([, p]) => p.kind === kind));
      drop(stale(ofKind), (k) => deletePolicy(state, k));
      break;
    }
    default: {
      const _exhaustive: never = kind;
      return _exhaustive;
    }
  }
  return out;
}

export type { NamespaceRec, NodeRec, PoolRec };
