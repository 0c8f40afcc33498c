// The replay behind every CLI read command: decode cluster-events records and fold them with the
// real projection (src/projection/projection.ts), keeping alongside what the audit needs and
// the projection does not index: the latest node rules per node and which pod holds which IP on
// which node. Pure: a linear fold like the projection's own (`stepFold` updates the value it is
// given); no clock, no I/O. Undecodable records are skipped, as the projector dead-letters them.
import { decodeClusterEventValue, type ClusterEvent } from '../../contracts/cluster-events.ts';
import type { NodeRules } from '../../contracts/node-rules.ts';
import { evolve, initialState, type Outputs, type State } from '../../projection/projection.ts';
import type { LogRecord } from './log-file.ts';

export type DecodedEvent =
  { readonly ok: true; readonly event: ClusterEvent } | { readonly ok: false; readonly reason: string };

/** The cluster-events codec applied to an already-parsed record value. */
export function decodeEventRecord(r: LogRecord): DecodedEvent {
  if (r.value === undefined || r.value === null)
    return { ok: false, reason: r.raw === undefined ? 'tombstone' : 'not JSON' };
  const d = decodeClusterEventValue(r.value);
  return d._tag === 'Right' ? { ok: true, event: d.right } : { ok: false, reason: d.left.reason };
}

export interface PodPlace {
  readonly node: string;
  readonly ips: readonly string[];
}

export interface Fold {
  readonly state: State;
  /** Events folded, undecodable records skipped. */
  events: number;
  skipped: number;
  /** Offset and observedAt of the last folded event (-1 / '' before any). */
  offset: number;
  time: string;
  /** Newest term per producer component (a what-if event writes with it, so it is not fenced). */
  readonly terms: Map<string, number>;
  readonly latestRules: Map<string, NodeRules>;
  /** "node|podIP" → "ns/name" of the live pod holding that IP on that node. */
  readonly podAt: Map<string, string>;
  readonly podPlace: Map<string, PodPlace>;
}

export function initialFold(): Fold {
  return {
    state: initialState(),
    events: 0,
    skipped: 0,
    offset: -1,
    time: '',
    terms: new Map(),
    latestRules: new Map(),
    podAt: new Map(),
    podPlace: new Map(),
  };
}

export interface Step {
  readonly event: ClusterEvent;
  readonly offset: number;
  readonly outputs: Outputs;
  /** Nodes whose pods changed place or IP in this step (their steers may now name other pods). */
  readonly podNodes: readonly string[];
  /** The IPs (before and after) of the pod that changed in this step: whose owner may differ. */
  readonly podIPs: readonly string[];
}

/** Fold one decoded event at its offset; returns what the step produced. Consumes `f`. */
export function stepFold(f: Fold, event: ClusterEvent, offset: number): Step {
  const outputs = evolve(f.state, event, offset);
  for (const r of outputs.nodeRules) f.latestRules.set(r.node, r);
  f.events++;
  f.offset = offset;
  f.time = event.observedAt;
  const term = f.terms.get(event.producer.component);
  if (term === undefined || event.producer.term > term)
    f.terms.set(event.producer.component, event.producer.term);
  const podNodes: string[] = [];
  const podIPs: string[] = [];
  if (event.type === 'PodObserved' || event.type === 'PodDeleted') {
    const key = `${event.object.namespace ?? ''}/${event.object.name}`;
    const before = f.podPlace.get(key);
    if (before !== undefined) {
      for (const ip of before.ips)
        if (f.podAt.get(`${before.node}|${ip}`) === key) f.podAt.delete(`${before.node}|${ip}`);
      f.podPlace.delete(key);
      podNodes.push(before.node);
      podIPs.push(...before.ips);
    }
    if (
      event.type === 'PodObserved' &&
      event.payload.nodeName !== undefined &&
      event.payload.nodeName !== ''
    ) {
      const node = event.payload.nodeName;
      const place = { node, ips: event.payload.podIPs };
      f.podPlace.set(key, place);
      for (const ip of place.ips) f.podAt.set(`${node}|${ip}`, key);
      podIPs.push(...place.ips);
      if (before?.node !== node) podNodes.push(node);
    }
  }
  return { event, offset, outputs, podNodes, podIPs };
}

/** Stop conditions of `replay --until`: an offset (inclusive) or a time (observedAt, inclusive). */
export type Until =
  { readonly kind: 'offset'; readonly offset: number } | { readonly kind: 'time'; readonly ms: number };

export function isPast(
  until: Until | undefined,
  offset: number,
  event: ClusterEvent | undefined,
  timestamp: number,
): boolean {
  if (until === undefined) return false;
  if (until.kind === 'offset') return offset > until.offset;
  const at = event === undefined ? timestamp : Date.parse(event.observedAt);
  return at > until.ms;
}
