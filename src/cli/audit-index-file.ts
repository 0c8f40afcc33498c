// Reads the audit index of an export file (core/audit-index.ts): the trailer from the file's last
// line, then only the index section it points at, never the records before it. Effectful (file
// reads). A file without a trailer (an export made with --no-index, or by an older kseip) has no
// index: the audit commands then replay the log instead.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Either } from 'fp-ts/lib/Either.js';
import { left } from 'fp-ts/lib/Either.js';
import {
  INDEX_LINE_PREFIX,
  parseIndexBody,
  parseTrailer,
  type AuditIndex,
  type IndexError,
} from './core/audit-index.ts';
import { forEachLine } from './log-source.ts';

const INTERVAL_PREFIX = `${INDEX_LINE_PREFIX}"interval":`;
const DECISION_PREFIX = `${INDEX_LINE_PREFIX}"decision":`;

const TAIL_BYTES = 64 * 1024;

/**
 * undefined: the file has no audit index. Left: it has one that cannot be used (say why).
 * `mentions`: keep only the lines that contain this text (a query's egress IP or pod, as JSON
 * writes it): a cheap substring test spares parsing the rest of a long index.
 */
export function readAuditIndex(path: string, mentions?: string): Either<IndexError, AuditIndex> | undefined {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const tailStart = Math.max(0, size - TAIL_BYTES);
    const tail = Buffer.alloc(size - tailStart);
    readSync(fd, tail, 0, tail.length, tailStart);
    // In bytes, not characters: `start` is a byte offset.
    let stop = tail.length;
    while (stop > 0 && tail[stop - 1] === 10) stop--;
    const nl = tail.lastIndexOf(10, stop - 1);
    const last = tail.toString('utf8', nl + 1, stop);
    const trailer = parseTrailer(last);
    if (trailer._tag === 'Left') return last.startsWith('{"index"') ? trailer : undefined;
    const { start } = trailer.right;
    const end = tailStart + nl + 1;
    if (nl < 0 || !(start >= 0 && start <= end))
      return left({ _tag: 'IndexError', reason: `audit index start ${start} is outside the file` });
    const lines: string[] = [];
    let intervals = 0;
    let decisions = 0;
    forEachLine(
      path,
      (line) => {
        if (line === '') return;
        if (line.startsWith(INTERVAL_PREFIX)) intervals++;
        else if (line.startsWith(DECISION_PREFIX)) decisions++;
        else return void lines.push(line); // not an index line: parseIndexBody says so
        if (mentions === undefined || line.includes(mentions)) lines.push(line);
      },
      { start, end },
    );
    if (intervals !== trailer.right.intervals || decisions !== trailer.right.decisions)
      return left({
        _tag: 'IndexError',
        reason: `audit index holds ${intervals} intervals and ${decisions} decisions, its trailer says ${trailer.right.intervals} and ${trailer.right.decisions}`,
      });
    return parseIndexBody(trailer.right, lines, mentions !== undefined);
  } finally {
    closeSync(fd);
  }
}
