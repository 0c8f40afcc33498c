// Hostile node-rules records straight into the agent: the consumer's decode (decodeNodeKeyed with
// decodeNodeRules, exactly what src/agents/node-rules-consumer.ts runs on a record of its key),
// then the agent's dataplane (src/agents/dataplane.ts, with kernel-state, nft-transaction and
// ip-transaction) against a fake kernel that records every command. Proves, for every record
// fast-check makes up:
//   - a record with a hostile value in any field the agent uses is refused at decode and
//     dead-lettered with a reason that names the field, and only such records are refused;
//   - every record that decodes becomes `nft`, `ip`, `bridge`, `sysctl` and `arping` input in
//     which every line matches a strict grammar: our keywords, our object names, canonical IPv4
//     addresses and CIDRs, MACs, hex marks and integers. Nothing else ever reaches a tool.
// The first property fails when any field's check is removed from src/contracts/node-rules.ts
// (or primitives.ts); the second when a value that decodes could still carry syntax to a tool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { decodeNodeRules, emptyNodeRules, type NodeRules } from '../src/contracts/node-rules.ts';
import { TOPICS } from '../src/contracts/topics.ts';
import { createDataplane, DEFAULT_DATAPLANE_CONFIG, type DataplaneConfig } from '../src/agents/dataplane.ts';
import type { KernelRunner, KernelTool, RunOptions, RunResult } from '../src/agents/kernel-exec.ts';
import { decodeNodeKeyed, type DeadLetter } from '../src/lib/dead-letter.ts';
import { computeKernelState, EMPTY_KERNEL_STATE } from '../src/dataplane/kernel-state.ts';
import { computeIpPlan } from '../src/dataplane/ip-transaction.ts';
import { computeNftTransaction, renderNftTransaction } from '../src/dataplane/nft-transaction.ts';

// ---- the grammar of everything the agent may hand to a tool -----------------------------------

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ADDR = `${OCTET}(?:\\.${OCTET}){3}`;
const CIDR = `${ADDR}(?:/(?:3[0-2]|[12]?\\d))?`;
const LINK = 'kseip-v[1-9]\\d{0,4}';
const MAC = '[0-9a-f]{2}(?::[0-9a-f]{2}){5}';
const HEX = '0x[0-9a-f]{8}';
const N = '(?:0|[1-9]\\d{0,9})';
const SET = '(?:v[1-9]\\d{0,4}-[0-9a-f]{6}-(?:pods|dst|except)|never-steer)';
const CHAIN = '(?:prerouting|forward|postrouting)';
const UPLINK = 'eth0';
const T = 'ip kseip';
const MARK_SET = `meta mark set meta mark & ${HEX} \\| ${HEX}`;

const NFT_RULES = [
  `ip saddr @${SET} ip daddr @${SET} ip daddr != @${SET} ip daddr != @never-steer (?:drop|${MARK_SET})`,
  `iifname "${LINK}" ${MARK_SET}`,
  `oifname "kseip-v\\*" tcp flags syn / syn,rst tcp option maxseg size set rt mtu`,
  `ip saddr @${SET} ip daddr @${SET} tcp flags syn,ack / syn,ack,rst tcp option maxseg size > ${N} tcp option maxseg size set ${N}`,
  `meta mark & ${HEX} == ${HEX} snat ip to ${ADDR}`,
  `oifname "kseip-v\\*" snat ip to ip saddr`,
];
const NFT_LINES = [
  `add table ${T} \\{ comment "kube-static-egress-ip: owned by the node agent, do not edit"; \\}`,
  `delete table ${T}`,
  `add set ${T} ${SET} \\{ type ipv4_addr;(?: flags interval;)? \\}`,
  `(?:flush|delete) set ${T} ${SET}`,
  `(?:add|delete) element ${T} ${SET} \\{ ${CIDR}(?:, ${CIDR})* \\}`,
  `add chain ${T} ${CHAIN} \\{ type (?:filter|nat) hook ${CHAIN} priority -?${N}; policy accept; \\}`,
  `(?:flush|delete) chain ${T} ${CHAIN}`,
  `add rule ${T} ${CHAIN} (?:${NFT_RULES.join('|')}) comment "k[0-9a-f]{12}"`,
  // the reads
  `-j list table ${T}`,
];
const IP_LINES = [
  `link add ${LINK} address ${MAC} mtu ${N} type vxlan id ${N} dstport ${N}(?: local ${ADDR})? dev ${UPLINK} nolearning`,
  `link set dev ${LINK} addrgenmode none`,
  `link set dev ${LINK}(?: mtu ${N}| address ${MAC}| up)+`,
  `link del ${LINK}`,
  `neigh replace ${ADDR} lladdr ${MAC} dev ${LINK} nud permanent`,
  `neigh del ${ADDR} dev ${LINK}`,
  `route (?:replace|del) (?:throw )?(?:default|${CIDR})(?: via ${ADDR})?(?: dev ${LINK})?(?: onlink)? table ${N}`,
  `rule (?:add|del) priority ${N} fwmark ${HEX}/${HEX} lookup ${N}`,
  `address (?:replace|del) ${ADDR}/32 dev (?:${LINK}|${UPLINK})(?: scope link| label ${UPLINK}:kseip valid_lft ${N} preferred_lft ${N})?`,
  `address change ${ADDR}/32 dev ${UPLINK} label ${UPLINK}:kseip valid_lft (?:${N}|forever) preferred_lft (?:${N}|forever)`,
];
const BRIDGE_LINES = [
  `fdb replace ${MAC} dev ${LINK} dst ${ADDR} self permanent`,
  `fdb del ${MAC} dev ${LINK} dst ${ADDR} self`,
];
const whole = (alternatives: readonly string[]): RegExp => new RegExp(`^(?:${alternatives.join('|')})$`);
const GRAMMAR = { nft: whole(NFT_LINES), ip: whole(IP_LINES), bridge: whole(BRIDGE_LINES) };
/** Arguments: flags, numbers, our uplink, addresses, sysctl assignments of our devices. */
const ARG = whole([
  '-[a-zA-Z]',
  '-',
  '-batch',
  '-force',
  '-json',
  N,
  '\\d+(?:\\.\\d+)?',
  UPLINK,
  ADDR,
  `net\\.ipv4\\.conf\\.${LINK}\\.rp_filter=2`,
  'list|table|ip|kseip|link|show|address|rule|route|neigh|fdb|netconf|dev|all|type|vxlan',
]);

interface Call {
  readonly tool: KernelTool;
  readonly args: readonly string[];
  readonly input: string;
}

/** An empty kernel (nothing of ours, an uplink of MTU 1500) that records every command. */
function recordingKernel(): KernelRunner & { calls: Call[] } {
  const calls: Call[] = [];
  let writes = 0;
  const ok = (stdout: string): RunResult => ({ code: 0, stdout, stderr: '' });
  return {
    calls,
    get writes() {
      return writes;
    },
    run(tool: KernelTool, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
      calls.push({ tool, args, input: opts.input ?? '' });
      if (opts.write === true) writes++;
      if (tool === 'nft' && args[0] === '-j') return Promise.resolve(ok(JSON.stringify({ nftables: [] })));
      if (tool === 'ip' && args.includes('-j')) {
        const uplink = JSON.stringify([{ ifname: UPLINK, mtu: 1500, addr_info: [] }]);
        return Promise.resolve(ok(['[]', uplink, '[]', '[]', '[]', '[]'].join('\n')));
      }
      return Promise.resolve(ok(tool === 'bridge' && args.includes('-j') ? '[]' : ''));
    },
  };
}

/** Every line and argument the agent handed to a tool that is outside the grammar. */
function offGrammar(calls: readonly Call[], reads: ReadonlySet<string> = new Set()): string[] {
  const bad: string[] = [];
  for (const call of calls) {
    for (const arg of call.args) if (!ARG.test(arg)) bad.push(`${call.tool} argument ${JSON.stringify(arg)}`);
    const grammar =
      call.tool === 'nft' || call.tool === 'ip' || call.tool === 'bridge' ? GRAMMAR[call.tool] : undefined;
    for (const line of call.input.split('\n')) {
      if (line === '') continue;
      // Reads (kernel-read.ts) depend on the configuration only: the very lines of an empty state.
      if (call.args.includes('-j') && reads.has(line)) continue;
      if (grammar === undefined || !grammar.test(line)) bad.push(`${call.tool}: ${JSON.stringify(line)}`);
    }
  }
  return bad;
}

// ---- records: valid (with the odd but valid values), then hostile values injected ----------------

/** Valid values, including the odd ones a codec must let through and the agent must render
 *  safely or leave out: IPv6, IPv4-mapped IPv6, /0, the longest names. */
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `192.0.${a}.${b}`);
const oddAddress = fc.constantFrom('2001:db8::10', '::ffff:198.51.100.7', '::', 'fd00::1:2:3:4:5', '0.0.0.0');
const address = fc.oneof(ipv4, ipv4, oddAddress);
const egressIP = fc.oneof(
  fc.nat(255).map((d) => `198.51.100.${d}`),
  fc.constantFrom('2001:db8::66', '::ffff:198.51.100.9'),
);
const cidr = fc.oneof(
  fc.tuple(fc.nat(255), fc.integer({ min: 0, max: 32 })).map(([d, len]) => `203.0.113.${d}/${len}`),
  fc.constantFrom('0.0.0.0/0', '2001:db8::/32', '::ffff:203.0.113.0/120', '10.0.0.0/8'),
);
const nodeName = fc.constantFrom(
  'node-a',
  'node-b',
  'ip-10-0-0-1.ec2.internal',
  'a'.repeat(63) + '.' + 'b'.repeat(63),
);
const ruleRef = fc.constantFrom('ns-a/eip#0', 'cluster/shared#3', 'kube-system/x.y#12');
const slot = fc.integer({ min: 1, max: 6 });

const steer = fc.record({
  slot,
  egressIP,
  gatewayNode: fc.oneof(nodeName, fc.constant('')),
  gatewayIP: fc.oneof(address, fc.constant('')),
  podIPs: fc.array(
    fc.oneof(
      fc.nat(255).map((d) => `10.0.0.${d}`),
      oddAddress,
    ),
    { maxLength: 4 },
  ),
  destinations: fc.array(cidr, { minLength: 1, maxLength: 3 }),
  exceptions: fc.array(cidr, { maxLength: 2 }),
  sources: fc.uniqueArray(ruleRef, { minLength: 1, maxLength: 2 }),
});
const validRecord = fc.record({
  schema: fc.constant(1),
  node: nodeName,
  generation: fc.nat(),
  nodeIP: fc.oneof(address, fc.constant('')),
  steers: fc.array(steer, { minLength: 1, maxLength: 3 }),
  egressIPs: fc.array(fc.record({ slot, egressIP }), { minLength: 1, maxLength: 2 }),
  neverSteer: fc.array(cidr, { maxLength: 2 }),
});

/** Characters that turn any valid value of the field into an invalid one wherever they are put:
 *  shell and nft/ip syntax, whitespace and control characters, quotes, NUL, unicode look-alikes,
 *  bidi and zero-width characters. None is a digit, '.', ':' or a letter. */
const HOSTILE_CHARS = [
  ';',
  ' ',
  '\n',
  '\r',
  '\t',
  '"',
  "'",
  '`',
  '$',
  '(',
  ')',
  '{',
  '}',
  '|',
  '&',
  '<',
  '>',
  '\\',
  '#',
  '%',
  '\u0000',
  '\u001b',
  '\u202e',
  '\u200b',
  '\u00a0',
  '\uff10',
  '\u0661',
  '\u3002',
  'é',
  '*',
  '!',
  '=',
  '[',
  ']',
  ',',
  '@',
];
const inserted = (valid: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc
    .tuple(valid, fc.nat(), fc.constantFrom(...HOSTILE_CHARS))
    .map(([text, at, c]) => text.slice(0, at % (text.length + 1)) + c + text.slice(at % (text.length + 1)));

const hostileAddress = fc.oneof(
  fc.constantFrom(
    'not-an-ip',
    '10.244.1.250; flush ruleset',
    '999.1.1.1',
    '010.0.0.1',
    '10.0.0.01',
    '10.0.0.1/32',
    'fe80::1%eth0',
    '::ffff:10.0.0.1 ',
    '1.2.3',
    '1'.repeat(100_000),
    '10.0.0.1 } ; flush ruleset ; add table ip x {',
    '10.0.0.1\nlink del eth0',
  ),
  inserted(fc.oneof(ipv4, fc.constantFrom('2001:db8::10'))).filter(
    (s) => !s.includes(':') || /[^0-9a-f:]/i.test(s),
  ),
);
/** For a required address: also the empty string. */
const hostileRequiredAddress = fc.oneof(hostileAddress, fc.constant(''));
const hostileCidr = fc.oneof(
  fc.constantFrom(
    '',
    '203.0.113.0/33',
    '203.0.113.0/024',
    '203.0.113.0/-1',
    '203.0.113.0/',
    '203.0.113.0',
    '2001:db8::/129',
    'fe80::%eth0/64',
    '203.0.113.0/24; flush ruleset',
    '203.0.113.0/24 } ; delete table ip kseip ; add set ip kseip x {',
  ),
  inserted(fc.constantFrom('203.0.113.0/24', '0.0.0.0/0')),
);
const hostileNodeName = fc.oneof(
  fc.constantFrom(
    'Node-A',
    'node_a',
    '-node',
    'node-',
    'node..a',
    'a'.repeat(254),
    'nöde',
    'x'.repeat(64) + '.',
  ),
  inserted(nodeName),
);
const hostileRuleRef = fc.oneof(
  fc.constantFrom(
    '',
    'ns-a/eip',
    'ns-a/eip#',
    'ns-a/eip#01',
    'NS/eip#0',
    '/eip#0',
    'ns-a/#0',
    'a'.repeat(64) + '/e#0',
  ),
  inserted(ruleRef),
);
const hostileInteger = fc.constantFrom<unknown>(-1, 1.5, 2 ** 53, 1e300, '1', null, true, [1], {});
const hostileSlot = fc.oneof(hostileInteger, fc.constant(0));

type Path = (string | number)[];
interface Injection {
  readonly where: (record: ValidRecord) => Path;
  readonly value: unknown;
}
type ValidRecord = typeof validRecord extends fc.Arbitrary<infer R> ? R : never;

const pick = <T>(items: readonly T[], i: number): number => i % items.length;
/** Where a hostile value of each kind may go, and what it replaces or joins (a list member). */
const injection: fc.Arbitrary<Injection> = fc.oneof(
  fc
    .tuple(fc.nat(), fc.constantFrom('egressIP', 'podIPs'), hostileRequiredAddress)
    .map(([i, field, value]): Injection => ({
      where: (r) =>
        field === 'podIPs'
          ? ['steers', pick(r.steers, i), 'podIPs', -1]
          : ['steers', pick(r.steers, i), field],
      value,
    })),
  fc
    .tuple(fc.nat(), hostileAddress)
    .map(([i, value]): Injection => ({ where: (r) => ['steers', pick(r.steers, i), 'gatewayIP'], value })),
  fc.tuple(fc.nat(), hostileRequiredAddress).map(([i, value]): Injection => ({
    where: (r) => ['egressIPs', pick(r.egressIPs, i), 'egressIP'],
    value,
  })),
  hostileAddress.map((value): Injection => ({ where: () => ['nodeIP'], value })),
  fc
    .tuple(fc.nat(), fc.constantFrom('destinations', 'exceptions'), hostileCidr)
    .map(([i, field, value]): Injection => ({
      where: (r) => ['steers', pick(r.steers, i), field, -1],
      value,
    })),
  hostileCidr.map((value): Injection => ({ where: () => ['neverSteer', -1], value })),
  fc
    .tuple(fc.nat(), hostileNodeName)
    .map(([i, value]): Injection => ({ where: (r) => ['steers', pick(r.steers, i), 'gatewayNode'], value })),
  fc.oneof(hostileNodeName, fc.constant('')).map((value): Injection => ({ where: () => ['node'], value })),
  fc
    .tuple(fc.nat(), hostileRuleRef)
    .map(([i, value]): Injection => ({ where: (r) => ['steers', pick(r.steers, i), 'sources', -1], value })),
  fc
    .tuple(fc.nat(), hostileSlot)
    .map(([i, value]): Injection => ({ where: (r) => ['steers', pick(r.steers, i), 'slot'], value })),
  fc
    .tuple(fc.nat(), hostileSlot)
    .map(([i, value]): Injection => ({ where: (r) => ['egressIPs', pick(r.egressIPs, i), 'slot'], value })),
  hostileInteger.map((value): Injection => ({ where: () => ['generation'], value })),
);

/** The record with `value` at `path`; -1 as the last step appends to the list there. */
function inject(record: unknown, path: Path, value: unknown): void {
  let at = record as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) at = at[step] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (last === -1) (at as unknown as unknown[]).push(value);
  else at[last] = value;
}

const cfg: DataplaneConfig = {
  ...DEFAULT_DATAPLANE_CONFIG,
  netns: 'fuzz',
  uplink: UPLINK,
  neverSteer: ['192.0.2.64/26'],
  egressAddressLifetimeS: 5,
};
const silent = pino({ level: 'silent' });

/** What the agent hands to its tools for one desired state: apply it to an empty kernel, renew its
 *  egress IPs, and (the pure plans, since the fake kernel keeps nothing) remove it again. */
async function toolInput(rules: NodeRules): Promise<Call[]> {
  const kernel = recordingKernel();
  const dp = createDataplane(cfg, silent, { runner: kernel, garpCount: 1, garpIntervalSec: 0.1 });
  await dp.reconcile(rules);
  await dp.renewEgressAddresses();
  await dp.settled();
  const computed = computeKernelState(cfg, rules, 1500);
  assert.equal(computed._tag, 'Right');
  if (computed._tag === 'Right') {
    const removal = computeIpPlan(EMPTY_KERNEL_STATE, computed.right.state);
    const full = computeNftTransaction(computed.right.state.nft, computed.right.state.nft, true);
    kernel.calls.push(
      { tool: 'ip', args: [], input: [...removal.adds, ...removal.removes].join('\n') },
      { tool: 'bridge', args: [], input: removal.fdbRemoves.join('\n') },
      { tool: 'nft', args: [], input: renderNftTransaction(full) },
      {
        tool: 'nft',
        args: [],
        input: renderNftTransaction(computeNftTransaction(undefined, computed.right.state.nft)),
      },
    );
  }
  return kernel.calls;
}

void test('a node-rules record with a hostile value in any field is dead-lettered with the field named; every other record reaches nft and ip only as tokens of a strict grammar', async () => {
  const reads = new Set(
    (await toolInput(emptyNodeRules('node-a', 1)))
      .filter((c) => c.args.includes('-j'))
      .flatMap((c) => c.input.split('\n')),
  );
  let refused = 0;
  let rendered = 0;
  await fc.assert(
    fc.asyncProperty(validRecord, fc.array(injection, { maxLength: 3 }), async (valid, injections) => {
      const record: unknown = structuredClone(valid);
      const paths = injections.map((i) => i.where(valid));
      injections.forEach((i, n) => inject(record, paths[n]!, i.value));
      const key = (record as { node: unknown }).node;
      const value = Buffer.from(JSON.stringify(record));
      const letters: DeadLetter[] = [];
      const rules = decodeNodeKeyed(
        { offset: '42', key: typeof key === 'string' ? Buffer.from(key) : null, value },
        { topic: TOPICS.nodeRules, partition: 0, what: 'node-rules record' },
        decodeNodeRules,
        { send: (letter) => letters.push(letter) },
      );
      if (injections.length > 0) {
        assert.equal(rules, undefined, `accepted a record with hostile ${JSON.stringify(paths)}`);
        assert.equal(letters.length, 1);
        const reason = letters[0]!.reason;
        const named = paths.map((p) => p.filter((s) => typeof s === 'string').at(-1)!);
        assert.ok(
          named.some((field) => new RegExp(`\\b${field}(?:\\.\\d+)?: expected`).test(reason)),
          `the reason names none of ${named.join(', ')}: ${reason}`,
        );
        refused++;
        return;
      }
      assert.notEqual(rules, undefined, `refused a valid record: ${letters[0]?.reason}`);
      const bad = offGrammar(await toolInput(rules!), reads);
      assert.deepEqual(bad, [], `tool input outside the grammar for ${JSON.stringify(record).slice(0, 400)}`);
      rendered++;
    }),
    { numRuns: 400 },
  );
  // Neither half of the property may hold vacuously.
  assert.ok(refused >= 100 && rendered >= 50, `refused ${refused}, rendered ${rendered}`);
});

void test('the grammar check itself catches what it must: syntax smuggled into a value would be reported', () => {
  // Without this, a grammar that accepted anything would make the property above pass vacuously.
  const smuggled: Call[] = [
    {
      tool: 'nft',
      args: ['-f', '-'],
      input: `add element ${'ip kseip'} v1-abcdef-pods { 10.0.0.1; flush ruleset }\n`,
    },
    {
      tool: 'ip',
      args: ['-batch', '-'],
      input: 'address replace 010.0.0.1/32 dev eth0 label eth0:kseip valid_lft 5 preferred_lft 5\n',
    },
    {
      tool: 'ip',
      args: ['-batch', '-'],
      input:
        'link add kseip-v1 address 06:00:00:00:00:01 mtu 1450 type vxlan id 7001 dstport 4799 local not-an-ip dev eth0 nolearning\n',
    },
    {
      tool: 'bridge',
      args: ['-batch', '-'],
      input: 'fdb replace 02:6b:73:00:00:01 dev kseip-v1 dst 192.0.2.1 self permanent\nfdb flush dev eth0\n',
    },
    { tool: 'arping', args: ['-S', '198.51.100.1;reboot'], input: '' },
  ];
  for (const call of smuggled) assert.notDeepEqual(offGrammar([call]), [], JSON.stringify(call));
});
