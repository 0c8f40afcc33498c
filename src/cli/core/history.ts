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
  if (step.outputs.nodeRules.length === 0 && step.podNodes.length === 0) return h;
  const touched = new Set<string>(step.podNodes);
  for (const r of step.outputs.nodeRules) touched.add(r.node);
  for (const node of touched) reconcileNode(h, f, node, at);
  return h;
}

function reconcileNode(h: History, f: Fold, node: string, at: Point): void {
  const now = new Map<string, Omit<EgressInterval, 'from'>>();
  const rules = f.latestRules.get(node);
  for (const s of rules?.steers ?? []) {
    if (h.filter.egressIP !== undefined && s.egressIP !== h.filter.egressIP) continue;
    for (const podIP of s.podIPs) {
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
