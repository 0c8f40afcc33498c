// A real single-node Kafka broker (KRaft) for tests and the demo, started with testcontainers
// from the image scripts/provision/kafka.sh built (tools/kafka). Effectful: owns exactly the
// one container it starts (stop/restart/pause touch only that container, by its id) and the
// two loopback ports it picked.kafkaClient() is the
// dev environment's quiet kafkajs client.
//
// Why host networking: kafkajs connects to the advertised listener it reads from metadata, so
// the broker must advertise an address the test process can reach. With host networking the
// broker binds and advertises 127.0.0.1:<port>, and that address stays valid across a
// container stop/start, which broker-restart tests rely on.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { AclEntry, Admin, ITopicConfig, Kafka } from 'kafkajs';
import { pino, type Logger } from 'pino';
import { GenericContainer, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { createKafka } from '../lib/kafka.ts';
import { requireArtifact } from './artifacts.ts';
import { createAcls, upsertScramUsers, type ScramUser } from './kafka-access.ts';
import { OWNER_LABEL, SELF_OWNER, sweepContainersOfDeadOwners } from './container-owner.ts';
import { freePorts } from './free-port.ts';

// testcontainers' reaper (Ryuk) is an image that cannot be pulled here; every caller stops its
// own broker instead. Read by testcontainers when the first container starts, not at import.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

/** The line the broker logs once it serves clients (KafkaRaftServer, Kafka 3.x and 4.x). */
const STARTED_LINE = 'Kafka Server started';
const LOG_LINES_KEPT = 400;

export interface StartKafkaOptions {
  /** Image tag; default: the exact tag provisioning recorded (KAFKA_IMAGE). */
  image?: string;
  /** How long to wait for a working broker, start and readiness check together. */
  startupTimeoutMs?: number;
  /** Extra server.properties lines, e.g. { 'log.retention.ms': '60000' }. Later lines win. */
  brokerProperties?: Record<string, string>;
  /** Receives broker log lines as they arrive (e.g. to mirror them while debugging). */
  onLogLine?: (line: string) => void;
  /**
   * A second client listener for clients in network namespaces (the real-node cluster): it
   * binds 127.0.0.1:<nodesListenerPort> and advertises `advertised` (host:port), the address at
   * which a relay in those namespaces forwards to that port.
   */
  nodesListener?: { advertised: string };
  /**
   * A third client listener on 127.0.0.1 that requires SASL/SCRAM, with TLS (SASL_SSL) when given
   * a serving certificate and key (PEM, PKCS#8, e.g. from the API server's CA:
   * ApiServer.issueCertificate), else SASL_PLAINTEXT; beside the plaintext one the harness keeps
   * using. Its address is KafkaBroker.secureBrokers. Not combinable with nodesListener.
   */
  secureListener?: SecureListenerOptions;
}

export interface SecureListenerOptions {
  readonly certFile?: string;
  readonly keyFile?: string;
  /** SCRAM users to create (one AlterUserScramCredentials request: milliseconds, no JVM). */
  readonly users: readonly ScramUser[];
  /**
   * Turns the authorizer on (KRaft StandardAuthorizer, no access without an ACL) and creates these
   * ACLs (e.g. aclEntries() of src/devenv/kafka-access.ts). The super user is ANONYMOUS: the
   * plaintext and controller listeners, i.e. this harness and the broker itself, never a SASL user.
   */
  readonly acls?: readonly AclEntry[];
}

export interface RestartOptions {
  /** Time the broker stays down between stop and start. Default 0. */
  downMs?: number;
  /** true: SIGKILL, like a crashed broker; false (default): SIGTERM, a clean shutdown. */
  kill?: boolean;
}

export interface KafkaBroker {
  readonly brokers: string[];
  /** The SASL_SSL listener (StartKafkaOptions.secureListener), if any: ['127.0.0.1:<port>']. */
  readonly secureBrokers: string[] | undefined;
  /** The port of the nodes listener on 127.0.0.1 (StartKafkaOptions.nodesListener), if any. */
  readonly nodesListenerPort: number | undefined;
  readonly containerId: string;
  readonly image: string;
  /** Stops and removes this broker's container. Safe to call twice. */
  stop(): Promise<void>;
  /** Stops and starts the same container: same ports, same data, same cluster id. */
  restart(opts?: RestartOptions): Promise<void>;
  /** Freezes the broker process (connections stay open but get no answers). */
  pause(): Promise<void>;
  unpause(): Promise<void>;
  /** The broker's last log lines, newest last; also kept after the container is gone. */
  logsTail(lines?: number): string;
}

/**
 * Starts a broker and resolves once a kafkajs admin can talk to it. Never skips: if the broker
 * cannot start, rejects with the reason and the broker's last log lines.
 */
export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaBroker> {
  const image = opts.image ?? requireArtifact('KAFKA_IMAGE');
  const timeoutMs = opts.startupTimeoutMs ?? 180_000;
  // Brokers (and nodes) of runs that died without stopping them.
  sweepContainersOfDeadOwners(pino({ level: 'warn' }));
  // Ports are picked by binding port 0 and releasing it, so another process can grab one in
  // between (several engineers' test runs share this machine). The broker then fails with a
  // BindException; one more try with fresh ports covers that race.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(image, timeoutMs, opts);
    } catch (err) {
      if (attempt >= 2 || !(err instanceof KafkaStartError) || !err.portClash) throw err;
    }
  }
}

class KafkaStartError extends Error {
  readonly portClash: boolean;
  constructor(message: string, portClash: boolean, cause: unknown) {
    super(message, { cause });
    this.name = 'KafkaStartError';
    this.portClash = portClash;
  }
}

async function startOnce(image: string, timeoutMs: number, opts: StartKafkaOptions): Promise<KafkaBroker> {
  const [port, controllerPort, nodesPort, securePort] = await freePorts(4);
  const brokers = [`127.0.0.1:${port}`];
  const secure = opts.secureListener;
  if (secure !== undefined && opts.nodesListener !== undefined)
    throw new Error('startKafka: secureListener and nodesListener cannot be combined');
  const logs = new LogRing(LOG_LINES_KEPT, opts.onLogLine);
  const extra = Object.entries({
    ...(secure === undefined ? {} : secureListenerProperties(port!, controllerPort!, securePort!, secure)),
    ...opts.brokerProperties,
  })
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  const deadline = Date.now() + timeoutMs;

  let started: StartedTestContainer;
  try {
    started = await new GenericContainer(image)
      .withNetworkMode('host')
      .withEnvironment({
        KAFKA_PORT: String(port),
        KAFKA_CONTROLLER_PORT: String(controllerPort),
        KAFKA_EXTRA_PROPERTIES: extra,
        ...(opts.nodesListener
          ? { KAFKA_NODES_PORT: String(nodesPort), KAFKA_NODES_ADVERTISED: opts.nodesListener.advertised }
          : {}),
      })
      .withLabels({
        'io.kseip.role': 'kafka',
        'io.kseip.kafka.brokers': brokers[0]!,
        [OWNER_LABEL]: SELF_OWNER,
      })
      .withCopyContentToContainer(
        secure?.certFile === undefined || secure.keyFile === undefined
          ? []
          : [
              {
                content: `${readFileSync(secure.keyFile, 'utf8')}${readFileSync(secure.certFile, 'utf8')}`,
                target: SECURE_KEYSTORE,
              },
            ],
      )
      .withLogConsumer((stream) => logs.follow(stream))
      .withWaitStrategy(Wait.forLogMessage(STARTED_LINE))
      .withStartupTimeout(timeoutMs)
      .start();
  } catch (err) {
    throw startError(`Kafka broker (${image}) did not start on ${brokers[0]}`, err, logs);
  }

  const containerId = started.getId();
  const client = await getContainerRuntimeClient();
  const container = client.container.getById(containerId);
  let removed = false;

  try {
    await waitUntilServing(brokers, deadline);
  } catch (err) {
    await started.stop({ remove: true, timeout: 0 }).catch(() => undefined);
    throw startError(`Kafka broker (${image}) logged '${STARTED_LINE}' but is not serving`, err, logs);
  }

  if (secure !== undefined) {
    try {
      await upsertScramUsers(brokers[0]!, secure.users);
      if (secure.acls !== undefined) await createAcls(kafkaClient(brokers, 'kseip-devenv-acls'), secure.acls);
    } catch (err) {
      await started.stop({ remove: true, timeout: 0 }).catch(() => undefined);
      throw startError(`Kafka broker (${image}): SCRAM users or ACLs could not be created`, err, logs);
    }
  }

  return {
    brokers,
    secureBrokers: secure === undefined ? undefined : [`127.0.0.1:${securePort}`],
    nodesListenerPort: opts.nodesListener ? nodesPort : undefined,
    containerId,
    image,
    async stop() {
      if (removed) return;
      removed = true;
      // A clean stop takes ~0.2 s; the broker's data dies with the container anyway.
      await client.container.stop(container, { timeout: 5_000 });
      await client.container.remove(container, { removeVolumes: true });
    },
    async restart(restartOpts: RestartOptions = {}) {
      if (removed) throw new Error(`Kafka container ${containerId} was stopped and removed; cannot restart`);
      const startsBefore = logs.count(STARTED_LINE);
      await client.container.stop(container, { timeout: restartOpts.kill ? 0 : 10_000 });
      if ((restartOpts.downMs ?? 0) > 0) await sleep(restartOpts.downMs);
      // The log stream of the previous run ended with it; follow the new run from its start.
      const since = Date.now() / 1000;
      await client.container.start(container);
      logs.follow(await client.container.logs(container, { since }));
      const restartDeadline = Date.now() + timeoutMs;
      try {
        while (logs.count(STARTED_LINE) <= startsBefore) {
          const state = (await client.container.inspect(container)).State;
          if (!state.Running) throw new Error(`container exited with code ${state.ExitCode}`);
          if (Date.now() > restartDeadline) throw new Error(`no '${STARTED_LINE}' within ${timeoutMs} ms`);
          await sleep(100);
        }
        await waitUntilServing(brokers, restartDeadline);
      } catch (err) {
        throw startError(`Kafka broker ${brokers[0]} did not come back after a restart`, err, logs);
      }
    },
    async pause() {
      await container.pause();
    },
    async unpause() {
      await container.unpause();
    },
    logsTail(lines = 50) {
      return logs.tail(lines);
    },
  };
}

const SECURE_KEYSTORE = '/opt/kafka/config/secure-listener.pem';

/**
 * The listeners of tools/kafka/entrypoint.sh plus SECURE (SASL_SSL or SASL_PLAINTEXT,
 * SCRAM-SHA-256/512), as server.properties lines that come after the entrypoint's and so replace
 * them; with ACLs, the authorizer. The keystore is a PEM file (key, then certificate), which Kafka
 * reads without a keystore password.
 */
function secureListenerProperties(
  port: number,
  controllerPort: number,
  securePort: number,
  secure: SecureListenerOptions,
): Record<string, string> {
  const jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  const tls = secure.certFile !== undefined && secure.keyFile !== undefined;
  return {
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},SECURE://127.0.0.1:${securePort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port},SECURE://127.0.0.1:${securePort}`,
    'listener.security.protocol.map': `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:${tls ? 'SASL_SSL' : 'SASL_PLAINTEXT'}`,
    'listener.name.secure.sasl.enabled.mechanisms': 'SCRAM-SHA-256,SCRAM-SHA-512',
    'listener.name.secure.scram-sha-256.sasl.jaas.config': jaas,
    'listener.name.secure.scram-sha-512.sasl.jaas.config': jaas,
    ...(tls
      ? {
          'listener.name.secure.ssl.keystore.type': 'PEM',
          'listener.name.secure.ssl.keystore.location': SECURE_KEYSTORE,
        }
      : {}),
    ...(secure.acls === undefined
      ? {}
      : {
          'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
          'super.users': 'User:ANONYMOUS',
          'allow.everyone.if.no.acl.found': 'false',
        }),
  };
}

/** An admin round trip, retried until the deadline: the log line alone can precede readiness. */
async function waitUntilServing(brokers: string[], deadline: number): Promise<void> {
  let lastErr: unknown;
  while (Date.now() < deadline) {
    const admin = kafkaClient(brokers, 'kseip-devenv-ready', { connectionTimeout: 2_000 }).admin({
      retry: { retries: 0 },
    });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0 && cluster.controller !== null) {
        await admin.listTopics();
        return;
      }
      lastErr = new Error(`cluster not formed yet: ${JSON.stringify(cluster)}`);
    } catch (err) {
      lastErr = err;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await sleep(200);
  }
  throw new Error(`no kafkajs admin round trip with ${brokers.join(',')} before the deadline`, {
    cause: lastErr,
  });
}

function startError(what: string, err: unknown, logs: LogRing): KafkaStartError {
  const reason = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
  const tail = logs.tail(40);
  const portClash = /BindException|Address already in use/.test(tail);
  return new KafkaStartError(
    `${what}: ${reason}${cause}\n--- last broker log lines ---\n${tail || '(no output)'}`,
    portClash,
    err,
  );
}

/** Keeps the last N lines of the broker's stdout/stderr, across restarts. */
class LogRing {
  private readonly lines: string[] = [];
  private readonly counts = new Map<string, number>();
  private readonly max: number;
  private readonly onLine: ((line: string) => void) | undefined;

  constructor(max: number, onLine?: (line: string) => void) {
    this.max = max;
    this.onLine = onLine;
  }

  follow(stream: Readable): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) this.push(line);
    });
    stream.on('end', () => {
      if (partial !== '') this.push(partial);
      partial = '';
    });
    // The stream ends or errors when the container stops; nothing to do about it here.
    stream.on('error', () => undefined);
  }

  private push(line: string): void {
    if (line.includes(STARTED_LINE)) this.counts.set(STARTED_LINE, this.count(STARTED_LINE) + 1);
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    this.onLine?.(line);
  }

  count(marker: string): number {
    return this.counts.get(marker) ?? 0;
  }

  tail(n: number): string {
    return this.lines.slice(-n).join('\n');
  }
}

/** n distinct free TCP ports on 127.0.0.1 (bound at once so they differ, then released). */

// ----- kafkajs clients ------------------------------------------------------------------------

export interface KafkaClientOptions {
  /** Where kafkajs' own log lines go; default: a pino logger at KSEIP_KAFKAJS_LOG_LEVEL or silent. */
  log?: Logger;
  connectionTimeout?: number;
  requestTimeout?: number;
}

/**
 * A kafkajs client for tests and the demo (src/lib/kafka.ts with short connection timeouts).
 * kafkajs logs routine events (rebalances, coordinator moves) at ERROR, which would bury test
 * output, so by default it is silent; pass a pino logger (or set KSEIP_KAFKAJS_LOG_LEVEL) to
 * see it.
 */
export function kafkaClient(brokers: string[], clientId: string, opts: KafkaClientOptions = {}): Kafka {
  const log =
    opts.log?.child({ component: 'kafkajs' }) ??
    pino({ name: 'kafkajs', level: process.env.KSEIP_KAFKAJS_LOG_LEVEL ?? 'silent' }, pino.destination(2));
  return createKafka(brokers, clientId, {
    log,
    connectionTimeout: opts.connectionTimeout ?? 3_000,
    requestTimeout: opts.requestTimeout ?? 30_000,
  });
}

// ----- topics -----------------------------------------------------------------------------

export interface TopicSpec {
  topic: string;
  partitions?: number;
  /** Topic-level configs, e.g. { 'cleanup.policy': 'compact' }. */
  config?: Record<string, string>;
}

/**
 * Creates the topics (replication factor 1: one broker) and waits for their leaders. Topics
 * that already exist are left as they are, so callers can create idempotently.
 */
export async function createTopics(brokers: string[], specs: TopicSpec[]): Promise<void> {
  const admin: Admin = kafkaClient(brokers, 'kseip-devenv-topics').admin();
  await admin.connect();
  try {
    const topics: ITopicConfig[] = specs.map((s) => ({
      topic: s.topic,
      numPartitions: s.partitions ?? 1,
      replicationFactor: 1,
      configEntries: Object.entries(s.config ?? {}).map(([name, value]) => ({ name, value })),
    }));
    await admin.createTopics({ topics, waitForLeaders: true, timeout: 30_000 });
  } finally {
    await admin.disconnect();
  }
}
