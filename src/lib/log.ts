// The one logger factory: pino JSON to stdout with a `component` field on every line.
// Effectful (writes to stdout). LOG_LEVEL sets the level (default info; tests default to warn).
import { pino, type Logger } from 'pino';

const defaultLevel = process.env.LOG_LEVEL ?? (process.env.NODE_TEST_CONTEXT ? 'warn' : 'info');

const root = pino({
  level: defaultLevel,
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export type { Logger };

export function createLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...fields });
}
