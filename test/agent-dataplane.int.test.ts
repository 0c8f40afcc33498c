// Kernel int test of the node agent's dataplane (src/agents/dataplane.ts) in a real
// network-namespace cluster (src/devenv/netcluster.ts): idempotence (a second apply, even by a
// fresh instance, makes no kernel change, proven with `nft monitor` / `ip monitor`), drift
// detection and repair, foreign objects left untouched, the packet path as the external host sees
// it (selected pod → egress IP; other pod, other destination → node IP; pod on the gateway
// itself), two steers sharing one slot (each pod set only to its own destinations), a steer
// without a gateway (dropped, never seen by the external host), failover to another gateway (fdb
// replace + egress IP move + gratuitous ARP), self-fencing withdrawal, and removal leaving nothing
// of ours. Then the same traffic test on a VXLAN overlay.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createDataplane, DEFAULT_DATAPLANE_CONFIG, type Dataplane } from '../src/agents/dataplane.ts';
import { podsSetName, steerKey } from '../src/dataplane/kernel-state.ts';
import { NODE_RULES_SCHEMA, type NodeRules, type Steer } from '../src/contracts/node-rules.ts';
import {
  CLUSTER_POD_CIDR,
  createNetCluster,
  EXTERNAL_HOST_IP,
  EXTERNAL_OTHER_IP,
  type NetCluster,
  type NetNode,
  type NetPod,
  type PodNetwork,
} from '../src/devenv/netcluster.ts';
import { createLogger } from '../src/lib/log.ts';

const EGRESS_IP = '198.51.100.10';
const SLOT = 1;
/** The pods set of steerTo's steer (its sources are default/eip#0). */
const PODS_SET = podsSetName(steerKey(SLOT, ['default/eip#0']));
const log = createLogger('agent-dataplane-test');

function dataplaneFor(node: NetNode): Dataplane {
  return createDataplane(
    {
      ...DEFAULT_DATAPLANE_CONFIG,
      netns: node.ns,
      uplink: node.uplink,
      neverSteer: [CLUSTER_POD_CIDR, '10.96.0.0/12'],
      // No agent renews the egress IPs' lifetimes here: long enough for the whole file.
      egressAddressLifetimeS: 3_600,
    },
    log.child({ node: node.name }),
  );
}

const steerTo = (gateway: NetNode, pods: readonly NetPod[]): Steer => ({
  slot: SLOT,
  egressIP: EGRESS_IP,
  gatewayNode: gateway.name,
  gatewayIP: gateway.ip,
  podIPs: pods.map((p) => p.ip).sort(),
  destinations: [`${EXTERNAL_HOST_IP}/32`],
  exceptions: [],
  sources: ['default/eip#0'],
});

function rulesFor(node: NetNode, generation: number, over: Partial<NodeRules> = {}): NodeRules {
  return {
    schema: NODE_RULES_SCHEMA,
    node: node.name,
    generation,
    nodeIP: node.ip,
    steers: [],
    egressIPs: [],
    ...over,
  };
}

async function sh(cluster: NetCluster, ns: string, command: string): Promise<string> {
  const r = await cluster.exec(ns, ['sh', '-c', command], { check: true });
  return r.stdout;
}

/** Everything that could be ours in a namespace, as text (for "nothing of ours left"). */
async function ourTraces(cluster: NetCluster, node: NetNode): Promise<string> {
  return sh(
    cluster,
    node.ns,
    'nft list tables; ip rule; ip -d link show; ip addr; ip route show table all; ip neigh show nud permanent; bridge fdb show',
  );
}

/** Foreign objects another component owns in the same namespace; must survive untouched. */
const FOREIGN = [
  'nft add table ip foreign',
  'nft add set ip foreign keep "{ type ipv4_addr; elements = { 192.0.2.7 }; }"',
  'nft add chain ip foreign pre "{ type filter hook prerouting priority -150; policy accept; }"',
  'nft add rule ip foreign pre ip saddr @keep counter',
  'ip rule add priority 7001 fwmark 0x1/0x1 lookup 100',
  'ip route add blackhole 192.0.2.0/24 table 100',
  'ip route add blackhole 192.0.2.0/24 table 6999',
].join(' && ');
const FOREIGN_DUMP =
  'nft list table ip foreign; nft list table ip cni-nat; ip rule; ip route show table 100; ip route show table 6999; ip route; ip -d link show dev eth0';

/** Collects `nft monitor` and `ip monitor all` output in a namespace while `fn` runs. */
async function kernelEventsDuring(cluster: NetCluster, ns: string, fn: () => Promise<void>): Promise<string> {
  const monitors = [
    spawn('ip', ['netns', 'exec', ns, 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'pipe'] }),
    spawn('ip', ['-n', ns, 'monitor', 'all'], { stdio: ['ignore', 'pipe', 'pipe'] }),
  ];
  let out = '';
  for (const m of monitors) m.stdout.on('data', (b: Buffer) => (out += b.toString()));
  // Let both subscribe before anything happens.
  await sleep(300);
  try {
    await fn();
    await sleep(300);
  } finally {
    for (const m of monitors) m.kill('SIGTERM');
    await Promise.all(
      monitors.map((m) => new Promise((r) => (m.exitCode !== null ? r(null) : m.on('close', r)))),
    );
  }
  return out;
}

/** The external host's view, retried for a bounded time: ARP announcements take effect async. */
async function eventually(fn: () => Promise<string>, expected: string, attempts = 20): Promise<string> {
  let last = '';
  for (let i = 0; i < attempts; i++) {
    try {
      last = await fn();
      if (last === expected) return last;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(250);
  }
  return last;
}

void describe('agent dataplane on host-gw: director, gateway, failover', () => {
  let cluster: NetCluster;
  let n1: NetNode, n2: NetNode, n3: NetNode;
  let selected: NetPod, other: NetPod, onGateway: NetPod;
  let d1: Dataplane, d2: Dataplane, d3: Dataplane;
  let foreignBefore: Map<string, string>;
  let generation = 1;

  before(async () => {
    cluster = await createNetCluster({ nodes: 3, podNetwork: 'host-gw', log });
    [n1, n2, n3] = cluster.nodes() as [NetNode, NetNode, NetNode];
    selected = await cluster.addPod(n1.name, 'selected');
    other = await cluster.addPod(n1.name, 'other');
    onGateway = await cluster.addPod(n2.name, 'on-gateway');
    foreignBefore = new Map();
    for (const n of [n1, n2, n3]) {
      await sh(cluster, n.ns, FOREIGN);
      foreignBefore.set(n.name, await sh(cluster, n.ns, FOREIGN_DUMP));
    }
    [d1, d2, d3] = [dataplaneFor(n1), dataplaneFor(n2), dataplaneFor(n3)];
  });

  after(async () => {
    await cluster?.destroy();
  });

  const director = (): NodeRules => rulesFor(n1, generation, { steers: [steerTo(n2, [selected])] });
  const gateway = (): NodeRules =>
    rulesFor(n2, generation, {
      steers: [steerTo(n2, [onGateway])],
      egressIPs: [{ slot: SLOT, egressIP: EGRESS_IP }],
    });

  void it('steers the selected pod through the gateway; others keep the node IP', async () => {
    assert.equal((await d1.reconcile(director())).changed, true);
    assert.equal((await d2.reconcile(gateway())).changed, true);
    await d2.settled();
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP);
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), n1.ip, 'non-selected pod');
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_OTHER_IP), n1.ip, 'non-matching destination');
    assert.equal(await cluster.whoami(onGateway.ns, EXTERNAL_HOST_IP), EGRESS_IP, 'pod on the gateway node');
    // The gateway holds no per-pod rule for remote pods: its table names no remote pod IP.
    assert.doesNotMatch(
      await sh(cluster, n2.ns, 'nft list table ip kseip'),
      new RegExp(selected.ip.replace(/\./g, '\\.')),
    );
    // MSS clamping for the 1450-MTU tunnel, counted where the packets arrive: the SYN the external
    // host receives and the SYN-ACK the pod receives both carry MSS 1410 (1450 - 40), not 1460.
    assert.match(await sh(cluster, n1.ns, 'ip link show kseip-v1'), /mtu 1450/);
    const countMss = (flags: string): string =>
      'nft add table ip probe && nft add chain ip probe pre "{ type filter hook prerouting priority -300; }" && ' +
      `nft add rule ip probe pre tcp flags ${flags} tcp option maxseg size 1410 counter`;
    await sh(cluster, cluster.external.ns, countMss('syn / syn,ack'));
    await sh(cluster, selected.ns, countMss('syn,ack / syn,ack'));
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP);
    for (const ns of [cluster.external.ns, selected.ns]) {
      assert.match(
        await sh(cluster, ns, 'nft list table ip probe; nft delete table ip probe'),
        /counter packets [1-9]/,
        ns,
      );
    }
  });

  void it('applying the same state again makes no kernel change, even from a fresh instance', async () => {
    const writes = d1.kernelWrites();
    const events = await kernelEventsDuring(cluster, n1.ns, async () => {
      assert.equal((await d1.reconcile(director())).changed, false);
      assert.equal(await d1.checkDrift(), false);
      // A restarted agent: a new instance reads the kernel and finds nothing to do.
      const fresh = dataplaneFor(n1);
      assert.equal((await fresh.reconcile(director())).changed, false);
      assert.equal(fresh.kernelWrites(), 0);
    });
    assert.equal(d1.kernelWrites(), writes);
    assert.equal(events, '', 'kernel events during a no-op apply');
    // Positive control: the monitors do see a real change.
    const control = await kernelEventsDuring(cluster, n1.ns, async () => {
      generation++;
      await d1.reconcile(rulesFor(n1, generation, { steers: [steerTo(n2, [selected, other])] }));
      await d1.reconcile(director());
    });
    assert.match(control, new RegExp(`element ip kseip ${PODS_SET}`));
  });

  void it('steers sharing a slot keep their own destinations: A→D1 and B→D2 only', async () => {
    // Given two policy rules with one egress IP (one slot): pods A (selected) to D1 (the external
    // host's first IP), pods B (other) to D2 (its second IP).
    generation++;
    const shared = rulesFor(n1, generation, {
      steers: [
        { ...steerTo(n2, [selected]), sources: ['default/eip-a#0'] },
        {
          ...steerTo(n2, [other]),
          destinations: [`${EXTERNAL_OTHER_IP}/32`],
          sources: ['default/eip-b#0'],
        },
      ],
    });
    assert.equal((await d1.reconcile(shared)).changed, true);
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP, 'A→D1');
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_OTHER_IP), EGRESS_IP, 'B→D2');
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_OTHER_IP), n1.ip, 'A→D2 is not steered');
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), n1.ip, 'B→D1 is not steered');
    generation++;
    assert.equal((await d1.reconcile(director())).changed, true);
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_OTHER_IP), n1.ip, 'B is no longer steered');
  });

  void it('a steer without a gateway drops the traffic; nothing leaves with the node IP', async () => {
    generation++;
    const noGateway = rulesFor(n1, generation, {
      steers: [{ ...steerTo(n2, [selected]), gatewayNode: '', gatewayIP: '' }],
    });
    assert.equal((await d1.reconcile(noGateway)).changed, true);
    const tag = `no-gateway-${generation}`;
    await assert.rejects(
      cluster.whoami(selected.ns, EXTERNAL_HOST_IP, { tag, timeoutMs: 1500 }),
      /failed/,
      'the pod reaches the destination without a gateway',
    );
    // Ground truth: the external host never saw that request, from any source address.
    assert.deepEqual(
      (await cluster.observations()).filter((o) => o.tag === tag),
      [],
    );
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_OTHER_IP), n1.ip, 'other destination unaffected');
    assert.equal(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), n1.ip, 'other pod unaffected');
    // The gateway comes back: the same steer is marked and tunnelled again.
    generation++;
    assert.equal((await d1.reconcile(director())).changed, true);
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP);
  });

  void it('detects a deleted table, route or set element and repairs it', async () => {
    for (const vandalism of [
      'nft delete table ip kseip',
      'ip route del default table 7001',
      `nft delete element ip kseip ${PODS_SET} { ${selected.ip} }`,
      'ip rule del priority 7000',
      'bridge fdb del 02:6b:73:00:00:01 dev kseip-v1 self',
      'ip link del kseip-v1',
    ]) {
      await sh(cluster, n1.ns, vandalism);
      assert.equal(await d1.checkDrift(), true, `drift after: ${vandalism}`);
      assert.equal((await d1.reconcile(director())).changed, true, `repair after: ${vandalism}`);
      assert.equal(await d1.checkDrift(), false, `no drift after repairing: ${vandalism}`);
      assert.equal(
        await cluster.whoami(selected.ns, EXTERNAL_HOST_IP),
        EGRESS_IP,
        `traffic after: ${vandalism}`,
      );
    }
    for (const vandalism of [
      `ip addr del ${EGRESS_IP}/32 dev eth0`,
      'sysctl -qw net.ipv4.conf.kseip-v1.rp_filter=1',
    ]) {
      await sh(cluster, n2.ns, vandalism);
      assert.equal(await d2.checkDrift(), true, `drift after: ${vandalism}`);
      assert.equal((await d2.reconcile(gateway())).changed, true, `repair after: ${vandalism}`);
    }
    assert.equal((await sh(cluster, n2.ns, 'sysctl -n net.ipv4.conf.kseip-v1.rp_filter')).trim(), '2');
    await d2.settled();
    assert.equal(await eventually(() => cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP), EGRESS_IP);
  });

  void it('fails over: the egress IP moves to a new gateway, announced by gratuitous ARP', async () => {
    // node2 loses its network (as seen by everyone else) while still holding the IP.
    await cluster.killNode(n2.name);
    generation++;
    assert.equal(
      (await d3.reconcile(rulesFor(n3, generation, { egressIPs: [{ slot: SLOT, egressIP: EGRESS_IP }] })))
        .changed,
      true,
    );
    const repoint = await kernelEventsDuring(cluster, n1.ns, async () => {
      await d1.reconcile(rulesFor(n1, generation, { steers: [steerTo(n3, [selected])] }));
    });
    // The director's failover step: the fdb entry moves, nothing in nftables changes.
    assert.doesNotMatch(repoint, /table ip kseip|set |element /);
    await d3.settled();
    assert.equal(await eventually(() => cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP), EGRESS_IP);
    const neigh = await sh(cluster, cluster.router.ns, `ip neigh show ${EGRESS_IP}`);
    assert.match(neigh, new RegExp(n3.uplinkMac), 'upstream neighbour entry moved to the new gateway');
    await cluster.reviveNode(n2.name);
    // The old gateway, back, withdraws (self-fencing) and then converges to holding nothing.
    await d2.withdrawEgressIPs();
    assert.doesNotMatch(await sh(cluster, n2.ns, 'ip -4 addr show dev eth0'), new RegExp(EGRESS_IP));
    assert.equal(await d2.checkDrift(), false, 'a withdrawal is not drift');
    await d2.reconcile(rulesFor(n2, generation));
  });

  void it('removal leaves nothing of ours behind, the node IP is back, foreign objects are untouched', async () => {
    for (const d of [d1, d2, d3]) await d.removeAll();
    assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), n1.ip);
    for (const n of [n1, n2, n3]) {
      const traces = await ourTraces(cluster, n);
      assert.doesNotMatch(
        traces,
        /kseip-v\d|table ip kseip|eth0:kseip|table 700[0-9]|^7000:|169\.254\.42|198\.51\.100\.10|02:6b:73/m,
        `${n.name}:\n${traces}`,
      );
      assert.equal(
        await sh(cluster, n.ns, FOREIGN_DUMP),
        foreignBefore.get(n.name),
        `${n.name}: foreign objects changed`,
      );
    }
  });
});

for (const podNetwork of ['vxlan'] as PodNetwork[]) {
  void describe(`agent dataplane on a ${podNetwork} overlay pod network`, () => {
    let cluster: NetCluster;
    before(async () => {
      cluster = await createNetCluster({ nodes: 2, podNetwork, log });
    });
    after(async () => {
      await cluster?.destroy();
    });

    void it('steers through our tunnel across the overlay; removal restores the node IP', async () => {
      const [n1, n2] = cluster.nodes() as [NetNode, NetNode];
      const selected = await cluster.addPod(n1.name, 'selected');
      const other = await cluster.addPod(n1.name, 'other');
      const onGateway = await cluster.addPod(n2.name, 'on-gateway');
      const [d1, d2] = [dataplaneFor(n1), dataplaneFor(n2)];
      await d1.reconcile(rulesFor(n1, 1, { steers: [steerTo(n2, [selected])] }));
      await d2.reconcile(
        rulesFor(n2, 1, {
          steers: [steerTo(n2, [onGateway])],
          egressIPs: [{ slot: SLOT, egressIP: EGRESS_IP }],
        }),
      );
      await d2.settled();
      assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), EGRESS_IP);
      assert.equal(await cluster.whoami(other.ns, EXTERNAL_HOST_IP), n1.ip);
      assert.equal(await cluster.whoami(selected.ns, EXTERNAL_OTHER_IP), n1.ip);
      assert.equal(await cluster.whoami(onGateway.ns, EXTERNAL_HOST_IP), EGRESS_IP);
      // Pod-to-pod across the overlay is not ours to touch.
      const peer = await cluster.startWhoami(onGateway.ns, { port: 8081 });
      assert.equal(await cluster.whoami(selected.ns, onGateway.ip, { port: 8081 }), selected.ip);
      await peer.stop();
      await d1.removeAll();
      await d2.removeAll();
      assert.equal(await cluster.whoami(selected.ns, EXTERNAL_HOST_IP), n1.ip);
      for (const n of [n1, n2])
        assert.doesNotMatch(await ourTraces(cluster, n), /kseip-v\d|table ip kseip|eth0:kseip|02:6b:73/);
    });
  });
}
