// Unit test of the pure parts of the network-namespace cluster harness (src/devenv/netcluster.ts):
// names that fit the kernel's 15-character interface limit, deterministic MACs, host-local style
// pod IP allocation, and the rendered ip/bridge/nft batch text for both pod-network modes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allocatePodHost,
  hostVethName,
  planNode,
  renderCniNat,
  renderPeerFdb,
  renderPeerRemoval,
  renderPeerRoutes,
} from '../src/devenv/netcluster.ts';

const IFNAMSIZ_MAX = 15;

void describe('netcluster planning', () => {
  void it('gives node i the documented addresses, and names that fit IFNAMSIZ', () => {
    const node = planNode('kseip-abc123', 'node3', 3);
    assert.equal(node.ns, 'kseip-abc123-node3');
    assert.equal(node.ip, '10.240.0.13');
    assert.equal(node.podCidr, '10.244.3.0/24');
    assert.equal(node.podGatewayIp, '10.244.3.1');
    for (const name of [
      planNode('x', 'n', 200).routerPort,
      hostVethName('a-very-long-pod-name-0123456789'),
    ]) {
      assert.ok(name.length <= IFNAMSIZ_MAX, name);
    }
    assert.throws(() => planNode('x', 'n', 0));
    assert.throws(() => planNode('x', 'n', 201));
  });

  void it('uses locally administered unicast MACs, distinct per node and role', () => {
    const macs = [1, 2, 200].flatMap((i) => {
      const n = planNode('x', `node${i}`, i);
      return [n.uplinkMac, n.cniMac, n.vxlanMac];
    });
    assert.equal(new Set(macs).size, macs.length);
    for (const mac of macs) {
      const first = parseInt(mac.slice(0, 2), 16);
      assert.equal(first & 0b11, 0b10, `${mac}: local bit set, multicast bit clear`);
    }
  });

  void it('allocates pod hosts round-robin after the last one, skipping used ones, wrapping at .254', () => {
    assert.equal(allocatePodHost(new Set(), 2), 2);
    assert.equal(allocatePodHost(new Set([3]), 3), 4);
    assert.equal(allocatePodHost(new Set([2]), 255), 3);
    assert.equal(allocatePodHost(new Set(Array.from({ length: 253 }, (_, k) => k + 2)), 2), undefined);
  });
});

void describe('netcluster rendering', () => {
  const peer = planNode('x', 'node2', 2);

  void it('host-gw routes a peer pod CIDR via the peer node IP', () => {
    assert.equal(renderPeerRoutes('host-gw', [peer]), 'route replace 10.244.2.0/24 via 10.240.0.12 dev eth0');
    assert.equal(renderPeerRemoval('host-gw', peer), 'route del 10.244.2.0/24');
  });

  void it('vxlan routes onlink via the peer .0 with permanent neighbour and fdb entries, as flannel does', () => {
    assert.equal(
      renderPeerRoutes('vxlan', [peer]),
      [
        'neigh replace 10.244.2.0 lladdr 0e:00:0a:f4:02:00 dev flannel.1 nud permanent',
        'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink',
      ].join('\n'),
    );
    assert.equal(
      renderPeerFdb([peer]),
      'fdb replace 0e:00:0a:f4:02:00 dev flannel.1 dst 10.240.0.12 self permanent',
    );
  });

  void it("masquerades in the CNI's own table: cluster pod sources leaving the pod network", () => {
    const text = renderCniNat();
    assert.match(text, /^table ip cni-nat \{/);
    assert.match(text, /type nat hook postrouting priority srcnat;/);
    assert.match(text, /ip saddr 10\.244\.0\.0\/16 ip daddr != 10\.244\.0\.0\/16 masquerade/);
  });
});
