// Golden tests: desired NodeRules → rendered kernel transaction (nft text, ip/bridge batches),
// compared with golden text under src/dataplane/golden/. Regenerate after an intended change with
// `UPDATE_GOLDEN=1 node --test src/dataplane/kernel-state.unit.test.ts` and review the diff.
// Fixtures use documentation ranges only: nodes and pods in 192.0.2.0/24, egress IPs in
// 198.51.100.0/24, destinations in 203.0.113.0/24.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NODE_RULES_SCHEMA, type NodeRules, type Steer } from '../contracts/node-rules.ts';
import {
  computeKernelState,
  computeMarkLayout,
  DEFAULT_DATAPLANE_CONFIG,
  directorMac,
  EMPTY_KERNEL_STATE,
  gatewayMac,
  NEVER_SET,
  normalizeCidrs,
  steerKey,
  type DataplaneConfig,
  type KernelState,
} from './kernel-state.ts';
import { computeIpPlan, dumpIpPlan, isEmptyIpPlan } from './ip-transaction.ts';
import { parseFdb, parseLinks, parseNftTable, parseRoutes, parseRules } from '../agents/kernel-read.ts';
import { computeNftTransaction, dumpNftState, renderNftTransaction } from './nft-transaction.ts';
import { IPV6_SLOT2_LEFT_OUT } from '../../test/support/agent-fakes.ts';

const goldenDir = path.join(import.meta.dirname, 'golden');

function golden(name: string, actual: string): void {
  const file = path.join(goldenDir, `${name}.golden`);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(goldenDir, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.equal(actual, readFileSync(file, 'utf8'), `golden ${name} differs (UPDATE_GOLDEN=1 to regenerate)`);
}

const cfg: DataplaneConfig = {
  ...DEFAULT_DATAPLANE_CONFIG,
  uplink: 'eth0',
  neverSteer: ['192.0.2.64/26', '192.0.2.192/27'],
};
const UPLINK_MTU = 1500;

const steer = (over: Partial<Steer> & Pick<Steer, 'slot'>): Steer => ({
  egressIP: `198.51.100.${10 + over.slot}`,
  gatewayNode: 'node-b',
  gatewayIP: '192.0.2.2',
  podIPs: [],
  destinations: [],
  exceptions: [],
  sources: [`default/eip-${over.slot}#0`],
  ...over,
});

const rules = (over: Partial<NodeRules>): NodeRules => ({
  schema: NODE_RULES_SCHEMA,
  node: 'node-a',
  generation: 7,
  nodeIP: '192.0.2.1',
  steers: [],
  egressIPs: [],
  ...over,
});

function stateOf(r: NodeRules): KernelState {
  const computed = computeKernelState(cfg, r, UPLINK_MTU);
  assert.equal(computed._tag, 'Right', JSON.stringify(computed));
  return computed._tag === 'Right' ? computed.right.state : EMPTY_KERNEL_STATE;
}

/** Everything a change writes, in apply order: ip/bridge batches then the nft transaction. */
function renderChange(from: KernelState, to: KernelState, full = false): string {
  return (
    dumpIpPlan(computeIpPlan(to, from)) +
    '# nft -f\n' +
    renderNftTransaction(computeNftTransaction(to.nft, from.nft, full))
  );
}

// Given node-a directs slot 1 to gateway node-b, steers slot 2 through itself, and holds slot 2.
const directorAndGateway = rules({
  steers: [
    steer({
      slot: 1,
      podIPs: ['192.0.2.70', '192.0.2.66', '192.0.2.70'],
      destinations: ['203.0.113.0/24', '203.0.113.128/25', '203.0.113.7/24'],
      exceptions: ['203.0.113.99/32'],
    }),
    steer({
      slot: 2,
      gatewayIP: '192.0.2.1',
      gatewayNode: 'node-a',
      podIPs: ['192.0.2.67'],
      destinations: ['203.0.113.20/32'],
    }),
  ],
  egressIPs: [{ slot: 2, egressIP: '198.51.100.12' }],
});

void describe('dataplane rendering', () => {
  void it('renders a director, a local steer and a held egress IP from nothing', () => {
    const state = stateOf(directorAndGateway);
    golden('director-and-gateway.state', dumpNftState(state.nft));
    golden('director-and-gateway.apply', renderChange(EMPTY_KERNEL_STATE, state));
  });

  void it('a pure gateway holds the IP, receives the tunnel and SNATs by mark, with no per-pod rule', () => {
    const state = stateOf(
      rules({ node: 'node-b', nodeIP: '192.0.2.2', egressIPs: [{ slot: 1, egressIP: '198.51.100.11' }] }),
    );
    // Up only after nft: a steered packet received before its mark and SNAT rules would leave
    // with the node IP.
    assert.deepEqual(computeIpPlan(state, EMPTY_KERNEL_STATE).activations, ['link set dev kseip-v1 up']);
    golden('gateway.apply', renderChange(EMPTY_KERNEL_STATE, state));
  });

  void it('the same desired state again changes nothing', () => {
    const state = stateOf(directorAndGateway);
    assert.ok(isEmptyIpPlan(computeIpPlan(state, state)));
    assert.deepEqual(computeNftTransaction(state.nft, state.nft), []);
  });

  void it('one more pod is one element added, nothing else', () => {
    const before = stateOf(directorAndGateway);
    const after = stateOf(
      rules({
        ...directorAndGateway,
        steers: directorAndGateway.steers.map((s) =>
          s.slot === 1 ? { ...s, podIPs: [...s.podIPs, '192.0.2.71'] } : s,
        ),
      }),
    );
    golden('one-pod-delta.apply', renderChange(before, after));
  });

  void it('failover re-points the tunnel with one fdb replace and moves the throw route; nft unchanged', () => {
    const before = stateOf(directorAndGateway);
    const after = stateOf(
      rules({
        ...directorAndGateway,
        steers: directorAndGateway.steers.map((s) => (s.slot === 1 ? { ...s, gatewayIP: '192.0.2.3' } : s)),
      }),
    );
    golden('failover.apply', renderChange(before, after));
  });

  void it('a director that becomes its own gateway re-addresses the tunnel and drops no flushed neighbour', () => {
    const before = stateOf(directorAndGateway);
    const after = stateOf(
      rules({
        ...directorAndGateway,
        steers: directorAndGateway.steers.map((s) =>
          s.slot === 1 ? { ...s, gatewayIP: '192.0.2.1', gatewayNode: 'node-a' } : s,
        ),
        egressIPs: [...directorAndGateway.egressIPs, { slot: 1, egressIP: '198.51.100.11' }],
      }),
    );
    const plan = computeIpPlan(after, before);
    // The new MAC flushes the device's neighbours; deleting one again would fail with ENOENT.
    // The gateway MAC (which makes the device receive steered packets) waits for the nft rules.
    assert.deepEqual(plan.activations, ['link set dev kseip-v1 address 02:6b:73:00:00:01']);
    assert.ok(!plan.removes.some((l) => l.startsWith('neigh del')), plan.removes.join('\n'));
    assert.deepEqual(plan.acquired, ['198.51.100.11']);
    golden('director-becomes-gateway.apply', renderChange(before, after));
  });

  void it('a gateway that becomes a director of the same slot drops the tunnel address before adding its route', () => {
    // node-a holds slot 2 and steers its own pod locally; the IP moves to node-b and node-a now
    // directs that pod to node-b through the slot's tunnel.
    const before = stateOf(directorAndGateway);
    const after = stateOf(
      rules({
        ...directorAndGateway,
        steers: directorAndGateway.steers.map((s) =>
          s.slot === 2 ? { ...s, gatewayIP: '192.0.2.2', gatewayNode: 'node-b' } : s,
        ),
        egressIPs: [],
      }),
    );
    const plan = computeIpPlan(after, before);
    // Deleting the device's last address flushes its routes and neighbours: it must come first.
    const del = plan.adds.indexOf('address del 169.254.42.2/32 dev kseip-v2');
    const route = plan.adds.findIndex((l) =>
      l.startsWith('route replace default via 169.254.42.1 dev kseip-v2'),
    );
    const neigh = plan.adds.findIndex(
      (l) => l.startsWith('neigh replace 169.254.42.1') && l.includes('kseip-v2'),
    );
    assert.ok(del >= 0 && route > del && neigh > del, plan.adds.join('\n'));
    assert.ok(!plan.removes.some((l) => l.includes('169.254.42.2')), plan.removes.join('\n'));
    golden('gateway-becomes-director.apply', renderChange(before, after));
  });

  void it('widening a destination deletes the old interval before adding the overlapping new one', () => {
    const withDst = (dst: string): KernelState =>
      stateOf(rules({ steers: [steer({ slot: 1, podIPs: ['192.0.2.70'], destinations: [dst] })] }));
    const ops = computeNftTransaction(withDst('203.0.113.0/27').nft, withDst('203.0.113.10/32').nft);
    const opOn = (kind: string): number =>
      ops.findIndex((o) => o.op === kind && 'set' in o && o.set.endsWith('-dst'));
    // nft refuses an interval that overlaps one still in the set ("interval overlaps").
    assert.ok(
      opOn('delete-elements') !== -1 && opOn('delete-elements') < opOn('add-elements'),
      JSON.stringify(ops),
    );
  });

  void it('removal is the mirror of setup: add-nothing, remove everything, delete our table', () => {
    golden('removal.apply', renderChange(stateOf(directorAndGateway), EMPTY_KERNEL_STATE));
  });

  void it('a full resync rewrites every set and chain in one transaction', () => {
    const state = stateOf(directorAndGateway);
    golden('full-resync.apply', renderChange(state, state, true));
  });

  void it('steers sharing a slot keep their own pods, destinations and exceptions; one tunnel', () => {
    // Given two policy rules with the same egress IP (slot 1): pods A to D1, pods B to D2.
    const state = stateOf(
      rules({
        steers: [
          steer({
            slot: 1,
            podIPs: ['192.0.2.66'],
            destinations: ['203.0.113.0/28'],
            exceptions: ['203.0.113.9'],
            sources: ['default/eip-a#0'],
          }),
          steer({
            slot: 1,
            podIPs: ['192.0.2.67'],
            destinations: ['203.0.113.16/28'],
            sources: ['default/eip-b#0'],
          }),
        ],
      }),
    );
    golden('shared-slot.state', dumpNftState(state.nft));
    assert.equal(state.links.length, 1);
    assert.equal(state.rules.length, 1);
    const prerouting = state.nft?.chains.find((c) => c.name === 'prerouting')?.rules ?? [];
    assert.equal(prerouting.length, 2, 'one mark rule per steer, never a merged one');
  });

  void it('a steer without a gateway drops its traffic: no tunnel, no route, no SNAT', () => {
    const state = stateOf(
      rules({
        steers: [
          steer({
            slot: 3,
            gatewayNode: '',
            gatewayIP: '',
            podIPs: ['192.0.2.66'],
            destinations: ['203.0.113.0/24'],
          }),
        ],
      }),
    );
    golden('no-gateway.apply', renderChange(EMPTY_KERNEL_STATE, state));
    assert.deepEqual(
      { links: state.links, routes: state.routes, rules: state.rules, addresses: state.addresses },
      { links: [], routes: [], rules: [], addresses: [] },
    );
  });

  void it('a gateway assigned later replaces the drop with the mark in one nft transaction', () => {
    const dropping = steer({
      slot: 3,
      gatewayNode: '',
      gatewayIP: '',
      podIPs: ['192.0.2.66'],
      destinations: ['203.0.113.0/24'],
    });
    const before = stateOf(rules({ steers: [dropping] }));
    const after = stateOf(
      rules({ steers: [{ ...dropping, gatewayNode: 'node-b', gatewayIP: '192.0.2.2' }] }),
    );
    golden('no-gateway-to-gateway.apply', renderChange(before, after));
  });

  void it('a gateway losing its egress IP while directing elsewhere swaps device roles (MAC changes)', () => {
    const before = stateOf(rules({ egressIPs: [{ slot: 1, egressIP: '198.51.100.11' }] }));
    const after = stateOf(
      rules({ steers: [steer({ slot: 1, podIPs: ['192.0.2.66'], destinations: ['203.0.113.0/24'] })] }),
    );
    const plan = computeIpPlan(after, before);
    assert.ok(
      plan.adds.includes(`link set dev kseip-v1 address ${directorMac('node-a', 1)}`),
      dumpIpPlan(plan),
    );
    assert.ok(plan.removes.includes('address del 198.51.100.11/32 dev eth0'));
  });
});

void describe('dataplane model', () => {
  void it('masks and marks: contiguous masks only, slot 0 and out-of-range slots rejected', () => {
    assert.deepEqual(computeMarkLayout(0x0fff0000), {
      _tag: 'Right',
      right: { mask: 0x0fff0000, shift: 16, maxSlot: 4095 },
    });
    assert.equal(computeMarkLayout(0x0f0f0000)._tag, 'Left');
    for (const slot of [0, 4096, 1.5]) {
      const r = computeKernelState(
        cfg,
        rules({ egressIPs: [{ slot, egressIP: '198.51.100.1' }] }),
        UPLINK_MTU,
      );
      assert.equal(
        r._tag === 'Right' && r.right.unprogrammable[0]?.reason,
        'slot must be an integer in 1..4095',
      );
    }
  });

  void it('steer set names: slot plus a hash of the sources, stable under source order', () => {
    assert.equal(steerKey(1, ['a#0', 'b#1']), steerKey(1, ['b#1', 'a#0']));
    assert.notEqual(steerKey(1, ['a#0']), steerKey(2, ['a#0']));
    assert.notEqual(steerKey(1, ['a#0']), steerKey(1, ['a#0'], 1));
    assert.match(steerKey(12, ['a#0']), /^v12-[0-9a-f]{6}$/);
  });

  void it('two steers of one slot must agree on egress IP and gateway, or neither is programmed', () => {
    const r = computeKernelState(
      cfg,
      rules({ steers: [steer({ slot: 1 }), steer({ slot: 1, gatewayIP: '192.0.2.9' })] }),
      UPLINK_MTU,
    );
    assert.equal(r._tag === 'Right' && r.right.unprogrammable.length, 2);
  });

  void it('IPv6 pod IPs and bad CIDRs are skipped and reported, not fatal', () => {
    const r = computeKernelState(
      cfg,
      rules({ steers: [steer({ slot: 1, podIPs: ['2001:db8::1', '192.0.2.66'], destinations: ['nope'] })] }),
      UPLINK_MTU,
    );
    assert.equal(r._tag, 'Right');
    if (r._tag === 'Right') assert.deepEqual(r.right.skipped, ['slot 1 pod 2001:db8::1', 'slot 1 cidr nope']);
  });

  void it('interval-set CIDRs: host bits cleared, nested ones dropped, sorted by address', () => {
    assert.deepEqual(
      normalizeCidrs(['203.0.113.128/25', '198.51.100.0/24', '203.0.113.5/24', '203.0.113.9', '0.0.0.0/0/1']),
      { cidrs: ['198.51.100.0/24', '203.0.113.0/24'], invalid: ['0.0.0.0/0/1'] },
    );
  });

  void it('gateway and director MACs are locally administered, deterministic, and never equal', () => {
    assert.equal(gatewayMac(258), '02:6b:73:00:01:02');
    assert.equal(directorMac('node-a', 1), directorMac('node-a', 1));
    assert.notEqual(directorMac('node-a', 1), directorMac('node-b', 1));
    assert.match(directorMac('node-a', 1), /^06:/);
  });

  void it('an empty NodeRules means no table at all', () => {
    assert.deepEqual(stateOf(rules({})), EMPTY_KERNEL_STATE);
  });
});

void describe('kernel read-back parsers', () => {
  // Captured from `nft -j list table ip kseip` / ip / bridge on the real kernel (int tests cover it live).
  const nftJson = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'ip', name: 'kseip', handle: 1 } },
      {
        set: {
          family: 'ip',
          name: 'v1-pods',
          table: 'kseip',
          type: 'ipv4_addr',
          handle: 2,
          elem: ['192.0.2.70', '192.0.2.66'],
        },
      },
      {
        set: {
          family: 'ip',
          name: 'v1-dst',
          table: 'kseip',
          type: 'ipv4_addr',
          handle: 3,
          flags: ['interval'],
          elem: [
            { prefix: { addr: '203.0.113.0', len: 24 } },
            '198.51.100.7',
            { range: ['192.0.2.1', '192.0.2.5'] },
          ],
        },
      },
      {
        chain: {
          family: 'ip',
          table: 'kseip',
          name: 'prerouting',
          handle: 4,
          type: 'filter',
          hook: 'prerouting',
          prio: -150,
          policy: 'accept',
        },
      },
      { rule: { family: 'ip', table: 'kseip', chain: 'prerouting', handle: 5, comment: 'kabc', expr: [] } },
      { rule: { family: 'ip', table: 'kseip', chain: 'prerouting', handle: 6, expr: [] } },
    ],
  });

  void it('nft: sets sorted by address, prefixes and hand-added ranges kept visible, rules known by comment', () => {
    assert.deepEqual(parseNftTable(nftJson), {
      sets: [
        { name: 'v1-pods', interval: false, elements: ['192.0.2.66', '192.0.2.70'] },
        {
          name: 'v1-dst',
          interval: true,
          elements: ['192.0.2.1-192.0.2.5', '198.51.100.7', '203.0.113.0/24'],
        },
      ],
      chains: [
        {
          name: 'prerouting',
          type: 'filter',
          hook: 'prerouting',
          priority: -150,
          rules: [
            { id: 'kabc', text: undefined },
            { id: 'handle-6', text: undefined },
          ],
        },
      ],
    });
    assert.equal(parseNftTable(undefined), undefined);
  });

  const own = { uplink: 'eth0', label: 'eth0:kseip', rulePriority: 7000, tableBase: 7000, maxSlot: 4095 };

  void it('ip rule / route / link / fdb: only ours', () => {
    assert.deepEqual(
      parseRules(
        '[{"priority":0,"src":"all","table":"local"},{"priority":7000,"src":"all","fwmark":"0x10000","fwmask":"0xfff0000","table":"7001"},{"priority":7001,"fwmark":"0x1","table":"7001"}]',
        own,
      ),
      [{ priority: 7000, mark: 0x10000, mask: 0x0fff0000, table: 7001 }],
    );
    assert.deepEqual(
      parseRoutes(
        '[{"dst":"default","gateway":"169.254.42.1","dev":"kseip-v1","table":"7001","flags":["onlink"]},{"type":"throw","dst":"192.0.2.2","table":"7001","flags":[]},{"dst":"default","gateway":"192.0.2.254","dev":"eth0","flags":[]},{"dst":"192.0.2.0/24","dev":"eth0","table":"7000"}]',
        own,
      ),
      [
        { table: 7001, type: 'unicast', dst: 'default', via: '169.254.42.1', dev: 'kseip-v1' },
        { table: 7001, type: 'throw', dst: '192.0.2.2', via: undefined, dev: undefined },
      ],
    );
    assert.deepEqual(
      parseLinks(
        '[{"ifname":"kseip-v1","flags":["UP"],"mtu":1450,"address":"02:6b:73:00:00:01","linkinfo":{"info_kind":"vxlan","info_data":{"id":7001,"local":"192.0.2.1","link":"eth0","port":4799,"learning":false}}},{"ifname":"flannel.1","mtu":1450,"linkinfo":{"info_data":{"id":1}}}]',
      ),
      [
        {
          name: 'kseip-v1',
          vni: 7001,
          port: 4799,
          local: '192.0.2.1',
          uplink: 'eth0',
          mtu: 1450,
          mac: '02:6b:73:00:00:01',
          up: true,
        },
      ],
    );
    assert.deepEqual(
      parseFdb(
        '[{"mac":"02:6b:73:00:00:01","ifname":"kseip-v1","dst":"192.0.2.2","flags":["self"],"state":"permanent"},{"mac":"33:33:00:00:00:01","ifname":"eth0","flags":["self"],"state":"permanent"}]',
      ),
      [{ dev: 'kseip-v1', mac: '02:6b:73:00:00:01', dst: '192.0.2.2' }],
    );
  });
});

void describe('rule isolation: a rule that cannot be programmed is left out, the others still apply', () => {
  // Given node-a directs an IPv4 rule (slot 1), and an IPv6 rule (slot 2) of another tenant
  // lands on the same node, both as a director and as the holder of its egress IP.
  const ipv4 = steer({
    slot: 1,
    podIPs: ['192.0.2.66'],
    destinations: ['203.0.113.0/24'],
    sources: ['default/v4#0'],
  });
  const ipv6 = steer({
    slot: 2,
    egressIP: '2001:db8::10',
    gatewayNode: 'node-a',
    gatewayIP: '192.0.2.1',
    podIPs: ['2001:db8:1::66'],
    destinations: ['2001:db8:2::/64'],
    sources: ['tenant/v6#0'],
  });
  const mixed = rules({ steers: [ipv6, ipv4], egressIPs: [{ slot: 2, egressIP: '2001:db8::10' }] });

  void it('an IPv6 steer and an IPv6 held egress IP next to an IPv4 steer: the IPv4 one is rendered', () => {
    const computed = computeKernelState(cfg, mixed, UPLINK_MTU);
    assert.equal(computed._tag, 'Right', JSON.stringify(computed));
    if (computed._tag !== 'Right') return;
    // Exactly what the IPv4 rule alone renders: nothing of the IPv6 rule leaks in.
    assert.deepEqual(computed.right.state, stateOf(rules({ steers: [ipv4] })));
    assert.deepEqual(computed.right.unprogrammable, IPV6_SLOT2_LEFT_OUT);
    golden(
      'rule-isolation.state',
      computed.right.unprogrammable.map((u) => `# unprogrammable: ${JSON.stringify(u)}\n`).join('') +
        dumpNftState(computed.right.state.nft),
    );
  });

  void it('every per-rule problem skips that rule only: slot out of range, gateway IP, disagreeing slot', () => {
    const computed = computeKernelState(
      cfg,
      rules({
        steers: [
          ipv4,
          steer({ slot: 0, sources: ['a/zero#0'] }),
          steer({ slot: 4096, sources: ['a/big#0'] }),
          steer({ slot: 3, gatewayIP: '2001:db8::2', sources: ['a/gw6#0'] }),
          // Two steers of slot 4 that disagree on the gateway: neither can have the slot's tunnel.
          steer({ slot: 4, sources: ['a/one#0'] }),
          steer({ slot: 4, gatewayIP: '192.0.2.9', sources: ['a/two#0'] }),
        ],
        egressIPs: [{ slot: 1.5, egressIP: '198.51.100.1' }],
      }),
      UPLINK_MTU,
    );
    assert.equal(computed._tag, 'Right', JSON.stringify(computed));
    if (computed._tag !== 'Right') return;
    assert.deepEqual(computed.right.state, stateOf(rules({ steers: [ipv4] })));
    const slotsOf4 =
      'slot 4 has steers that disagree: 198.51.100.14 via 192.0.2.2 and 198.51.100.14 via 192.0.2.9';
    assert.deepEqual(
      computed.right.unprogrammable.map((u) => [u.role, u.slot, u.sources.join(), u.reason]),
      [
        ['steer', 0, 'a/zero#0', 'slot must be an integer in 1..4095'],
        ['gateway', 1.5, '', 'slot must be an integer in 1..4095'],
        ['steer', 3, 'a/gw6#0', 'gateway IP 2001:db8::2 is not IPv4'],
        ['steer', 4, 'a/one#0', slotsOf4],
        ['steer', 4, 'a/two#0', slotsOf4],
        ['steer', 4096, 'a/big#0', 'slot must be an integer in 1..4095'],
      ],
    );
  });

  void it("the record's never-steer prefixes join the flag's; its IPv6 ones are left to IPv6 steers", () => {
    const r = rules({
      steers: [steer({ slot: 1, podIPs: ['10.244.1.5'], destinations: ['0.0.0.0/0'] })],
      neverSteer: ['10.244.0.0/24', '10.244.1.0/24', '192.0.2.64/27', '10.240.0.12/32', 'fd00:10:244::/64'],
    });
    const set = stateOf(r).nft?.sets.find((x) => x.name === NEVER_SET);
    // 192.0.2.64/27 lies inside the flag's 192.0.2.64/26: kept once, as the larger block.
    assert.deepEqual(set?.elements, [
      '10.240.0.12',
      '10.244.0.0/24',
      '10.244.1.0/24',
      '192.0.2.64/26',
      '192.0.2.192/27',
    ]);
  });

  void it('only node-wide problems still fail the node: mark mask, uplink name, neverSteer', () => {
    const bad: DataplaneConfig[] = [
      { ...cfg, markMask: 0x0f0f0000 },
      { ...cfg, uplink: 'a-very-long-uplink' },
      { ...cfg, neverSteer: ['nope'] },
    ];
    for (const c of bad) {
      const r = computeKernelState(c, mixed, UPLINK_MTU);
      assert.equal(r._tag === 'Left' && r.left._tag, 'InvalidConfig', JSON.stringify(r));
    }
  });
});
