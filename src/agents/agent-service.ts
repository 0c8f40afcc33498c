// The node agent as a running service: wires the runtime (./agent.ts) to kafkajs (node-rules
// consumer, heartbeat and status producers, dead letters), to Prometheus metrics and to the
// /healthz /readyz /metrics server. Effectful: owns those clients and the server. main.ts and the
// int tests start it; the dataplane is passed in (the real one, or a fake in tests).
//
// Heartbeats get a kafkajs client of their own with no retries and short timeouts: a heartbeat
// that cannot be delivered promptly is worthless, and the fencing clock must see the failure
// rather than wait for a retry chain. Acks and dead letters use the ordinary client (retried).
import type { ISocketFactory, Producer, ProducerRecord } from 'kafkajs';
import { register, type Registry } from 'prom-client';
import { TOPICS } from '../contracts/topics.ts';
import { systemClock, type Clock } from '../lib/clock.ts';
import { createDeadLetterSink } from '../lib/dead-letter.ts';
import { startHealthServer, type HealthServer } from '../lib/health.ts';
import { createKafka } from '../lib/kafka.ts';
import type { KafkaSecurity } from '../lib/kafka-security.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { createAgent, type Agent } from './agent.ts';
import type { AgentDataplane } from './apply-loop.ts';
import type { AgentConfig } from './config.ts';
import { createAgentMetrics, type AgentMetrics } from './metrics.ts';
import { createNodeRulesConsumer, type NodeRulesConsumer } from './node-rules-consumer.ts';
import { DEFAULT_EGRESS_ADDRESS_LIFETIME_S, egressRenewIntervalMs } from '../dataplane/kernel-state.ts';

export type AgentServiceConfig = Pick<
  AgentConfig,
  | 'nodeName'
  | 'brokers'
  | 'heartbeatIntervalMs'
  | 'fenceAfterMs'
  | 'driftIntervalMs'
  | 'metricsPort'
  | 'nodeRulesPartitions'
  | 'uninstall'
> &
  Partial<Pick<AgentConfig, 'egressAddressLifetimeMs'>>;

export interface AgentServiceOptions {
  config: AgentServiceConfig;
  dataplane: AgentDataplane;
  /** Default: prom-client's default registry (the one /metrics serves). */
  registry?: Registry;
  /** Serve /healthz, /readyz, /metrics on config.metricsPort. Default true. */
  serveHealth?: boolean;
  clock?: Clock;
  log?: Logger;
  /** Test seam: how kafkajs opens broker connections (int tests cut this agent off alone). */
  socketFactory?: ISocketFactory;
  /** Kafka TLS/SASL (src/lib/kafka-security.ts); default plaintext. */
  kafkaSecurity?: KafkaSecurity;
  /** Asked at stop: true means uninstall, as config.uninstall does (./owner-watch.ts). */
  ownerDeleted?: () => boolean;
}

export interface AgentService {
  readonly agent: Agent;
  readonly metrics: AgentMetrics;
  readonly consumer: NodeRulesConsumer;
  readonly healthPort: number | undefined;
  /** SIGTERM path: stop heartbeats and the feed, flush acks, disconnect; see config.uninstall. */
  stop(): Promise<void>;
}

/**
 * A producer that connects on first use and again after a failed connect. reset() replaces it
 * with a fresh one: kafkajs keeps sending on a connection whose requests only time out (it
 * notices a dead socket only on 'error' or 'end'), so a fresh producer is the way out.
 */
function lazyProducer(create: () => Producer): {
  send(record: ProducerRecord): Promise<void>;
  reset(): void;
  close(): Promise<void>;
} {
  let producer = create();
  let connected: Promise<void> | undefined;
  const ensure = (): Promise<void> => {
    connected ??= producer.connect().catch((err: unknown) => {
      connected = undefined;
      throw err;
    });
    return connected;
  };
  return {
    async send(record) {
      await ensure();
      await producer.send(record);
    },
    reset() {
      const old = producer;
      producer = create();
      connected = undefined;
      void old.disconnect().catch(() => undefined);
    },
    async close() {
      if (connected !== undefined) await producer.disconnect();
    },
  };
}

/** Consecutive heartbeat failures after which the heartbeat producer is replaced. */
const HEARTBEAT_FAILURES_BEFORE_RESET = 5;

export async function startAgentService(opts: AgentServiceOptions): Promise<AgentService> {
  const { config } = opts;
  const node = config.nodeName;
  const log = opts.log ?? createLogger('agent', { node });
  const clock = opts.clock ?? systemClock;
  const bootId = new Date().toISOString();

  const seam = {
    // kafkajs' own lines carry the node too (and go where the agent's log goes).
    log: log.child({ component: 'kafkajs' }),
    ...(opts.socketFactory === undefined ? {} : { socketFactory: opts.socketFactory }),
    ...opts.kafkaSecurity,
  };
  const kafka = createKafka(config.brokers, `kseip-agent-${node}`, seam);
  const heartbeatKafka = createKafka(config.brokers, `kseip-agent-${node}-heartbeat`, {
    ...seam,
    connectionTimeout: Math.max(500, config.fenceAfterMs * 2),
    requestTimeout: Math.max(1_000, config.fenceAfterMs * 4),
    retry: { retries: 0 },
  });
  const heartbeatProducer = lazyProducer(() =>
    heartbeatKafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } }),
  );
  const statusProducer = lazyProducer(() => kafka.producer({ allowAutoTopicCreation: false }));
  let heartbeatFailures = 0;

  // The lag gauge reads the agent, which needs the metrics first: bound once the agent exists.
  const lag = { of: (): number => 0 };
  const metrics = createAgentMetrics(opts.registry ?? register, () => lag.of());
  const deadLetter = createDeadLetterSink({
    producer: statusProducer,
    component: 'agent',
    log,
    onLetter: () => metrics.deadLetters.inc(),
  });

  const pendingAcks = new Set<Promise<void>>();
  let consumer!: NodeRulesConsumer;
  const agent = createAgent({
    node,
    bootId,
    dataplane: opts.dataplane,
    createFeed: (onDesired) => {
      consumer = createNodeRulesConsumer({
        kafka,
        node,
        partitions: config.nodeRulesPartitions,
        onDesired,
        deadLetter,
        log,
        counters: {
          recordsRead: metrics.nodeRulesRecords,
          restarts: metrics.consumerRestarts,
          rejoins: metrics.consumerRejoins,
        },
      });
      return consumer;
    },
    heartbeats: {
      async send(heartbeat) {
        try {
          await heartbeatProducer.send({
            topic: TOPICS.heartbeats,
            messages: [{ key: node, value: JSON.stringify(heartbeat) }],
          });
          heartbeatFailures = 0;
        } catch (err) {
          if (++heartbeatFailures >= HEARTBEAT_FAILURES_BEFORE_RESET) {
            log.warn({ failures: heartbeatFailures }, 'replacing the heartbeat producer');
            heartbeatFailures = 0;
            heartbeatProducer.reset();
          }
          throw err;
        }
      },
    },
    status: {
      send(status) {
        const sent = statusProducer
          .send({ topic: TOPICS.nodeStatus, messages: [{ key: node, value: JSON.stringify(status) }] })
          .catch((err: unknown) => log.warn({ err, generation: status.generation }, 'apply ack not sent'))
          .finally(() => pendingAcks.delete(sent));
        pendingAcks.add(sent);
      },
    },
    clock,
    metrics,
    log,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    fenceAfterMs: config.fenceAfterMs,
    driftIntervalMs: config.driftIntervalMs,
    egressRenewIntervalMs: egressRenewIntervalMs(
      (config.egressAddressLifetimeMs ?? DEFAULT_EGRESS_ADDRESS_LIFETIME_S * 1_000) / 1_000,
    ),
  });

  lag.of = () => agent.generationLag();
  const started = agent;
  let health: HealthServer | undefined;
  if (opts.serveHealth ?? true) {
    health = await startHealthServer({
      component: 'agent',
      port: config.metricsPort,
      ready: () => started.ready(),
    });
  }
  started.start();

  return {
    agent: started,
    metrics,
    consumer,
    healthPort: health?.port,
    async stop() {
      await started.stop({ uninstall: config.uninstall || (opts.ownerDeleted?.() ?? false) });
      // Flush: the last acks say what this process left applied.
      await Promise.race([Promise.allSettled([...pendingAcks]), new Promise((r) => setTimeout(r, 2_000))]);
      await Promise.allSettled([heartbeatProducer.close(), statusProducer.close()]);
      await health?.close();
    },
  };
}
