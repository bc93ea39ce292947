// The rule table is the one list of codes: docs/recipes.md's table is generated from it, every
// code with a check is a cross-field rule, and the codes reported by the reader, the walk and the
// accelerate reader have no check of their own. (fixtures.test.ts checks every code has a failing
// and a passing fixture, with the table's severity.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CODES, RULES, rulesMarkdown, validateText } from '../../src/core/recipe';
import { REPO } from './helpers';

test('docs/recipes.md shows the rule table generated from RULES', () => {
  const doc = readFileSync(join(REPO, 'docs/recipes.md'), 'utf8');
  const m = /<!-- rules:begin[^\n]*-->\n([\s\S]*?)<!-- rules:end -->/.exec(doc);
  assert.ok(m, 'docs/recipes.md has the rules:begin / rules:end block');
  assert.equal(m[1], rulesMarkdown(),
    "the docs' rule table differs from RULES: regenerate it with\n  node --import tsx -e \"process.stdout.write(require('./extension/src/core/recipe/rules').rulesMarkdown())\"");
});

test('one entry per code, in order, and only cross-field rules carry a check', () => {
  const codes = RULES.map((r) => r.code);
  assert.deepEqual(codes, [...codes].sort(), 'sorted by code');
  assert.equal(new Set(codes).size, codes.length, 'no code twice');
  assert.deepEqual(Object.keys(CODES), codes);
  for (const r of RULES) assert.equal(typeof r.check === 'function', r.stage === 'rules', `${r.code}: stage ${r.stage}`);
});

test("a rule reports with the table's severity and code", () => {
  const text = 'model_name_or_path: x\nreward_funcs: [refusal]\nper_device_train_batch_size: 4\nnum_generations: 5\nfp16: true\nbf16: true\nlaunch:\n  num_processes: 3\n  num_machines: 2\n';
  const ds = validateText(text);
  for (const code of ['CC204', 'CC213', 'CC218']) {
    const d = ds.find((x) => x.code === code);
    assert.ok(d, code);
    assert.equal(d.severity, CODES[code]!.severity);
  }
});
