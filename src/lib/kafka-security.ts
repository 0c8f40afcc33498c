// Kafka TLS and SASL settings shared by every component: the options (spread into each
// component's config spec, so they are flags + env like everything else) and their translation
// into kafkajs' `ssl`/`sasl` client settings. Without any of them a client is plaintext, as before.
//
// Secrets never pass through flags or the environment (where `ps`, logs of the parsed config and
// `kubectl describe` would show them): the password and key material are files in
// --kafka-secret-dir, which in Kubernetes is the optional Secret kseip-kafka mounted as a volume
// (keys documented in k8s/base/config.yaml). A file that is absent is simply not used, so the
// same Deployment works with and without that Secret.
//
// computeKafkaSecurity is pure over the file reader it is given and returns Either with every
// problem; loadKafkaSecurityOrExit is the effectful edge for main.ts files (exit code 2, like
// loadConfigOrExit).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { BooleanFromString, NonEmptyString, fromString, option, type ConfigOf } from './config.ts';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

const SaslMechanismFromString = fromString<SaslMechanism>('plain, scram-sha-256 or scram-sha-512', (s) => {
  const m = s.toLowerCase();
  return m === 'plain' || m === 'scram-sha-256' || m === 'scram-sha-512' ? m : undefined;
});

export const kafkaSecuritySpec = {
  kafkaSecretDir: option<string | undefined>({
    flag: '--kafka-secret-dir',
    env: 'KSEIP_KAFKA_SECRET_DIR',
    codec: NonEmptyString,
    doc: 'directory with the optional files ca.crt (implies TLS), tls.crt + tls.key (client certificate) and sasl-password',
  }),
  kafkaTls: option({
    flag: '--kafka-tls',
    env: 'KSEIP_KAFKA_TLS',
    codec: BooleanFromString,
    boolean: true,
    default: false,
    doc: "connect to Kafka with TLS (the system's CAs unless ca.crt is in --kafka-secret-dir)",
  }),
  kafkaSaslMechanism: option<SaslMechanism | undefined>({
    flag: '--kafka-sasl-mechanism',
    env: 'KSEIP_KAFKA_SASL_MECHANISM',
    codec: SaslMechanismFromString,
    doc: 'SASL mechanism; needs --kafka-sasl-username and the file sasl-password in --kafka-secret-dir',
  }),
  kafkaSaslUsername: option<string | undefined>({
    flag: '--kafka-sasl-username',
    env: 'KSEIP_KAFKA_SASL_USERNAME',
    codec: NonEmptyString,
    doc: 'SASL user name',
  }),
};

export type KafkaSecurityConfig = ConfigOf<typeof kafkaSecuritySpec>;

/**
 * The Secret the manifests mount at --kafka-secret-dir (k8s/base/*.yaml) and which of its keys
 * each Deployment also passes as an environment variable (secretKeyRef): the non-secret settings.
 * The other keys (ca.crt, tls.crt, tls.key, sasl-password) are only ever read as files. The CLI
 * reads the same Secret through the API (src/cli/kafka-connection.ts) and maps it the same way.
 */
export const KAFKA_SECRET_NAME = 'kseip-kafka';
export const KAFKA_SECRET_ENV_KEYS: Readonly<Record<string, string>> = {
  tls: kafkaSecuritySpec.kafkaTls.env!,
  'sasl-mechanism': kafkaSecuritySpec.kafkaSaslMechanism.env!,
  'sasl-username': kafkaSecuritySpec.kafkaSaslUsername.env!,
};

/** The part of a kafkajs client config that TLS and SASL set; empty for plaintext. */
export type KafkaSecurity = Pick<KafkaConfig, 'ssl' | 'sasl'>;

/** Reads a file's text, or undefined when it does not exist. */
export type ReadOptionalFile = (file: string) => string | undefined;

export const readOptionalFile: ReadOptionalFile = (file) => {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
};

export function computeKafkaSecurity(
  c: KafkaSecurityConfig,
  read: ReadOptionalFile = readOptionalFile,
): Either<readonly string[], KafkaSecurity> {
  const problems: string[] = [];
  const dir = c.kafkaSecretDir;
  const file = (name: string): string | undefined =>
    dir === undefined ? undefined : read(path.join(dir, name));
  const ca = file('ca.crt');
  const cert = file('tls.crt');
  const key = file('tls.key');
  if ((cert === undefined) !== (key === undefined)) {
    problems.push(
      `--kafka-secret-dir ${dir}: tls.crt and tls.key go together (client certificate and its key)`,
    );
  }
  let sasl: SASLOptions | undefined;
  if (c.kafkaSaslMechanism !== undefined) {
    const password = file('sasl-password');
    if (c.kafkaSaslUsername === undefined) {
      problems.push(
        '--kafka-sasl-username (env KSEIP_KAFKA_SASL_USERNAME) is required with --kafka-sasl-mechanism',
      );
    }
    if (password === undefined || password.trim() === '') {
      problems.push(
        `--kafka-sasl-mechanism needs the password in the file sasl-password in --kafka-secret-dir (${dir ?? 'not set'})`,
      );
    }
    if (problems.length === 0) {
      // A trailing newline from `echo ... > file` or `--from-file` is not part of the password.
      sasl = {
        mechanism: c.kafkaSaslMechanism,
        username: c.kafkaSaslUsername!,
        password: password!.replace(/\r?\n$/, ''),
      };
    }
  } else if (c.kafkaSaslUsername !== undefined) {
    problems.push('--kafka-sasl-username is set but --kafka-sasl-mechanism is not');
  }
  if (problems.length > 0) return left(problems);
  const tlsFiles = {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key: key! }),
  };
  const useTls = c.kafkaTls || ca !== undefined || cert !== undefined;
  return right({
    ...(useTls ? { ssl: Object.keys(tlsFiles).length > 0 ? tlsFiles : true } : {}),
    ...(sasl === undefined ? {} : { sasl }),
  });
}

/** Effectful edge for main.ts files: every problem to stderr and exit code 2, like loadConfigOrExit. */
export function loadKafkaSecurityOrExit(c: KafkaSecurityConfig): KafkaSecurity {
  const computed = computeKafkaSecurity(c);
  if (computed._tag === 'Right') return computed.right;
  process.stderr.write(
    `invalid configuration:\n${computed.left.map((p) => `  - ${p}`).join('\n')}\n(see --help)\n`,
  );
  process.exit(2);
}
