// The alerting rules with the real promtool (Debian's prometheus package): `promtool check rules`
// accepts the plain rules file and the groups of the PrometheusRule, and `promtool test rules`
// passes the unit tests in k8s/monitoring/kseip.rules.test.yaml (input series → which alerts fire
// when, with their labels and rendered annotations). Effectful: runs promtool, writes one
// temporary file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot } from '../src/devenv/artifacts.ts';
import { execTool } from '../src/devenv/tool-exec.ts';

const kit = path.join(repoRoot, 'k8s/monitoring');

async function promtool(args: readonly string[]): Promise<string> {
  const r = await execTool('promtool', args, { cwd: kit });
  assert.notEqual(
    r.code,
    -1,
    `promtool could not run (scripts/provision.sh packages installs it): ${r.stderr}`,
  );
  assert.equal(r.code, 0, `promtool ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

void test('promtool check rules: the plain rules file and the PrometheusRule groups', async (t) => {
  const out = await promtool(['check', 'rules', 'kseip.rules.yaml']);
  assert.match(out, /SUCCESS: \d+ rules found/);
  const dir = mkdtempSync(path.join(tmpdir(), 'kseip-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (parse(readFileSync(path.join(kit, 'prometheusrule.yaml'), 'utf8')) as { spec: unknown }).spec;
  const file = path.join(dir, 'from-prometheusrule.yaml');
  writeFileSync(file, stringify(spec));
  assert.match(await promtool(['check', 'rules', file]), /SUCCESS: \d+ rules found/);
});

void test('promtool test rules: every alert fires (and stays quiet) as its unit tests say', async () => {
  const out = await promtool(['test', 'rules', 'kseip.rules.test.yaml']);
  assert.match(out, /SUCCESS/);
});
