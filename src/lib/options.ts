// The option specs that several components share, each written once: spread them into a
// component's spec (src/lib/config.ts) so that the same flag has the same env variable, codec,
// default and doc everywhere. Pure (specs, cross-checks and the mapping of parsed values only).
// Components import it as `shared`, so a spec shows at a glance which options are the common ones.
//
// - kafkaOptions: --brokers and the TLS/SASL options (every component talks to Kafka);
// - kubeconfigOption: for the components that talk to the API server;
// - healthPortOption(default): the /healthz, /readyz and /metrics port; each component keeps the
//   default its manifests and probes already use;
// - replicationFactorOption: for the components that create their topics when missing;
// - leaseOptions(defaults) for a component that always elects a leader (the watcher), and
//   optionalLeaseOptions(example) for one that may also run alone (liveness, the status
//   writer): the Lease, the candidate identity and the timing, with checkLeaseOptions for the
//   rules that span them and leaseSettingsOf to hand the parsed values to
//   src/lib/leader-election.ts.
import {
  BrokerListFromString,
  NonEmptyString,
  durationMsFromString,
  intFromString,
  option,
  type Option,
} from './config.ts';
import { kafkaSecuritySpec } from './kafka-security.ts';

export const kafkaOptions = {
  brokers: option({
    flag: '--brokers',
    env: 'KSEIP_BROKERS',
    codec: BrokerListFromString,
    required: true,
    doc: 'Kafka bootstrap brokers, host:port[,host:port...]',
  }),
  ...kafkaSecuritySpec,
};

export const kubeconfigOption = option({
  flag: '--kubeconfig',
  env: 'KUBECONFIG',
  codec: NonEmptyString,
  default: '',
  doc: 'kubeconfig file; empty: in-cluster service account (or ~/.kube/config)',
});

/**
 * --health-port (env KSEIP_HEALTH_PORT). `metricsPortAlias` keeps the older spelling
 * --metrics-port / KSEIP_METRICS_PORT working for the components that once used it.
 */
export function healthPortOption(
  defaultPort: number,
  opts: { metricsPortAlias?: boolean } = {},
): Option<number> {
  return option({
    flag: '--health-port',
    env: 'KSEIP_HEALTH_PORT',
    ...(opts.metricsPortAlias === true
      ? { aliases: [{ flag: '--metrics-port', env: 'KSEIP_METRICS_PORT' }] }
      : {}),
    codec: intFromString(0, 65535),
    default: defaultPort,
    doc: '/healthz, /readyz and /metrics port (0: any free port, logged)',
  });
}

export const replicationFactorOption = option({
  flag: '--replication-factor',
  env: 'KSEIP_REPLICATION_FACTOR',
  codec: intFromString(1, 10),
  default: 1,
  doc: 'replication factor when creating topics',
});

/**
 * A leader-election candidate's name, to which lifecycle.ts candidateIdentity always adds a
 * per-process suffix. Part of both lease specs; liveness replaces it with its own (used as given).
 */
const identityPrefixOption = option({
  flag: '--identity',
  env: 'POD_NAME',
  codec: NonEmptyString,
  default: '',
  doc: 'leader-election identity prefix (default the hostname); a random suffix is always added, so a restart is a new candidate',
});

/** How long a leader holds and renews its Lease; the same three flags wherever a Lease is used. */
const leaseTimingOptions = {
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
    doc: 'a leader that could not renew for this long steps down (< lease duration)',
  }),
  retryPeriodMs: option({
    flag: '--retry-period',
    env: 'KSEIP_RETRY_PERIOD',
    codec: durationMsFromString(50, 60_000),
    default: 2_000,
    doc: 'pause between attempts to acquire or renew the Lease',
  }),
};

/**
 * For a component that always elects a leader: the Lease lives in the pod's own namespace
 * (POD_NAMESPACE from the downward API) unless told otherwise, under a fixed default name.
 */
export function leaseOptions(defaults: { namespace: string; name: string }) {
  return {
    leaseNamespace: option({
      flag: '--lease-namespace',
      env: 'POD_NAMESPACE',
      codec: NonEmptyString,
      default: defaults.namespace,
      doc: 'namespace of the leader-election Lease',
    }),
    leaseName: option({
      flag: '--lease-name',
      codec: NonEmptyString,
      default: defaults.name,
      doc: 'name of the leader-election Lease',
    }),
    identity: identityPrefixOption,
    ...leaseTimingOptions,
  };
}

/**
 * For a component that elects a leader only when given a Lease (both flags) and otherwise runs
 * alone. `exampleName` is the name its Deployment uses, shown in --help.
 */
export function optionalLeaseOptions(exampleName: string) {
  return {
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
      doc: `name of the Lease for leader election, e.g. ${exampleName}`,
    }),
    identity: identityPrefixOption,
    ...leaseTimingOptions,
  };
}

/** What either lease spec parses into. */
export interface LeaseConfig {
  readonly leaseNamespace: string | undefined;
  readonly leaseName: string | undefined;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

/** The rules that span the Lease options; part of a component's `check`. */
export function checkLeaseOptions(c: LeaseConfig): string[] {
  const problems: string[] = [];
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

/** The Lease and its timing, as createLeaderElector takes them. */
export interface LeaseSettings {
  readonly namespace: string;
  readonly name: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

/** The Lease to elect on, or undefined when the component runs alone (no Lease given). */
export function leaseSettingsOf(
  c: LeaseConfig & { leaseNamespace: string; leaseName: string },
): LeaseSettings;
export function leaseSettingsOf(c: LeaseConfig): LeaseSettings | undefined;
export function leaseSettingsOf(c: LeaseConfig): LeaseSettings | undefined {
  if (c.leaseNamespace === undefined || c.leaseName === undefined) return undefined;
  return {
    namespace: c.leaseNamespace,
    name: c.leaseName,
    leaseDurationMs: c.leaseDurationMs,
    renewDeadlineMs: c.renewDeadlineMs,
    retryPeriodMs: c.retryPeriodMs,
  };
}
