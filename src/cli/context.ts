// What every CLI command shares: where output goes, the clock and how to fail (Kafka clients:
// kafka-connection.ts). Effectful edges in one place so commands stay testable (a test passes its
// own context).

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
