// --from: a file that exists, a time where the command takes one, and otherwise a usage error
// that says which formats are accepted; a mistyped time is never read as a file name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { looksLikeTime, parseFromArg } from './from-arg.ts';

const now = Date.parse('2026-11-24T20:00:00Z');
const files = new Set(['export.jsonl', '5m']);
const opts = (acceptsTime: boolean) => ({ acceptsTime, nowMs: now, fileExists: (f: string) => files.has(f) });

void test('given a time on a window command, then the time; an age counts back from now', () => {
  assert.deepEqual(parseFromArg('2026-11-24T19:52:02Z', opts(true)), {
    _tag: 'Right',
    right: { kind: 'time', ms: Date.parse('2026-11-24T19:52:02Z') },
  });
  assert.deepEqual(parseFromArg('10m', opts(true)), {
    _tag: 'Right',
    right: { kind: 'time', ms: now - 600_000 },
  });
});

void test('given an existing file, then the file (also on window commands)', () => {
  assert.deepEqual(parseFromArg('export.jsonl', opts(true)), {
    _tag: 'Right',
    right: { kind: 'file', file: 'export.jsonl' },
  });
  // Where times are not accepted, an existing file of that name is simply the file.
  assert.deepEqual(parseFromArg('5m', opts(false)), { _tag: 'Right', right: { kind: 'file', file: '5m' } });
});

void test('given a mistyped time, then an error naming the accepted formats, not "file not found" alone', () => {
  for (const bad of ['2026-11-24T25:00Z', '2026-13-01', '5x', '10min', '2026-11-24 25:32', '19:52']) {
    assert.ok(looksLikeTime(bad), bad);
    const r = parseFromArg(bad, opts(true));
    assert.equal(r._tag, 'Left', bad);
    assert.match(
      (r as { left: string }).left,
      /^not a valid time, and no such file; --from takes an export file \(kseip export --to\) or a time: RFC 3339 .* or an age \(90s, 10m, 2h, 7d\)$/,
    );
  }
});

void test('given a missing file, then "no such file" and what --from takes', () => {
  assert.deepEqual(parseFromArg('exprot.jsonl', opts(true)), {
    _tag: 'Left',
    left: 'no such file; --from takes an export file (kseip export --to) or a time: RFC 3339 (2026-11-24T19:52:02Z, 2026-11-24T14:32:00+01:00) or an age (90s, 10m, 2h, 7d)',
  });
  assert.deepEqual(parseFromArg('exprot.jsonl', opts(false)), {
    _tag: 'Left',
    left: 'no such file; --from takes an export file (kseip export --to)',
  });
  assert.match(
    (parseFromArg('10m', opts(false)) as { left: string }).left,
    /takes no time on this command \(times go to --since/,
  );
  for (const plain of ['export.jsonl', 'log', './a-b', 'dump-2026.jsonl'])
    assert.equal(looksLikeTime(plain), false, plain);
});
