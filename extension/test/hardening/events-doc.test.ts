// docs/events.md's field reference and the reader's table (core/runs/event-fields.ts) are one
// contract: this fails when a field, its type or whether it is required differs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { COMMON_FIELDS, SAMPLE_ROW_FIELDS, TYPE_FIELDS, type FieldSpec } from '../../src/core/runs/event-fields';
import { REPO } from './helpers';

it('docs/events.md lists exactly the fields, types and required flags the reader checks', () => {
  const doc = readFileSync(join(REPO, 'docs/events.md'), 'utf8');
  const section = doc.split('## Field reference')[1]?.split('\n## ')[0];
  assert.ok(section, 'docs/events.md has a "## Field reference" section');
  const rows = section.split('\n').filter((l) => /^\| (every event|`\w+`) \| `/.test(l)).map((l) => l.replace(/\\\|/g, '|'));
  const want: string[] = [];
  const add = (ev: string, spec: Record<string, FieldSpec>, prefix = '') => {
    for (const [k, f] of Object.entries(spec)) want.push(`| ${ev} | \`${prefix}${k}\` | ${f.required ? 'yes' : 'no'} | ${f.type} |`);
  };
  add('every event', COMMON_FIELDS);
  for (const [t, spec] of Object.entries(TYPE_FIELDS)) {
    add(`\`${t}\``, spec);
    if (t === 'samples') add('`samples`', SAMPLE_ROW_FIELDS, 'rows[].');
  }
  assert.deepEqual(rows, want);
});
