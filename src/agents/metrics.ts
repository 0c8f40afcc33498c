// The node agent's Prometheus metrics. Effectful only in that it registers them in the registry
// it is given: the process's default registry in production (served by src/lib/health.ts), a
// fresh one per agent in tests that run several agents in one process.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface AgentMetrics {
  readonly applyDuration: Histogram<'reason' | 'result'>;
  readonly applyErrors: Counter<'reason'>;
  readonly driftRepairs: Counter;
  readonly appliedGeneration: Gauge;
  readonly fenced: Gauge;
  readonly fences: Counter;
  readonly withdrawErrors: Counter;
  readonly heartbeatsSent: Counter;
  readonly heartbeatFailures: Counter;
  readonly deadLetters: Counter;
  readonly markClashes: Gauge;
  readonly nodeRulesRecords: Counter;
  readonly consumerRestarts: Counter;
  readonly consumerRejoins: Counter;
}

/** `generationLag` is read at scrape time: newest generation seen for this node minus applied. */
export function createAgentMetrics(registry: Registry, generationLag: () => number): AgentMetrics {
  const registers = [registry];
  new Gauge({
    name: 'kseip_agent_lag_generations',
    help: 'Newest node-rules generation seen for this node minus the generation last applied successfully',
    registers,
    collect() {
      this.set(generationLag());
    },
  });
  return {
    applyDuration: new Histogram({
      name: 'kseip_agent_apply_duration_seconds',
      help: 'Time of one full dataplane apply (reason: startup, update, drift, fence; result: ok, error)',
      labelNames: ['reason', 'result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    applyErrors: new Counter({
      name: 'kseip_agent_apply_errors_total',
      help: 'Dataplane applies that failed',
      labelNames: ['reason'],
      registers,
    }),
    driftRepairs: new Counter({
      name: 'kseip_agent_drift_repairs_total',
      help: 'Drift checks that found our kernel objects changed and triggered a repair apply',
      registers,
    }),
    appliedGeneration: new Gauge({
      name: 'kseip_agent_applied_generation',
      help: 'Generation of the node-rules state last applied successfully',
      registers,
    }),
    fenced: new Gauge({
      name: 'kseip_agent_fenced',
      help: '1 while the agent has withdrawn its egress IPs because it lost contact with Kafka',
      registers,
    }),
    fences: new Counter({
      name: 'kseip_agent_fences_total',
      help: 'Times the agent fenced itself (withdrew egress IPs after losing contact with Kafka)',
      registers,
    }),
    withdrawErrors: new Counter({
      name: 'kseip_agent_withdraw_errors_total',
      help: 'Failed attempts to withdraw egress IPs while fencing (retried)',
      registers,
    }),
    heartbeatsSent: new Counter({
      name: 'kseip_agent_heartbeats_sent_total',
      help: 'Heartbeats acknowledged by Kafka',
      registers,
    }),
    heartbeatFailures: new Counter({
      name: 'kseip_agent_heartbeat_errors_total',
      help: 'Heartbeats Kafka did not acknowledge',
      registers,
    }),
    markClashes: new Gauge({
      name: 'kseip_agent_mark_clashes',
      help: 'Rules of other nftables tables that use packet-mark bits inside --mark-mask, found at start (./mark-clash.ts)',
      registers,
    }),
    nodeRulesRecords: new Counter({
      name: 'kseip_agent_node_rules_records_total',
      help: 'node-rules records of this node read (a re-read after a broker outage would count them again)',
      registers,
    }),
    consumerRestarts: new Counter({
      name: 'kseip_agent_kafka_consumer_restarts_total',
      help: 'node-rules consumers made again after kafkajs gave up on one (a broker away for longer than its retries)',
      registers,
    }),
    consumerRejoins: new Counter({
      name: 'kseip_agent_kafka_consumer_rejoins_total',
      help: 'Re-joins of the node-rules consumer group after the first (a membership lost, e.g. in a broker outage longer than the session timeout)',
      registers,
    }),
    deadLetters: new Counter({
      name: 'kseip_agent_dead_letters_total',
      help: 'node-rules records for this node that did not decode (sent to the dead-letter topic)',
      registers,
    }),
  };
}
