// E2e: which traffic a policy captures, over the full path — a real kube-apiserver (CRDs, the
// EndpointSlice controller), real Kafka, the real watcher, projector, liveness, status writer and
// one agent per node, a 3-node network-namespace cluster and real traffic (src/devenv/stack.ts).
// Ground truth is what the external host saw (its whoami reply and tagged log) and what the
// nodes' kernels hold, never what the components log.
//   - the seed's manifest (egressip / service-name / cidr, documentation IPs): the Service's pods
//     on every node leave as the egress IP towards the cidr, and as their node IP elsewhere;
//   - service-name follows the Service's endpoints, and only in the policy's own namespace;
//   - podSelector (matchLabels and matchExpressions) in the policy's namespace only;
//   - ClusterStaticEgressIP: namespaceSelector × podSelector, following namespace labels;
//   - destinations with exceptions: an excepted destination leaves as the node IP;
//   - pod and service CIDRs and node addresses are never captured, even under destinations
//     0.0.0.0/0: pod-to-pod traffic (same node, other node, through a Service's cluster IP) keeps
//     its pod source, and traffic to another node the source it had without a policy. The stack
//     passes no --never-steer flag: all of it comes from the log;
//   - an egress IP that is a node's address, a pod's IP or inside a pod or service CIDR is never
//     taken, even when a pool covers it: Accepted=False (EgressIPInUse) names the holder.
// A negative ("still the node IP") is asserted only after a positive on the same node has shown
// that the rules it depends on are applied. Effectful: owns the stack started in `before`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import { SERVICE_CIDR } from '../src/devenv/control-plane.ts';
import { CLUSTER_POD_CIDR, NODE_SUBNET, type NetNode } from '../src/devenv/netcluster.ts';
import { readNodeKernel, selectSetElements } from '../src/devenv/node-kernel.ts';
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
  assertSeenAs,
  describeCluster,
  readAllKernels,
  selectAddressHolders,
  waitForConditions,
  waitForHolders,
  waitForKernels,
  waitSeenAs,
} from './support/e2e.ts';

let stack: Stack;
let seed: SeedWorkload;
let nodes: [NetNode, NetNode, NetNode];

const nodeIp = (pod: SimPod): string => stack.cluster.node(pod.node).ip;

async function deletePolicy(kind: 'seip' | 'cseip', name: string, namespace?: string): Promise<void> {
  await stack.kubectl([
    'delete',
    kind,
    name,
    ...(namespace === undefined ? [] : ['-n', namespace]),
    '--wait=true',
  ]);
}

/** `-pods` set elements of one node's kseip table. */
async function steeredPodIps(node: NetNode): Promise<string[]> {
  return selectSetElements(await readNodeKernel(stack.cluster, node), '-pods').sort();
}

void describe('selection: which traffic leaves with the egress IP (full path, real traffic)', () => {
  before(async () => {
    stack = await startStack();
    process.once('exit', () => stack?.killAllSync());
    nodes = stack.cluster.nodes() as [NetNode, NetNode, NetNode];
    seed = await addSeedWorkload(stack);
    await stack.apply(POOL_YAML);
  });

  after(async () => {
    await stack?.stop();
  });

  void test("the seed's manifest: egressip + service-name + cidr, on every node of the Service's pods", async () => {
    await stack.apply(seedManifest());
    for (const pod of seed.selected)
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, SEED.egressIP, 'selected pod → cidr');
    const [f1] = seed.selected as [SimPod, SimPod];
    await assertSeenAs(stack, f1, EXTERNAL_OTHER_IP, nodeIp(f1), 'selected pod → outside the cidr');
    await assertSeenAs(stack, seed.other, EXTERNAL_HOST_IP, nodeIp(seed.other), 'pod outside the Service');

    await waitForHolders(stack, [SEED.egressIP]);
    // Per-node state: a node steers its own selected pods, nobody else's.
    for (const node of nodes)
      assert.deepEqual(
        await steeredPodIps(node),
        seed.selected.filter((p) => p.node === node.name).map((p) => p.net.ip),
        `${node.name} steers exactly its own frontend pods`,
      );
  });

  void test("service-name follows the Service's endpoints, in the policy's namespace only", async () => {
    // A Service of the same name in another namespace, with a pod it selects, on node 1.
    await stack.apply(`apiVersion: v1
kind: Namespace
metadata: {name: elsewhere}
---
apiVersion: v1
kind: Service
metadata: {name: ${SEED.service}, namespace: elsewhere}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: 8080}]
`);
    const elsewhere = await stack.sim.addPod(nodes[0].name, 'elsewhere-frontend', {
      namespace: 'elsewhere',
      labels: { app: 'frontend' },
    });
    // A new endpoint of the Service on node 3, which had no selected pod so far.
    const f3 = await stack.sim.addPod(nodes[2].name, 'frontend-3', { labels: { app: 'frontend' } });
    await waitSeenAs(stack, f3, EXTERNAL_HOST_IP, SEED.egressIP, 'new endpoint of the Service');
    // node 1's rules changed with frontend-3 (the gateway or a director): whatever it holds for
    // elsewhere/frontend is in place. Its own frontend pod is still steered, the other is not.
    await waitForKernels(
      stack,
      `node 1 steering frontend-1 only`,
      (k) => selectSetElements(k, '-pods').join() === seed.selected[0]!.net.ip,
      () => [nodes[0]],
    );
    await assertSeenAs(
      stack,
      elsewhere,
      EXTERNAL_HOST_IP,
      nodeIp(elsewhere),
      'same Service name, other namespace',
    );

    // Relabelled out of the Service: no longer an endpoint, no longer steered; and back in.
    await stack.kubectl(['label', 'pod', 'frontend-3', 'app=frontend-canary', '--overwrite']);
    await waitSeenAs(stack, f3, EXTERNAL_HOST_IP, nodeIp(f3), 'pod relabelled out of the Service');
    await waitForKernels(
      stack,
      'frontend-3 steered nowhere',
      (k) => !selectSetElements(k, '-pods').includes(f3.net.ip),
    );
    await stack.kubectl(['label', 'pod', 'frontend-3', 'app=frontend', '--overwrite']);
    await waitSeenAs(stack, f3, EXTERNAL_HOST_IP, SEED.egressIP, 'pod relabelled back into the Service');

    await deletePolicy('seip', SEED.policyName, SEED.namespace);
    for (const pod of [...seed.selected, f3])
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, nodeIp(pod), 'after the seed policy is deleted');
    await stack.sim.removePod('frontend-3');
    await stack.sim.removePod('elsewhere-frontend');
  });

  void test("podSelector: matchLabels and matchExpressions, in the policy's namespace only", async () => {
    const eip = '198.51.100.11';
    const [n1, n2, n3] = nodes;
    const checkout = await stack.sim.addPod(n2.name, 'shop-checkout-1', {
      namespace: 'shop',
      labels: { app: 'checkout' },
    });
    const cart = await stack.sim.addPod(n2.name, 'shop-cart-1', {
      namespace: 'shop',
      labels: { app: 'cart' },
    });
    const api = await stack.sim.addPod(n1.name, 'shop-api-1', {
      namespace: 'shop',
      labels: { app: 'api', tier: 'api' },
    });
    // Same labels, other namespace: a namespaced policy never reaches it.
    const foreign = await stack.sim.addPod(n3.name, 'default-checkout-1', { labels: { app: 'checkout' } });
    const foreignApi = await stack.sim.addPod(n3.name, 'default-api-1', { labels: { tier: 'api' } });
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: shop, namespace: shop}
spec:
  rules:
  - egressip: ${eip}
    podSelector: {matchLabels: {app: checkout}}
    destinations: [${EXTERNAL_HOST_IP}/32]
  - egressip: ${eip}
    podSelector:
      matchExpressions: [{key: tier, operator: In, values: [api, web]}]
    destinations: [${EXTERNAL_OTHER_IP}/32]
`);
    await waitSeenAs(stack, checkout, EXTERNAL_HOST_IP, eip, 'matchLabels');
    await waitSeenAs(stack, api, EXTERNAL_OTHER_IP, eip, 'matchExpressions');
    // Each rule's pods only towards that rule's destinations, though they share the egress IP.
    await assertSeenAs(
      stack,
      checkout,
      EXTERNAL_OTHER_IP,
      nodeIp(checkout),
      "rule 1's pod → rule 2's destination",
    );
    await assertSeenAs(stack, api, EXTERNAL_HOST_IP, nodeIp(api), "rule 2's pod → rule 1's destination");
    await assertSeenAs(
      stack,
      cart,
      EXTERNAL_HOST_IP,
      nodeIp(cart),
      'unselected pod, same namespace and node',
    );

    // node 3 has no selected pod, so no positive of its own: its kernel must steer nothing.
    await waitForKernels(
      stack,
      'node 3 steering no pod',
      (k) => selectSetElements(k, '-pods').length === 0,
      () => [n3],
    );
    await assertSeenAs(
      stack,
      foreign,
      EXTERNAL_HOST_IP,
      nodeIp(foreign),
      'matching labels in another namespace',
    );
    await assertSeenAs(
      stack,
      foreignApi,
      EXTERNAL_OTHER_IP,
      nodeIp(foreignApi),
      'matching expression in another namespace',
    );

    await deletePolicy('seip', 'shop', 'shop');
    await waitSeenAs(stack, checkout, EXTERNAL_HOST_IP, nodeIp(checkout), 'after delete');
    await waitSeenAs(stack, api, EXTERNAL_OTHER_IP, nodeIp(api), 'after delete');
    for (const name of [
      'shop-checkout-1',
      'shop-cart-1',
      'shop-api-1',
      'default-checkout-1',
      'default-api-1',
    ])
      await stack.sim.removePod(name);
  });

  void test('ClusterStaticEgressIP: namespaceSelector × podSelector, following namespace labels', async () => {
    const eip = '198.51.100.12';
    const [n1, n2, n3] = nodes;
    await stack.apply(
      [
        ['pay-a', 'payments'],
        ['pay-b', 'payments'],
        ['misc', 'other'],
      ]
        .map(
          ([ns, team]) =>
            `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}, labels: {team: ${team}}}\n`,
        )
        .join('---\n'),
    );
    const billingA = await stack.sim.addPod(n1.name, 'billing-a', {
      namespace: 'pay-a',
      labels: { app: 'billing' },
    });
    const billingB = await stack.sim.addPod(n3.name, 'billing-b', {
      namespace: 'pay-b',
      labels: { app: 'billing' },
    });
    const billingMisc = await stack.sim.addPod(n1.name, 'billing-misc', {
      namespace: 'misc',
      labels: { app: 'billing' },
    });
    const webA = await stack.sim.addPod(n2.name, 'web-a', { namespace: 'pay-a', labels: { app: 'web' } });
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: ClusterStaticEgressIP
metadata: {name: payments}
spec:
  namespaceSelector: {matchLabels: {team: payments}}
  rules:
  - egressip: ${eip}
    podSelector: {matchLabels: {app: billing}}
    cidr: 203.0.113.0/24
`);
    for (const pod of [billingA, billingB])
      for (const dst of [EXTERNAL_HOST_IP, EXTERNAL_OTHER_IP])
        await waitSeenAs(stack, pod, dst, eip, 'selected namespace and pod');
    await assertSeenAs(stack, billingMisc, EXTERNAL_HOST_IP, nodeIp(billingMisc), 'namespace not selected');
    await waitForKernels(
      stack,
      'node 2 steering no pod',
      (k) => selectSetElements(k, '-pods').length === 0,
      () => [n2],
    );
    await assertSeenAs(stack, webA, EXTERNAL_HOST_IP, nodeIp(webA), 'selected namespace, pod not selected');

    await stack.kubectl(['label', 'namespace', 'misc', 'team=payments', '--overwrite']);
    await waitSeenAs(stack, billingMisc, EXTERNAL_HOST_IP, eip, 'namespace labelled into the selector');
    await stack.kubectl(['label', 'namespace', 'pay-b', 'team-']);
    await waitSeenAs(stack, billingB, EXTERNAL_HOST_IP, nodeIp(billingB), 'namespace label removed');
    await assertSeenAs(stack, billingA, EXTERNAL_HOST_IP, eip, 'the other namespace is still selected');

    await deletePolicy('cseip', 'payments');
    for (const pod of [billingA, billingMisc])
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, nodeIp(pod), 'after delete');
    for (const name of ['billing-a', 'billing-b', 'billing-misc', 'web-a']) await stack.sim.removePod(name);
  });

  void test('destinations with exceptions: an excepted destination leaves as the node IP', async () => {
    const eip = '198.51.100.13';
    const pod = await stack.sim.addPod(nodes[1].name, 'exc-1', { labels: { app: 'exc' } });
    const policy = (exceptions: string): string => `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: exceptions, namespace: default}
spec:
  rules:
  - egressip: ${eip}
    podSelector: {matchLabels: {app: exc}}
    destinations: [203.0.113.0/25, 192.0.2.0/24]
    exceptions: [${exceptions}]
`;
    // 203.0.113.20 lies in 203.0.113.16/28; 203.0.113.10 does not.
    await stack.apply(policy('203.0.113.16/28'));
    await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, eip, 'destination, not excepted');
    await assertSeenAs(stack, pod, EXTERNAL_OTHER_IP, nodeIp(pod), 'excepted destination');

    // The exception, not the destination, is what keeps it out: move it and both flip.
    await stack.apply(policy('203.0.113.8/29'));
    await waitSeenAs(stack, pod, EXTERNAL_OTHER_IP, eip, 'no longer excepted');
    await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, nodeIp(pod), 'newly excepted');

    await deletePolicy('seip', 'exceptions', 'default');
    await waitSeenAs(stack, pod, EXTERNAL_OTHER_IP, nodeIp(pod), 'after delete');
    await stack.sim.removePod('exc-1');
  });

  void test('pod and service CIDRs are never captured, even by destinations 0.0.0.0/0', async () => {
    const eip = '198.51.100.14';
    const [n1, n2] = nodes;
    const client = await stack.sim.addPod(n1.name, 'net-client', { labels: { app: 'net-client' } });
    const remote = await stack.sim.addPod(n2.name, 'net-server-remote', { labels: { app: 'net-server' } });
    const local = await stack.sim.addPod(n1.name, 'net-server-local', { labels: { app: 'net-server' } });
    const port = 8081;
    await stack.cluster.startWhoami(remote.net.ns, { port });
    await stack.cluster.startWhoami(local.net.ns, { port });
    await stack.cluster.startWhoami(n2.ns, { port });
    // A real Service (its cluster IP allocated by the API server from the service CIDR) and, as
    // the netns cluster has no kube-proxy, its DNAT as kube-proxy would program it on node 1: at
    // dstnat (-100), after the agent's mark rule (-150) has seen the cluster IP as destination.
    await stack.apply(`apiVersion: v1
kind: Service
metadata: {name: net-server, namespace: default}
spec:
  selector: {app: net-server}
  ports: [{name: http, port: ${port}, targetPort: ${port}}]
`);
    const clusterIp = (
      await stack.kubectl(['get', 'service', 'net-server', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    assert.match(clusterIp, /^10\.96\./, `cluster IP ${clusterIp} from ${SERVICE_CIDR}`);
    await stack.cluster.exec(n1.ns, ['nft', '-f', '-'], {
      check: true,
      input: `table ip e2e-kube-proxy {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${clusterIp} tcp dport ${port} dnat to ${remote.net.ip}:${port}
  }
}
`,
    });
    try {
      const viaPod = async (dst: string): Promise<string> =>
        (await stack.cluster.whoamiReply(client.net.ns, dst, { port, timeoutMs: 3000 })).src;
      // Before any policy: the paths work and keep the pod source.
      assert.equal(await viaPod(remote.net.ip), client.net.ip, 'pod → pod on another node, no policy');
      assert.equal(await viaPod(clusterIp), client.net.ip, 'pod → cluster IP, no policy');
      // Another node's own address: whatever source the node network gives it without a policy
      // (the pod's, or its node's after the CNI's masquerade), it keeps under 0.0.0.0/0.
      const toNode = await viaPod(n2.ip);
      assert.notEqual(toNode, eip, 'pod → another node, no policy');

      await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: everything, namespace: default}
spec:
  rules:
  - egressip: ${eip}
    podSelector: {matchLabels: {app: net-client}}
    destinations: [0.0.0.0/0]
`);
      await waitSeenAs(stack, client, EXTERNAL_HOST_IP, eip, '0.0.0.0/0 captures external traffic');
      await assertSeenAs(stack, client, EXTERNAL_OTHER_IP, eip, '0.0.0.0/0 captures external traffic');
      const [k1] = await waitForKernels(
        stack,
        'node 1 steering net-client',
        (k) => selectSetElements(k, '-pods').includes(client.net.ip),
        () => [n1],
      );
      // No --never-steer flag in this stack: every node's pod CIDR and address, and the service
      // CIDR, come from the log (Node spec.podCIDRs and status.addresses, the ServiceCIDR object).
      const never = selectSetElements(k1!, 'never-steer');
      for (const want of [...nodes.flatMap((n) => [n.podCidr, n.ip]), SERVICE_CIDR])
        assert.ok(never.includes(want), `never-steer on ${n1.name} holds ${want}: ${never.join(', ')}`);

      for (let i = 0; i < 3; i++) {
        assert.equal(
          await viaPod(remote.net.ip),
          client.net.ip,
          'pod → pod on another node keeps the pod source',
        );
        assert.equal(
          await viaPod(local.net.ip),
          client.net.ip,
          'pod → pod on the same node keeps the pod source',
        );
        assert.equal(await viaPod(clusterIp), client.net.ip, 'pod → Service cluster IP keeps the pod source');
        assert.equal(await viaPod(n2.ip), toNode, "pod → another node's address is not steered");
      }
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await describeCluster(stack)}`, { cause: err });
    } finally {
      await stack.cluster.exec(n1.ns, ['nft', 'delete', 'table', 'ip', 'e2e-kube-proxy']);
    }

    await deletePolicy('seip', 'everything', 'default');
    await waitSeenAs(stack, client, EXTERNAL_HOST_IP, nodeIp(client), 'after delete');
    await stack.kubectl(['delete', 'service', 'net-server']);
    for (const name of ['net-client', 'net-server-remote', 'net-server-local'])
      await stack.sim.removePod(name);
  });

  void test('an egress IP the cluster uses is never taken: a node address, a pod IP, inside a pod or service CIDR', async () => {
    const [n1, n2] = nodes;
    const pod = await stack.sim.addPod(n2.name, 'taken-1', { labels: { app: 'taken' } });
    // A careless pool over the cluster's own ranges: the pool alone would admit these addresses.
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: cluster-ranges}
spec:
  addresses: [${NODE_SUBNET}, ${CLUSTER_POD_CIDR}, ${SERVICE_CIDR}]
`);
    const unusedInPodCidr = n1.podCidr.replace(/0\/24$/, '250');
    const cases: [name: string, egressIP: string, holder: string][] = [
      ['taken-node-ip', n1.ip, `the address of node ${n1.name}`],
      ['taken-pod-ip', pod.net.ip, 'the IP of pod default/taken-1'],
      ['taken-pod-cidr', unusedInPodCidr, `inside the pod CIDR ${n1.podCidr} of node ${n1.name}`],
      [
        'taken-service-cidr',
        '10.96.200.200',
        `inside the service CIDR ${SERVICE_CIDR} (ServiceCIDR kubernetes)`,
      ],
    ];
    const policy = (
      name: string,
      egressIP: string,
      destination: string,
    ): string => `apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: ${name}, namespace: default}
spec:
  rules:
  - egressip: ${egressIP}
    podSelector: {matchLabels: {app: taken}}
    destinations: [${destination}]
`;
    for (const [name, ip] of cases) await stack.apply(policy(name, ip, `${EXTERNAL_OTHER_IP}/32`));
    // A free address for the same pod, to another destination: once it steers, the agents have
    // applied what the log says, so what the refused policies did not do is a real absence.
    const free = '198.51.100.15';
    await stack.apply(policy('free', free, `${EXTERNAL_HOST_IP}/32`));
    try {
      for (const [name, ip, holder] of cases) {
        const c = await waitForConditions(
          stack,
          name,
          `${name} refused`,
          (byType) => byType.get('Accepted')?.reason === 'EgressIPInUse',
        );
        const accepted = c.get('Accepted')!;
        assert.equal(accepted.status, 'False', name);
        assert.ok(accepted.message.includes(`egress IP ${ip} is in use: it is ${holder}`), accepted.message);
        assert.equal(c.get('Ready')?.status, 'False', `${name} is not Ready`);
      }
      await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, free, 'the free egress IP steers');
      await assertSeenAs(stack, pod, EXTERNAL_OTHER_IP, nodeIp(pod), 'the refused policies steer nothing');
      const kernels = await readAllKernels(stack.cluster);
      // An egress IP is held as a /32 on the uplink; node1's own address is its /24.
      for (const [name, ip] of cases)
        assert.deepEqual(
          selectAddressHolders(kernels, ip),
          [],
          `${name}: no node holds ${ip} as an egress IP`,
        );
      assert.equal(selectAddressHolders(kernels, free).length, 1, 'the free IP is held by one node');
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await describeCluster(stack)}`, { cause: err });
    }
    for (const [name] of [...cases, ['free']]) await deletePolicy('seip', name!, 'default');
    await stack.kubectl(['delete', 'seippool', 'cluster-ranges']);
    await stack.sim.removePod('taken-1');
  });
});
