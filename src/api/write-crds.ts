// Writes k8s/crds/ and the Helm chart's crds/ from src/api/crds.ts. Effectful (writes files); run
// it after editing the API:
//   node_modules/.bin/node src/api/write-crds.ts
// src/api/crds.unit.test.ts and test/helm-chart.unit.test.ts fail while the committed files differ
// from what this writes.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { renderChartCrdFiles, renderCrdFiles } from './crds.ts';

export const crdDir = path.resolve(import.meta.dirname, '../../k8s/crds');
export const chartCrdDir = path.resolve(import.meta.dirname, '../../charts/kube-static-egress-ip/crds');

for (const [dir, files] of [
  [crdDir, renderCrdFiles()],
  [chartCrdDir, renderChartCrdFiles()],
] as const) {
  mkdirSync(dir, { recursive: true });
  for (const { file, text } of files) {
    writeFileSync(path.join(dir, file), text);
    console.log(`wrote ${path.join(dir, file)}`);
  }
}
