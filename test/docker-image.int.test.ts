// The project's Dockerfile builds with the real Docker engine, on a locally made `node:24-slim`
// (scripts/provision/node-image.sh: debootstrap bookworm + this machine's Node 24 and npm, since no
// registry image can be pulled here), and the image is what the k8s/ manifests expect: it runs
// every component's entry point, as uid 1000 by default, with Node 24, production dependencies
// only, and the agent's kernel tools (nft, ip, bridge, arping, conntrack).
//
// Effectful: builds and keeps the tag kube-static-egress-ip:int-test (its layers are the cache
// that makes the next run take seconds), runs throwaway containers with --rm and --network=none.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../src/devenv/artifacts.ts';
import { execTool, tailLines as tail, type ToolResult } from '../src/devenv/tool-exec.ts';

const IMAGE = 'kube-static-egress-ip:int-test';
/** Runs a tool in the repository; `env` replaces this process's environment when given. */
const exec = (cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<ToolResult> =>
  execTool(cmd, args, env === undefined ? {} : { env });

/** `docker run --rm` of the built image, never on a network. */
const inImage = (args: readonly string[], runArgs: readonly string[] = []): Promise<ToolResult> =>
  exec('docker', ['run', '--rm', '--network=none', ...runArgs, IMAGE, ...args]);

let buildMs = 0;
/** Passed as KSEIP_COMMIT, so `kseip --version` in the image must show it (a fixed value keeps the layer cached). */
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

before(async () => {
  const info = await exec('docker', ['info', '--format', '{{.ServerVersion}}']);
  assert.equal(info.code, 0, `no Docker engine (run scripts/provision.sh docker): ${info.stderr}`);
  // Idempotent: inspects one label when the base image is current.
  const base = await exec('bash', [path.join(repoRoot, 'scripts/provision/node-image.sh')]);
  assert.equal(base.code, 0, `the local node:24-slim could not be made:\n${tail(base.stdout + base.stderr)}`);
  const started = performance.now();
  // The legacy builder (no buildx here); --network=host so that apt-get and npm ci reach the
  // package mirrors the way this machine does.
  const build = await exec(
    'docker',
    ['build', '--network=host', '--build-arg', `KSEIP_COMMIT=${COMMIT}`, '-t', IMAGE, '.'],
    {
      ...process.env,
      DOCKER_BUILDKIT: '0',
    },
  );
  buildMs = performance.now() - started;
  assert.equal(build.code, 0, `docker build failed:\n${tail(build.stdout + build.stderr)}`);
  console.log(`docker build: ${Math.round(buildMs)} ms (layers cached from earlier runs are reused)`);
});

void test('the image is built on the local node:24-slim and runs Node 24 as uid 1000', async () => {
  const base = await exec('docker', ['image', 'inspect', '-f', '{{.Id}}', 'node:24-slim']);
  assert.equal(base.code, 0, base.stderr);
  const history = await exec('docker', ['history', '--no-trunc', '-q', IMAGE]);
  assert.ok(history.stdout.includes(base.stdout.trim()), 'the image is not built on the local node:24-slim');
  const who = await inImage(['sh', '-c', 'id -u; node --version; pwd']);
  assert.equal(who.code, 0, who.stderr);
  const [uid, version, cwd] = who.stdout.trim().split('\n');
  assert.equal(uid, '1000');
  assert.match(version ?? '', /^v24\./);
  assert.equal(cwd, '/app');
});

void test('every entry point the manifests name starts in the image (--help exits 0)', async () => {
  for (const main of [
    'src/watcher/main.ts',
    'src/projector/main.ts',
    'src/liveness/main.ts',
    'src/status/main.ts',
    'src/agents/main.ts',
  ]) {
    const r = await inImage(['node', main, '--help']);
    assert.equal(r.code, 0, `${main} --help: ${r.stderr}`);
    assert.match(r.stdout, /--brokers/, main);
    assert.match(r.stdout, /--health-port, env KSEIP_HEALTH_PORT/, main);
  }
  // A bad value stops a component with exit code 2 in the image too.
  const bad = await inImage(['node', 'src/agents/main.ts', '--brokers', 'kafka'], ['-e', 'NODE_NAME=n1']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--brokers \(env KSEIP_BROKERS\): expected a comma-separated list of host:port/);
});

void test('the kseip CLI is on PATH (kubectl exec … -- kseip): --version, the build commit, an offline command', async () => {
  const version = (
    JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const r = await inImage(['sh', '-c', 'command -v kseip && kseip --version']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout, `/usr/local/bin/kseip\n${version} (commit ${COMMIT.slice(0, 12)})\n`);
  // A real command end to end in the image (no Kafka: a missing export file is a usage error, 2),
  // and the completion script renders (every command module loads in production mode).
  const bad = await inImage(['kseip', 'replay', '--from', '/nonexistent.jsonl']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /no such file; --from takes an export file/);
  const completion = await inImage(['kseip', 'completion', 'bash']);
  assert.equal(completion.code, 0, completion.stderr);
  assert.match(completion.stdout, /complete -o default -F _kseip kseip/);
});

void test('production dependencies only, no tests, no dev environment, and the agent tools are installed', async () => {
  const r = await inImage([
    'sh',
    '-c',
    [
      'test -d node_modules/kafkajs && test -d node_modules/@kubernetes/client-node',
      '! test -e node_modules/typescript && ! test -e node_modules/eslint',
      '! find src -name "*.test.ts" | grep -q .',
      // The dev environment (testcontainers, netns clusters, the API server harness) is not shipped.
      '! test -e src/devenv && ! test -e node_modules/testcontainers && ! test -e node_modules/dockerode',
      'for t in nft ip bridge arping conntrack; do command -v $t || exit 1; done',
      'nft --version && ip -V && conntrack --version',
    ].join(' && '),
  ]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /\/arping\n/);
  assert.match(r.stdout, /nftables v1\./);
  assert.match(r.stdout, /iproute2/);
  assert.match(r.stdout, /conntrack v1\./);
});

void test('with NET_ADMIN (as the agent DaemonSet runs it), nft programs a table in its own netns', async () => {
  // --network=none gives the container its own network namespace, so this touches nothing else.
  const r = await inImage(
    ['sh', '-c', 'nft add table inet kseip_probe && nft list tables'],
    ['--user', '0', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW'],
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /table inet kseip_probe/);
});
