// The watcher process: configuration, the health/metrics server, signal handling. Effectful.
// SIGTERM/SIGINT stop it gracefully: informers stop, buffered events are flushed (bounded by
// --flush-timeout), the Lease is released so a standby takes over at once, and it exits 0.
import '../lib/kafkajs-idle-timer-fix.ts';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { TOPICS } from '../events/topics.ts';
import {
  BooleanFromString,
  BrokerListFromString,
  NonEmptyString,
  durationMsFromString,
  intFromString,
  loadConfigOrExit,
  option,
} from '../lib/config.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import { kafkaSecuritySpec, loadKafkaSecurityOrExit } from '../lib/kafka-security.ts';
import { createLogger } from '../lib/log.ts';
import { createWatcher } from './watcher.ts';

const spec = {
  kubeconfig: option({
    flag: '--kubeconfig',
    env: 'KUBECONFIG',
    codec: NonEmptyString,
    default: '',
    doc: 'kubeconfig file; empty: in-cluster service account (or ~/.kube/config)',
  }),
  brokers: option({
    flag: '--brokers',
    env: 'KSEIP_BROKERS',
    codec: BrokerListFromString,
    required: true,
    doc: 'Kafka bootstrap brokers',
  }),
  ...kafkaSecuritySpec,
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
  replicationFactor: option({
    flag: '--replication-factor',
    env: 'KSEIP_REPLICATION_FACTOR',
    codec: intFromString(1, 10),
    default: 1,
    doc: 'replication factor when creating the topic',
  }),
  leaseNamespace: option({
    flag: '--lease-namespace',
    env: 'POD_NAMESPACE',
    codec: NonEmptyString,
    default: 'kube-system',
    doc: 'namespace of the leader-election Lease',
  }),
  leaseName: option({
    flag: '--lease-name',
    codec: NonEmptyString,
    default: 'kseip-watcher',
    doc: 'name of the leader-election Lease',
  }),
  identity: option({
    flag: '--identity',
    env: 'POD_NAME',
    codec: NonEmptyString,
    default: '',
    doc: 'candidate identity; a random suffix is always added, so a restart is a new candidate',
  }),
  leaseDurationMs: option({
    flag: '--lease-duration',
    codec: durationMsFromString(1_000, 600_000),
    default: 15_000,
    doc: 'how long standbys wait after the last renewal before taking over',
  }),
  renewDeadlineMs: option({
    flag: '--renew-deadline',
    codec: durationMsFromString(500, 600_000),
    default: 10_000,
    doc: 'a leader that could not renew for this long steps down (< lease duration)',
  }),
  retryPeriodMs: option({
    flag: '--retry-period',
    codec: durationMsFromString(100, 60_000),
    default: 2_000,
    doc: 'pause between lease acquire/renew attempts',
  }),
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
  healthPort: option({
    flag: '--health-port',
    env: 'KSEIP_HEALTH_PORT',
    codec: intFromString(0, 65535),
    default: 8080,
    doc: '/healthz, /readyz and /metrics port (0: any free port, logged)',
  }),
};

const config = loadConfigOrExit(
  spec,
  'kseip-watcher: publishes the cluster objects egress policies depend on to Kafka',
  (c) =>
    c.renewDeadlineMs >= c.leaseDurationMs ? ['--renew-deadline must be shorter than --lease-duration'] : [],
);

const kafkaSecurity = loadKafkaSecurityOrExit(config);

const identity = `${config.identity || hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
const log = createLogger('watcher', { identity });

const kubeConfig = new KubeConfig();
if (config.kubeconfig) kubeConfig.loadFromFile(config.kubeconfig);
else kubeConfig.loadFromDefault();

const watcher = createWatcher({
  kubeConfig,
  kafka: createKafka(config.brokers, `kseip-watcher-${identity}`, kafkaSecurity),
  topic: config.topic,
  createTopic: config.createTopic,
  replicationFactor: config.replicationFactor,
  identity,
  lease: {
    namespace: config.leaseNamespace,
    name: config.leaseName,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
  },
  bufferCapacity: config.bufferCapacity,
  informer: { stallMs: config.stallMs, probeIntervalMs: config.probeIntervalMs },
  log,
});

const health = await startHealthServer({
  port: config.healthPort,
  // A standby is ready (it is doing its job: standing by); a leader once its first lists are out.
  ready: () => watcher.term() === undefined || watcher.ready(),
});
log.info({ healthPort: health.port, topic: config.topic, brokers: config.brokers }, 'watcher started');

let shuttingDown = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'stopping');
    void watcher
      .stop(config.flushTimeoutMs)
      .then(() => health.close())
      .then(() => {
        log.info('stopped');
        process.exit(0);
      });
  });
}

watcher.run().catch((err: unknown) => {
  log.fatal({ err }, 'watcher failed');
  process.exit(1);
});
