// Writes the Strimzi overlay's KafkaUsers and workload patches from src/contracts/topic-access.ts.
// Effectful (writes files); run it after editing the access matrix:
//   node_modules/.bin/node src/contracts/write-strimzi-access.ts
// test/strimzi-access.unit.test.ts fails while the committed files differ from what this writes.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderStrimziAccessFiles } from './strimzi-access.ts';

export const strimziOverlayDir = path.resolve(import.meta.dirname, '../../k8s/overlays/strimzi');

for (const { file, text } of renderStrimziAccessFiles()) {
  writeFileSync(path.join(strimziOverlayDir, file), text);
  console.log(`wrote ${path.join(strimziOverlayDir, file)}`);
}
