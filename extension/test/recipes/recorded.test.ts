// A recipe without launch.trl is checked against the TRL its newest run recorded
// (run_started.versions.trl in the run store), else the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateText } from '../../src/core/recipe';
import { recordedTrl } from '../../src/core/recipe/recorded';
import { runDir, writeRun } from '../../src/core/runs/store';

async function addRun(root: string, id: string, recipe: string, createdAt: number, trl: string | undefined): Promise<void> {
  await writeRun(root, {
    id, recipe, target: 'local', targetKind: 'local', host: 'local', projectDir: root, remoteDir: root, outputDir: root, python: 'python3',
    state: 'completed', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, createdAt, updatedAt: createdAt, command: '', attempts: 1, sawStarted: true, startedAt: createdAt,
  } as Parameters<typeof writeRun>[1]);
  mkdirSync(runDir(root, id), { recursive: true });
  const started = { type: 'run_started', seq: 0, time: createdAt, run_id: id, world_size: 1, reward_funcs: [], resumed_from: null, ...(trl ? { versions: { python: '3.11', torch: '2.13.0', transformers: '5.24.0', trl } } : {}) };
  writeFileSync(join(runDir(root, id), 'events.jsonl'), JSON.stringify(started) + '\n');
}

test('the newest run of the recipe gives its TRL; other recipes and runs without versions do not', async () => {
  const root = mkdtempSync(join(tmpdir(), 'conscience-recorded-'));
  try {
    assert.equal(await recordedTrl(root, 'recipes/r.yaml'), undefined, 'no runs');
    await addRun(root, 'a', 'recipes/r.yaml', 1000, '0.18.2');
    await addRun(root, 'b', 'recipes/r.yaml', 2000, '1.16.0');
    await addRun(root, 'c', 'recipes/other.yaml', 3000, '0.18.2');
    await addRun(root, 'd', 'recipes/r.yaml', 1500, undefined);
    assert.equal(await recordedTrl(root, 'recipes/r.yaml'), '1.16.0');
    assert.equal(await recordedTrl(root, 'recipes/other.yaml'), '0.18.2');
    const text = 'model_name_or_path: x\nreward_funcs: [refusal]\ntorch_dtype: bfloat16\n';
    const d = validateText(text, { trl: await recordedTrl(root, 'recipes/r.yaml') }).find((x) => x.code === 'CC104');
    assert.ok(d);
    assert.match(d.message, /TRL 1\.16\.0 \(installed on the target at its last launch\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
