// The status writer process: configuration, leader election, the health/metrics server, signal
// handling. Effectful. Only the Lease holder folds and writes (one writer acts; a standby is
// ready and idle). Losing the Lease ends the process with code 1 so it restarts as a standby
// with a clean fold. SIGTERM/SIGINT stop it gracefully: the consumer leaves, the Lease is
// released so a standby takes over at once, and it exits 0.
import '../lib/kafkajs-idle-timer-fix.ts';
import { TOPICS } from '../contracts/topics.ts';
import { NonEmptyString, durationMsFromString, option } from '../lib/config.ts';
import { createDeadLetterSink } from '../lib/dead-letter.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import { createLeaderElector, type Leadership } from '../lib/leader-election.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { createLogger } from '../lib/log.ts';
import * as shared from '../lib/options.ts';
import { createStatusWriter } from './status-writer.ts';

const spec = {
  kubeconfig: shared.kubeconfigOption,
  ...shared.kafkaOptions,
  decisionsTopic: option({
    flag: '--decisions-topic',
    codec: NonEmptyString,
    default: TOPICS.decisions,
    doc: "the projector's decisions (PolicyStatusComputed, GatewayAssigned, ...)",
  }),
  nodeRulesTopic: option({
    flag: '--node-rules-topic',
    codec: NonEmptyString,
    default: TOPICS.nodeRules,
    doc: 'per-node desired state: which generation carries which rule',
  }),
  nodeStatusTopic: option({
    flag: '--node-status-topic',
    codec: NonEmptyString,
    default: TOPICS.nodeStatus,
    doc: "the agents' apply acks",
  }),
  minIntervalMs: option({
    flag: '--min-interval',
    env: 'KSEIP_STATUS_MIN_INTERVAL',
    codec: durationMsFromString(10, 60_000),
    default: 250,
    doc: 'pause between write rounds: a burst of changes to one policy becomes one status write',
  }),
  eventMaxAgeMs: option({
    flag: '--event-max-age',
    codec: durationMsFromString(0, 24 * 3_600_000),
    default: 3_600_000,
    doc: "decisions older than this are not turned into Kubernetes Events on replay (the API server's event TTL)",
  }),
  healthPort: shared.healthPortOption(8080),
  ...shared.optionalLeaseOptions('kseip-status-writer'),
};

const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  spec,
  'kseip-status-writer: writes StaticEgressIP status and Events from the decisions log\n\nUsage: node src/status/main.ts --brokers HOST:PORT [options]',
  shared.checkLeaseOptions,
);

const identity = lifecycle.candidateIdentity(config.identity);
const log = createLogger('status-writer', { identity });
const kubeConfig = lifecycle.loadKubeConfig(config.kubeconfig);

const kafka = createKafka(config.brokers, `kseip-status-writer-${identity}`, kafkaSecurity);
const dlqProducer = kafka.producer();
await dlqProducer.connect();

const writer = createStatusWriter({
  kafka,
  kubeConfig,
  topics: {
    decisions: config.decisionsTopic,
    nodeRules: config.nodeRulesTopic,
    nodeStatus: config.nodeStatusTopic,
  },
  minIntervalMs: config.minIntervalMs,
  eventMaxAgeMs: config.eventMaxAgeMs,
  identity,
  deadLetters: createDeadLetterSink({ producer: dlqProducer, component: 'status-writer', log }),
  log,
});

const lease = shared.leaseSettingsOf(config);
const elector =
  lease === undefined ? undefined : createLeaderElector({ kubeConfig, ...lease, identity, log });

let leadership: Leadership | undefined;
const health = await startHealthServer({
  component: 'status',
  port: config.healthPort,
  // A standby is ready (standing by is its job); a leader once it has caught up with the log.
  ready: () => (elector !== undefined && leadership === undefined) || writer.ready(),
});
log.info({ healthPort: health.port, brokers: config.brokers }, 'status writer started');

const stopping = lifecycle.exitOnStopSignals(log, async () => {
  await writer.stop();
  await elector?.release();
  await dlqProducer.disconnect().catch(() => undefined);
  await health.close();
});

try {
  if (elector !== undefined) {
    leadership = await elector.acquire(stopping.signal);
    void leadership.lost.then((reason) => {
      if (stopping.signal.aborted) return;
      log.error({ reason }, 'leadership lost; exiting so that only the new leader writes');
      stopping.exit(1);
    });
  }
  await writer.run();
} catch (err) {
  if (!stopping.signal.aborted) {
    log.fatal({ err }, 'status writer failed');
    process.exit(1);
  }
}
