// The status writer process: configuration, leader election, the health/metrics server, signal
// handling. Effectful. Only the Lease holder folds and writes (one writer acts; a standby is
// ready and idle). Losing the Lease ends the process with code 1 so it restarts as a standby
// with a clean fold. SIGTERM/SIGINT stop it gracefully: the consumer leaves, the Lease is
// released so a standby takes over at once, and it exits 0.
import '../lib/kafkajs-idle-timer-fix.ts';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { TOPICS } from '../events/topics.ts';
import {
  BrokerListFromString,
  NonEmptyString,
  durationMsFromString,
  intFromString,
  loadConfigOrExit,
  option,
} from '../lib/config.ts';
import { createDeadLetterSink } from '../lib/dead-letter.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import { kafkaSecuritySpec, loadKafkaSecurityOrExit } from '../lib/kafka-security.ts';
import { createLeaderElector, type Leadership } from '../lib/leader-election.ts';
import { createLogger } from '../lib/log.ts';
import { createStatusWriter } from './status-writer.ts';

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
    doc: 'Kafka bootstrap brokers, host:port[,host:port...]',
  }),
  ...kafkaSecuritySpec,
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
  healthPort: option({
    flag: '--health-port',
    env: 'KSEIP_HEALTH_PORT',
    codec: intFromString(0, 65535),
    default: 8080,
    doc: '/healthz, /readyz and /metrics port (0: any free port, logged)',
  }),
  leaseNamespace: option<string | undefined>({
    flag: '--lease-namespace',
    env: 'KSEIP_LEASE_NAMESPACE',
    codec: NonEmptyString,
    doc: 'namespace of the Lease for leader election (with --lease-name); none: run alone',
  }),
  leaseName: option<string | undefined>({
    flag: '--lease-name',
    env: 'KSEIP_LEASE_NAME',
    codec: NonEmptyString,
    doc: 'name of the Lease for leader election, e.g. kseip-status-writer',
  }),
  identity: option({
    flag: '--identity',
    env: 'POD_NAME',
    codec: NonEmptyString,
    default: '',
    doc: 'leader-election identity prefix; default the hostname',
  }),
  leaseDurationMs: option({
    flag: '--lease-duration',
    codec: durationMsFromString(1_000, 600_000),
    default: 15_000,
    doc: 'how long standbys wait after the last renewal they saw before taking over',
  }),
  renewDeadlineMs: option({
    flag: '--renew-deadline',
    codec: durationMsFromString(500, 600_000),
    default: 10_000,
    doc: 'a leader that could not renew for this long steps down',
  }),
  retryPeriodMs: option({
    flag: '--retry-period',
    codec: durationMsFromString(50, 60_000),
    default: 2_000,
    doc: 'pause between attempts to acquire or renew the Lease',
  }),
};

const config = loadConfigOrExit(
  spec,
  'kseip-status-writer: writes StaticEgressIP status and Events from the decisions log\n\nUsage: node src/status/main.ts --brokers HOST:PORT [options]',
  (c) => [
    ...(c.renewDeadlineMs >= c.leaseDurationMs
      ? ['--renew-deadline must be shorter than --lease-duration']
      : []),
    ...((c.leaseNamespace === undefined) !== (c.leaseName === undefined)
      ? ['--lease-namespace and --lease-name go together']
      : []),
  ],
);

const identity = `${config.identity || hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
const log = createLogger('status-writer', { identity });

const kubeConfig = new KubeConfig();
if (config.kubeconfig) kubeConfig.loadFromFile(config.kubeconfig);
else kubeConfig.loadFromDefault();

const kafka = createKafka(config.brokers, `kseip-status-writer-${identity}`, loadKafkaSecurityOrExit(config));
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

const elector =
  config.leaseNamespace !== undefined && config.leaseName !== undefined
    ? createLeaderElector({
        kubeConfig,
        namespace: config.leaseNamespace,
        name: config.leaseName,
        identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryPeriodMs: config.retryPeriodMs,
        log,
      })
    : undefined;

let leadership: Leadership | undefined;
const health = await startHealthServer({
  port: config.healthPort,
  // A standby is ready (standing by is its job); a leader once it has caught up with the log.
  ready: () => (elector !== undefined && leadership === undefined) || writer.ready(),
});
log.info({ healthPort: health.port, brokers: config.brokers }, 'status writer started');

const stopping = new AbortController();
async function shutdown(code: number): Promise<never> {
  await writer.stop();
  await elector?.release();
  await dlqProducer.disconnect().catch(() => undefined);
  await health.close();
  log.info({ code }, 'stopped');
  process.exit(code);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping.signal.aborted) return;
    log.info({ signal }, 'stopping');
    stopping.abort();
    void shutdown(0);
  });
}

try {
  if (elector !== undefined) {
    leadership = await elector.acquire(stopping.signal);
    void leadership.lost.then((reason) => {
      if (stopping.signal.aborted) return;
      log.error({ reason }, 'leadership lost; exiting so that only the new leader writes');
      stopping.abort();
      void shutdown(1);
    });
  }
  await writer.run();
} catch (err) {
  if (!stopping.signal.aborted) {
    log.fatal({ err }, 'status writer failed');
    process.exit(1);
  }
}
