// Runs the fold of fold.ts over a log source (file or Kafka) with progress on stderr. Effectful
// only through the source and the progress callback; commands pass their own per-step work.
import { TOPICS } from '../contracts/topics.ts';
import type { CliContext } from './context.ts';
import {
  decodeEventRecord,
  initialFold,
  isPast,
  stepFold,
  type Fold,
  type Step,
  type Until,
} from './core/fold.ts';
import type { LogRecord } from './core/log-file.ts';
import type { LogSource } from './log-source.ts';

export const PROGRESS_EVERY = 100_000;

export interface ReplayOptions {
  until?: Until;
  onStep?: (step: Step, fold: Fold) => void;
  /** Called for records of cluster-events that do not decode (the projector dead-letters them). */
  onSkipped?: (r: LogRecord, reason: string) => void;
}

/** A replay fed one cluster-events record at a time (export folds while it copies). */
export interface Replay {
  onRecord(r: LogRecord): void;
  /** Ends the progress output and returns the fold. */
  finish(): Fold;
}

export function createReplay(ctx: CliContext, opts: ReplayOptions = {}): Replay {
  const fold = initialFold();
  let done = false;
  let seen = 0;
  return {
    onRecord(r) {
      if (done) return;
      seen++;
      if (seen % PROGRESS_EVERY === 0) ctx.writeErr(`replayed ${seen} records (offset ${r.offset})\n`);
      const d = decodeEventRecord(r);
      if (isPast(opts.until, r.offset, d.ok ? d.event : undefined, r.timestamp)) {
        done = true;
        return;
      }
      if (!d.ok) {
        fold.skipped++;
        opts.onSkipped?.(r, d.reason);
        return;
      }
      const step = stepFold(fold, d.event, r.offset);
      opts.onStep?.(step, fold);
    },
    finish() {
      if (seen >= PROGRESS_EVERY) ctx.writeErr(`replayed ${seen} records: done\n`);
      return fold;
    },
  };
}

export async function replayLog(source: LogSource, ctx: CliContext, opts: ReplayOptions = {}): Promise<Fold> {
  const replay = createReplay(ctx, opts);
  await source.read(TOPICS.clusterEvents, (r) => replay.onRecord(r));
  return replay.finish();
}
