// The one logger factory: pino JSON to stdout with a `component` field on every line.
// Effectful (writes to stdout). LOG_LEVEL sets the level (default info; tests default to warn).
import { pino, type Logger } from 'pino';

const defaultLevel = process.env.LOG_LEVEL ?? (process.env.NODE_TEST_CONTEXT ? 'warn' : 'info');

// pino's err serializer copies every enumerable key, inherited ones too: a DOMException (an
// aborted fetch, client-node's watch timeout) would log its 25 legacy code constants on every
// line. Kept: what pino computes, name and code, and the error's own fields (kafkajs' retriable,
// an HTTP statusCode).
const COMPUTED_ERR_FIELDS = new Set(['type', 'message', 'stack', 'aggregateErrors', 'name', 'code']);

export function serializeErr(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown;
  if (out === err || typeof out !== 'object' || out === null) return out;
  const fields = out as Record<string, unknown>;
  for (const key of Object.keys(fields))
    if (!COMPUTED_ERR_FIELDS.has(key) && !Object.hasOwn(err as object, key)) delete fields[key];
  return out;
}

const root = pino({
  level: defaultLevel,
  serializers: { err: serializeErr },
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export type { Logger };

export function createLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...fields });
}
