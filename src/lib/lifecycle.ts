// Start-up and shut-down glue for the long-running components' main.ts files, written once.
// Effectful: reads argv, env, the Kafka secret files and the kubeconfig, the host name and the
// process id, installs SIGTERM/SIGINT handlers and ends the process (exit code 2 for a bad
// configuration, before anything has started). It owns no component state; each main.ts says
// what stopping means for it.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfigOrExit, type ConfigOf, type Spec } from './config.ts';
import { loadKafkaSecurityOrExit, type KafkaSecurity, type kafkaSecuritySpec } from './kafka-security.ts';
import type { Logger } from './log.ts';

/**
 * loadConfigOrExit, then the Kafka TLS/SASL settings the config names (files in
 * --kafka-secret-dir): --help exits 0, any problem exits 2. The security settings are returned
 * apart from the config because they hold key material and a password, and components log their
 * config.
 */
export function loadConfigAndKafkaSecurityOrExit<S extends Spec & typeof kafkaSecuritySpec>(
  spec: S,
  usage: string,
  check?: (config: ConfigOf<S>) => readonly string[],
): { config: ConfigOf<S>; kafkaSecurity: KafkaSecurity } {
  const config = loadConfigOrExit(spec, usage, check);
  return { config, kafkaSecurity: loadKafkaSecurityOrExit(config) };
}

/** `file` as given by --kubeconfig; empty or absent: in-cluster service account, else ~/.kube/config. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (file) kubeConfig.loadFromFile(file);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}

/**
 * A leader-election candidate name: the given prefix (or the host name) plus the pid and a random
 * suffix, so that a restarted process is a new candidate and never mistakes the Lease its
 * predecessor held for its own.
 */
export function candidateIdentity(prefix: string): string {
  return `${prefix || hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface Stopping {
  /** Aborted once stopping has begun, by a signal or by `exit`. */
  readonly signal: AbortSignal;
  /** Begins stopping (unless it already has) and ends the process with `code` once `stop` is done. */
  exit(code: number): void;
}

/**
 * Installs the SIGTERM/SIGINT handlers: the first signal logs itself, runs `stop` and exits 0.
 * Stopping happens once: a later signal, or `exit` from elsewhere (a lost Lease), is ignored once
 * it has begun, so two stops never race. A `stop` that throws is logged and exits 1.
 */
export function exitOnStopSignals(log: Logger, stop: () => Promise<void>): Stopping {
  const stopping = new AbortController();
  const exit = (code: number): void => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    stop().then(
      () => {
        log.info({ code }, 'stopped');
        process.exit(code);
      },
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping.signal.aborted) return;
      log.info({ signal }, 'stopping');
      exit(0);
    });
  }
  return { signal: stopping.signal, exit };
}
