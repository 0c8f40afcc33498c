// Which process owns a dev-environment container (a Kafka broker, a real node), so that what a
// crashed or SIGKILLed run left behind is removed by the next run and nothing else is. Effectful:
// lists and removes Docker containers. Ryuk, testcontainers' own reaper, cannot run here (its
// image cannot be pulled), so this is the reaper.
import { execFileSync } from 'node:child_process';
import type { Logger } from '../lib/log.ts';
import { processStartTime } from './netcluster.ts';

/** Label on every container a harness starts: `<pid>-<start time>` of the owning process. */
export const OWNER_LABEL = 'io.kseip.owner';
/** This process, as OWNER_LABEL says it: a recycled PID has another start time. */
export const SELF_OWNER = `${process.pid}-${processStartTime(process.pid) ?? ''}`;

/**
 * Removes (with their volumes) the containers whose owner process is gone. A container is only
 * touched if its owner label names a dead process, so a concurrent run of another engineer is
 * never hit. Returns the IDs removed.
 */
export function sweepContainersOfDeadOwners(log: Logger): string[] {
  let lines: string[];
  try {
    lines = execFileSync(
      'docker',
      ['ps', '-a', '--filter', `label=${OWNER_LABEL}`, '--format', `{{.ID}} {{.Label "${OWNER_LABEL}"}}`],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .split('\n')
      .filter((l) => l.trim() !== '');
  } catch {
    return [];
  }
  const stale = lines
    .map((l) => l.split(' ') as [string, string])
    .filter(([, owner]) => {
      const [pid, start] = owner.split('-');
      return processStartTime(Number(pid)) !== start;
    })
    .map(([id]) => id);
  if (stale.length > 0) {
    log.warn({ containers: stale }, 'removing containers of a run that died');
    execFileSync('docker', ['rm', '-f', '-v', ...stale], { stdio: 'ignore' });
  }
  return stale;
}
