// kafkajs client construction in one place: brokers, client id, and kafkajs' own log lines routed
// into pino with structured fields. Effectful (creates clients; no connection until used).
import './kafkajs-idle-timer-fix.ts';
import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import { createLogger } from './log.ts';

const kafkaLog = createLogger('kafkajs');

const pinoLogCreator: logCreator = () => (entry) => {
  const { message, ...fields } = entry.log;
  const record = { namespace: entry.namespace, ...fields };
  if (entry.level === logLevel.ERROR) kafkaLog.error(record, message);
  else if (entry.level === logLevel.WARN) kafkaLog.warn(record, message);
  else kafkaLog.debug(record, message);
};

export function createKafka(brokers: string[], clientId: string, extra: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    brokers,
    clientId,
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator,
    retry: { initialRetryTime: 100, retries: 8 },
    ...extra,
  });
}
