// Unit tests of the apply engine (src/agents/dataplane.ts) against a fake kernel runner: the
// order of writes, zero writes for an unchanged desired state, one attempt per call, and a full
// resync (flush + re-add in one transaction) on the apply after a failed one. The real kernel is covered by
// test/agent-dataplane.int.test.ts; this only pins down the engine's decisions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { NODE_RULES_SCHEMA, type NodeRules } from '../contracts/node-rules.ts';
import { createDataplane, DEFAULT_DATAPLANE_CONFIG } from './dataplane.ts';
import { podsSetName, steerKey } from '../dataplane/kernel-state.ts';

/** The pods set of the one steer below (slot 1, sources default/eip#0). */
const PODS_SET = podsSetName(steerKey(1, ['default/eip#0']));
import type { KernelRunner, KernelTool, RunOptions, RunResult } from './kernel-exec.ts';
import { IPV6_SLOT2_LEFT_OUT } from '../../test/support/agent-fakes.ts';

interface Call {
  readonly tool: KernelTool;
  readonly args: readonly string[];
  readonly input: string;
}

/** A kernel that holds our table with one stale pod (and `heldEgressIPs` on the uplink, with our
 *  label) and nothing else, and records every call. */
function fakeKernel(
  options: { failNftWrites?: number; heldEgressIPs?: readonly string[] } = {},
): KernelRunner & { calls: Call[] } {
  let failNftWrites = options.failNftWrites ?? 0;
  let writes = 0;
  const calls: Call[] = [];
  const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: '' });
  const table = JSON.stringify({
    nftables: [
      { table: { family: 'ip', name: 'kseip' } },
      { set: { family: 'ip', table: 'kseip', name: PODS_SET, type: 'ipv4_addr', elem: ['192.0.2.99'] } },
    ],
  });
  return {
    calls,
    get writes() {
      return writes;
    },
    run(tool: KernelTool, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
      calls.push({ tool, args, input: opts.input ?? '' });
      if (opts.write === true) writes++;
      if (tool === 'nft' && args[0] === '-j') return Promise.resolve(ok(table));
      if (tool === 'nft' && failNftWrites > 0) {
        failNftWrites--;
        return Promise.resolve({ code: 1, stdout: '', stderr: 'Error: Could not process rule' });
      }
      if (tool === 'ip' && args.includes('-j')) {
        // One JSON array per batched read: links, addresses (the uplink's MTU), rules, routes, neigh, netconf.
        const held = (options.heldEgressIPs ?? []).map((ip) => ({
          family: 'inet',
          local: ip,
          prefixlen: 32,
          label: 'eth0:kseip',
        }));
        const uplink = JSON.stringify([{ ifname: 'eth0', mtu: 1500, addr_info: held }]);
        return Promise.resolve(ok(['[]', uplink, '[]', '[]', '[]', '[]'].join('\n')));
      }
      return Promise.resolve(ok(tool === 'bridge' && args.includes('-j') ? '[]' : ''));
    },
  };
}

const silent = pino({ level: 'silent' });
const cfg = { ...DEFAULT_DATAPLANE_CONFIG, uplink: 'eth0', neverSteer: ['192.0.2.64/26'] };
const rules: NodeRules = {
  schema: NODE_RULES_SCHEMA,
  node: 'node-a',
  generation: 3,
  nodeIP: '192.0.2.1',
  steers: [
    {
      slot: 1,
      egressIP: '198.51.100.11',
      gatewayNode: 'node-b',
      gatewayIP: '192.0.2.2',
      podIPs: ['192.0.2.66'],
      destinations: ['203.0.113.0/24'],
      exceptions: [],
      sources: ['default/eip#0'],
    },
  ],
  egressIPs: [],
};

void describe('dataplane apply engine', () => {
  void it('writes routes before marking, and an unchanged desired state writes nothing', async () => {
    const kernel = fakeKernel();
    const dp = createDataplane(cfg, silent, { runner: kernel });
    assert.equal((await dp.reconcile(rules)).changed, true);
    const writes = kernel.calls.filter((c) => !c.args.includes('-j')).map((c) => c.tool);
    // The tunnel is created first (ip), so the fdb entry on it cannot race its creation; then ip
    // (neighbours, routes, rule) and bridge (fdb) side by side, before nft; nothing to remove after.
    assert.deepEqual(writes.slice(-1), ['nft']);
    assert.equal(writes[0], 'ip');
    assert.deepEqual([...writes.slice(1, 3)].sort(), ['bridge', 'ip']);
    const nft = kernel.calls.find((c) => c.tool === 'nft' && c.args[0] === '-f');
    assert.match(nft?.input ?? '', new RegExp(`add element ip kseip ${PODS_SET} \\{ 192\\.0\\.2\\.66 \\}`));
    assert.match(
      nft?.input ?? '',
      new RegExp(`delete element ip kseip ${PODS_SET} \\{ 192\\.0\\.2\\.99 \\}`),
    );

    const before = kernel.calls.length;
    assert.equal((await dp.reconcile({ ...rules, generation: 4 })).changed, false);
    assert.equal(kernel.calls.length, before, 'no kernel call at all for an unchanged state');
  });

  void it('after a failed apply, the next apply (the apply loop retrying) is a full resync: every set flushed and refilled in one transaction', async () => {
    const kernel = fakeKernel({ failNftWrites: 1 });
    const dp = createDataplane(cfg, silent, { runner: kernel });
    await assert.rejects(
      dp.reconcile(rules),
      (err: unknown) => (err as { retriable?: unknown }).retriable === true,
    );
    assert.equal((await dp.reconcile(rules)).changed, true);
    const transactions = kernel.calls
      .filter((c) => c.tool === 'nft' && c.args[0] === '-f')
      .map((c) => c.input);
    assert.equal(transactions.length, 2);
    assert.doesNotMatch(transactions[0] ?? '', /flush set/);
    assert.match(
      transactions[1] ?? '',
      new RegExp(
        `flush set ip kseip ${PODS_SET}\\n[\\s\\S]*add element ip kseip ${PODS_SET} \\{ 192\\.0\\.2\\.66 \\}`,
      ),
    );
    // The retry re-read the kernel rather than trusting memory.
    assert.equal(kernel.calls.filter((c) => c.tool === 'nft' && c.args[0] === '-j').length, 2);
  });

  void it('makes one attempt per call, says why it failed, and the next reconcile resyncs', async () => {
    const kernel = fakeKernel({ failNftWrites: 3 });
    const dp = createDataplane(cfg, silent, { runner: kernel });
    for (let i = 0; i < 3; i++)
      await assert.rejects(dp.reconcile(rules), /nft -f - exited 1: Error: Could not process rule/);
    const nftWrites = () => kernel.calls.filter((c) => c.tool === 'nft' && c.args[0] === '-f').length;
    assert.equal(nftWrites(), 3, 'one transaction per call: the apply loop owns the retries');
    assert.equal((await dp.reconcile(rules)).changed, true);
  });

  void it('a new process announces the egress IP it finds already held on its first apply, and only then', async () => {
    // A gateway whose node was cut off (or whose agent was restarted) while another node held
    // and announced the IP, and that now holds it again: the address never left its uplink, so
    // there is nothing to add, but upstream still has the other node's MAC.
    const gateway: NodeRules = { ...rules, egressIPs: [{ slot: 1, egressIP: '198.51.100.11' }] };
    const kernel = fakeKernel({ heldEgressIPs: ['198.51.100.11'] });
    // In a namespace, sysctls (the gateway's tunnel rp_filter) go through the runner too.
    const dp = createDataplane({ ...cfg, netns: 'node-a' }, silent, { runner: kernel, garpCount: 1 });
    await dp.reconcile(gateway);
    await dp.settled();
    const arpings = () => kernel.calls.filter((c) => c.tool === 'arping').map((c) => c.args.at(-1));
    assert.ok(
      !kernel.calls.some((c) => c.input.includes('address replace 198.51.100.11')),
      'the address was there already',
    );
    assert.deepEqual(arpings(), ['198.51.100.11']);
    // Still held by the same process: no new announcement.
    await dp.reconcile({ ...gateway, generation: 4 });
    await dp.reconcile({ ...gateway, generation: 5, steers: [] });
    await dp.settled();
    assert.deepEqual(arpings(), ['198.51.100.11']);
  });

  void it('a desired state that cannot be computed fails at once, as not retriable, without writes', async () => {
    const kernel = fakeKernel();
    // Only a node-wide problem (the agent's own configuration) fails a whole apply.
    const dp = createDataplane({ ...cfg, neverSteer: ['nope'] }, silent, { runner: kernel });
    await assert.rejects(dp.reconcile(rules), /InvalidConfig/);
    assert.equal(kernel.writes, 0);
  });

  void it('a rule it cannot program is left out and reported; the rest is written, also when unchanged', async () => {
    const kernel = fakeKernel();
    const dp = createDataplane(cfg, silent, { runner: kernel });
    const v6 = {
      ...rules.steers[0]!,
      slot: 2,
      egressIP: '2001:db8::10',
      podIPs: ['2001:db8:1::66'],
      destinations: ['2001:db8:2::/64'],
      sources: ['tenant/v6#0'],
    };
    const mixed = {
      ...rules,
      steers: [...rules.steers, v6],
      egressIPs: [{ slot: 2, egressIP: '2001:db8::10' }],
    };
    const first = await dp.reconcile(mixed);
    const expected = IPV6_SLOT2_LEFT_OUT;
    assert.equal(first.changed, true);
    assert.deepEqual(first.unprogrammable, expected);
    const nft = kernel.calls.find((c) => c.tool === 'nft' && c.args[0] === '-f');
    assert.ok(nft?.input.includes('192.0.2.66'), 'the IPv4 rule is written');
    assert.ok(!kernel.calls.some((c) => c.input.includes('2001:db8')), 'nothing of the IPv6 rule is written');
    // The cheap path (same input again) still says what is left out: every ack carries it.
    const again = await dp.reconcile({ ...mixed, generation: 4 });
    assert.equal(again.changed, false);
    assert.deepEqual(again.unprogrammable, expected);
  });
});
