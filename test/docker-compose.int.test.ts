// docker-compose.yml stays valid and lists the control-plane services (checked by docker-compose
// itself, which resolves anchors, merges and interpolation exactly as it will on a laptop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { repoRoot } from '../src/devenv/artifacts.ts';

void test('docker-compose.yml validates and defines Kafka plus the control plane', () => {
  const rendered = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: repoRoot,
    env: { ...process.env, KUBECONFIG: '/dev/null' },
    encoding: 'utf8',
  });
  const config = parse(rendered) as { services: Record<string, { command?: string[]; image: string }> };
  assert.deepEqual(Object.keys(config.services).sort(), [
    'kafka',
    'liveness',
    'projector',
    'status-writer',
    'watcher',
  ]);
  assert.match(config.services.kafka?.image ?? '', /^apache\/kafka:4\./);
  assert.deepEqual(config.services.watcher?.command, ['node', 'src/watcher/main.ts']);
});
