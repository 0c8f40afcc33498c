// E2e: the cluster changes under a running policy, over the full path — a real kube-apiserver
// (with the EndpointSlice controller), real Kafka, the real watcher, projector, liveness, status
// writer and one agent per node, a network-namespace cluster and real traffic
// (src/devenv/stack.ts). Ground truth is what the external host saw (whoami reply and tagged
// log) and what each node's kernel holds (nft/ip, src/devenv/node-kernel.ts), never the logs.
//   - pod churn: scaling the Service up and down (new pods leave as the egress IP, a removed
//     pod's IP disappears from every node's sets, and a new unselected pod that gets that IP
//     leaves as its node IP), and a pod re-created with another IP;
//   - a CR update of the egress IP and the destinations: the old IP leaves every uplink, the new
//     one is held by one node and seen by the external host, and the old destination is no
//     longer steered;
//   - a node added (Node object, agent) that becomes a director and a gateway, then removed:
//     its pods' and its gateway role's traces vanish from the other nodes, and the policy it was
//     the only eligible gateway for drops its traffic rather than leaking the node IP;
//   - a CR delete, after which every node is clean: no kseip table, no ip rule besides the
//     kernel's, no route outside main/local, no VXLAN device but the CNI's, no egress address.
// Tests run in order on one stack and build on each other. Effectful: owns the stack started in
// `before`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import { ROUTER_EGRESS_IP, type NetNode } from '../src/devenv/netcluster.ts';
import { selectLeftovers, selectSetElements, type NodeKernel } from '../src/devenv/node-kernel.ts';
import {
  addSeedWorkload,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  POOL_YAML,
  SEED,
  seedManifest,
  startStack,
  type SeedWorkload,
  type Stack,
} from '../src/devenv/stack.ts';
import {
  assertNeverSeen,
  assertSeenAs,
  assertWatch,
  readAllKernels,
  trace,
  waitForHolders,
  waitForKernels,
  stopAllWatches,
  waitSeenAs,
  watchSources,
  type SourceWatch,
} from './support/e2e.ts';

/** The seed policy's egress IP after the update test. */
const EIP_UPDATED = '198.51.100.21';
/** A policy whose only eligible gateway is the added node. */
const EIP_EDGE = '198.51.100.22';
const EDGE_LABEL = 'e2e.kseip.io/edge';
/** Destinations of the seed policy after its update: both external addresses (.10 and .20). */
const WIDENED = '203.0.113.0/27';

let stack: Stack;
let seed: SeedWorkload;
let nodes: [NetNode, NetNode, NetNode];

const nodeIp = (pod: SimPod): string => stack.cluster.node(pod.node).ip;
const podsOf = (k: NodeKernel): string[] => selectSetElements(k, '-pods').sort();
/** The IPs of the Service's pods on `node`, as the sim knows them now. */
const frontendIpsOn = (node: string): string[] =>
  stack.sim
    .pods()
    .filter((p) => p.node === node && p.name.startsWith('frontend-'))
    .map((p) => p.net.ip)
    .sort();

/** The added node's part of the node test: gateway of the edge policy, then gone. */
async function nodeJoinsAndLeaves(node4: NetNode, f1: SimPod, f6: SimPod, watch: SourceWatch): Promise<void> {
  await waitSeenAs(stack, f1, EXTERNAL_HOST_IP, EIP_EDGE, 'through the added node as gateway');
  await waitSeenAs(stack, f6, EXTERNAL_HOST_IP, EIP_EDGE, 'local to the added gateway');
  assert.deepEqual(
    await waitForHolders(stack, [EIP_EDGE]),
    [node4.name],
    `${EIP_EDGE} is held by the added node`,
  );

  const tunnelled = (await readAllKernels(stack.cluster)).filter((k) =>
    selectLeftovers(k).some((l) => l.includes(node4.ip)),
  );
  assert.ok(tunnelled.length > 0, `the directors' kernels route to ${node4.name} (${node4.ip})`);

  // The node goes away: its agent with it, then the Node object and the machine.
  await stack.controlPlane.killAgent(node4.name);
  await stack.sim.removeNode(node4.name);
  // Directors tunnelled to it (route `throw <node IP>` in the slot's table, the tunnel itself).
  await waitForKernels(
    stack,
    `no trace of ${node4.name} (${node4.ip}) on the other nodes`,
    (k) => !selectLeftovers(k).some((l) => l.includes(node4.ip)),
  );
  // The seed policy keeps working; the edge policy has no eligible gateway left, so its
  // traffic is dropped rather than leaving with the node IP.
  for (const pod of seed.selected)
    await waitSeenAs(stack, pod, EXTERNAL_OTHER_IP, EIP_UPDATED, 'after the node left');
  await assertNeverSeen(stack, f1, EXTERNAL_HOST_IP, 'policy without an eligible gateway');
  assertWatch(await watch.stop(), 'the seed policy, while a node joined and left', EIP_UPDATED);
}

void describe('change: pods, policies and nodes change under running traffic (full path)', () => {
  before(async () => {
    stack = await startStack();
    process.once('exit', () => stack?.killAllSync());
    nodes = stack.cluster.nodes() as [NetNode, NetNode, NetNode];
    seed = await addSeedWorkload(stack);
    await stack.apply(POOL_YAML);
    await stack.apply(seedManifest());
    for (const pod of seed.selected)
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, SEED.egressIP, 'seed policy in place');
  });

  after(async () => {
    await stopAllWatches();
    await stack?.stop();
  });

  void test('pod churn: scale up and down, and a pod re-created with another IP', async () => {
    const [n1, n2, n3] = nodes;
    // frontend-1 stays throughout: nothing that happens to other pods may disturb it.
    const watch = watchSources(stack, [seed.selected[0]!], EXTERNAL_HOST_IP, [SEED.egressIP]);
    // Scale up: one more pod on every node (node 3 had none).
    const added = [
      await stack.sim.addPod(n3.name, 'frontend-3', { labels: { app: 'frontend' } }),
      await stack.sim.addPod(n1.name, 'frontend-4', { labels: { app: 'frontend' } }),
      await stack.sim.addPod(n2.name, 'frontend-5', { labels: { app: 'frontend' } }),
    ];
    for (const pod of added) await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, SEED.egressIP, 'scaled up');
    await waitForKernels(
      stack,
      'every node steering exactly its own frontend pods',
      (k, node) => podsOf(k).join() === frontendIpsOn(node.name).join(),
    );

    // Scale down: two of them go; their IPs leave every node's sets.
    const gone = added.slice(0, 2);
    for (const pod of gone) await stack.sim.removePod(pod.name);
    await waitForKernels(
      stack,
      'the removed pods steered nowhere',
      (k, node) => podsOf(k).join() === frontendIpsOn(node.name).join(),
    );
    for (const pod of seed.selected)
      await assertSeenAs(stack, pod, EXTERNAL_HOST_IP, SEED.egressIP, 'remaining pods after scale-down');
    // An unselected pod that is given a removed pod's IP is not steered.
    const [f3, f4] = gone as [SimPod, SimPod];
    const reuse3 = await stack.sim.addPod(n3.name, 'reuse-3', { labels: { app: 'other' }, ip: f3.net.ip });
    const reuse4 = await stack.sim.addPod(n1.name, 'reuse-4', { labels: { app: 'other' }, ip: f4.net.ip });
    await assertSeenAs(
      stack,
      reuse4,
      EXTERNAL_HOST_IP,
      nodeIp(reuse4),
      "new unselected pod with a removed pod's IP",
    );
    await assertSeenAs(
      stack,
      reuse3,
      EXTERNAL_HOST_IP,
      nodeIp(reuse3),
      "new unselected pod with a removed pod's IP",
    );

    // A pod re-created with another IP (StatefulSet-style, same name and labels).
    const f2 = seed.selected[1]!;
    const oldIp = f2.net.ip;
    const moved = await stack.sim.setPodIp(f2.name);
    assert.notEqual(moved.net.ip, oldIp, 'the pod has a new IP');
    seed.selected[1] = moved;
    await waitSeenAs(stack, moved, EXTERNAL_HOST_IP, SEED.egressIP, 'pod with a new IP');
    await waitForKernels(
      stack,
      `${oldIp} steered nowhere, ${moved.net.ip} on ${moved.node}`,
      (k, node) => podsOf(k).join() === frontendIpsOn(node.name).join(),
    );
    const reuse2 = await stack.sim.addPod(moved.node, 'reuse-2', { labels: { app: 'other' }, ip: oldIp });
    await assertSeenAs(
      stack,
      reuse2,
      EXTERNAL_HOST_IP,
      nodeIp(reuse2),
      "new unselected pod with the moved pod's old IP",
    );

    assertWatch(await watch.stop(), 'a pod that stays, during the churn', SEED.egressIP);
    for (const name of ['reuse-2', 'reuse-3', 'reuse-4']) await stack.sim.removePod(name);
  });

  void test('a CR update changes the egress IP and the destinations', async () => {
    const [oldHolder] = await waitForHolders(stack, [SEED.egressIP]);

    // First the egress IP moves and the destinations widen (the old one stays inside): the
    // pods' traffic there may pause while the IP moves, but never leaves with the node IP.
    const frontends = stack.sim.pods().filter((p) => p.name.startsWith('frontend-'));
    const watch = watchSources(stack, frontends, EXTERNAL_HOST_IP, [SEED.egressIP, EIP_UPDATED]);
    await stack.apply(seedManifest(EIP_UPDATED, WIDENED));
    for (const pod of frontends)
      for (const dst of [EXTERNAL_HOST_IP, EXTERNAL_OTHER_IP])
        await waitSeenAs(stack, pod, dst, EIP_UPDATED, 'new egress IP, widened destinations');
    const moving = await watch.stop();

    // Then the destinations narrow: the one left out goes back to the node IP, the other keeps
    // the egress IP without a wrong source in between.
    const narrowing = watchSources(stack, frontends, EXTERNAL_OTHER_IP, [EIP_UPDATED]);
    await stack.apply(seedManifest(EIP_UPDATED, `${EXTERNAL_OTHER_IP}/32`));
    for (const pod of frontends)
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, nodeIp(pod), 'a destination no longer in the policy');
    const narrowed = await narrowing.stop();

    // Judged once the policy is in its final shape, so that a failure here leaves the next
    // tests the state they expect.
    assertWatch(moving, 'while the egress IP moved', EIP_UPDATED);
    assertWatch(narrowed, 'the destination that stays, while the others went', EIP_UPDATED);
    const [newHolder] = await waitForHolders(stack, [EIP_UPDATED], [SEED.egressIP]);
    trace(`${SEED.egressIP} moved from ${oldHolder} to ${EIP_UPDATED} on ${newHolder}`);
    // On the wire: nobody answers ARP for the old address any more, the new one is answered.
    const arping = (ip: string) =>
      stack.cluster.exec(stack.cluster.router.ns, [
        'arping',
        '-c',
        '3',
        '-W',
        '0.3',
        '-i',
        stack.cluster.router.bridge,
        '-S',
        ROUTER_EGRESS_IP,
        ip,
      ]);
    const [oldArp, newArp] = [await arping(SEED.egressIP), await arping(EIP_UPDATED)];
    assert.equal(newArp.code, 0, `${EIP_UPDATED} answers ARP: ${newArp.stdout}${newArp.stderr}`);
    assert.notEqual(oldArp.code, 0, `nobody answers ARP for ${SEED.egressIP}: ${oldArp.stdout}`);
  });

  void test('a node added becomes a director and a gateway; removed, it leaves nothing behind', async () => {
    // The seed policy's traffic from the first nodes' pods never leaves with a node IP while
    // a node joins and leaves (its gateway may move to the new node and back).
    const watch = watchSources(stack, seed.selected, EXTERNAL_OTHER_IP, [EIP_UPDATED]);
    const node4 = await stack.sim.addNode('node4', { [EDGE_LABEL]: 'true' });
    await stack.controlPlane.startAgent(node4);
    const f6 = await stack.sim.addPod(node4.name, 'frontend-6', { labels: { app: 'frontend' } });
    // Director on the new node for the seed policy.
    await waitSeenAs(stack, f6, EXTERNAL_OTHER_IP, EIP_UPDATED, 'a pod on the added node');
    // Gateway: a policy that only the new node may serve.
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: edge, namespace: default}
spec:
  rules:
  - egressip: ${EIP_EDGE}
    podSelector: {matchLabels: {app: frontend}}
    destinations: [${EXTERNAL_HOST_IP}/32]
    gatewaySelector: {matchLabels: {${EDGE_LABEL}: "true"}}
`);
    const [f1] = seed.selected as [SimPod, SimPod];
    try {
      await nodeJoinsAndLeaves(node4, f1, f6, watch);
    } finally {
      // Whatever failed, the next test starts with the seed policy alone.
      await stack.kubectl(['delete', 'seip', 'edge', '--ignore-not-found', '--wait=true']);
    }
    await waitSeenAs(stack, f1, EXTERNAL_HOST_IP, nodeIp(f1), 'after the edge policy is deleted');
  });

  void test('a CR delete leaves every node clean', async () => {
    await stack.kubectl(['delete', 'seip', SEED.policyName, '-n', SEED.namespace, '--wait=true']);
    const frontends = stack.sim.pods().filter((p) => p.name.startsWith('frontend-'));
    for (const pod of frontends) await waitSeenAs(stack, pod, EXTERNAL_OTHER_IP, nodeIp(pod), 'after delete');
    const kernels = await waitForKernels(stack, 'every node clean', (k) => selectLeftovers(k).length === 0);
    assert.deepEqual(
      kernels.map((k) => [k.node, selectLeftovers(k)]),
      stack.cluster.nodes().map((n) => [n.name, []]),
    );
    for (const pod of frontends)
      await assertSeenAs(stack, pod, EXTERNAL_HOST_IP, nodeIp(pod), 'after delete');
  });
});
