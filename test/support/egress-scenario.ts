// A small, scripted cluster-events log for the kseip CLI tests: a pool, three gateway-capable
// nodes, three pods, one policy selecting two of them, the active gateway lost (failover), a pod
// deleted. Pure; event i is observed at T0 + i seconds, so audit intervals have readable times.
// `exportLines` renders the log plus what the real projection emits for it as an export file
// (the records the projector would have produced, offsets counted per topic).
import type { ClusterEvent } from '../../src/contracts/cluster-events.ts';
import { decisionKey } from '../../src/contracts/decisions.ts';
import { TOPICS } from '../../src/contracts/topics.ts';
import { renderLine, type LogRecord } from '../../src/cli/core/log-file.ts';
import { events, healthyNode, rule } from './fixtures.ts';
import { evolve, initialState, selectAssignments } from '../../src/projection/projection.ts';

export const T0 = Date.parse('2026-03-01T12:00:00Z');
export const EIP = '198.51.100.10';
export const at = (i: number): string => new Date(T0 + i * 1000).toISOString();

export const POLICY_YAML_ADD_DB = `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: eip, namespace: shop, generation: 2}
spec:
  rules:
  - egressip: ${EIP}
    podSelector: {matchLabels: {tier: backend}}
    cidr: 203.0.113.0/24
    exceptions: [203.0.113.128/25]
    gateways: 2
`;

/** The scripted log. `lostAt` is the index of the NodeLost of the first active gateway. */
export function buildScenario(): {
  log: ClusterEvent[];
  firstActive: string;
  lostAt: number;
  deletedAt: number;
} {
  const ev = events();
  const backend = { tier: 'backend' };
  const base: ClusterEvent[] = [
    ev.pool('p', ['198.51.100.0/24']),
    ev.namespace('shop'),
    ...healthyNode(ev, 'node-1'),
    ...healthyNode(ev, 'node-2'),
    ...healthyNode(ev, 'node-3'),
    ev.pod('shop', 'web-0', { labels: { app: 'web', ...backend }, node: 'node-1', ip: '10.1.0.5' }),
    ev.pod('shop', 'web-1', { labels: { app: 'web', ...backend }, node: 'node-2', ip: '10.1.0.6' }),
    ev.pod('shop', 'db-0', { labels: { app: 'db', ...backend }, node: 'node-1', ip: '10.1.0.7' }),
    ev.policy('shop', 'eip', [
      rule({
        egressIP: EIP,
        podSelector: { matchLabels: { app: 'web' } },
        except: ['203.0.113.128/25'],
        gateways: 2,
      }),
    ]),
  ];
  // Which node HRW makes active is the projection's business: ask it, then lose that node.
  const s = initialState();
  base.forEach((e, i) => evolve(s, e, i));
  const firstActive = selectAssignments(s)[EIP]?.active ?? '';
  const lostAt = base.length;
  const log = [...base, ev.nodeLost(firstActive), ev.podDeleted('shop', 'web-1')];
  return {
    log: log.map((e, i) => ({
      ...e,
      id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      observedAt: at(i),
    })),
    firstActive,
    lostAt,
    deletedAt: lostAt + 1,
  };
}

/** cluster-events plus the projection's decisions and node rules, as export records. */
export function exportRecords(log: readonly ClusterEvent[]): LogRecord[] {
  const out: LogRecord[] = log.map((e, i) => ({
    topic: TOPICS.clusterEvents,
    partition: 0,
    offset: i,
    timestamp: Date.parse(e.observedAt),
    key: `${e.object.kind}/${e.object.namespace ?? ''}/${e.object.name}`,
    value: e,
  }));
  const decisions: LogRecord[] = [];
  const rules: LogRecord[] = [];
  const s = initialState();
  log.forEach((e, i) => {
    const o = evolve(s, e, i);
    const ts = Date.parse(e.observedAt);
    for (const d of o.decisions)
      decisions.push({
        topic: TOPICS.decisions,
        partition: 0,
        offset: decisions.length,
        timestamp: ts,
        key: decisionKey(d),
        value: d,
      });
    for (const r of o.nodeRules)
      rules.push({
        topic: TOPICS.nodeRules,
        partition: 0,
        offset: rules.length,
        timestamp: ts,
        key: r.node,
        value: r,
      });
  });
  return [...out, ...decisions, ...rules];
}

export function exportText(records: readonly LogRecord[]): string {
  return records.map((r) => `${renderLine(r)}\n`).join('');
}
