// The kseip audit commands (replay, audit, explain, verify, what-if) on a small scripted log read
// from an export file (no Kafka): their output is compared with a snapshot
// (test/snapshots/cli-audit.txt; KSEIP_UPDATE_SNAPSHOTS=1 rewrites it), exit codes are checked,
// and verify finds a tampered decision. Also: the audit index `export --from` appends answers as
// the replay does and verify catches a forged one; events tail/grep on an export file; commander's
// own usage errors exit 2. Spawns bin/kseip; pure otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TOPICS } from '../src/contracts/topics.ts';
import {
  buildScenario,
  EIP,
  exportRecords,
  exportText,
  POLICY_YAML_ADD_DB,
} from './support/egress-scenario.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const kseip = path.join(root, 'bin/kseip');
const snapshotPath = path.join(import.meta.dirname, 'snapshots/cli-audit.txt');

async function kseipRun(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(kseip, args, { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'kseip-audit-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const scenario = buildScenario();
const records = exportRecords(scenario.log);
const file = path.join(dir, 'log.jsonl');
writeFileSync(file, exportText(records));
const policy = path.join(dir, 'policy.yaml');
writeFileSync(policy, POLICY_YAML_ADD_DB);

void test('given a scripted log with a failover, the audit commands print as in the snapshot', async () => {
  const invocations: string[][] = [
    ['replay'],
    ['replay', '--until', '11'],
    ['replay', '--until', '2026-03-01T12:00:12Z', '-o', 'json'],
    ['audit', 'egress-ip', EIP],
    ['audit', 'egress-ip', EIP, '--at', '2026-03-01T12:00:11.500Z'],
    ['audit', 'egress-ip', EIP, '--from', '2026-03-01T12:00:12Z', '--to', '2026-03-01T12:00:20Z'],
    ['audit', 'pod', 'shop/web-1'],
    ['audit', 'pod', 'shop/web-1', '-o', 'json'],
    ['audit', 'failovers', '--ip', EIP],
    ['explain', 'pod', 'shop/web-0'],
    ['explain', 'pod', 'shop/web-0', '--dest', '203.0.113.200'],
    ['explain', 'pod', 'shop/web-0', '--dest', '192.0.2.99'],
    ['explain', 'pod', 'shop/db-0'],
    ['explain', 'pod', 'shop/web-1', '--until', '11'],
    ['explain', 'pod', 'shop/gone'],
    ['verify'],
    ['what-if', '-f', policy],
  ];
  let output = '';
  for (const args of invocations) {
    const r = await kseipRun([...args, '--from', file]);
    output += `$ kseip ${args.join(' ').replace(dir, '<tmp>')}\n${r.stdout}${r.code === 0 ? '' : `[exit ${r.code}]\n`}\n`;
  }
  if (process.env.KSEIP_UPDATE_SNAPSHOTS === '1' || !existsSync(snapshotPath))
    writeFileSync(snapshotPath, output);
  assert.equal(output, readFileSync(snapshotPath, 'utf8'));
});

void test('audit answers the ground truth: who used the egress IP through which gateway, across the failover', async () => {
  const r = await kseipRun(['audit', 'egress-ip', EIP, '-o', 'json', '--from', file]);
  assert.equal(r.code, 0, r.stderr);
  const { intervals } = JSON.parse(r.stdout) as {
    intervals: { pod: string; gateway: string; from: { offset: number }; to?: { offset: number } }[];
  };
  const other = scenario.firstActive === 'node-1' ? 'node-2' : 'node-1';
  void other;
  const web0 = intervals.filter((iv) => iv.pod === 'shop/web-0');
  assert.equal(web0[0]?.gateway, scenario.firstActive);
  assert.equal(web0[0]?.to?.offset, scenario.lostAt, 'the first gateway carries web-0 until it is lost');
  assert.notEqual(web0[1]?.gateway, scenario.firstActive);
  assert.equal(web0[1]?.from.offset, scenario.lostAt);
  assert.equal(web0[1]?.to, undefined);
  const web1 = intervals.filter((iv) => iv.pod === 'shop/web-1');
  assert.equal(web1.at(-1)?.to?.offset, scenario.deletedAt, 'web-1 stops when it is deleted');
  assert.ok(!intervals.some((iv) => iv.pod === 'shop/db-0'), 'db-0 is not selected');
});

void test('verify exits 3 and shows the first divergent record when a decision is tampered with', async () => {
  const tampered = records.map((r) =>
    r.topic === TOPICS.decisions && r.offset === 1
      ? { ...r, value: { ...(r.value as Record<string, unknown>), active: 'node-evil' } }
      : r,
  );
  const bad = path.join(dir, 'tampered.jsonl');
  writeFileSync(bad, exportText(tampered));
  const r = await kseipRun(['verify', '--from', bad]);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /DIVERGENCE at kseip\.decisions\.v1 offset 1 /);
  assert.match(r.stdout, /node-evil/);
  const ok = await kseipRun(['verify', '--from', file]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
});

void test('every command has --help; a usage error exits 2', async () => {
  for (const cmd of [
    ['replay'],
    ['audit', 'egress-ip'],
    ['audit', 'pod'],
    ['audit', 'failovers'],
    ['explain', 'pod'],
    ['verify'],
    ['what-if'],
    ['export'],
  ]) {
    const r = await kseipRun([...cmd, '--help']);
    assert.equal(r.code, 0, cmd.join(' '));
    assert.match(r.stdout, /Usage: kseip/);
  }
  assert.equal((await kseipRun(['audit', 'pod', 'a/b/c', '--from', file])).code, 2);
  assert.equal((await kseipRun(['replay', '--until', 'yesterday', '--from', file])).code, 2);
});

void test('export --from adds an audit index: audit answers from it as the replay does, verify checks it', async () => {
  const indexed = path.join(dir, 'indexed.jsonl');
  const ex = await kseipRun(['export', '--from', file, '--to', indexed, '-o', 'json']);
  assert.equal(ex.code, 0, ex.stderr);
  const summary = JSON.parse(ex.stdout) as { index: { intervals: number; decisions: number } };
  assert.ok(summary.index.intervals > 0 && summary.index.decisions > 0, ex.stdout);
  for (const args of [
    ['audit', 'egress-ip', EIP],
    ['audit', 'egress-ip', EIP, '--at', '2026-03-01T12:00:11.500Z', '-o', 'json'],
    ['audit', 'egress-ip', EIP, '--from', '2026-03-01T12:00:12Z', '--to', '2026-03-01T12:00:20Z'],
    ['audit', 'pod', 'shop/web-1', '-o', 'json'],
    ['audit', 'pod', 'shop/db-0'],
    ['audit', 'failovers'],
    ['audit', 'failovers', '--ip', EIP, '-o', 'json'],
  ]) {
    const replayed = await kseipRun([...args, '--from', file]);
    const fromIndex = await kseipRun([...args, '--from', indexed]);
    assert.equal(fromIndex.stdout, replayed.stdout, args.join(' '));
  }
  const ok = await kseipRun(['verify', '--from', indexed]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /and so does the audit index \(\d+ intervals\)/);
  // One gateway of the index changed in place: verify names the line; --replay ignores the index.
  const text = readFileSync(indexed, 'utf8');
  const forged = text.replace(
    `"gateway":"${scenario.firstActive}"`,
    `"gateway":"${scenario.firstActive === 'node-1' ? 'node-3' : 'node-1'}"`,
  );
  assert.notEqual(forged, text);
  const bad = path.join(dir, 'forged-index.jsonl');
  writeFileSync(bad, forged);
  const v = await kseipRun(['verify', '--from', bad]);
  assert.equal(v.code, 3, v.stdout + v.stderr);
  assert.match(
    v.stdout,
    /^DIVERGENCE at audit index line 1: audit index differs from the replayed history\n/,
  );
  const honest = await kseipRun(['audit', 'pod', 'shop/web-0', '--from', file]);
  assert.equal(
    (await kseipRun(['audit', 'pod', 'shop/web-0', '--replay', '--from', bad])).stdout,
    honest.stdout,
  );
  assert.notEqual((await kseipRun(['audit', 'pod', 'shop/web-0', '--from', bad])).stdout, honest.stdout);
});

void test('events tail and grep read an export file: filters, offsets, exit 5 when grep finds nothing', async () => {
  const tail = await kseipRun(['events', 'tail', '--from', file, '--last', '2']);
  assert.equal(tail.code, 0, tail.stderr);
  assert.match(
    tail.stdout,
    /^OFFSET +TIME +TERM +TYPE +OBJECT +DETAILS\n12 +\S+ +1 +NodeLost +Node \S+ +.*\n13 +\S+ +1 +PodDeleted +Pod shop\/web-1\n$/,
  );
  const grep = await kseipRun([
    'events',
    'grep',
    '10\\.1\\.0\\.[67]',
    '--kind',
    'Pod',
    '--from',
    file,
    '-o',
    'json',
  ]);
  assert.equal(grep.code, 0, grep.stderr);
  const rows = grep.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { offset: number; key: string });
  assert.deepEqual(
    rows.map((r) => `${r.offset} ${r.key}`),
    ['9 Pod/shop/web-1', '10 Pod/shop/db-0'],
  );
  const window = await kseipRun([
    'events',
    'grep',
    'node-',
    '--topic',
    'decisions',
    '--type',
    'GatewayFailedOver',
    '--since',
    '2026-03-01T12:00:12Z',
    '--until',
    '2026-03-01T12:00:12Z',
    '--from',
    file,
  ]);
  assert.equal(window.code, 0, window.stderr);
  assert.match(
    window.stdout,
    /\n\d+ +2026-03-01T12:00:12\.000Z +- +GatewayFailedOver +198\.51\.100\.10 +.*reason=NodeLost/,
  );
  const none = await kseipRun(['events', 'grep', 'no-such-thing', '--from', file]);
  assert.equal(none.code, 5);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /no record of kseip\.cluster-events\.v1 matches/);
  assert.equal(
    (await kseipRun(['events', 'grep', '(', '--from', file])).code,
    2,
    'a bad regex is a usage error',
  );
  assert.equal((await kseipRun(['events', 'tail', '-f', '--from', file])).code, 2, 'a file does not grow');
});

void test('usage errors commander catches itself exit 2 too', async () => {
  for (const args of [['audit', 'pod'], ['audit', 'pod', 'a/b', '--bogus'], ['no-such-command'], []]) {
    const r = await kseipRun(args);
    assert.equal(r.code, 2, `kseip ${args.join(' ')}: ${r.stderr}`);
  }
  for (const cmd of [['events', 'tail'], ['events', 'grep'], ['events'], ['audit'], []]) {
    const r = await kseipRun([...cmd, '--help']);
    assert.equal(r.code, 0, cmd.join(' '));
    assert.match(r.stdout, /Usage: kseip/);
  }
});

void test('output larger than a pipe buffer arrives whole (kseip exits only once stdout has drained)', async () => {
  // 3,000 records: a JSON output of ~1 MiB, far over the 64 KiB a pipe takes at once.
  const base = scenario.log.find((e) => e.type === 'PodObserved')!;
  const big = path.join(dir, 'big.jsonl');
  writeFileSync(
    big,
    exportText(
      Array.from({ length: 3000 }, (_, i) => ({
        topic: TOPICS.clusterEvents,
        partition: 0,
        offset: i,
        timestamp: Date.parse(base.observedAt),
        key: `Pod/shop/p-${i}`,
        value: { ...base, id: `id-${i}`, object: { ...base.object, name: `p-${i}` } },
      })),
    ),
  );
  const r = await kseipRun(['events', 'tail', '--from-beginning', '-o', 'json', '--from', big]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.length > 512 * 1024, `${r.stdout.length} bytes`);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3000);
  assert.equal((JSON.parse(lines.at(-1)!) as { offset: number }).offset, 2999);
});
