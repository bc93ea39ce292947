// core/eval/store.ts copyEvalOutputs: what the run monitor copies home when a remote eval settles.
// A file the host lacks is skipped; a read that fails (a dropped connection) is an error, so the
// monitor settles the run at a later poll instead of without its results (tests/launch/ssh.test.ts
// runs the whole path against a real sshd).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyEvalOutputs } from '../../src/core/eval/store';

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
