// The CLI's Kafka connection: its global options, and the one place that turns them (and the
// environment, or the cluster's kseip-config and kseip-kafka) into a kafkajs client
// (core/connection.ts decides; this file reads). Effectful: reads the kubeconfig, the ConfigMap
// and Secret through the API, and local secret files. Nothing is read until a command needs
// Kafka, so `--from <file>` contacts neither Kafka nor the cluster.
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { logLevel, type Kafka } from 'kafkajs';
import { Option, type Command } from 'commander';
import { createKafka } from '../lib/kafka.ts';
import { KAFKA_SECRET_NAME, readOptionalFile } from '../lib/kafka-security.ts';
import { kubeconfigOption } from '../lib/options.ts';
import { CliUsageError } from './context.ts';
import {
  CONFIG_MAP_NAME,
  INSTALL_NAMESPACE,
  clusterEnvironment,
  computeConnection,
  connectionSpec,
  type ClusterSettings,
  type Connection,
} from './core/connection.ts';

interface ClusterOptions {
  kubeconfig?: string;
  context?: string;
  kseipNamespace: string;
}

/**
 * `kubectl kseip` (bin/kubectl-kseip) reads the cluster of the current context by default, as
 * every kubectl plugin works on it; `kseip` only when asked (--kubeconfig, --context).
 */
export const invokedAsKubectlPlugin = (): boolean => process.env.KSEIP_INVOKED_AS === 'kubectl-kseip';

/** The global options: Kafka's (the components' spec, env names in the help) and the cluster's. */
export function addConnectionOptions(program: Command): Command {
  for (const o of Object.values(connectionSpec)) {
    const isBoolean = 'boolean' in o && o.boolean === true;
    const value = o.flag === '--kafka-secret-dir' ? '<dir>' : o.flag === '--brokers' ? '<list>' : '<value>';
    program.addOption(new Option(isBoolean ? o.flag : `${o.flag} ${value}`, `${o.doc} (env ${o.env})`));
  }
  return program
    .option(
      `${kubeconfigOption.flag} <file>`,
      `read brokers and Kafka TLS/SASL from the cluster's ${CONFIG_MAP_NAME} and ${KAFKA_SECRET_NAME} (env KUBECONFIG)`,
    )
    .option('--context <name>', `kubeconfig context to read ${CONFIG_MAP_NAME} from (implies the cluster)`)
    .option('--kseip-namespace <namespace>', `where ${CONFIG_MAP_NAME} lives`, INSTALL_NAMESPACE);
}

const cache = new WeakMap<Command, Promise<Connection>>();

/** The connection the global options select, resolved once per program. */
export function connectionOf(program: Command): Promise<Connection> {
  let c = cache.get(program);
  if (c === undefined) cache.set(program, (c = resolveConnection(program)));
  return c;
}

async function resolveConnection(program: Command): Promise<Connection> {
  const opts = program.opts<Record<string, unknown> & ClusterOptions>();
  const cluster = opts.kubeconfig !== undefined || opts.context !== undefined || invokedAsKubectlPlugin();
  let env: Readonly<Record<string, string | undefined>> = process.env;
  let read = readOptionalFile;
  let origin = 'flags and environment';
  if (cluster) {
    const settings = await readClusterSettings(opts);
    ({ env, read } = clusterEnvironment(settings, readOptionalFile));
    origin = `ConfigMap ${settings.namespace}/${CONFIG_MAP_NAME} of context ${settings.context}`;
  }
  const c = computeConnection(opts, env, read, origin);
  if (c._tag === 'Left')
    throw new CliUsageError(
      `Kafka connection (${origin}, flags win):\n${c.left.map((p) => `  - ${p}`).join('\n')}`,
    );
  return c.right;
}

async function readClusterSettings(
  opts: ClusterOptions,
): Promise<ClusterSettings & { readonly context: string }> {
  const kc = new KubeConfig();
  if (opts.kubeconfig !== undefined) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  if (opts.context !== undefined) {
    if (kc.getContextObject(opts.context) === null)
      throw new CliUsageError(`--context ${opts.context}: no such context in the kubeconfig`);
    kc.setCurrentContext(opts.context);
  }
  const context = kc.getCurrentContext();
  const namespace = opts.kseipNamespace;
  const core = kc.makeApiClient(CoreV1Api);
  const where = `namespace ${namespace} of context ${context}`;
  let configMap: Record<string, string>;
  try {
    configMap = (await core.readNamespacedConfigMap({ name: CONFIG_MAP_NAME, namespace })).data ?? {};
  } catch (err) {
    if (err instanceof ApiException && err.code === 404)
      throw new Error(
        `no ConfigMap ${CONFIG_MAP_NAME} in ${where} (is kube-static-egress-ip installed there? --kseip-namespace)`,
      );
    throw new Error(`reading ConfigMap ${CONFIG_MAP_NAME} in ${where}: ${apiReason(err)}`);
  }
  let secret: Record<string, string> | undefined;
  try {
    secret = (await core.readNamespacedSecret({ name: KAFKA_SECRET_NAME, namespace })).data ?? {};
  } catch (err) {
    // Optional, as in the Deployments: no Secret means plaintext.
    if (!(err instanceof ApiException && err.code === 404))
      throw new Error(
        `reading Secret ${KAFKA_SECRET_NAME} in ${where}: ${apiReason(err)} (the CLI needs "get" on it, or --kafka-secret-dir with its files)`,
      );
  }
  return { namespace, configMap, secret, context };
}

function apiReason(err: unknown): string {
  if (err instanceof ApiException) {
    // client-node hands the response body over as text (a Status object's JSON).
    let message = '';
    try {
      const status = JSON.parse(String(err.body)) as { message?: unknown };
      if (typeof status.message === 'string') message = status.message;
    } catch {
      // not JSON: the code alone
    }
    return `HTTP ${err.code}${message === '' ? '' : `: ${message}`}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** A kafkajs client for one-shot commands: silent (stdout is the command's output), quick to give up. */
export async function cliKafka(program: Command): Promise<Kafka> {
  const c = await connectionOf(program);
  return createKafka(c.brokers, 'kseip-cli', {
    ...c.security,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    // SASL's handshake is a round trip more; kafkajs' default (1 s) is tight on a loaded machine.
    authenticationTimeout: 10_000,
    retry: { initialRetryTime: 100, retries: 3 },
  });
}
