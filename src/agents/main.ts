// Entry point of the node agent (one per node, a DaemonSet in production). Effectful: reads the
// configuration (flags + env, see ./config.ts; a bad value exits with code 2 and says which),
// builds the real dataplane, starts the service, and handles SIGTERM/SIGINT: stop heartbeats,
// flush acks, disconnect, and leave the dataplane as it is unless --uninstall.
import { createLogger } from '../lib/log.ts';
import * as lifecycle from '../lib/lifecycle.ts';
import { agentConfigSpec, agentUsage, checkAgentConfig } from './config.ts';
import { createDataplane } from './dataplane.ts';
import { createKernelRunner } from './kernel-exec.ts';
import { checkMarkClashes } from './mark-clash.ts';
import { NFT_TABLE } from '../dataplane/kernel-state.ts';
import { startAgentService } from './agent-service.ts';
import { parseOwnerRef, watchOwnerDaemonSet } from './owner-watch.ts';

const { config, kafkaSecurity } = lifecycle.loadConfigAndKafkaSecurityOrExit(
  agentConfigSpec,
  agentUsage,
  checkAgentConfig,
);
const log = createLogger('agent', { node: config.nodeName });
log.info({ config }, 'starting');

const dataplane = createDataplane(
  {
    ...(config.netns === undefined ? {} : { netns: config.netns }),
    uplink: config.uplink,
    markMask: config.markMask,
    tableBase: config.tableBase,
    rulePriority: config.rulePriority,
    vniBase: config.vniBase,
    vxlanPort: config.vxlanPort,
    neverSteer: config.neverSteer,
    procSysNet: config.procSysNet,
    egressAddressLifetimeS: Math.ceil(config.egressAddressLifetimeMs / 1_000),
  },
  log.child({ part: 'dataplane' }),
);

const owner = config.ownerDaemonSet === undefined ? undefined : parseOwnerRef(config.ownerDaemonSet);
const ownerWatch =
  owner === undefined
    ? undefined
    : watchOwnerDaemonSet(lifecycle.loadKubeConfig(), owner, log.child({ part: 'owner' }));
const service = await startAgentService({
  config,
  dataplane,
  log,
  kafkaSecurity,
  ...(ownerWatch ? { ownerDeleted: () => ownerWatch.deleted() } : {}),
});
log.info({ healthPort: service.healthPort }, 'agent running');

// Advice, not a gate (./mark-clash.ts says why): an error per clashing rule and a gauge to alert on.
service.metrics.markClashes.set(
  await checkMarkClashes(
    createKernelRunner(config.netns),
    config.markMask,
    { family: 'ip', table: NFT_TABLE },
    log.child({ part: 'mark-check' }),
  ),
);

lifecycle.exitOnStopSignals(log, async () => {
  await service.stop();
  ownerWatch?.close();
});
