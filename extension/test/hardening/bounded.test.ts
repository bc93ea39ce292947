// Issue #16 item 2 and Deliver 3: inputs that expand (aliases, nesting) cost bounded work.
// Each check runs the real CLI in a child process under a generous time limit: a regression
// to exponential work is a timeout (the old `collectFiles` walked 10^9 alias paths: killed at
// 60 s), never a hang of the test runner.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { collectFiles, SyncSource } from '../../src/core/launch/sync';
import { aliasBomb } from './bomb';
import { cli, REPO } from './helpers';

const DEMO = readFileSync(join(REPO, 'recipes/demo/tiny-cpu.yaml'), 'utf8');

describe('alias bomb (issue #16 item 2)', () => {
  it('`launch --dry-run` of a recipe with 9 levels of 10 aliases shows the plan in seconds', () => {
    const ws = mkdtempSync(join(tmpdir(), 'bomb-'));
    writeFileSync(join(ws, 'recipe.yaml'), DEMO + aliasBomb(9, 10));
    const t0 = Date.now();
    const r = cli(['launch', 'recipe.yaml', '--target', 'local', '--dry-run', '--workspace', ws], { timeoutMs: 45_000 });
    assert.equal(r.timedOut, false, 'launch --dry-run did not finish in 45 s');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /recipe\.yaml/);
    assert.ok(Date.now() - t0 < 45_000);
  });

  it('collectFiles still finds the files a recipe with aliases and nesting names; too deep is an error with FILE (line:col)', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'bomb-'));
    writeFileSync(join(ws, 'prompts.jsonl'), '{"prompt":"hi"}\n');
    writeFileSync(join(ws, 'recipe.yaml'), 'dataset_name: prompts.jsonl\n' + aliasBomb(6, 10) + 'deep: ' + '['.repeat(90) + ']'.repeat(90) + '\n');
    const files = await collectFiles(new SyncSource(ws, REPO), 'recipe.yaml');
    assert.ok(files.includes('prompts.jsonl'));
    assert.ok(files.includes('recipe.yaml'));
    assert.ok(files.some((f) => f.startsWith('runtime/conscience/')));
    // nesting past the YAML reader's depth limit is an error naming the file and line, not a stack overflow
    writeFileSync(join(ws, 'recipe.yaml'), 'dataset_name: prompts.jsonl\ndeep: ' + '['.repeat(100_000) + '\n');
    await assert.rejects(collectFiles(new SyncSource(ws, REPO), 'recipe.yaml'), /recipe\.yaml: nesting exceeded maxDepth \(100\) .*\(2:\d+\)/);
  });
});
