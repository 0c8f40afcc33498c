// kseip's operator conventions, through bin/kseip and bin/kubectl-kseip as child processes on a
// scripted export file (no Kafka, no cluster): -o table|wide|json|yaml on the printing commands,
// --version, -n for pods and events, --from that refuses a mistyped time or a missing file (exit
// 2, naming the formats), the bash completion script run by a real bash, and the packaging: the
// kubectl plugin entry point, its krew manifest and the image's Dockerfile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { buildScenario, EIP, exportRecords, exportText } from './support/egress-scenario.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

async function runBin(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(path.join(root, 'bin', bin), args, { cwd: root, env });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
const kseip = (args: readonly string[]) => runBin('kseip', args);

const dir = mkdtempSync(path.join(tmpdir(), 'kseip-conventions-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'log.jsonl');
writeFileSync(file, exportText(exportRecords(buildScenario().log)));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};

void test('--version prints the package version', async () => {
  const r = await kseip(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${pkg.version}\n`);
});

void test('-o yaml is the -o json document; -o wide adds columns to -o table', async () => {
  for (const args of [
    ['audit', 'pod', 'shop/web-1'],
    ['audit', 'egress-ip', EIP],
    ['audit', 'failovers'],
    ['replay'],
    ['explain', 'pod', 'shop/web-0'],
    ['verify'],
  ]) {
    const json = await kseip([...args, '--from', file, '-o', 'json']);
    const yaml = await kseip([...args, '--from', file, '-o', 'yaml']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.deepEqual(parse(yaml.stdout), JSON.parse(json.stdout), args.join(' '));
  }
  const table = await kseip(['audit', 'pod', 'shop/web-1', '--from', file]);
  const wide = await kseip(['audit', 'pod', 'shop/web-1', '--from', file, '-o', 'wide']);
  assert.match(table.stdout.split('\n')[0]!, /OFFSETS$/);
  assert.match(wide.stdout.split('\n')[0]!, /OFFSETS +DURATION$/);
  // A closed interval's duration is its TO minus its FROM.
  const closed = wide.stdout.split('\n').find((l) => /^\S+Z +\S+Z /.test(l))!;
  const [from, to] = closed.split(/ +/);
  assert.ok(closed.trimEnd().endsWith(` ${(Date.parse(to!) - Date.parse(from!)) / 1000}s`), closed);
  const failovers = await kseip(['audit', 'failovers', '--from', file, '-o', 'wide']);
  assert.match(failovers.stdout.split('\n')[0]!, /STANDBYS +SLOT +OWNER +ID$/);
  const replay = await kseip(['replay', '--from', file, '-o', 'wide']);
  assert.match(replay.stdout.split('\n')[1]!, /NODE +SLOT$/);
});

void test('events: -o yaml is one document per record, -o wide adds the key and the broker time', async () => {
  const args = ['events', 'tail', '--from-beginning', '--from', file, '-n', 'shop', '--kind', 'Pod'];
  const json = await kseip([...args, '-o', 'json']);
  const yaml = await kseip([...args, '-o', 'yaml']);
  const lines = json.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { value: { object: { namespace: string } } });
  assert.ok(lines.length > 1);
  assert.ok(lines.every((l) => l.value.object.namespace === 'shop'));
  assert.deepEqual(
    parseAllDocuments(yaml.stdout).map((d) => d.toJS() as unknown),
    lines,
  );
  const wide = await kseip([...args, '-o', 'wide']);
  assert.match(wide.stdout.split('\n')[0]!, /OBJECT +KEY +LOGGED +DETAILS$/);
  assert.match(wide.stdout.split('\n')[1]!, /^0:\d+ /);
});

void test('-n: a pod by name in a namespace is the same as namespace/name; a contradiction is a usage error', async () => {
  const full = await kseip(['audit', 'pod', 'shop/web-1', '--from', file, '-o', 'json']);
  const byName = await kseip(['audit', 'pod', 'web-1', '-n', 'shop', '--from', file, '-o', 'json']);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byName.stdout, full.stdout);
  const explain = await kseip(['explain', 'pod', '-n', 'shop', 'web-0', '--from', file]);
  assert.match(explain.stdout, /^pod shop\/web-0 /);
  const clash = await kseip(['audit', 'pod', 'shop/web-1', '-n', 'other', '--from', file]);
  assert.equal(clash.code, 2);
  assert.match(clash.stderr, /is in namespace shop, but -n says other/);
});

void test('--from: a mistyped time or a missing file is a usage error naming the accepted formats', async () => {
  const cases: [string[], RegExp][] = [
    [
      ['audit', 'egress-ip', EIP, '--from', '2026-03-01T25:00:00Z', '--from', file],
      /not a valid time, and no such file; --from takes an export file .* or a time: RFC 3339/,
    ],
    [['audit', 'egress-ip', EIP, '--from', '5x', '--from', file], /'5x' is invalid\. not a valid time/],
    [
      ['replay', '--from', path.join(dir, 'missing.jsonl')],
      /no such file; --from takes an export file \(kseip export --to\)/,
    ],
    [
      ['events', 'tail', '--from', '2026-03-01'],
      /takes no time on this command \(times go to --since, --until or --at/,
    ],
    [['export', '--to', path.join(dir, 'x.jsonl'), '--from', 'nope.jsonl'], /no such file/],
  ];
  for (const [args, message] of cases) {
    const r = await kseip(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  // And a valid window start next to the file still works.
  const ok = await kseip(['audit', 'egress-ip', EIP, '--from', '2026-03-01T12:00:12Z', '--from', file]);
  assert.equal(ok.code, 0, ok.stderr);
});

/** What the bash completion offers for a command line ending in `words` (the last one being typed). */
async function complete(script: string, words: readonly string[]): Promise<string[]> {
  const line = ['kseip', ...words];
  const program = [
    script,
    `COMP_WORDS=(${line.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${line.length - 1}`,
    '_kseip',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const { stdout } = await run('bash', ['--norc', '-c', program], { cwd: dir });
  return stdout.split('\n').filter((w) => w !== '');
}

void test('completion bash: commands, subcommands, options (global ones too), choices and files', async () => {
  const r = await kseip(['completion', 'bash']);
  assert.equal(r.code, 0, r.stderr);
  const script = r.stdout;
  assert.deepEqual(await complete(script, ['']), [
    'events',
    'replay',
    'audit',
    'explain',
    'verify',
    'what-if',
    'export',
    'completion',
  ]);
  assert.deepEqual(await complete(script, ['audit', '']), ['egress-ip', 'pod', 'failovers']);
  // Global options before the command and option values are skipped when finding the command.
  assert.deepEqual(await complete(script, ['--brokers', 'k:9092', 'events', 't']), ['tail']);
  assert.deepEqual(await complete(script, ['events', 'tail', '-o', '']), ['table', 'wide', 'json', 'yaml']);
  assert.deepEqual(await complete(script, ['events', 'tail', '--fo']), ['--follow']);
  const options = await complete(script, ['audit', 'pod', '--']);
  for (const o of [
    '--namespace',
    '--from',
    '--output',
    '--replay',
    '--brokers',
    '--kubeconfig',
    '--context',
    '--help',
  ])
    assert.ok(options.includes(o), `${o} in ${options.join(' ')}`);
  assert.deepEqual(await complete(script, ['completion', '']), ['bash', 'zsh']);
  // A value that is a file completes as one (log.jsonl is in the cwd).
  assert.deepEqual(await complete(script, ['replay', '--from', 'lo']), ['log.jsonl']);
});

void test('completion zsh: a compdef script over the same command tree', async () => {
  const r = await kseip(['completion', 'zsh']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^#compdef kseip\n/);
  assert.match(r.stdout, /'kseip audit'\) echo 'egress-ip pod failovers' ;;/);
  assert.match(r.stdout, /compdef _kseip kseip/);
  // The data functions are shared with the bash script (one rendering of the tree).
  const bash = (await kseip(['completion', 'bash'])).stdout;
  const data = (s: string) => s.slice(s.indexOf('__kseip_commands() {'), s.indexOf('__kseip_in() {'));
  assert.equal(data(r.stdout), data(bash));
  assert.equal((await kseip(['completion', 'fish'])).code, 2);
});

void test('kubectl-kseip: the plugin entry point runs kseip, says `kubectl kseip`, reads the cluster by default', async () => {
  const help = await runBin('kubectl-kseip', ['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: kubectl kseip /);
  // An export file needs no cluster...
  const offline = await runBin('kubectl-kseip', ['audit', 'pod', 'shop/web-1', '--from', file, '-o', 'json']);
  assert.equal(offline.code, 0, offline.stderr);
  // ...Kafka does: with a kubeconfig that names no cluster, it fails on the kubeconfig, not on a broker.
  const kubeconfig = path.join(dir, 'empty-kubeconfig');
  writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
  const online = await runBin('kubectl-kseip', ['replay', '--context', 'nope'], {
    ...process.env,
    KUBECONFIG: kubeconfig,
  });
  assert.equal(online.code, 2, online.stderr);
  assert.match(online.stderr, /--context nope: no such context in the kubeconfig/);
});

void test('packaging: package.json declares both executables, the krew manifest points at the plugin', () => {
  assert.deepEqual(pkg.bin, { kseip: './bin/kseip', 'kubectl-kseip': './bin/kubectl-kseip' });
  for (const bin of Object.values(pkg.bin)) accessSync(path.join(root, bin), constants.X_OK);
  const manifest = parse(readFileSync(path.join(root, 'plugins/krew/kseip.yaml'), 'utf8')) as {
    apiVersion: string;
    kind: string;
    metadata: { name: string };
    spec: {
      version: string;
      shortDescription: string;
      platforms: {
        selector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
        uri: string;
        sha256: string;
        bin: string;
        files: { from: string; to: string }[];
      }[];
    };
  };
  assert.equal(manifest.apiVersion, 'krew.googlecontainertools.github.com/v1alpha2');
  assert.equal(manifest.kind, 'Plugin');
  // krew runs `kubectl-<name>`: the name is the part after kubectl- of the declared executable.
  assert.equal(`kubectl-${manifest.metadata.name}`, 'kubectl-kseip');
  assert.equal(manifest.spec.version, `v${pkg.version}`);
  assert.ok(manifest.spec.shortDescription.length > 0 && manifest.spec.shortDescription.length <= 50);
  assert.ok(manifest.spec.platforms.length > 0);
  for (const p of manifest.spec.platforms) {
    assert.equal(`./${p.bin}`, pkg.bin['kubectl-kseip']);
    assert.match(p.sha256, /^[0-9a-f]{64}$/);
    assert.match(p.uri, new RegExp(`^https://.*v${pkg.version.replace(/\./g, '\\.')}.*\\.tar\\.gz$`));
    assert.ok(p.selector.matchExpressions.every((e) => e.key === 'os' && e.operator === 'In'));
    // The archive carries what the entry point runs: bin/ (both launchers), src/, the dependencies.
    const froms = p.files.map((f) => f.from);
    for (const needed of ['bin/*', 'src/*', 'node_modules/*', 'package.json'])
      assert.ok(froms.includes(needed), needed);
  }
  // The plugin execs its sibling bin/kseip, which runs src/cli/main.ts.
  assert.match(readFileSync(path.join(root, 'bin/kubectl-kseip'), 'utf8'), /exec "\$here\/kseip"/);
  assert.match(readFileSync(path.join(root, 'bin/kseip'), 'utf8'), /src\/cli\/main\.ts/);
});

void test('the image installs kseip on PATH: the Dockerfile copies the launcher and links it, .dockerignore admits it', () => {
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^COPY bin\/kseip \.\/bin\/kseip$/m);
  assert.match(dockerfile, /^RUN ln -s \/app\/bin\/kseip \/usr\/local\/bin\/kseip$/m);
  // Before USER node: the link is made as root; the CLI's own sources are in the copied src/.
  assert.ok(dockerfile.indexOf('ln -s /app/bin/kseip') < dockerfile.lastIndexOf('USER node'));
  assert.match(dockerfile, /^COPY src \.\/src$/m);
  const ignore = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n');
  assert.ok(ignore.includes('!bin/kseip'));
});
