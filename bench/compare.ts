// Before/after comparison of a benchmark script: runs the baseline checkout's copy of the script
// and this checkout's at the same time, each in a fresh process with the same arguments, for a
// number of rounds; reads the table every script prints last (`measure  value  goal  verdict`,
// columns two spaces apart); and prints both sides' figures next to each other, the best value
// per side. Effectful (spawns).
//
// Why at the same time: on a shared machine the load changes from minute to minute, and runs one
// after the other then compare the load more than the code; two processes side by side (one core
// each on a 2-core machine) see the same load.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const repoRoot = path.resolve(import.meta.dirname, '..');

/** The rows of the last `measure value goal verdict` table in a script's output. */
export function parseReportTable(output: string): Map<string, string> {
  const lines = output.split('\n');
  const header = lines.findLastIndex((l) => /^measure\s{2,}value\s{2,}goal\s{2,}verdict/.test(l));
  const rows = new Map<string, string>();
  if (header < 0) return rows;
  for (const line of lines.slice(header + 1)) {
    const [measure, value] = line.trim().split(/\s{2,}/);
    if (measure !== undefined && value !== undefined) rows.set(measure, value);
  }
  return rows;
}

/** The leading number of a figure such as "160,290 events/s" or "1.060 ms". */
function numberOf(value: string): number {
  return Number((/^[\d,.]+/.exec(value)?.[0] ?? 'NaN').replace(/,/g, ''));
}

/** Higher is better for rates, lower for times and sizes. */
const higherIsBetter = (value: string): boolean => /\/s\b/.test(value);

function runScript(file: string, args: readonly string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', file, ...args], {
      cwd: path.dirname(path.dirname(file)),
      env: { ...process.env, KSEIP_BENCH_BASELINE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

export async function compareWithBaseline(
  script: string,
  baseline: string,
  args: readonly string[],
  rounds: number,
): Promise<number> {
  const relative = path.relative(repoRoot, script);
  const sides = [
    { name: 'baseline', file: path.resolve(baseline, relative), runs: [] as Map<string, string>[] },
    { name: 'this checkout', file: script, runs: [] as Map<string, string>[] },
  ];
  if (!existsSync(sides[0]!.file)) {
    console.error(`no ${relative} in the baseline checkout ${baseline}`);
    return 2;
  }
  for (let round = 1; round <= rounds; round++) {
    const runs = await Promise.all(sides.map((side) => runScript(side.file, args)));
    for (const [i, side] of sides.entries()) {
      const run = runs[i]!;
      console.log(`--- round ${round}/${rounds}: ${side.name} (${side.file})`);
      process.stdout.write(run.out);
      if (run.code !== 0) {
        console.error(`${side.name} failed with ${run.code}`);
        return 1;
      }
      side.runs.push(parseReportTable(run.out));
    }
  }
  const measures = [...new Set(sides.flatMap((s) => s.runs.flatMap((r) => [...r.keys()])))];
  const best = (side: (typeof sides)[number], measure: string): string => {
    const values = side.runs.map((r) => r.get(measure)).filter((v): v is string => v !== undefined);
    if (values.length === 0) return '-';
    const pick = higherIsBetter(values[0]!) ? Math.max : Math.min;
    const n = pick(...values.map(numberOf));
    return values.find((v) => numberOf(v) === n) ?? values[0]!;
  };
  const rows = measures.map((m) => {
    const before = best(sides[0]!, m);
    const after = best(sides[1]!, m);
    const a = numberOf(before);
    const b = numberOf(after);
    const ratio = Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? `×${(b / a).toFixed(2)}` : '';
    return [m, before, after, ratio];
  });
  const header = ['measure', `before (best of ${rounds})`, `after (best of ${rounds})`, 'after/before'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]): string => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(`\nbefore: ${baseline}\nafter:  ${repoRoot}\n`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  return 0;
}
