// End to end: failures over the full path (real Kafka, kube-apiserver, kernel netns cluster, real
// traffic, every component a process; src/devenv/stack.ts). One stack for the file; the tests run
// in order and each leaves the system converged.
// - The Kafka broker restarts in the middle of traffic: no packet ever leaves with another source,
//   nobody is declared lost, the gateway stays, and the egress IP is back afterwards. During the
//   outage every agent fences by design (docs/failover.md, "A Kafka outage ..."): the gateway
//   drops the address, so nobody answers ARP for it, but its SNAT rule stays and conntrack
//   de-SNATs replies without the address, so traffic goes on while the router's neighbour entry
//   lasts. How much of it was answered meanwhile is printed, not asserted.
// - kill -9 of the projector, the watcher and a director's agent, each on its own: a change made
//   while it is down is applied once it is back; the projector's outputs stay exactly-once.
// - kill -9 of the gateway's agent, its node staying up: the standby takes over, and the old
//   gateway's kernel drops the IP by itself once its lifetime runs out unrenewed (ip addr on
//   every node, the router's neighbour entry); once the agent is back, exactly one node holds it.
// - A long-lived TCP stream of a pod no policy selects survives a failover onto its own node.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeClusterEvent, type ClusterEvent } from '../src/contracts/cluster-events.ts';
import { decodeDecision, type Decision, type DecisionOf } from '../src/contracts/decisions.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import { DEFAULT_EGRESS_ADDRESS_LIFETIME_S } from '../src/dataplane/kernel-state.ts';
import type { NetNode } from '../src/devenv/netcluster.ts';
import {
  addSeedWorkload,
  computeLongestGap,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  followRecords,
  measureFailover,
  POOL_YAML,
  SEED,
  seedManifest,
  selectHolders,
  selectObservedTimes,
  selectRouterMac,
  startProbes,
  startStack,
  waitForSource,
  type FollowedTopic,
  type Stack,
} from '../src/devenv/stack.ts';
import { waitFor } from './support/watcher-harness.ts';

const EIP = SEED.egressIP;
/** The seed manifest with a ranked standby, so the tests know in advance who takes over. */
const POLICY = seedManifest().replace('    cidr:', '    gateways: 2\n    cidr:');
const STREAM_PORT = 9100;

let stack: Stack;
let decisions: FollowedTopic<Decision>;
let events: FollowedTopic<ClusterEvent>;

const node = (name: string): NetNode => stack.cluster.node(name);
const selectedPods = (): SimPod[] => stack.sim.pods().filter((p) => p.name.startsWith('frontend-'));
const holders = async (): Promise<string[]> => (await selectHolders(stack.cluster, EIP)).map((n) => n.name);
const failoversSince = (index: number): DecisionOf<'GatewayFailedOver'>[] =>
  decisions.records
    .slice(index)
    .map((r) => r.value)
    .filter(
      (d): d is DecisionOf<'GatewayFailedOver'> => d.type === 'GatewayFailedOver' && d.egressIP === EIP,
    );
const diagnostics = (): string => stack.controlPlane.describe(15);

/** The active gateway and its standby, from the policy's status (what an operator sees). */
async function selectGateways(): Promise<{ active: string; standby: string }> {
  return waitFor(
    'status with the active gateway and one standby',
    async () => {
      const json = JSON.parse(await stack.kubectl(['get', 'seip', SEED.policyName, '-o', 'json'])) as {
        status?: { rules?: { activeGateway?: string; standbyGateways?: string[] }[] };
      };
      const rule = json.status?.rules?.[0];
      const standby = rule?.standbyGateways?.[0];
      return rule?.activeGateway && standby ? { active: rule.activeGateway, standby } : undefined;
    },
    30_000,
    diagnostics,
  );
}

/** Every selected pod leaves with the egress IP, every other pod with its node IP. */
async function assertConverged(dst = EXTERNAL_HOST_IP): Promise<void> {
  for (const pod of selectedPods()) await waitForSource(stack.cluster, pod.net.ns, dst, EIP, 30_000);
  for (const pod of stack.sim.pods().filter((p) => !p.name.startsWith('frontend-')))
    assert.equal(await stack.cluster.whoami(pod.net.ns, dst), node(pod.node).ip, pod.name);
}

/** Exactly `want` holds the egress IP, on every node's uplink, and the router agrees. */
async function waitForSingleHolder(want: string): Promise<void> {
  let seen = '';
  await waitFor(
    `${EIP} held by ${want} alone`,
    async () => {
      const h = await holders();
      const mac = await selectRouterMac(stack.cluster, EIP);
      seen = `holders [${h.join(', ')}], router ${EIP} → ${mac}`;
      return h.length === 1 && h[0] === want && mac === node(want).uplinkMac;
    },
    30_000,
    () => `${seen}\n${diagnostics()}`,
  );
}

/** Decision ids are deterministic per causing event: a duplicate would be a transaction replayed. */
function assertDecisionsExactlyOnce(): void {
  const ids = decisions.records.map((r) => r.value.id);
  const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert.deepEqual(dupes, [], 'every decision is written exactly once');
}

before(async () => {
  stack = await startStack();
  decisions = followRecords(stack, TOPICS.decisions, decodeDecision);
  events = followRecords(stack, TOPICS.clusterEvents, decodeClusterEvent);
  await addSeedWorkload(stack);
  await stack.sim.addPod(stack.cluster.nodes()[2]!.name, 'frontend-3', { labels: { app: 'frontend' } });
  await stack.apply(POOL_YAML);
  await stack.apply(POLICY);
  await assertConverged();
});

after(async () => {
  await decisions?.stop();
  await events?.stop();
  await stack?.stop();
});

void describe('failures (e2e)', () => {
  void test('a Kafka broker restart in the middle of traffic: never another source, nobody lost, the egress IP is back after', async (t: TestContext) => {
    const { active } = await selectGateways();
    const onGateway = selectedPods().find((p) => p.node === active)!;
    const remote = selectedPods().find((p) => p.node !== active)!;
    const fromIndex = decisions.records.length;
    const fromOffset = events.records.at(-1)?.offset ?? -1;
    const loops = [onGateway, remote].map((p) => ({
      pod: p,
      loop: startProbes(stack.cluster, p.net.ns, EXTERNAL_HOST_IP, { intervalMs: 50 }),
    }));
    await sleep(1000);
    const restartAt = Date.now();
    await stack.kafka.restart();
    const backAt = Date.now();
    t.diagnostic(`broker down and up again in ${backAt - restartAt} ms`);
    // Traffic with the egress IP from both pods again, then a little more.
    for (const { pod } of loops)
      await waitForSource(stack.cluster, pod.net.ns, EXTERNAL_HOST_IP, EIP, 60_000);
    await sleep(2000);
    for (const { pod, loop } of loops) {
      const results = await loop.stop();
      const leaked = results.filter((r) => r.src !== undefined && r.src !== EIP);
      assert.deepEqual(leaked, [], `${pod.name}: no probe may leave with another source`);
      const times = await selectObservedTimes(stack.cluster, loop, EIP);
      assert.ok(
        times.some((at) => at > backAt),
        `${pod.name}: traffic leaves with the egress IP after the restart`,
      );
      const during = results.filter((r) => r.sentAt >= restartAt && r.sentAt <= backAt);
      t.diagnostic(
        `${pod.name} (${pod.node === active ? 'on the gateway' : 'remote'}): ` +
          `${during.filter((r) => r.src === EIP).length}/${during.length} probes answered while the broker restarted; ` +
          `egress outage (longest gap between answers) ${computeLongestGap(times, restartAt - 1000)} ms`,
      );
    }
    const lost = events.records.filter((r) => r.offset > fromOffset && r.value.type === 'NodeLost');
    assert.deepEqual(
      lost.map((r) => r.value.object.name),
      [],
      'a broker outage is not the death of every node',
    );
    assert.deepEqual(failoversSince(fromIndex), [], 'the gateway stays');
    await waitForSingleHolder(active);
    await assertConverged();
  });

  void test('kill -9 of the projector: a pod added while it is down gets the egress IP once it is back, outputs exactly once', async () => {
    await stack.controlPlane.killComponent('projector');
    const pod = await stack.sim.addPod(stack.cluster.nodes()[0]!.name, 'frontend-4', {
      labels: { app: 'frontend' },
    });
    // The watcher records the pod; nobody folds it yet.
    await events.waitFor('the new pod in the log', (r) =>
      r.value.type === 'PodObserved' && r.value.object.name === pod.name ? true : undefined,
    );
    await sleep(1000);
    assert.notEqual(
      await stack.cluster.whoami(pod.net.ns, EXTERNAL_HOST_IP),
      EIP,
      'without a projector nothing steers the new pod yet',
    );
    const proc = await stack.controlPlane.restartComponent('projector');
    await waitForSource(stack.cluster, pod.net.ns, EXTERNAL_HOST_IP, EIP, 60_000);
    await waitFor('projector ready', () => proc.ready(), 30_000, diagnostics);
    await assertConverged();
    assertDecisionsExactlyOnce();
  });

  void test('kill -9 of the watcher: a policy change made while it is down is applied once it is back', async () => {
    await stack.controlPlane.killComponent('watcher');
    const changed = POLICY.replace(
      `    cidr: ${SEED.destination}`,
      `    destinations: [${SEED.destination}, ${EXTERNAL_OTHER_IP}/32]`,
    );
    assert.notEqual(changed, POLICY);
    await stack.apply(changed);
    const pod = selectedPods()[0]!;
    await sleep(1000);
    assert.equal(
      await stack.cluster.whoami(pod.net.ns, EXTERNAL_OTHER_IP),
      node(pod.node).ip,
      'without a watcher the change is not in the log yet',
    );
    // The restarted watcher waits out its predecessor's Lease, then lists everything again.
    const proc = await stack.controlPlane.restartComponent('watcher');
    await assertConverged(EXTERNAL_OTHER_IP);
    await waitFor('watcher ready', () => proc.ready(), 30_000, diagnostics);
    await assertConverged();
    assertDecisionsExactlyOnce();
  });

  void test("kill -9 of a director's agent: its pods keep their egress IP, and a pod added meanwhile gets it once the agent is back", async () => {
    const { active, standby } = await selectGateways();
    const director = stack.cluster.nodes().find((n) => n.name !== active && n.name !== standby)!;
    const existing = selectedPods().find((p) => p.node === director.name)!;
    await stack.controlPlane.killAgent(director.name);
    // The dataplane outlives the agent: the steering it applied keeps working.
    assert.equal(await stack.cluster.whoami(existing.net.ns, EXTERNAL_HOST_IP), EIP);
    const pod = await stack.sim.addPod(director.name, 'frontend-5', { labels: { app: 'frontend' } });
    await events.waitFor('the new pod in the log', (r) =>
      r.value.type === 'PodObserved' && r.value.object.name === pod.name ? true : undefined,
    );
    await sleep(1000);
    assert.equal(await stack.cluster.whoami(existing.net.ns, EXTERNAL_HOST_IP), EIP);
    const agent = await stack.controlPlane.startAgent(director);
    await waitForSource(stack.cluster, pod.net.ns, EXTERNAL_HOST_IP, EIP, 60_000);
    await waitFor('agent ready', () => agent.ready(), 30_000, diagnostics);
    await assertConverged();
  });

  void test("kill -9 of the gateway's agent, its node staying up: the standby takes over, the old node drops the IP by itself, and with the agent back one node holds it", async (t: TestContext) => {
    const { active, standby } = await selectGateways();
    const probe = selectedPods().find((p) => p.node !== active)!;
    const fromIndex = decisions.records.length;
    const probes = startProbes(stack.cluster, probe.net.ns, EXTERNAL_HOST_IP);
    await sleep(500);
    const killedAt = Date.now();
    await stack.controlPlane.killAgent(active);
    const moved = await decisions.waitFor(
      `${EIP} leaving ${active}`,
      () => failoversSince(fromIndex).find((d) => d.from === active),
      30_000,
    );
    assert.deepEqual([moved.to, moved.reason], [standby, 'NodeLost']);
    await waitFor(
      `the router on ${standby}'s MAC`,
      async () => (await selectRouterMac(stack.cluster, EIP)) === node(standby).uplinkMac,
      30_000,
      diagnostics,
    );
    assert.equal(await stack.cluster.whoami(probe.net.ns, EXTERNAL_HOST_IP), EIP);
    // Nothing of ours runs on the old gateway any more, yet its kernel lets go of the IP by
    // itself: the address expires unless the agent renews it (--egress-address-lifetime), so
    // two nodes hold it for a bounded time only. Both kernels are read, not our components.
    await waitFor(
      `the IP gone from ${active} with its agent dead, held by ${standby} alone`,
      async () => (await holders()).join(',') === standby,
      30_000,
      diagnostics,
    );
    const singleAgainMs = Date.now() - killedAt;
    assert.equal(await selectRouterMac(stack.cluster, EIP), node(standby).uplinkMac);
    t.diagnostic(
      `agent kill → ${active} dropped ${EIP} by itself ${singleAgainMs} ms after the kill ` +
        `(lifetime ${DEFAULT_EGRESS_ADDRESS_LIFETIME_S} s); holders [${(await holders()).join(', ')}]`,
    );

    const agent = await stack.controlPlane.startAgent(node(active));
    await waitFor('agent ready', () => agent.ready(), 60_000, diagnostics);
    // The restarted agent is alive again and ranks first: the IP comes back to it (Preempted),
    // and the standby withdraws.
    const back = await decisions.waitFor(
      `${EIP} back on ${active}`,
      () => failoversSince(fromIndex).find((d) => d.to === active),
      30_000,
    );
    assert.equal(back.reason, 'Preempted');
    await waitForSingleHolder(active);
    const doubleHeldMs = Date.now() - killedAt;
    const results = await probes.stop();
    const leaked = results.filter((r) => r.src !== undefined && r.src !== EIP);
    assert.deepEqual(leaked, [], 'no probe may leave with another source');
    const times = await selectObservedTimes(stack.cluster, probes, EIP);
    t.diagnostic(
      `agent kill → standby: longest gap ${computeLongestGap(times, killedAt)} ms; ` +
        `one holder again ${doubleHeldMs} ms after the kill (the agent was restarted after the failover)`,
    );
    await assertConverged();
  });

  void test('a long-lived TCP stream of a pod no policy selects survives a failover onto its node', async (t: TestContext) => {
    const { active, standby } = await selectGateways();
    // The stream runs through the node that is about to become the gateway.
    const other = await stack.sim.addPod(standby, 'backend-stream', { labels: { app: 'backend' } });
    assert.equal(await stack.cluster.whoami(other.net.ns, EXTERNAL_HOST_IP), node(standby).ip);
    await stack.cluster.spawn(
      stack.cluster.external.ns,
      [
        'socat',
        '-d',
        '-d',
        `TCP-LISTEN:${STREAM_PORT},bind=${EXTERNAL_HOST_IP},reuseaddr`,
        'SYSTEM:while true; do date +%s%N; sleep 0.02; done',
      ],
      { name: 'stream-server', readyPattern: /listening on/ },
    );
    const client = await stack.cluster.spawn(
      other.net.ns,
      ['socat', '-u', `TCP:${EXTERNAL_HOST_IP}:${STREAM_PORT}`, 'STDOUT'],
      { name: 'stream-client' },
    );
    const arrivals: number[] = [];
    client.child.stdout?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') arrivals.push(Date.now());
    });
    await waitFor('the stream flowing', () => arrivals.length > 20, 10_000);

    const probe = selectedPods().find((p) => p.node !== active)!;
    const result = await measureFailover(stack, probe.net.ns, EIP, node(active));
    assert.equal(result.newGateway, standby);
    assert.equal(result.probesLeaked, 0, 'no probe may leave with another source');
    const failedOverAt = Date.now();
    await sleep(2000);
    assert.equal(client.child.exitCode, null, `the stream ended: ${client.child.exitCode}`);
    assert.equal(client.child.signalCode, null);
    const afterwards = arrivals.filter((at) => at > failedOverAt).length;
    assert.ok(afterwards > 20, `the stream keeps flowing after the failover (${afterwards} lines)`);
    t.diagnostic(
      `stream from ${other.name} on ${standby} (now the gateway): ${arrivals.length} lines, ` +
        `longest pause ${computeLongestGap(arrivals)} ms; failover gap for selected traffic ${Math.round(result.gapMs)} ms`,
    );
    await client.stop();
  });
});
