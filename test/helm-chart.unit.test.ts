// The Helm chart's static parts agree with the sources they copy: its crds/ hold what
// src/api/crds.ts renders (`node src/api/write-crds.ts` writes both k8s/crds and them), and its
// appVersion, the default image tag, is the package version and the tag the kustomize base sets.
// Pure file reads; helm itself runs in test/helm-chart.int.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { renderChartCrdFiles } from '../src/api/crds.ts';

const root = path.resolve(import.meta.dirname, '..');
const chart = path.join(root, 'charts/kube-static-egress-ip');

void test('the chart crds/ are what src/api/crds.ts renders (run `node src/api/write-crds.ts` after editing it)', () => {
  const files = renderChartCrdFiles();
  assert.deepEqual(readdirSync(path.join(chart, 'crds')).sort(), files.map((f) => f.file).sort());
  for (const { file, text } of files)
    assert.equal(readFileSync(path.join(chart, 'crds', file), 'utf8'), text, `crds/${file} is stale`);
});

void test('appVersion (the default image tag) is the package version and the kustomize base tag', () => {
  const meta = parse(readFileSync(path.join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string };
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const kustomization = parse(readFileSync(path.join(root, 'k8s/base/kustomization.yaml'), 'utf8')) as {
    images: { name: string; newName: string; newTag: string }[];
  };
  const values = parse(readFileSync(path.join(chart, 'values.yaml'), 'utf8')) as {
    image: { repository: string };
  };
  assert.equal(meta.appVersion, pkg.version);
  assert.deepEqual(kustomization.images, [
    { name: 'kube-static-egress-ip', newName: values.image.repository, newTag: meta.appVersion },
  ]);
});
