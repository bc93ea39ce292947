// Every rule has a failing fixture (bad/<CODE>-<name>.yaml, whose `# expect: CODE LINE:COL`
// header says where the diagnostic must start) and a passing one (good/<CODE>-<name>.yaml,
// which must have no error or warning at all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CODES } from '../../src/core/recipe';
import { FIXTURES, fmt, validateFile } from './helpers';

const bad = readdirSync(join(FIXTURES, 'bad')).filter((f) => f.endsWith('.yaml')).sort();
const good = readdirSync(join(FIXTURES, 'good')).filter((f) => f.endsWith('.yaml')).sort();

for (const f of bad) {
  test(`bad fixture ${f} reports its code at the expected line and column`, () => {
    const path = join(FIXTURES, 'bad', f);
    const code = f.slice(0, 5);
    const head = readFileSync(path, 'latin1');
    const m = /^# expect: (CC\d{3}) (\d+):(\d+)/m.exec(head);
    const [want, line, col] = m ? [m[1]!, Number(m[2]), Number(m[3])] : [code, 1, 1];
    assert.equal(want, code, 'file name and expect header agree');
    const { diags } = validateFile(path);
    const hit = diags.find((d) => d.code === want && !d.file && d.line + 1 === line && d.column + 1 === col);
    assert.ok(hit, `expected ${want} at ${line}:${col}; got:\n${diags.map(fmt).join('\n')}`);
    assert.ok(hit.message.length > 20, 'the message says what to do');
    assert.equal(hit.severity, CODES[want]!.severity, 'severity matches the code table');
  });
}

for (const f of good) {
  test(`good fixture ${f} is clean`, () => {
    const { diags } = validateFile(join(FIXTURES, 'good', f));
    const problems = diags.filter((d) => d.severity !== 'info');
    assert.deepEqual(problems.map(fmt), []);
    assert.ok(!diags.some((d) => d.code === f.slice(0, 5)), `no ${f.slice(0, 5)} in the passing fixture`);
  });
}

test('every rule code in the table has a failing fixture', () => {
  const covered = new Set(bad.map((f) => f.slice(0, 5)));
  // CC007 (too large) and CC010 (unreadable path) are exercised in bad-input.test.ts / cli.test.ts.
  const missing = Object.keys(CODES).filter((c) => !covered.has(c) && c !== 'CC007' && c !== 'CC010');
  assert.deepEqual(missing, []);
});
