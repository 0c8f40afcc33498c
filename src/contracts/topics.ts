// Topic names and their configuration: the one place that says which topics exist and how they
// are created. docs/topics.md explains them for operators.
import type { ITopicConfig } from 'kafkajs';

export const TOPICS = {
  /** Every fact, totally ordered (one partition), kept forever: the source of truth. */
  clusterEvents: 'kseip.cluster-events.v1',
  /** The projector's audit trail: gateway assignments, failovers, conflicts, policy status. */
  decisions: 'kseip.decisions.v1',
  /** Desired state per node (key = node), compacted: the latest full state per node. */
  nodeRules: 'kseip.node-rules.v1',
  /** Agent heartbeats (key = node); short retention, only liveness reads them. */
  heartbeats: 'kseip.heartbeats.v1',
  /** Agent apply acknowledgements (key = node). */
  nodeStatus: 'kseip.node-status.v1',
  /** Records that did not decode, with the reason in headers; never blocks a consumer. */
  deadLetter: 'kseip.dead-letter.v1',
} as const;
export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

const forever = { name: 'retention.ms', value: '-1' };
const compacted = { name: 'cleanup.policy', value: 'compact' };

/** Topic specs for kafkajs admin.createTopics; replicationFactor is the cluster's to choose. */
export function topicSpecs(replicationFactor = 1): ITopicConfig[] {
  const spec = (topic: string, configEntries: { name: string; value: string }[]): ITopicConfig => ({
    topic,
    numPartitions: 1,
    replicationFactor,
    configEntries,
  });
  return [
    spec(TOPICS.clusterEvents, [forever]),
    spec(TOPICS.decisions, [forever]),
    spec(TOPICS.nodeRules, [compacted, { name: 'min.compaction.lag.ms', value: '60000' }]),
    spec(TOPICS.heartbeats, [{ name: 'retention.ms', value: String(60 * 60 * 1000) }]),
    spec(TOPICS.nodeStatus, [{ name: 'retention.ms', value: String(7 * 24 * 60 * 60 * 1000) }]),
    // Keyed by source position (src/lib/dead-letter.ts): compaction folds re-readings into one.
    spec(TOPICS.deadLetter, [compacted]),
  ];
}
