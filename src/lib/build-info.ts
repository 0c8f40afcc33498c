// kseip_build_info{version,commit,component} = 1, the one metric every component registers (the
// Prometheus "info" pattern: join on it to see which build a series came from, and to spot a
// rollout that left pods on two versions). Effectful only in that it registers a gauge.
//
// version is package.json's; commit comes from KSEIP_COMMIT, which the image build sets from its
// KSEIP_COMMIT build argument (Dockerfile), "unknown" when it was not given.
import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';

export const BUILD_INFO_METRIC = 'kseip_build_info';

export interface BuildInfo {
  version: string;
  commit: string;
}

export function readBuildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  const commit = env.KSEIP_COMMIT?.trim();
  return {
    version: typeof pkg.version === 'string' ? pkg.version : 'unknown',
    commit: commit === undefined || commit === '' ? 'unknown' : commit,
  };
}

/**
 * Sets kseip_build_info{component,...} = 1 in the registry. Several components in one process
 * (the dev stack, tests) share the default registry: each adds its own label set to one gauge.
 */
export function registerBuildInfo(
  registry: Registry,
  component: string,
  info: BuildInfo = readBuildInfo(),
): void {
  const existing = registry.getSingleMetric(BUILD_INFO_METRIC);
  const gauge =
    existing instanceof Gauge
      ? (existing as Gauge<'version' | 'commit' | 'component'>)
      : new Gauge({
          name: BUILD_INFO_METRIC,
          help: 'Always 1; the labels say which build of which component this process runs',
          labelNames: ['version', 'commit', 'component'] as const,
          registers: [registry],
        });
  gauge.set({ version: info.version, commit: info.commit, component }, 1);
}
