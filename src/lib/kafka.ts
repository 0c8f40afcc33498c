// kafkajs client construction in one place: brokers, client id, retries, the idle-timer fix, and
// kafkajs' own log lines routed into pino with structured fields. Effectful (creates clients; no
// connection until used).
import './kafkajs-idle-timer-fix.ts';
import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import { createLogger, type Logger } from './log.ts';

/**
 * The consumer settings of our components that read a topic in a group of their own (one per
 * process, nothing committed there): a restarted process is not kept waiting by a long session,
 * and a broker that is briefly away is retried for a while before the consumer gives up.
 */
export const OWN_GROUP_CONSUMER = {
  allowAutoTopicCreation: false,
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
  retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2_000 },
} as const;

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
    retry: { initialRetryTime: 100, retries: 8 },
    ...config,
  });
}
