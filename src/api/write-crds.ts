// Writes k8s/crds/ from src/api/crds.ts. Effectful (writes files); run it after editing the API:
//   node_modules/.bin/node src/api/write-crds.ts
// src/api/crds.unit.test.ts fails while the committed files differ from what this writes.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { renderCrdFiles } from './crds.ts';

export const crdDir = path.resolve(import.meta.dirname, '../../k8s/crds');

mkdirSync(crdDir, { recursive: true });
for (const { file, text } of renderCrdFiles()) {
  writeFileSync(path.join(crdDir, file), text);
  console.log(`wrote ${path.join(crdDir, file)}`);
}
