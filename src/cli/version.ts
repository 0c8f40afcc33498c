// `kseip --version`: the package version, and the git commit when the build recorded one (the
// Dockerfile writes build-info.json from its GIT_COMMIT build argument). Effectful: reads both
// files from the installation's root; a checkout without build-info.json prints the version alone.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readOptionalFile } from '../lib/kafka-security.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** Pure: "0.1.0" or "0.1.0 (commit 1a2b3c4d5e6f)". */
export function renderVersion(version: string, buildInfo: { commit?: unknown } | undefined): string {
  const commit =
    typeof buildInfo?.commit === 'string' && buildInfo.commit !== '' ? buildInfo.commit : undefined;
  return commit === undefined ? version : `${version} (commit ${commit.slice(0, 12)})`;
}

export function readVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const info = readOptionalFile(path.join(root, 'build-info.json'));
  return renderVersion(
    pkg.version,
    info === undefined ? undefined : (JSON.parse(info) as { commit?: unknown }),
  );
}
