// core/eval/store.ts copyEvalOutputs: what the run monitor copies home when a remote eval settles.
// A file the host lacks is skipped; a read that fails (a dropped connection) is an error, so the
// monitor settles the run at a later poll instead of without its results (tests/launch/ssh.test.ts
// runs the whole path against a real sshd).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyEvalOutputs, evalFiles, hasResults } from '../../src/core/eval/store';
import { runDir, type RunRecord } from '../../src/core/runs/store';

test('copies the files the host has, skips those it lacks, and fails on a read that fails', async () => {
  const store = mkdtempSync(join(tmpdir(), 'eval-store-'));
  try {
    const host: Record<string, Buffer> = { '/out/results.json': Buffer.from('{"arms": {}}\n') };
    const copied = await copyEvalOutputs(async (p) => host[p], '/out', store);
    assert.deepEqual(copied, ['results.json']);
    assert.equal(readFileSync(join(store, 'results.json'), 'utf8'), '{"arms": {}}\n');
    assert.equal(existsSync(join(store, 'completions.jsonl')), false);
    // a training run: nothing to copy, nothing written
    const empty = mkdtempSync(join(tmpdir(), 'eval-store-'));
    assert.deepEqual(await copyEvalOutputs(async () => undefined, '/out', empty), []);
    rmSync(empty, { recursive: true, force: true });
    // the connection drops: an error, not "the host has no results"
    await assert.rejects(copyEvalOutputs(async () => { throw new Error('not connected'); }, '/out', store), /not connected/);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});

test('a run has results where the report reads them: the store copy once settled, a local run\'s output dir while it runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'eval-files-'));
  try {
    const out = join(root, 'out');
    mkdirSync(out);
    const run = { id: 'r1', targetKind: 'local', outputDir: out } as RunRecord;
    const remote = { ...run, id: 'r2', targetKind: 'ssh', outputDir: '/host/out' } as RunRecord;
    assert.equal(await hasResults(root, run), false);
    writeFileSync(join(out, 'results.json'), '{}');
    assert.equal(await hasResults(root, run), true, 'a local run still going: its output dir');
    assert.equal((await evalFiles(root, run)).results, join(out, 'results.json'));
    assert.equal(await hasResults(root, remote), false, 'a remote run: only the store copy counts');
    mkdirSync(runDir(root, 'r2'), { recursive: true });
    writeFileSync(join(runDir(root, 'r2'), 'results.json'), '{}');
    assert.equal(await hasResults(root, remote), true);
    const files = await evalFiles(root, remote);
    assert.deepEqual([files.results, files.completions], [join(runDir(root, 'r2'), 'results.json'), undefined]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a local eval resumed is read where it runs, not from the store copy of the attempt that ended', async () => {
  const root = mkdtempSync(join(tmpdir(), 'eval-files-'));
  try {
    const out = join(root, 'out');
    mkdirSync(out);
    mkdirSync(runDir(root, 'r3'), { recursive: true });
    // the cancelled attempt's results, copied home when it settled
    writeFileSync(join(runDir(root, 'r3'), 'results.json'), '{"done": 4}');
    writeFileSync(join(out, 'results.json'), '{"done": 9}');
    const run = { id: 'r3', targetKind: 'local', outputDir: out, state: 'running' } as RunRecord;
    assert.equal((await evalFiles(root, run)).results, join(out, 'results.json'), 'the resumed attempt, as it goes');
    assert.equal((await evalFiles(root, { ...run, state: 'cancelled' })).results, join(runDir(root, 'r3'), 'results.json'), 'settled: its own copy');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
