// The liveness service's configuration model: flags + env, validated at start-up (bad value →
// message and exit code 2, see src/lib/config.ts). Pure. The defaults give failover well under
// 1 s together with the agent's defaults; docs/failover.md has the arithmetic.
import { NonEmptyString, durationMsFromString, intFromString, option, type ConfigOf } from '../lib/config.ts';
import * as shared from '../lib/options.ts';

export const livenessConfigSpec = {
  ...shared.kafkaOptions,
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
  metricsPort: shared.healthPortOption(9465, { metricsPortAlias: true }),
  ...shared.optionalLeaseOptions('kseip-liveness'),
  // Replaces the shared identity option (a prefix that always gets a suffix): liveness uses the
  // identity as given, and only its default is made unique per process.
  identity: option<string | undefined>({
    flag: '--identity',
    env: 'POD_NAME',
    codec: NonEmptyString,
    doc: 'leader-election identity; default <hostname>-<pid>-<random>',
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
  problems.push(...shared.checkLeaseOptions(c));
  return problems;
}

export const livenessUsage =
  'kseip liveness: turns agent heartbeat silence into NodeLost / NodeBack events\n\nUsage: node src/liveness/main.ts --brokers HOST:PORT [options]';
