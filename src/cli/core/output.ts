// The output formats every printing command offers, as kubectl spells them: `table` (aligned
// columns, the default), `wide` (the table with more columns where a command has more to show),
// `json` and `yaml` (the same document: one per answer, or one per record for `events`). Pure.
import { Option } from 'commander';
import { stringify } from 'yaml';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputOption(what = 'output format'): Option {
  return new Option('-o, --output <format>', `${what}: table, wide (more columns), json or yaml`)
    .choices(OUTPUT_FORMATS)
    .default('table');
}

export const isDocument = (f: OutputFormat): f is 'json' | 'yaml' => f === 'json' || f === 'yaml';

/**
 * One answer as a document. JSON on one line (for jq and line-based tools); YAML as one
 * document, with `---` first so that several (events) concatenate into a valid stream.
 * aliasDuplicateObjects off: a value that occurs twice is written twice, never as an anchor.
 */
export function renderDocument(format: 'json' | 'yaml', value: unknown): string {
  return format === 'json'
    ? `${JSON.stringify(value)}\n`
    : `---\n${stringify(value, { aliasDuplicateObjects: false, lineWidth: 0 })}`;
}
