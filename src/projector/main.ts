// The projector process: configuration, the health/metrics server, signals, and the
// crash-injection hook for tests. Effectful. The service itself is ./projector.ts.
// SIGTERM/SIGINT stop it (an open transaction is aborted by the broker; the next start replays).
// A permanent failure (e.g. fenced by a newer instance) exits with code 1.
import { hostname } from 'node:os';
import * as t from 'io-ts';
import '../lib/kafkajs-idle-timer-fix.ts';
import {
  BooleanFromString,
  NonEmptyString,
  durationMsFromString,
  fromString,
  intFromString,
  option,
} from '../lib/config.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { createLogger } from '../lib/log.ts';
import * as shared from '../lib/options.ts';
import { TOPICS } from '../contracts/topics.ts';
import { createProjector, type CrashPoint } from './projector.ts';

/** "after-produce@120": SIGKILL this process at that point of the transaction covering offset 120. */
const CrashFromString = fromString('none, or after-produce@<offset> / after-offsets@<offset>', (s) => {
  if (s === '' || s === 'none') return null;
  const m = /^(after-produce|after-offsets)@(\d+)$/.exec(s);
  return m === null ? undefined : { point: m[1] as CrashPoint, atOffset: Number(m[2]) };
}) as t.Type<{ point: CrashPoint; atOffset: number } | null, unknown, unknown>;

const spec = {
  ...shared.kafkaOptions,
  clusterEventsTopic: option({
    flag: '--cluster-events-topic',
    codec: NonEmptyString,
    default: TOPICS.clusterEvents,
    doc: 'input: the cluster events (one partition)',
  }),
  decisionsTopic: option({
    flag: '--decisions-topic',
    codec: NonEmptyString,
    default: TOPICS.decisions,
    doc: 'output: decisions (audit trail, policy status)',
  }),
  nodeRulesTopic: option({
    flag: '--node-rules-topic',
    codec: NonEmptyString,
    default: TOPICS.nodeRules,
    doc: 'output: per-node desired state, key = node (compacted)',
  }),
  deadLetterTopic: option({
    flag: '--dead-letter-topic',
    codec: NonEmptyString,
    default: TOPICS.deadLetter,
    doc: 'output: cluster-events records that do not decode',
  }),
  groupId: option({
    flag: '--group-id',
    env: 'KSEIP_PROJECTOR_GROUP',
    codec: NonEmptyString,
    default: 'kseip-projector',
    doc: 'consumer group whose committed offset is the projector position',
  }),
  transactionalId: option({
    flag: '--transactional-id',
    env: 'KSEIP_PROJECTOR_TRANSACTIONAL_ID',
    codec: NonEmptyString,
    default: 'kseip-projector',
    doc: 'fixed per deployment: a new instance fences the previous one',
  }),
  transactionTimeoutMs: option({
    flag: '--transaction-timeout',
    env: 'KSEIP_PROJECTOR_TRANSACTION_TIMEOUT',
    codec: durationMsFromString(1_000, 900_000),
    default: 60_000,
    doc: 'how long the broker keeps a transaction of a dead projector open before aborting it',
  }),
  maxEventsPerTransaction: option({
    flag: '--max-events-per-transaction',
    codec: intFromString(1, 1_000_000),
    default: 2_000,
    doc: 'cluster events folded per transaction at most',
  }),
  createTopics: option({
    flag: '--create-topics',
    env: 'KSEIP_CREATE_TOPICS',
    codec: BooleanFromString,
    boolean: true,
    default: true,
    doc: 'create the decisions, node-rules and dead-letter topics if missing',
  }),
  replicationFactor: shared.replicationFactorOption,
  healthPort: shared.healthPortOption(8080),
  crash: option({
    flag: '--crash',
    env: 'KSEIP_PROJECTOR_CRASH',
    codec: CrashFromString,
    default: null,
    doc: 'TESTS ONLY: SIGKILL itself inside a transaction, e.g. after-produce@120',
  }),
};

const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  spec,
  'kseip-projector: folds cluster events into decisions and per-node rules',
);
const log = createLogger('projector');
const crash = config.crash;

const projector = createProjector({
  kafka: createKafka(config.brokers, `kseip-projector-${hostname()}-${process.pid}`, kafkaSecurity),
  log,
  groupId: config.groupId,
  topics: {
    clusterEvents: config.clusterEventsTopic,
    decisions: config.decisionsTopic,
    nodeRules: config.nodeRulesTopic,
    deadLetter: config.deadLetterTopic,
  },
  transactionalId: config.transactionalId,
  transactionTimeoutMs: config.transactionTimeoutMs,
  maxEventsPerTransaction: config.maxEventsPerTransaction,
  createTopics: config.createTopics,
  replicationFactor: config.replicationFactor,
  ...(crash === null
    ? {}
    : {
        crash: {
          ...crash,
          act: (point: CrashPoint) => {
            log.warn({ point, atOffset: crash.atOffset }, 'crash injection: SIGKILL');
            process.kill(process.pid, 'SIGKILL');
          },
        },
      }),
});

const health = await startHealthServer({
  component: 'projector',
  port: config.healthPort,
  ready: () => projector.ready(),
});
log.info({ healthPort: health.port, brokers: config.brokers }, 'projector starting');

lifecycle.exitOnStopSignals(log, async () => {
  await projector.stop();
  await health.close();
});

projector.failed.catch((err: unknown) => {
  log.fatal({ err }, 'projector failed');
  process.exit(1);
});
projector.start().catch((err: unknown) => {
  log.fatal({ err }, 'projector could not start');
  process.exit(1);
});
