// `npm run bench [name...]`: runs the benchmark scripts one after another and passes their output
// through. Each script measures its subject AND a baseline in the same run, and prints both with
// the budget from its issue. Effectful (spawns processes). Names: the file stem before .bench.ts.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const benchDir = import.meta.dirname;
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
const selected = wanted.length > 0 ? wanted : available;

const results: { name: string; ok: boolean; seconds: number }[] = [];
for (const name of selected) {
  console.log(`\n=== bench: ${name} ===`);
  const started = process.hrtime.bigint();
  const run = spawnSync(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', path.join(benchDir, `${name}.bench.ts`)],
    { stdio: 'inherit', env: { ...process.env, TESTCONTAINERS_RYUK_DISABLED: 'true' } },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  results.push({ name, ok: run.status === 0, seconds });
}
console.log('\n=== summary ===');
for (const r of results)
  console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(16)} ${r.seconds.toFixed(1)} s`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
