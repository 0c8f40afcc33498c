// Egress history for `kseip audit`: which pod left as which egress IP through which gateway, as
// intervals over the log. Pure: folded alongside fold.ts, from the node rules each step emits
// (what the directors were told to do), with pod identities from the pod index. An interval
// opens when a node's rules start steering a pod IP to an egress IP via a gateway, and closes
// when that stops (pod gone, unselected, another gateway: a failover closes one interval and
// opens another). Gateway "" means no node could hold the IP: the director drops that traffic.
import type { Decision } from '../../contracts/decisions.ts';
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
  /**
   * Per node, per steer group ("egressIP|gateway"): the pod IPs the node's rules listed for it
   * when last looked at, and the group's open intervals by "pod|podIP". Only nodes and groups
   * with open intervals are kept.
   */
  readonly open: Map<string, Map<string, OpenGroup>>;
  /** Gateway decisions about the filtered egress IP (all IPs without one): failovers and more. */
  readonly gatewayDecisions: (GatewayDecision & { time: string })[];
}

export interface OpenGroup {
  podIPs: readonly string[];
  readonly intervals: Map<string, EgressInterval>;
}

export function initialHistory(filter: HistoryFilter = {}): History {
  return { filter, intervals: [], open: new Map(), gatewayDecisions: [] };
}

/** The intervals open on `node` at this point of the fold. */
export function selectOpenIntervals(h: History, node: string): EgressInterval[] {
  return [...(h.open.get(node)?.values() ?? [])].flatMap((g) => [...g.intervals.values()]);
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
  // Pods changed only on step.podNodes, and only the owners of step.podIPs can differ there.
  const changedIPs = new Set(step.podIPs);
  const podNodes = new Set(step.podNodes);
  const touched = new Set<string>(step.podNodes);
  for (const r of step.outputs.nodeRules) touched.add(r.node);
  const pod = h.filter.pod;
  const changedOn = (node: string): ReadonlySet<string> => (podNodes.has(node) ? changedIPs : NONE);
  if (pod === undefined) for (const node of touched) reconcileNode(h, f, node, at, changedOn(node));
  else {
    // Only where the pod is, or where it still has open intervals: every other node's rules
    // cannot name it, so a long replay skips them without looking at their steers.
    const here = f.podPlace.get(pod)?.node;
    for (const node of touched)
      if (node === here || h.open.has(node))
        reconcileNode(h, f, node, at, changedOn(node), f.podPlace.get(pod)?.ips ?? []);
  }
  return h;
}

const NONE: ReadonlySet<string> = new Set();

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Brings the node's open intervals in line with its latest rules. A steer group whose pod IPs
 * are the ones seen last time is left alone unless one of them changed owner in this step
 * (`changedIPs`: a pod on this node changed and had or has that IP): a pod change, a failover
 * or a policy change costs the groups it changed, not every pod of every node it touched.
 * `podIPs`: with a pod filter, the pod's IPs (only they can match on its node).
 */
function reconcileNode(
  h: History,
  f: Fold,
  node: string,
  at: Point,
  changedIPs: ReadonlySet<string>,
  podIPs?: readonly string[],
): void {
  // The node's steers as groups "egressIP|gateway" → pod IPs (steers that differ only in
  // destinations share a group: an interval is about the egress IP and the gateway).
  const groups = new Map<string, { egressIP: string; gateway: string; podIPs: string[] }>();
  for (const s of f.latestRules.get(node)?.steers ?? []) {
    if (h.filter.egressIP !== undefined && s.egressIP !== h.filter.egressIP) continue;
    const ips = podIPs === undefined ? s.podIPs : podIPs.filter((ip) => s.podIPs.includes(ip));
    if (ips.length === 0) continue;
    const key = `${s.egressIP}|${s.gatewayNode}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { egressIP: s.egressIP, gateway: s.gatewayNode, podIPs: [...ips] });
    else g.podIPs.push(...ips);
  }
  let open = h.open.get(node);
  if (open === undefined) {
    if (groups.size === 0) return;
    open = new Map();
    h.open.set(node, open);
  }
  for (const [key, g] of open)
    if (!groups.has(key)) {
      for (const iv of g.intervals.values()) iv.to = at;
      open.delete(key);
    }
  for (const [key, g] of groups) {
    const cached = open.get(key);
    if (
      cached !== undefined &&
      sameList(cached.podIPs, g.podIPs) &&
      (changedIPs.size === 0 || !g.podIPs.some((ip) => changedIPs.has(ip)))
    )
      continue;
    const now = new Map<string, string>();
    for (const podIP of g.podIPs) {
      const pod = f.podAt.get(`${node}|${podIP}`) ?? '?';
      if (h.filter.pod !== undefined && pod !== h.filter.pod) continue;
      now.set(`${pod}|${podIP}`, pod);
    }
    const intervals = cached?.intervals ?? new Map<string, EgressInterval>();
    for (const [k, iv] of intervals)
      if (!now.has(k)) {
        iv.to = at;
        intervals.delete(k);
      }
    for (const [k, pod] of now)
      if (!intervals.has(k)) {
        const iv: EgressInterval = {
          pod,
          podIP: k.slice(pod.length + 1),
          node,
          egressIP: g.egressIP,
          gateway: g.gateway,
          from: at,
        };
        intervals.set(k, iv);
        h.intervals.push(iv);
      }
    if (intervals.size === 0) open.delete(key);
    else if (cached === undefined) open.set(key, { podIPs: g.podIPs, intervals });
    else cached.podIPs = g.podIPs;
  }
  if (open.size === 0) h.open.delete(node);
}

/** Intervals that overlap [fromMs, toMs] (an interval is [from, to): it ends when it closes) (observedAt times); open intervals extend to now. */
export function selectIntervals(h: History, fromMs: number, toMs: number): EgressInterval[] {
  return h.intervals.filter(
    (iv) => Date.parse(iv.from.time) <= toMs && (iv.to === undefined || Date.parse(iv.to.time) > fromMs),
  );
}
