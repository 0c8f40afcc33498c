// The watcher process: configuration, the health/metrics server, signal handling. Effectful.
// SIGTERM/SIGINT stop it gracefully: informers stop, buffered events are flushed (bounded by
// --flush-timeout), the Lease is released so a standby takes over at once, and it exits 0.
import '../lib/kafkajs-idle-timer-fix.ts';
import { TOPICS } from '../contracts/topics.ts';
import {
  BooleanFromString,
  NonEmptyString,
  durationMsFromString,
  intFromString,
  option,
} from '../lib/config.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { createLogger } from '../lib/log.ts';
import * as shared from '../lib/options.ts';
import { createWatcher } from './watcher.ts';

const spec = {
  kubeconfig: shared.kubeconfigOption,
  ...shared.kafkaOptions,
  topic: option({
    flag: '--topic',
    env: 'KSEIP_TOPIC',
    codec: NonEmptyString,
    default: TOPICS.clusterEvents,
    doc: 'topic to publish cluster events to (one partition)',
  }),
  createTopic: option({
    flag: '--create-topic',
    env: 'KSEIP_CREATE_TOPIC',
    codec: BooleanFromString,
    boolean: true,
    default: true,
    doc: 'create the topic if missing (1 partition, retention forever)',
  }),
  replicationFactor: shared.replicationFactorOption,
  ...shared.leaseOptions({ namespace: 'kube-system', name: 'kseip-watcher' }),
  bufferCapacity: option({
    flag: '--buffer-capacity',
    env: 'KSEIP_BUFFER_CAPACITY',
    codec: intFromString(1, 10_000_000),
    default: 10_000,
    doc: 'events held while Kafka is unavailable; when full, watching pauses (nothing is dropped)',
  }),
  stallMs: option({
    flag: '--stall-timeout',
    codec: durationMsFromString(1_000, 3_600_000),
    default: 90_000,
    doc: 'restart an informer whose watch showed no sign of life for this long',
  }),
  probeIntervalMs: option({
    flag: '--probe-interval',
    codec: durationMsFromString(0, 3_600_000),
    default: 60_000,
    doc: 'period of the staleness probe (list limit=1 compared with the cache); 0 disables',
  }),
  flushTimeoutMs: option({
    flag: '--flush-timeout',
    codec: durationMsFromString(0, 600_000),
    default: 10_000,
    doc: 'on SIGTERM, how long to wait for buffered events to reach Kafka',
  }),
  healthPort: shared.healthPortOption(8080),
};

const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  spec,
  'kseip-watcher: publishes the cluster objects egress policies depend on to Kafka',
  shared.checkLeaseOptions,
);

const identity = lifecycle.candidateIdentity(config.identity);
const log = createLogger('watcher', { identity });

const watcher = createWatcher({
  kubeConfig: lifecycle.loadKubeConfig(config.kubeconfig),
  kafka: createKafka(config.brokers, `kseip-watcher-${identity}`, kafkaSecurity),
  topic: config.topic,
  createTopic: config.createTopic,
  replicationFactor: config.replicationFactor,
  identity,
  lease: shared.leaseSettingsOf(config),
  bufferCapacity: config.bufferCapacity,
  informer: { stallMs: config.stallMs, probeIntervalMs: config.probeIntervalMs },
  log,
});

const health = await startHealthServer({
  component: 'watcher',
  port: config.healthPort,
  // A standby is ready (it is doing its job: standing by); a leader once its first lists are out.
  ready: () => watcher.term() === undefined || watcher.ready(),
});
log.info({ healthPort: health.port, topic: config.topic, brokers: config.brokers }, 'watcher started');

lifecycle.exitOnStopSignals(log, async () => {
  await watcher.stop(config.flushTimeoutMs);
  await health.close();
});

watcher.run().catch((err: unknown) => {
  log.fatal({ err }, 'watcher failed');
  process.exit(1);
});
