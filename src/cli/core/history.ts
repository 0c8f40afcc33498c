// Egress history for `kseip audit`: which pod left as which egress IP through which gateway, as
// intervals over the log. Pure: folded alongside fold.ts, from the node rules each step emits
// (what the directors were told to do), with pod identities from the pod index. An interval
// opens when a node's rules start steering a pod IP to an egress IP via a gateway, and closes
// when that stops (pod gone, unselected, another gateway: a failover closes one interval and
// opens another). Gateway "" means no node could hold the IP: the director drops that traffic.
import type { Decision } from '../../events/decisions.ts';
import type { Fold, Step } from './fold.ts';

export type GatewayDecision = Extract<
  Decision,
  { type: 'GatewayAssigned' | 'GatewayFailedOver' | 'GatewayReleased' }
>;

export interface Point {
  readonly offset: number;
  readonly time: string;
}

export interface EgressInterval {
  readonly pod: string;
  readonly podIP: string;
  readonly node: string;
  readonly egressIP: string;
  readonly gateway: string;
  readonly from: Point;
  to?: Point;
}

export interface HistoryFilter {
  readonly egressIP?: string;
  /** "ns/name" */
  readonly pod?: string;
  /** false: gateway decisions only, no intervals (audit failovers). Default true. */
  readonly intervals?: boolean;
}

export interface History {
  readonly filter: HistoryFilter;
  /** Every interval, in the order they opened; open ones have no `to`. */
  readonly intervals: EgressInterval[];
  /** Per node: entry key → its open interval. */
  readonly open: Map<string, Map<string, EgressInterval>>;
  /** Gateway decisions about the filtered egress IP (all IPs without one): failovers and more. */
  readonly gatewayDecisions: (GatewayDecision & { time: string })[];
}

export function initialHistory(filter: HistoryFilter = {}): History {
  return { filter, intervals: [], open: new Map(), gatewayDecisions: [] };
}

/** Apply one fold step (after stepFold). Consumes `h`. */
export function evolveHistory(h: History, f: Fold, step: Step): History {
  const at: Point = { offset: step.offset, time: step.event.observedAt };
  for (const d of step.outputs.decisions)
    if (
      (d.type === 'GatewayAssigned' || d.type === 'GatewayFailedOver' || d.type === 'GatewayReleased') &&
      (h.filter.egressIP === undefined || d.egressIP === h.filter.egressIP)
    )
      h.gatewayDecisions.push({ ...d, time: at.time });
  if (h.filter.intervals === false) return h;
  if (step.outputs.nodeRules.length === 0 && step.podNodes.length === 0) return h;
  const touched = new Set<string>(step.podNodes);
  for (const r of step.outputs.nodeRules) touched.add(r.node);
  const pod = h.filter.pod;
  if (pod === undefined) for (const node of touched) reconcileNode(h, f, node, at);
  else {
    // Only where the pod is, or where it still has open intervals: every other node's rules
    // cannot name it, so a long replay skips them without looking at their steers.
    const here = f.podPlace.get(pod)?.node;
    for (const node of touched)
      if (node === here || h.open.has(node)) reconcileNode(h, f, node, at, f.podPlace.get(pod)?.ips ?? []);
  }
  return h;
}

/** `podIPs`: with a pod filter, the pod's IPs (only they can match on its node). */
function reconcileNode(h: History, f: Fold, node: string, at: Point, podIPs?: readonly string[]): void {
  const now = new Map<string, Omit<EgressInterval, 'from'>>();
  const rules = f.latestRules.get(node);
  for (const s of rules?.steers ?? []) {
    if (h.filter.egressIP !== undefined && s.egressIP !== h.filter.egressIP) continue;
    const candidates = podIPs === undefined ? s.podIPs : podIPs.filter((ip) => s.podIPs.includes(ip));
    for (const podIP of candidates) {
      const pod = f.podAt.get(`${node}|${podIP}`) ?? '?';
      if (h.filter.pod !== undefined && pod !== h.filter.pod) continue;
      now.set(`${pod}|${podIP}|${s.egressIP}|${s.gatewayNode}`, {
        pod,
        podIP,
        node,
        egressIP: s.egressIP,
        gateway: s.gatewayNode,
      });
    }
  }
  let open = h.open.get(node);
  if (open === undefined) {
    if (now.size === 0) return;
    open = new Map();
    h.open.set(node, open);
  }
  for (const [key, iv] of open)
    if (!now.has(key)) {
      iv.to = at;
      open.delete(key);
    }
  for (const [key, entry] of now)
    if (!open.has(key)) {
      const iv: EgressInterval = { ...entry, from: at };
      open.set(key, iv);
      h.intervals.push(iv);
    }
  if (open.size === 0) h.open.delete(node);
}

/** Intervals that overlap [fromMs, toMs] (an interval is [from, to): it ends when it closes) (observedAt times); open intervals extend to now. */
export function selectIntervals(h: History, fromMs: number, toMs: number): EgressInterval[] {
  return h.intervals.filter(
    (iv) => Date.parse(iv.from.time) <= toMs && (iv.to === undefined || Date.parse(iv.to.time) > fromMs),
  );
}
