// `kseip --version`: the package version, and the commit the image was built from when its build
// recorded one (KSEIP_COMMIT, the same source as kseip_build_info: src/lib/build-info.ts).
import { readBuildInfo, type BuildInfo } from '../lib/build-info.ts';

/** Pure: "0.1.0" or "0.1.0 (commit 1a2b3c4d5e6f)". */
export function renderVersion(info: BuildInfo): string {
  return info.commit === 'unknown' ? info.version : `${info.version} (commit ${info.commit.slice(0, 12)})`;
}

export function readVersion(env: NodeJS.ProcessEnv = process.env): string {
  return renderVersion(readBuildInfo(env));
}
