// kseip-topics: creates every topic of src/contracts/topics.ts that does not exist yet, with its
// partition count and configs (retention, compaction), then exits 0. Existing topics are never
// altered. Effectful: one Kafka admin connection. docker-compose.yml runs it once before the
// control plane (the projector reads kseip.cluster-events.v1, which otherwise only the watcher
// creates); on a cluster it can run as a Job. Same Kafka options as every component (--help).
import { hostname } from 'node:os';
import '../lib/kafkajs-idle-timer-fix.ts';
import { createKafka } from '../lib/kafka.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { createLogger } from '../lib/log.ts';
import * as shared from '../lib/options.ts';
import { topicSpecs } from '../contracts/topics.ts';

const spec = { ...shared.kafkaOptions, replicationFactor: shared.replicationFactorOption };
const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  spec,
  'kseip-topics: creates the missing kube-static-egress-ip topics, then exits',
);
const log = createLogger('topics');
const admin = createKafka(config.brokers, `kseip-topics-${hostname()}-${process.pid}`, kafkaSecurity).admin();
await admin.connect();
try {
  const existing = new Set(await admin.listTopics());
  const missing = topicSpecs(config.replicationFactor).filter((s) => !existing.has(s.topic));
  if (missing.length > 0)
    await admin.createTopics({ topics: missing, waitForLeaders: true, timeout: 30_000 });
  log.info(
    { created: missing.map((s) => s.topic), replicationFactor: config.replicationFactor },
    missing.length > 0 ? 'topics created' : 'every topic exists',
  );
} finally {
  await admin.disconnect();
}
