// What every CLI command shares: where output goes, the clock, Kafka clients and how to fail.
// Effectful edges in one place so commands stay testable (a test passes its own context).
import '../lib/kafkajs-idle-timer-fix.ts';
import { logLevel, type Kafka } from 'kafkajs';
import { createKafka } from '../lib/kafka.ts';

export interface CliContext {
  write(text: string): void;
  writeErr(text: string): void;
  now(): number;
}

export const processContext: CliContext = {
  write: (text) => void process.stdout.write(text),
  writeErr: (text) => void process.stderr.write(text),
  now: () => Date.now(),
};

/** A usage error: printed without a stack trace, exit code 2. */
export class CliUsageError extends Error {}

export function fail(message: string): never {
  throw new CliUsageError(message);
}

/** A kafkajs client for one-shot commands: silent (stdout is the command's output), quick to give up. */
export function cliKafka(brokers: string): Kafka {
  return createKafka(
    brokers.split(',').map((b) => b.trim()),
    'kseip-cli',
    { logLevel: logLevel.NOTHING, connectionTimeout: 3_000, retry: { initialRetryTime: 100, retries: 3 } },
  );
}
