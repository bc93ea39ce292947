// A recipe without launch.trl is checked against the TRL its newest run recorded
// (run_started.versions.trl in the run store), else the default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    assert.match(d.message, /TRL 1\.16\.0 \(the target's TRL: its stack or its last run\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('conscience launch checks a recipe without launch.trl against the stack its target installs', async () => {
  const { spawnSync } = await import('node:child_process');
  const REPO = join(__dirname, '../../..');
  const root = mkdtempSync(join(tmpdir(), 'conscience-guard-trl-'));
  try {
    mkdirSync(join(root, 'recipes'));
    writeFileSync(join(root, 'recipes/r.yaml'), 'model_name_or_path: conscience/tiny\nreward_funcs: [refusal]\ntorch_dtype: float32\nmax_steps: 1\nlaunch:\n  cpu: true\n');
    writeFileSync(join(root, 'conscience.targets.yaml'), 'old:\n  type: local\n  requirements: cpu\ncurrent:\n  type: local\n  requirements: cpu-current\n');
    const launch = (target: string) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'launch', 'recipes/r.yaml', '--target', target, '--dry-run', '--workspace', root],
      { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    const cur = launch('current');
    assert.match(cur.stderr, /CC104: 'torch_dtype' was removed in TRL 1\.0\.0; this recipe is checked against TRL 1\.16\.0 \(the target's TRL: its stack or its last run\)/);
    const old = launch('old');
    assert.doesNotMatch(old.stderr, /CC10\d/, old.stderr);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the launch guard (editor and CLI alike) checks a recipe without launch.trl against its target's TRL", async () => {
  const { launchGuard } = await import('../../src/core/launch/guard');
  const root = mkdtempSync(join(tmpdir(), 'conscience-guard-'));
  try {
    mkdirSync(join(root, 'recipes'));
    const file = join(root, 'recipes/r.yaml');
    writeFileSync(file, 'model_name_or_path: conscience/tiny\nreward_funcs: [refusal]\ntorch_dtype: float32\nmax_steps: 1\nlaunch:\n  cpu: true\n');
    const current = await launchGuard(root, file, { name: 'current', type: 'local', requirements: 'cpu-current' } as never);
    assert.deepEqual(current.map((f) => [f.code, f.line]), [['CC104', 3]], 'torch_dtype is gone in TRL 1.x');
    assert.deepEqual(await launchGuard(root, file, { name: 'old', type: 'local', requirements: 'cpu' } as never), []);
    assert.deepEqual(await launchGuard(root, file, undefined), [], 'no target: the host TRL of the schema in use');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('conscience launch refuses an accelerate config: it validates clean as what it is, and the trainer then refused every key', async () => {
  const { spawnSync } = await import('node:child_process');
  const REPO = join(__dirname, '../../..');
  const root = mkdtempSync(join(tmpdir(), 'conscience-guard-acc-'));
  try {
    mkdirSync(join(root, 'recipes'));
    writeFileSync(join(root, 'recipes/ddp.yaml'), readFileSync(join(REPO, 'recipes/accelerate/ddp.yaml')));
    writeFileSync(join(root, 'conscience.targets.yaml'), 'here:\n  type: local\n  requirements: cpu\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'launch', 'recipes/ddp.yaml', '--target', 'here', '--dry-run', '--workspace', root],
      { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    // (--dry-run prints the guard's findings and the plan; a real launch stops there without --force)
    assert.match(r.stderr, /ddp\.yaml:1:1: error CC010: this is an accelerate config, not a recipe: launch the recipe that uses it/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
