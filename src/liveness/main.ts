// Entry point of the liveness service. Effectful: reads the configuration (./config.ts; a bad
// value exits with code 2), optionally joins the Lease election (src/lib/leader-election.ts),
// starts the service and the health server, and stops cleanly on SIGTERM/SIGINT (releasing the
// Lease so a standby takes over at once).
import { register } from 'prom-client';
import { TOPICS } from '../contracts/topics.ts';
import { createDeadLetterSink } from '../lib/dead-letter.ts';
import { startHealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import { createLeaderElector } from '../lib/leader-election.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { createLogger } from '../lib/log.ts';
import * as shared from '../lib/options.ts';
import { readTermFloor } from '../lib/term-floor.ts';
import { checkLivenessConfig, livenessConfigSpec, livenessUsage } from './config.ts';
import { createLiveness } from './liveness.ts';

const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  livenessConfigSpec,
  livenessUsage,
  checkLivenessConfig,
);
const log = createLogger('liveness');
const identity = config.identity ?? lifecycle.candidateIdentity('');
log.info({ config, identity, topic: TOPICS.clusterEvents }, 'starting');

const kafka = createKafka(config.brokers, 'kseip-liveness', kafkaSecurity);
const deadLetterProducer = kafka.producer({ allowAutoTopicCreation: false });
await deadLetterProducer.connect();

const lease = shared.leaseSettingsOf(config);
const elector =
  lease === undefined
    ? undefined
    : createLeaderElector({
        kubeConfig: lifecycle.loadKubeConfig(),
        ...lease,
        identity,
        termFloor: () => readTermFloor({ kafka, topic: TOPICS.clusterEvents, component: 'liveness', log }),
        log,
      });

const liveness = createLiveness({
  kafka,
  thresholds: { lostAfterMs: config.lostAfterMs, blindAfterMs: config.blindAfterMs },
  tickMs: config.tickMs,
  seedWindowMs: config.seedWindowMs,
  ...(elector === undefined ? { standaloneTerm: config.term } : { elector, lease }),
  identity,
  deadLetter: createDeadLetterSink({ producer: deadLetterProducer, component: 'liveness', log }),
  registry: register,
  log,
});
const health = await startHealthServer({
  component: 'liveness',
  port: config.metricsPort,
  ready: () => liveness.ready(),
});
await liveness.start();
log.info({ healthPort: health.port, leaderElection: lease !== undefined }, 'liveness running');

lifecycle.exitOnStopSignals(log, async () => {
  await Promise.allSettled([liveness.stop(), deadLetterProducer.disconnect(), health.close()]);
});
