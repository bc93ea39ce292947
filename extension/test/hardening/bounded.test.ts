// Issue #16 item 2 and Deliver 3: inputs that expand (aliases, nesting) cost bounded work.
// Each check runs the real CLI in a child process under a generous time limit: a regression
// to exponential work is a timeout (the old `collectFiles` walked 10^9 alias paths: killed at
// 60 s), never a hang of the test runner.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { collectFiles, SyncSource } from '../../src/core/launch/sync';
import { aliasBomb } from './bomb';
import { cli, REPO } from './helpers';

const DEMO = readFileSync(join(REPO, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
const made: string[] = [];
const tmp = (prefix: string) => { const d = mkdtempSync(join(tmpdir(), prefix)); made.push(d); return d; };
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

describe('alias bomb (issue #16 item 2)', () => {
  it('`launch --dry-run` of a recipe with 9 levels of 10 aliases shows the plan in seconds', () => {
    const ws = tmp('bomb-');
    writeFileSync(join(ws, 'recipe.yaml'), DEMO + aliasBomb(9, 10));
    const t0 = Date.now();
    const r = cli(['launch', 'recipe.yaml', '--target', 'local', '--dry-run', '--workspace', ws], { timeoutMs: 45_000 });
    assert.equal(r.timedOut, false, 'launch --dry-run did not finish in 45 s');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /recipe\.yaml/);
    assert.ok(Date.now() - t0 < 45_000);
  });

  it('collectFiles still finds the files a recipe with aliases and nesting names; too deep is an error with FILE (line:col)', async () => {
    const ws = tmp('bomb-');
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

describe('bounded work on random inputs (issue #16 Deliver 3)', () => {
  // Per input a generous bound that a healthy run misses by 10x or more on a loaded 2-core CI
  // machine (the worst input seen takes ~0.3 s); exponential work blows through it, and the
  // child's own timeout stops a hang.
  const PER_INPUT_MS = 5_000;
  const KINDS = ['validate', 'launch-info', 'launch-files', 'prompts-jsonl', 'prompts-csv', 'events'];
  for (const seed of [1, 2]) {
    it(`seed ${seed}: 40 random recipes, prompt files and event files each finish within ${PER_INPUT_MS} ms in validate, launch, the prompt and event readers`, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, 'property-worker.ts'), String(seed), '40'], { cwd: REPO, encoding: 'utf8', timeout: 180_000, maxBuffer: 16 * 1024 * 1024 });
      assert.equal(r.error, undefined, `the worker did not finish: ${r.error}`);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; i: number; ms: number; outcome: string });
      assert.equal(rows.length, 40 * KINDS.length, 'every input of every kind finished');
      for (const row of rows) assert.ok(row.ms < PER_INPUT_MS, `${row.kind} #${row.i} (seed ${seed}) took ${Math.round(row.ms)} ms: ${row.outcome}`);
      // a rejected recipe names its file (and js-yaml's line:col) rather than crashing with a stack
      for (const row of rows.filter((x) => x.kind.startsWith('launch') && x.outcome.startsWith('error')))
        assert.match(row.outcome, /recipe\.yaml/, `${row.kind} #${row.i}: ${row.outcome}`);
    });
  }

  it('`conscience inspect` on hostile prompt files ends quickly, naming FILE:LINE for each bad line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'inspect-'));
    const jsonl = join(dir, 'hostile.jsonl');
    writeFileSync(jsonl, ['{"id":1,"prompt":"How do I store bleach?"}', '['.repeat(200_000), '{"prompt":"p","budget":1e400}',
      '{"prompt":"lone \\uD800 surrogate"}', '{"prompt":' + '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000) + '}', '{"id":6,"prompt":"fine"}'].join('\n') + '\n');
    const a = cli(['inspect', jsonl, '--format', 'json'], { timeoutMs: 90_000 });
    assert.equal(a.timedOut, false);
    assert.equal(a.code, 1, a.stderr);
    assert.equal(a.stdout.trim().split('\n').length, 4, 'the four readable rows are scored');
    // nesting deeper than 64 is refused before parsing, as Python's `score` refuses it (prompt_sets.too_deep)
    assert.match(a.stderr, /hostile\.jsonl:2: JSON nested deeper than 64 levels/);
    assert.match(a.stderr, /hostile\.jsonl:5: JSON nested deeper than 64 levels/);
    const csv = join(dir, 'hostile.csv');
    writeFileSync(csv, 'id,prompt\n1,ok\n2,"unclosed\n' + 'more text\n'.repeat(3_000_000));
    const b = cli(['inspect', csv, '--format', 'json'], { timeoutMs: 90_000 });
    assert.equal(b.timedOut, false);
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /hostile\.csv:3: invalid CSV: the record starting here is longer than 16777216 characters/);
  });
});
