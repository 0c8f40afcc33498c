// Where provisioning (scripts/provision.sh) put the built artifacts: reads .cache/env.
// Effectful (reads a file). The dev environment and tests call requireArtifact() so that a
// missing artifact fails loudly with the command that makes it, never silently skips.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const cacheDir = process.env.KSEIP_CACHE ?? path.join(repoRoot, '.cache');

function readArtifacts(): Map<string, string> {
  let text = '';
  try {
    text = readFileSync(path.join(cacheDir, 'env'), 'utf8');
  } catch {
    return new Map();
  }
  const entries = text
    .split('\n')
    .filter((line) => line.includes('='))
    .map((line): [string, string] => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
  return new Map(entries);
}

/** The value provisioning recorded under `key`, or an error that says how to produce it. */
export function requireArtifact(key: string): string {
  const value = readArtifacts().get(key);
  if (value === undefined || value === '') {
    throw new Error(
      `provisioned artifact ${key} is missing from ${path.join(cacheDir, 'env')}: run 'make provision' (or scripts/provision.sh) first`,
    );
  }
  return value;
}
