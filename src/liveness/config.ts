// The liveness service's configuration model: flags + env, validated at start-up (bad value →
// message and exit code 2, see src/lib/config.ts). Pure. The defaults give failover well under
// 1 s together with the agent's defaults; docs/failover.md has the arithmetic.
import {
  BrokerListFromString,
  NonEmptyString,
  durationMsFromString,
  intFromString,
  option,
  type ConfigOf,
} from '../lib/config.ts';
import { kafkaSecuritySpec } from '../lib/kafka-security.ts';

export const livenessConfigSpec = {
  brokers: option({
    flag: '--brokers',
    env: 'KSEIP_BROKERS',
    codec: BrokerListFromString,
    required: true,
    doc: 'Kafka bootstrap brokers, host:port[,host:port...]',
  }),
  ...kafkaSecuritySpec,
  lostAfterMs: option({
    flag: '--lost-after',
    env: 'KSEIP_LOST_AFTER',
    codec: durationMsFromString(50, 600_000),
    default: 500,
    doc: "silence after which a node is declared lost (NodeLost); must exceed the agents' --fence-after",
  }),
  blindAfterMs: option({
    flag: '--blind-after',
    env: 'KSEIP_BLIND_AFTER',
    codec: durationMsFromString(20, 600_000),
    default: 250,
    doc: 'if liveness itself cannot fetch heartbeats for this long it declares nobody lost, and restarts every silence when it can again',
  }),
  tickMs: option({
    flag: '--tick',
    env: 'KSEIP_TICK',
    codec: durationMsFromString(5, 10_000),
    default: 50,
    doc: 'how often silences are judged (adds at most this much to detection)',
  }),
  seedWindowMs: option({
    flag: '--seed-window',
    env: 'KSEIP_SEED_WINDOW',
    codec: durationMsFromString(0, 3_600_000),
    default: 30_000,
    doc: 'at start, nodes that heartbeated within this window are declared lost if they stay silent (0: off)',
  }),
  // The key stays metricsPort for existing callers; the flag is --health-port like every other
  // component's, and the old spellings keep working.
  metricsPort: option({
    flag: '--health-port',
    env: 'KSEIP_HEALTH_PORT',
    aliases: [{ flag: '--metrics-port', env: 'KSEIP_METRICS_PORT' }],
    codec: intFromString(0, 65535),
    default: 9465,
    doc: '/healthz, /readyz and /metrics port (0 picks a free one)',
  }),
  leaseNamespace: option<string | undefined>({
    flag: '--lease-namespace',
    env: 'KSEIP_LEASE_NAMESPACE',
    codec: NonEmptyString,
    doc: 'namespace of the coordination.k8s.io Lease for leader election (with --lease-name); none: run alone',
  }),
  leaseName: option<string | undefined>({
    flag: '--lease-name',
    env: 'KSEIP_LEASE_NAME',
    codec: NonEmptyString,
    doc: 'name of the Lease for leader election, e.g. kseip-liveness',
  }),
  identity: option<string | undefined>({
    flag: '--identity',
    env: 'POD_NAME',
    codec: NonEmptyString,
    doc: 'leader-election identity; default <hostname>-<pid>-<random>',
  }),
  leaseDurationMs: option({
    flag: '--lease-duration',
    env: 'KSEIP_LEASE_DURATION',
    codec: durationMsFromString(1_000, 600_000),
    default: 15_000,
    doc: 'how long standbys wait after the last renewal they saw before taking over',
  }),
  renewDeadlineMs: option({
    flag: '--renew-deadline',
    env: 'KSEIP_RENEW_DEADLINE',
    codec: durationMsFromString(500, 600_000),
    default: 10_000,
    doc: 'a leader that could not renew for this long stops publishing',
  }),
  retryPeriodMs: option({
    flag: '--retry-period',
    env: 'KSEIP_RETRY_PERIOD',
    codec: durationMsFromString(100, 60_000),
    default: 2_000,
    doc: 'pause between attempts to acquire or renew the Lease',
  }),
  term: option({
    flag: '--term',
    env: 'KSEIP_LIVENESS_TERM',
    codec: intFromString(0, Number.MAX_SAFE_INTEGER),
    default: 0,
    doc: "without leader election: the term written on every event (never lower than a previous leader's)",
  }),
};

export type LivenessConfig = ConfigOf<typeof livenessConfigSpec>;

export function checkLivenessConfig(c: LivenessConfig): string[] {
  const problems: string[] = [];
  if (c.blindAfterMs >= c.lostAfterMs) {
    problems.push(`--blind-after (${c.blindAfterMs}ms) must be below --lost-after (${c.lostAfterMs}ms)`);
  }
  if (c.tickMs * 4 > c.lostAfterMs) {
    problems.push(`--tick (${c.tickMs}ms) must be at most a quarter of --lost-after (${c.lostAfterMs}ms)`);
  }
  if ((c.leaseNamespace === undefined) !== (c.leaseName === undefined)) {
    problems.push(
      '--lease-namespace and --lease-name go together (both for leader election, neither to run alone)',
    );
  }
  if (c.renewDeadlineMs >= c.leaseDurationMs) {
    problems.push(
      `--renew-deadline (${c.renewDeadlineMs}ms) must be below --lease-duration (${c.leaseDurationMs}ms)`,
    );
  }
  return problems;
}

export const livenessUsage =
  'kseip liveness: turns agent heartbeat silence into NodeLost / NodeBack events\n\nUsage: node src/liveness/main.ts --brokers HOST:PORT [options]';
