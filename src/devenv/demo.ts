// `make demo`: starts the whole stack (stack.ts: Kafka, API server, a 3-node netns cluster, the
// control plane, an agent per node), applies a pool and the seed's manifest with documentation
// IPs, and prints a tidy summary: who the external host sees for each pod and destination, what
// kubectl shows, then a gateway failover and how long it took. Provisions nothing itself (make
// did). Effectful: owns the stack it started and stops all of it on exit and on Ctrl-C.
// Component logs go to files in a run dir (printed); the terminal gets only the summary.
// KSEIP_DEMO_KEEP=1 keeps everything running for exploration until Ctrl-C.
import { setTimeout as sleep } from 'node:timers/promises';
import { TOPICS } from '../contracts/topics.ts';
import { pino } from 'pino';
import {
  addSeedWorkload,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  measureFailover,
  POOL_YAML,
  SEED,
  seedManifest,
  selectHolder,
  selectRouterMac,
  startStack,
  waitForSource,
  type Stack,
} from './stack.ts';

const keep = process.env.KSEIP_DEMO_KEEP === '1';
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const secs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const step = (what: string, ms: number): void => say(`  ✓ ${what.padEnd(58)} ${dim(secs(ms).padStart(7))}`);
const indent = (text: string): string =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

let stack: Stack | undefined;
let stopping: Promise<void> | undefined;
async function cleanup(): Promise<void> {
  stopping ??= (async () => {
    say(dim('\nCleaning up: components, namespaces, API server, Kafka container...'));
    await stack?.stop();
    say(dim('Done.'));
  })();
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const began = performance.now();
  say(bold('kube-static-egress-ip demo'));
  say('Starting (Kafka, a real kube-apiserver, 3 nodes as network namespaces, the control plane):');
  // The harnesses log to stdout; the terminal is for the summary, so only errors get through.
  stack = await startStack({ onStep: step, log: pino({ level: 'error' }) });
  const s = stack;
  say(`  Component logs: ${s.runDir}/*.log   netns run dir: ${s.cluster.runDir}`);

  let t = performance.now();
  const work = await addSeedWorkload(s);
  step(
    'Service frontend, pods frontend-1 (node1), frontend-2 (node2), backend-1 (node1)',
    performance.now() - t,
  );

  t = performance.now();
  await s.apply(POOL_YAML);
  await s.apply(seedManifest());
  for (const pod of work.selected)
    await waitForSource(s.cluster, pod.net.ns, EXTERNAL_HOST_IP, SEED.egressIP);
  step(
    `pool 198.51.100.0/24 + seed StaticEgressIP applied → traffic leaves as ${SEED.egressIP}`,
    performance.now() - t,
  );
  say(dim(`  ready after ${secs(performance.now() - began)}`));

  say();
  say(bold('The policy (the seed manifest, documentation IPs):'));
  say(indent(seedManifest()));
  say();
  await printSources(
    s,
    work.selected.map((p) => p.name),
    work.other.name,
  );
  say();
  await printKubectl(s);

  // ---- failover ----
  const oldGateway = await selectHolder(s.cluster, SEED.egressIP);
  if (oldGateway === undefined) throw new Error(`no node holds ${SEED.egressIP}`);
  const probe = work.selected.find((p) => p.node !== oldGateway.name) ?? work.selected[0]!;
  say();
  say(bold(`Failover: killing gateway ${oldGateway.name} (router port down + SIGKILL of its agent)`));
  say(`  ${probe.name} (on ${probe.node}) probes ${EXTERNAL_HOST_IP} every ~20 ms meanwhile.`);
  const macBefore = await selectRouterMac(s.cluster, SEED.egressIP);
  const result = await measureFailover(s, probe.net.ns, SEED.egressIP, oldGateway);
  const newNode = result.newGateway === undefined ? undefined : s.cluster.node(result.newGateway);
  say(`  new gateway:        ${result.newGateway ?? '(none!)'}${newNode ? ` (${newNode.ip})` : ''}`);
  say(
    `  traffic gap:        ${bold(secs(result.gapMs))}  (last reply via ${oldGateway.name} → first via ${result.newGateway ?? '?'}, external host's log)`,
  );
  say(
    `  router ARP entry:   ${SEED.egressIP} ${macBefore ?? '?'} → ${result.routerMac ?? '?'} (gratuitous ARP)`,
  );
  say(`  probes:             ${result.probesAnswered}/${result.probesSent} answered`);
  say();
  await printSources(
    s,
    work.selected.filter((p) => p.node !== oldGateway.name).map((p) => p.name),
    work.other.node === oldGateway.name ? undefined : work.other.name,
  );
  say();
  await sleep(1000); // the status writer rate-limits its patches
  await printKubectl(s);

  if (keep) {
    say();
    say(bold('KSEIP_DEMO_KEEP=1: everything keeps running. Explore, then press Ctrl-C to clean up:'));
    say(`  export KUBECONFIG=${s.kube.kubeconfigPath}`);
    say('  kubectl get seip,seippool -A -o wide');
    say(
      `  bin/kseip --brokers ${s.kafka.brokers.join(',')} events tail --topic ${TOPICS.clusterEvents} --from-beginning -f`,
    );
    say(`  sudo ip netns exec ${probeNsHint(s)} curl -s http://${EXTERNAL_HOST_IP}:8080/`);
    await new Promise(() => undefined);
  }
}

function probeNsHint(s: Stack): string {
  return s.sim.pods()[0]?.net.ns ?? s.cluster.external.ns;
}

async function printSources(s: Stack, selected: string[], other: string | undefined): Promise<void> {
  say(bold('What the external host sees (source address of each request):'));
  say(
    dim(
      `    ${'pod'.padEnd(12)}${'node'.padEnd(9)}${'destination'.padEnd(16)}${'seen as'.padEnd(16)}expected`,
    ),
  );
  const row = async (podName: string, dst: string, selectedPod: boolean): Promise<void> => {
    const pod = s.sim.pod(podName);
    const node = s.cluster.node(pod.node);
    const matching = selectedPod && dst === EXTERNAL_HOST_IP;
    const seen = await s.cluster.whoami(pod.net.ns, dst, { timeoutMs: 3000 }).catch(() => 'unreachable');
    const want = matching ? SEED.egressIP : node.ip;
    const label = matching
      ? 'egress IP'
      : `node IP${selectedPod ? ' (destination not in cidr)' : ' (not selected)'}`;
    const mark = seen === want ? '✓' : '✗';
    say(`  ${mark} ${pod.name.padEnd(12)}${pod.node.padEnd(9)}${dst.padEnd(16)}${seen.padEnd(16)}${label}`);
  };
  for (const name of selected) await row(name, EXTERNAL_HOST_IP, true);
  if (other !== undefined) await row(other, EXTERNAL_HOST_IP, false);
  if (selected[0] !== undefined) await row(selected[0], EXTERNAL_OTHER_IP, true);
}

async function printKubectl(s: Stack): Promise<void> {
  say(bold('$ kubectl get seip -o wide'));
  say(indent(await s.kubectl(['get', 'seip', '-o', 'wide']).catch((e: Error) => e.message)));
  const conditions = await s
    .kubectl([
      'get',
      'seip',
      SEED.policyName,
      '-o',
      'jsonpath={range .status.conditions[*]}{.type}={.status} ({.reason}) {.message}{"\\n"}{end}',
    ])
    .catch((e: Error) => e.message);
  say(bold(`Conditions of ${SEED.namespace}/${SEED.policyName}:`));
  say(indent(conditions.trim() === '' ? '(none yet)' : conditions));
}

try {
  await main();
  await cleanup();
  process.exit(0);
} catch (err) {
  process.stdout.write(`\n✗ demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  if (stack !== undefined) process.stdout.write(`  component logs: ${stack.runDir}\n`);
  await cleanup();
  process.exit(1);
}
