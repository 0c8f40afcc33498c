// How the CLI reaches Kafka: brokers and the TLS/SASL settings, from the same option spec and the
// same translation as every component (src/lib/options.ts kafkaOptions, src/lib/kafka-security.ts),
// so `kseip` inside a component's Pod (`kubectl exec … -- kseip …`) connects exactly as that Pod
// does, from its environment and its mounted Secret. Pure: argv, environment and file reader in,
// kafkajs settings (or every problem) out.
//
// From the cluster (--kubeconfig/--context, or as `kubectl kseip`): the environment is what the
// Deployments get, i.e. the ConfigMap kseip-config's data plus the keys of the Secret kseip-kafka
// they map to variables, and the secret files are that Secret's keys, read in memory, never
// written to disk, the environment or argv. Flags given on the command line win over both.
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import { parseConfig, type ConfigOf } from '../../lib/config.ts';
import {
  KAFKA_SECRET_ENV_KEYS,
  KAFKA_SECRET_NAME,
  computeKafkaSecurity,
  kafkaSecuritySpec,
  type KafkaSecurity,
  type ReadOptionalFile,
} from '../../lib/kafka-security.ts';
import { kafkaOptions } from '../../lib/options.ts';

/** The namespace the manifests install into (k8s/base/namespace.yaml), where kseip-config lives. */
export const INSTALL_NAMESPACE = 'kube-static-egress-ip';
export const CONFIG_MAP_NAME = 'kseip-config';

export const connectionSpec = {
  // The components require --brokers; the CLI defaults to a local broker, as it always has.
  brokers: { ...kafkaOptions.brokers, required: false, default: ['127.0.0.1:9092'] },
  ...kafkaSecuritySpec,
};

export type ConnectionConfig = ConfigOf<typeof connectionSpec>;

export interface Connection {
  readonly brokers: string[];
  readonly security: KafkaSecurity;
  /** Where the settings came from, for error messages ("cluster context kind-x, namespace …"). */
  readonly origin: string;
}

/**
 * The flags commander parsed (its attribute names are the spec's keys: --kafka-secret-dir →
 * kafkaSecretDir) back as argv for parseConfig, so the spec's codecs and messages apply.
 */
export function argvOfOptions(opts: Readonly<Record<string, unknown>>): string[] {
  const argv: string[] = [];
  for (const [key, o] of Object.entries(connectionSpec)) {
    const v = opts[key];
    if (v === true) argv.push(o.flag, 'true');
    else if (typeof v === 'string') argv.push(o.flag, v);
  }
  return argv;
}

/** What the cluster holds; `data` of the Secret base64-encoded, as the API returns it. */
export interface ClusterSettings {
  readonly namespace: string;
  readonly configMap: Readonly<Record<string, string>>;
  readonly secret: Readonly<Record<string, string>> | undefined;
}

/**
 * The environment of the installed components and the reader of their secret files. The secret
 * directory becomes a name for the Secret itself, so computeKafkaSecurity reads its keys as it
 * reads files, and its messages say which Secret a key is missing from. A --kafka-secret-dir
 * given on the command line still reads local files.
 */
export function clusterEnvironment(
  c: ClusterSettings,
  readLocal: ReadOptionalFile,
): { env: Record<string, string>; read: ReadOptionalFile } {
  const dir = `Secret ${c.namespace}/${KAFKA_SECRET_NAME}`;
  const secret = c.secret ?? {};
  const text = (key: string): string | undefined =>
    secret[key] === undefined ? undefined : Buffer.from(secret[key], 'base64').toString('utf8');
  const env: Record<string, string> = { ...c.configMap, [kafkaSecuritySpec.kafkaSecretDir.env!]: dir };
  for (const [key, variable] of Object.entries(KAFKA_SECRET_ENV_KEYS)) {
    const v = text(key);
    if (v !== undefined) env[variable] = v;
  }
  return {
    env,
    read: (file) => (file.startsWith(`${dir}/`) ? text(file.slice(dir.length + 1)) : readLocal(file)),
  };
}

/** Flags win over the environment (the process's, or the cluster's), as in every component. */
export function computeConnection(
  opts: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>>,
  read: ReadOptionalFile,
  origin: string,
): Either<readonly string[], Connection> {
  const parsed = parseConfig(connectionSpec, argvOfOptions(opts), env);
  if (parsed._tag === 'Left') return left(parsed.left.problems);
  const security = computeKafkaSecurity(parsed.right, read);
  if (security._tag === 'Left') return left(security.left);
  return right({ brokers: parsed.right.brokers, security: security.right, origin });
}
