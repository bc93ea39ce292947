import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { shExport, shJoin, shQuote } from '../../src/core/launch/quote';

const HOSTILE = [
  `a'b`, `"double"`, `; rm -rf /tmp/x`, '$(id)', '`id`', '\\', 'back\\slash\\', 'new\nline', "'", "''", '', ' ', '-n', '*', '~', '$HOME', '!x', 'tab\there', 'ünïcødé ✓',
  `all: ; $() \` ' " \n end`,
];

/** What a real shell receives for each word. */
function roundTrip(shell: string, words: string[]): string[] {
  const script = `for a in ${shJoin(words)}; do printf '%s\\0' "$a"; done`;
  const r = spawnSync(shell, ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\0').slice(0, -1);
}

describe('shQuote', () => {
  it('passes every hostile value through sh and bash unchanged', () => {
    for (const shell of ['/bin/sh', '/bin/bash']) assert.deepEqual(roundTrip(shell, HOSTILE), HOSTILE, shell);
  });
  it('leaves plain words readable and quotes the rest', () => {
    assert.equal(shQuote('/a/b-c_d.txt'), '/a/b-c_d.txt');
    assert.equal(shQuote('--num_processes'), '--num_processes');
    assert.equal(shQuote("it's"), `'it'\\''s'`);
    assert.equal(shQuote(''), "''");
    assert.equal(shQuote(42), '42');
  });
  it('refuses NUL, which no argv can carry', () => {
    assert.throws(() => shQuote('a\0b'), /NUL/);
  });
  it('exports only valid names, with quoted values', () => {
    const line = shExport('X_1', `v'; touch /tmp/nope`);
    const r = spawnSync('/bin/sh', ['-c', `${line}; printf %s "$X_1"`], { encoding: 'utf8' });
    assert.equal(r.stdout, `v'; touch /tmp/nope`);
    assert.throws(() => shExport('A;B', 'x'), /invalid environment variable name/);
    assert.throws(() => shExport('$(id)', 'x'), /invalid/);
  });
});
