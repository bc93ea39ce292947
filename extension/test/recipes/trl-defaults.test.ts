// docs/recipes.md lists the fields whose default differs between TRL 0.18.2 and 1.x (a recipe that
// leaves one unset trains differently on each line): the table must be what the two generated
// schemas say, every such field and only those.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../../..');
const props = (f: string) => (JSON.parse(readFileSync(join(ROOT, 'schemas', f), 'utf8')) as { properties: Record<string, { default?: unknown }> }).properties;

test("docs/recipes.md's table of defaults that differ between the TRL lines is the schemas'", () => {
  const a = props('recipe.schema.json');
  const b = props('recipe.trl1.schema.json');
  const show = (p: { default?: unknown }) => JSON.stringify('default' in p ? p.default : '<none>');
  const want = Object.keys(a).filter((k) => k in b).sort()
    .filter((k) => show(a[k]!) !== show(b[k]!))
    .map((k) => `| \`${k}\` | \`${show(a[k]!)}\` | \`${show(b[k]!)}\` |`);
  assert.ok(want.some((r) => r.startsWith('| `beta` |')), 'the schemas no longer differ on beta: check the table still says something');
  const doc = readFileSync(join(ROOT, 'docs/recipes.md'), 'utf8');
  const block = doc.slice(doc.indexOf('<!-- trl-defaults:begin -->'), doc.indexOf('<!-- trl-defaults:end -->'));
  const rows = block.split('\n').filter((l) => l.startsWith('| `'));
  assert.deepEqual(rows, want);
});
