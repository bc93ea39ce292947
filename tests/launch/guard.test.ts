// The launch guard and failures that say why, through the real CLI and the real trainer:
// `conscience launch` refuses a recipe with errors (printing them, FILE:LINE:COL) and starts
// nothing; with --force it launches, the trainer fails on the same mistake, and `--wait`
// reports the trainer's own error line (not "exited with code 1") with where it is in stderr.log.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rootCause, runFailure } from '../../extension/src/core/runs/present';
import { readRun, runDir } from '../../extension/src/core/runs/store';
import { PYTHON, cli, killRunsOf, makeWorkspace, removeWorkspaces } from './workspace';

describe('launch guard', { timeout: 600_000 }, () => {
  let root: string;
  before(() => {
    root = makeWorkspace({ here: { type: 'local', python: PYTHON } });
    const demo = readFileSync(join(root, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
    const bad = demo
      .replace(/^reward_funcs:.*$/m, 'reward_funcs: [safety_format, no_such_reward]')
      .replace(/^reward_weights:.*$/m, 'reward_weights: [1.0, 0.5]')
      .replace(/^max_steps:.*$/m, 'max_steps: 2');
    assert.notEqual(bad, demo);
    writeFileSync(join(root, 'recipes/demo/bad.yaml'), bad);
  });
  after(() => {
    if (root) killRunsOf(root);
    removeWorkspaces();
  });

  let failedRun = '';
  const runs = () => (existsSync(join(root, '.conscience/runs')) ? readdirSync(join(root, '.conscience/runs')) : []);

  it('refuses a recipe with errors, naming each at FILE:LINE:COL, and starts nothing', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/bad.yaml', '--target', 'here']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /recipes\/demo\/bad\.yaml:18:\d+: error CC301: Unknown reward function 'no_such_reward'/);
    assert.match(r.stderr, /1 error\(s\) in recipes\/demo\/bad\.yaml: not launching \(fix them, or pass --force/);
    assert.equal(r.stdout, '');
    assert.deepEqual(runs(), [], 'no run was recorded');
  });

  it('a dry run still shows the plan, with the errors above it', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/bad.yaml', '--target', 'here', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /error CC301/);
    assert.match(r.stdout, /recipes\/demo\/bad\.yaml on here/);
    assert.deepEqual(runs(), []);
  });

  it('launches with --force, and the failure names the trainer\'s error line and where it is in stderr.log', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/bad.yaml', '--target', 'here', '--force', '--wait']);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /launching despite 1 error\(s\) \(--force\)/);
    const id = r.stdout.trim().split(/\s+/)[0]!;
    failedRun = id;
    const rec = await readRun(root, id);
    assert.equal(rec?.state, 'failed');
    const stderr = readFileSync(join(runDir(root, id), 'stderr.log'), 'utf8');
    const cause = rootCause(stderr, rec?.finished?.error, rec?.error);
    assert.ok(cause, 'a root cause was found');
    assert.match(cause.message, /no_such_reward/, `the cause names the bad reward: ${cause.message}`);
    assert.doesNotMatch(cause.message, /exited with code/);
    assert.ok(cause.line !== undefined && stderr.split('\n')[cause.line]!.includes(cause.message), 'the line points at the message in stderr.log');
    // what the CLI printed is the same cause, with its line, naming the workspace's file (not the
    // run's project copy on the host, nor the trainer's own copy of the recipe beside it)
    assert.ok(cause.message.includes(`${rec!.projectDir}/recipes/demo/.conscience-${id}.attempt-1.yaml:`), cause.message);
    const shown = runFailure(rec!, stderr)!.message;
    assert.match(shown, /conscience\.train: recipes\/demo\/bad\.yaml:\d+: /);
    assert.ok(r.stdout.includes(`${id} failed exit ${rec?.exitCode}: ${shown} (stderr.log:${cause.line! + 1})`), r.stdout);
    // and `conscience runs` names it under the table
    const list = await cli(root, ['runs', '--no-refresh']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.includes(`${id} failed: ${shown} (stderr.log:${cause.line! + 1})`), list.stdout);
    const json = await cli(root, ['runs', '--no-refresh', '--format', 'json']);
    const listed = (JSON.parse(json.stdout) as { id: string; cause?: string }[]).find((x) => x.id === id);
    assert.equal(listed?.cause, `${shown} (stderr.log:${cause.line! + 1})`);
  });

  it('a resume of a recipe edited since, with an error, is refused as a launch is; unchanged, it is not checked again', async () => {
    assert.ok(failedRun, 'the run launched with --force above');
    const before = await readRun(root, failedRun);
    const file = join(root, 'recipes/demo/bad.yaml');
    const kept = readFileSync(file, 'utf8');
    writeFileSync(file, kept + 'bogus_key: 1\n');
    try {
      const r = await cli(root, ['resume', failedRun]);
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /recipes\/demo\/bad\.yaml:\d+:\d+: error CC100: .*bogus_key/);
      assert.match(r.stderr, new RegExp(`error\\(s\\) in recipes/demo/bad\\.yaml, edited since run ${failedRun} last ran: not resuming \\(fix them, or pass --force`));
      const after = await readRun(root, failedRun);
      assert.equal(after?.state, 'failed');
      assert.equal(after?.attempts, before?.attempts, 'no attempt was started');
    } finally {
      writeFileSync(file, kept);
    }
  });
});
