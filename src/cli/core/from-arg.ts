// What a `--from` value names: an export file, or (on the commands with a time window) the window
// start. Pure over the clock and a file-existence check. A value that looks like an attempted
// time but does not parse is never taken for a file name (a mistyped `--from 2026-11-24T25:00Z`
// would otherwise read "no such file" at best, or an unrelated file at worst), and a file that
// does not exist is named as such, each with the formats that are accepted. An existing file
// wins over the time reading of its name only where times are not accepted.
import { left, right, type Either } from 'fp-ts/lib/Either.js';
import { parseTimeArg } from '../topic-records.ts';

export type FromArg =
  { readonly kind: 'file'; readonly file: string } | { readonly kind: 'time'; readonly ms: number };

export const TIME_FORMATS =
  'RFC 3339 (2026-11-24T19:52:02Z, 2026-11-24T14:32:00+01:00) or an age (90s, 10m, 2h, 7d)';

/** Digits with date/time punctuation (2026-11-24, 19:52, 2026-11-24T19), or a number with a unit (5x, 10min). */
export function looksLikeTime(v: string): boolean {
  return (/^[0-9][0-9:. TZtz+-]*$/.test(v) && /[-:Tt]/.test(v)) || /^\d+(\.\d+)?[a-zA-Z]{1,5}$/.test(v);
}

export function parseFromArg(
  value: string,
  opts: {
    readonly acceptsTime: boolean;
    readonly nowMs: number;
    readonly fileExists: (f: string) => boolean;
  },
): Either<string, FromArg> {
  if (opts.acceptsTime) {
    const t = parseTimeArg(value, opts.nowMs);
    if (t._tag === 'Right') return right({ kind: 'time', ms: t.right });
  }
  if (opts.fileExists(value)) return right({ kind: 'file', file: value });
  const file = 'an export file (kseip export --to)';
  if (opts.acceptsTime)
    return left(
      `${looksLikeTime(value) ? 'not a valid time, and no such file' : 'no such file'}; --from takes ${file} or a time: ${TIME_FORMATS}`,
    );
  return left(
    looksLikeTime(value)
      ? `no such file, and --from takes no time on this command (times go to --since, --until or --at where the command has them: ${TIME_FORMATS}); --from takes ${file}`
      : `no such file; --from takes ${file}`,
  );
}
