// kafkajs client construction in one place: brokers, client id, retries, the idle-timer fix, and
// kafkajs' own log lines routed into pino with structured fields. Effectful (creates clients; no
// connection until used).
import './kafkajs-idle-timer-fix.ts';
import { Kafka, logLevel, type Consumer, type KafkaConfig, type logCreator } from 'kafkajs';
import { createLogger, type Logger } from './log.ts';

/**
 * How every client of ours retries a request, a connection included: quickly (100 ms), then every
 * second at most, for about 30 s. Why the cap: kafkajs' default doubles without a useful bound, so
 * after a broker outage of a few seconds its next attempt was up to 14 s away, and consumers and
 * producers came back 10 to 14 s after the broker did (issue 12, finding 8). With the cap a
 * client is back within about a second of the broker (docs/kafka.md, "Broker restart").
 */
export const CLIENT_RETRY = { initialRetryTime: 100, maxRetryTime: 1_000, retries: 30 } as const;

/**
 * The consumer settings of our components that read topics in a group of their own (one per
 * consumer, nothing committed there):
 * - retries as CLIENT_RETRY, so a broker that is briefly away is retried every second, and a
 *   consumer that reconnects within the session timeout keeps its membership (the broker restarts
 *   the session timers of the groups it loads), with no re-join at all;
 * - kafkajs never restarts a crashed consumer itself (restartOnFailure): its restart would join
 *   the SAME group with a new member id, and the coordinator holds the join until the crashed
 *   member's session expires (sessionTimeout, 10 s). The component makes a new consumer in a new
 *   group instead (nextGroupId) and seeks it to where it was.
 */
export const OWN_GROUP_CONSUMER = {
  allowAutoTopicCreation: false,
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
  retry: { ...CLIENT_RETRY, restartOnFailure: (): Promise<boolean> => Promise.resolve(false) },
} as const;

/** The group of a component's consumer number `restarts` (0 for the first) in this process. */
export function nextGroupId(base: string, restarts: number): string {
  return restarts === 0 ? base : `${base}-r${restarts}`;
}

/** What a component counts about its consumer (prom-client counters in production). */
export interface ConsumerCounters {
  /** A new consumer made after kafkajs gave up on the previous one. */
  readonly restarts: { inc(): void };
  /** A re-join of the group after the first (countRejoins). */
  readonly rejoins: { inc(): void };
}

/**
 * Counts the re-joins of a consumer's group after its first join: each means the member lost its
 * place (a session that expired during a broker outage, a coordinator that moved) and the
 * component seeks back to where it was.
 */
export function countRejoins(consumer: Consumer, rejoins: { inc(): void }): void {
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (joined) rejoins.inc();
    joined = true;
  });
}

export interface CreateKafkaOptions extends Partial<KafkaConfig> {
  /** Where kafkajs' log lines go (default: component "kafkajs"). Its level caps kafkajs' level. */
  readonly log?: Logger;
}

/**
 * kafkajs' own level from the pino logger's, so kafkajs does not build lines pino drops. Its
 * INFO lines are routine (rebalances, retried requests) and only show at debug.
 */
function kafkajsLevel(log: Logger): logLevel {
  if (log.isLevelEnabled('debug')) return logLevel.DEBUG;
  if (log.isLevelEnabled('warn')) return logLevel.WARN;
  if (log.isLevelEnabled('error')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

function pinoLogCreator(log: Logger): logCreator {
  return () => (entry) => {
    const { message, timestamp: _timestamp, logger: _logger, ...fields } = entry.log;
    const record = { namespace: entry.namespace, ...fields };
    if (entry.level === logLevel.ERROR) log.error(record, message);
    else if (entry.level === logLevel.WARN) log.warn(record, message);
    else log.debug(record, message);
  };
}

export function createKafka(brokers: string[], clientId: string, options: CreateKafkaOptions = {}): Kafka {
  const { log = createLogger('kafkajs'), ...config } = options;
  return new Kafka({
    brokers,
    clientId,
    logLevel: kafkajsLevel(log),
    logCreator: pinoLogCreator(log),
    retry: CLIENT_RETRY,
    ...config,
  });
}
