// E2e: one rule that the dataplane cannot program never stops another rule on the same node, over
// the full path (real kube-apiserver with the CRDs, real Kafka, every component a process, one
// agent per node of a 3-node network-namespace cluster, real traffic; src/devenv/stack.ts).
// Policy v6 has an IPv6 egress IP for IPv6 destinations: the API accepts it, the dataplane cannot
// program it yet (IPv4 only). Policy v4 selects the same dual-stack pod. Ground truth: the
// external host's log sees the pod's IPv4 traffic leave with v4's egress IP, the node's kernel
// holds v4's rules and nothing of v6, and v6's status, read from the kube-apiserver, says which
// rule is not programmable where and why, while v4 is Ready. Effectful: owns its stack.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SimPod } from '../src/devenv/cluster-sim.ts';
import { readNodeKernel, selectSetElements } from '../src/devenv/node-kernel.ts';
import { EXTERNAL_HOST_IP, startStack, type Stack } from '../src/devenv/stack.ts';
import {
  waitForConditions as waitForPolicyConditions,
  waitSeenAs,
  type PolicyCondition,
} from './support/e2e.ts';

const V4_EGRESS_IP = '198.51.100.20';
const V6_EGRESS_IP = '2001:db8::10';

let stack: Stack;
let pod: SimPod;

const waitForConditions = (
  name: string,
  what: string,
  ok: (byType: ReadonlyMap<string, PolicyCondition>) => boolean,
): Promise<Map<string, PolicyCondition>> => waitForPolicyConditions(stack, name, what, ok);

void describe('isolation: a rule the agent cannot program, next to a working rule on the same node', () => {
  before(async () => {
    stack = await startStack();
    process.once('exit', () => stack?.killAllSync());
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIPPool
metadata: {name: dual}
spec:
  addresses: [198.51.100.0/24, 2001:db8::/64]
`);
    // A dual-stack Pod object (its netns stays IPv4): the IPv6 policy selects it too, so its
    // node gets a steer for the IPv6 egress IP beside the IPv4 one.
    const node = stack.cluster.nodes()[0]!;
    pod = await stack.sim.addPod(node.name, 'web-1', { labels: { app: 'web' }, ipv6: 'fd00:10:244:1::10' });
  });

  after(async () => {
    await stack?.stop();
  });

  void test('the working rule still steers real traffic; the broken one is NotProgrammable in its status', async () => {
    await stack.apply(`apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: v6, namespace: default}
spec:
  rules:
  - egressip: ${V6_EGRESS_IP}
    podSelector: {matchLabels: {app: web}}
    destinations: [2001:db8:2::/64]
---
apiVersion: staticegressips.nirmata.io/v1alpha1
kind: StaticEgressIP
metadata: {name: v4, namespace: default}
spec:
  rules:
  - egressip: ${V4_EGRESS_IP}
    podSelector: {matchLabels: {app: web}}
    destinations: [${EXTERNAL_HOST_IP}/32]
`);
    // The external host's log: the pod's IPv4 traffic leaves with v4's egress IP.
    await waitSeenAs(stack, pod, EXTERNAL_HOST_IP, V4_EGRESS_IP, 'IPv4 rule next to an IPv6 one');

    // The pod's node steers it for v4 and holds nothing of v6 (no IPv6 set, address or rule).
    const kernel = await readNodeKernel(stack.cluster, stack.cluster.node(pod.node));
    assert.deepEqual(selectSetElements(kernel, '-pods'), [pod.net.ip]);
    assert.ok(!JSON.stringify(kernel).includes('2001:db8'), `nothing of v6 in ${pod.node}'s kernel`);
    // No node holds the IPv6 egress IP (the kernel reader above sees IPv4 only).
    for (const node of stack.cluster.nodes()) {
      const addrs = await stack.cluster.exec(node.ns, ['ip', '-6', 'addr', 'show']);
      assert.ok(!addrs.stdout.includes(V6_EGRESS_IP), `${node.name} holds ${V6_EGRESS_IP}:\n${addrs.stdout}`);
    }

    // v6's status on the kube-apiserver names the rule, its egress IP, the nodes and the reason.
    const v6 = await waitForConditions(
      'v6',
      'v6 reported as not programmable',
      (c) => c.get('Programmed')?.reason === 'NotProgrammable',
    );
    const programmed = v6.get('Programmed')!;
    assert.equal(programmed.status, 'False');
    const m = /^rule 0 \(egress IP 2001:db8::10\): not programmable on (.+): egress IP is not IPv4$/.exec(
      programmed.message,
    );
    assert.ok(m !== null, programmed.message);
    assert.ok(m[1]!.split(', ').includes(pod.node), `${pod.node} (the pod's node) in ${programmed.message}`);
    assert.deepEqual([v6.get('Ready')?.status, v6.get('Ready')?.reason], ['False', 'NotProgrammed']);

    // v4, on the same node, is Ready.
    const v4 = await waitForConditions('v4', 'v4 Ready', (c) => c.get('Ready')?.status === 'True');
    assert.equal(v4.get('Programmed')?.reason, 'Programmed');
  });
});
