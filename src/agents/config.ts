// The node agent's configuration model: every option with its flag, environment variable, default
// and validation, in one spec. Pure (parsing and validation only; src/agents/main.ts loads it and
// exits with code 2 on a bad value). The dataplane numbers (mark mask, table base, rule priority,
// VNI base, VXLAN port) must be identical on every node, because a slot's mark, table and VNI are
// derived from them on both ends of a tunnel; set them once in the DaemonSet.
import {
  BooleanFromString,
  CidrListFromString,
  NonEmptyString,
  checkedString,
  PortFromString,
  durationMsFromString,
  intFromString,
  option,
  type ConfigOf,
} from '../lib/config.ts';
import * as shared from '../lib/options.ts';
import { InterfaceName, NodeName } from '../contracts/primitives.ts';
import { DEFAULT_DATAPLANE_CONFIG, DEFAULT_EGRESS_ADDRESS_LIFETIME_S } from '../dataplane/kernel-state.ts';
import { parseOwnerRef } from './owner-watch.ts';

export const agentConfigSpec = {
  nodeName: option({
    flag: '--node-name',
    env: 'NODE_NAME',
    codec: checkedString('a Kubernetes node name', NodeName),
    required: true,
    doc: "this node's Kubernetes name (downward API: spec.nodeName); the key the agent reads from node-rules",
  }),
  ...shared.kafkaOptions,
  netns: option<string | undefined>({
    flag: '--netns',
    env: 'KSEIP_NETNS',
    codec: NonEmptyString,
    doc: 'development only: apply the dataplane inside this named network namespace instead of the host',
  }),
  uplink: option({
    flag: '--uplink',
    env: 'KSEIP_UPLINK',
    codec: checkedString('an interface name such as eth0', InterfaceName),
    default: 'eth0',
    doc: 'interface that holds egress IPs on a gateway and carries the tunnels',
  }),
  markMask: option({
    flag: '--mark-mask',
    env: 'KSEIP_MARK_MASK',
    codec: intFromString(1, 0xffffffff),
    default: DEFAULT_DATAPLANE_CONFIG.markMask,
    doc: 'the packet-mark bits this agent may use (contiguous, e.g. 0x0fff0000); other bits are never touched',
  }),
  tableBase: option({
    flag: '--table-base',
    env: 'KSEIP_TABLE_BASE',
    codec: intFromString(1, 0xfffffeff),
    default: DEFAULT_DATAPLANE_CONFIG.tableBase,
    doc: 'routing table of slot s is table-base + s',
  }),
  rulePriority: option({
    flag: '--rule-priority',
    env: 'KSEIP_RULE_PRIORITY',
    codec: intFromString(1, 32765),
    default: DEFAULT_DATAPLANE_CONFIG.rulePriority,
    doc: 'priority of our ip rules; must sort before the main table (32766)',
  }),
  vniBase: option({
    flag: '--vni-base',
    env: 'KSEIP_VNI_BASE',
    codec: intFromString(1, 16_777_000),
    default: DEFAULT_DATAPLANE_CONFIG.vniBase,
    doc: 'VXLAN VNI of slot s is vni-base + s',
  }),
  vxlanPort: option({
    flag: '--vxlan-port',
    env: 'KSEIP_VXLAN_PORT',
    codec: PortFromString,
    default: DEFAULT_DATAPLANE_CONFIG.vxlanPort,
    doc: "UDP port of our VXLAN tunnels; must differ from the CNI's (flannel 8472, Calico 4789)",
  }),
  neverSteer: option({
    flag: '--never-steer',
    env: 'KSEIP_NEVER_STEER',
    codec: CidrListFromString,
    default: [] as string[],
    doc: 'destinations never steered whatever a policy says, beyond the node addresses, pod CIDRs and service CIDRs the cluster describes (which never are): e.g. CNI IPAM ranges, comma-separated',
  }),
  procSysNet: option({
    flag: '--proc-sys-net',
    env: 'KSEIP_PROC_SYS_NET',
    codec: NonEmptyString,
    default: '/proc/sys/net',
    doc: "where to write net sysctls (a container's /proc/sys is read-only: mount the host's /proc/sys/net elsewhere)",
  }),
  heartbeatIntervalMs: option({
    flag: '--heartbeat-interval',
    env: 'KSEIP_HEARTBEAT_INTERVAL',
    codec: durationMsFromString(10, 60_000),
    default: 100,
    doc: 'how often the agent heartbeats to liveness (must be well below liveness --lost-after)',
  }),
  fenceAfterMs: option({
    flag: '--fence-after',
    env: 'KSEIP_FENCE_AFTER',
    codec: durationMsFromString(20, 600_000),
    default: 250,
    doc: 'a gateway that has had no heartbeat accepted by Kafka for this long withdraws its egress IPs; must be below liveness --lost-after',
  }),
  egressAddressLifetimeMs: option({
    flag: '--egress-address-lifetime',
    env: 'KSEIP_EGRESS_ADDRESS_LIFETIME',
    codec: durationMsFromString(2_000, 3_600_000),
    default: DEFAULT_EGRESS_ADDRESS_LIFETIME_S * 1_000,
    doc: 'lifetime of a held egress IP, renewed while the agent runs: if only the agent dies, its node drops the IP after this long (whole seconds)',
  }),
  driftIntervalMs: option({
    flag: '--drift-interval',
    env: 'KSEIP_DRIFT_INTERVAL',
    codec: durationMsFromString(100, 3_600_000),
    default: 5_000,
    doc: 'how often the kernel is compared with the desired state; a difference is repaired by a full apply',
  }),
  // The key stays metricsPort for existing callers; the flag is --health-port like every other
  // component's, and the old spellings keep working.
  metricsPort: shared.healthPortOption(9464, { metricsPortAlias: true }),
  nodeRulesPartitions: option({
    flag: '--node-rules-partitions',
    env: 'KSEIP_NODE_RULES_PARTITIONS',
    codec: intFromString(1, 10_000),
    default: 1,
    doc: "partition count of kseip.node-rules.v1 the projector produces with (the broker's count wins if they differ)",
  }),
  uninstall: option({
    flag: '--uninstall',
    env: 'KSEIP_UNINSTALL',
    codec: BooleanFromString,
    default: false,
    boolean: true,
    doc: 'on SIGTERM remove everything of ours from the node (only when uninstalling; a plain restart keeps flows)',
  }),
  ownerDaemonSet: option<string | undefined>({
    flag: '--owner-daemonset',
    env: 'KSEIP_OWNER_DAEMONSET',
    codec: NonEmptyString,
    doc: "namespace/name of the agent's own DaemonSet: watched (in-cluster credentials), and once it is deleted a SIGTERM uninstalls as --uninstall does",
  }),
};

export type AgentConfig = ConfigOf<typeof agentConfigSpec>;

/** Rules that span options. */
export function checkAgentConfig(c: AgentConfig): string[] {
  const problems: string[] = [];
  if (c.ownerDaemonSet !== undefined && parseOwnerRef(c.ownerDaemonSet) === undefined) {
    problems.push(`--owner-daemonset ${JSON.stringify(c.ownerDaemonSet)} must be namespace/name`);
  }
  const mask = c.markMask >>> 0;
  const lowest = mask & -mask;
  if (((mask + lowest) & mask) >>> 0 !== 0) {
    problems.push(`--mark-mask 0x${mask.toString(16)} must be one contiguous run of bits`);
  }
  if (c.fenceAfterMs < 2 * c.heartbeatIntervalMs) {
    problems.push(
      `--fence-after (${c.fenceAfterMs}ms) must be at least twice --heartbeat-interval (${c.heartbeatIntervalMs}ms), or one late heartbeat fences the node`,
    );
  }
  return problems;
}

export const agentUsage =
  "kseip agent: applies this node's desired egress state from kseip.node-rules.v1\n\nUsage: node src/agents/main.ts --node-name NODE --brokers HOST:PORT [options]";
