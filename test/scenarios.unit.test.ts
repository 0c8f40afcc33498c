// Scenario tests: every file in test/scenarios/ runs from Kubernetes YAML through parse, the
// projection, the status model and the agent's kernel model (test/support/scenarios.ts says how),
// and its output sections must equal what the code computes now. After an intended change:
//
//   UPDATE_GOLDEN=1 node --disable-warning=ExperimentalWarning --test test/scenarios.unit.test.ts
//
// rewrites the output sections; review the diff like any other code change.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { expectedText, lineDiff } from './support/scenarios.ts';

const dir = path.join(import.meta.dirname, 'scenarios');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txtar'))
  .sort();

void describe('scenarios: YAML in, decisions, node rules, statuses and kernel state out', () => {
  void it('has the scenarios the suite promises', () => {
    assert.ok(files.length >= 20, `only ${files.length} scenario files in ${dir}`);
  });
  for (const file of files) {
    void it(file.replace(/\.txtar$/, ''), () => {
      const full = path.join(dir, file);
      const { actual, wanted } = expectedText(full, file.replace(/\.txtar$/, ''));
      assertDocumentationRanges(file, actual);
      if (actual === wanted) return;
      if (process.env.UPDATE_GOLDEN === '1') {
        writeFileSync(full, wanted);
        return;
      }
      assert.fail(
        `test/scenarios/${file} differs from what the code computes (- file, + now; ` +
          `UPDATE_GOLDEN=1 rewrites the out sections):\n${lineDiff(actual, wanted)}`,
      );
    });
  }
});

/** Egress IPs from 198.51.100.0/24 and destinations from 203.0.113.0/24 only (as every fixture);
 *  IPv6 ones from the documentation prefix 2001:db8::/32. */
function assertDocumentationRanges(file: string, text: string): void {
  for (const line of text.split('\n')) {
    if (line.startsWith('-- out:')) break;
    const egress = /^\s*- egressip: (\S+)/.exec(line);
    if (egress !== null) assert.match(egress[1]!, /^(198\.51\.100\.|2001:db8:)/, `${file}: ${line.trim()}`);
    const dest = /^\s*(cidr|destinations|exceptions): (.+)$/.exec(line);
    if (dest !== null)
      for (const cidr of dest[2]!.match(/[\da-f.:]+\/\d+/g) ?? [])
        assert.match(cidr, /^(203\.0\.113\.|2001:db8:)/, `${file}: ${line.trim()}`);
  }
}
