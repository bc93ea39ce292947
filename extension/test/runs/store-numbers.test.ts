// A run.json written before event fields were validated may hold a reward that is not a number:
// `conscience runs` and the Runs view must still list it (they used to throw "toFixed is not a
// function"), showing no reward rather than a wrong one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runDescription } from '../../src/core/runs/present';
import { readRun } from '../../src/core/runs/store';

const REPO = join(import.meta.dirname, '..', '..', '..');

test('a run.json with a non-number reward, step or max_steps is read, listed and described', async () => {
  const ws = mkdtempSync(join(tmpdir(), 'cc-store-'));
  after(() => rmSync(ws, { recursive: true, force: true }));
  const id = '20261126-101232-tiny-cpu-ab12';
  mkdirSync(join(ws, '.conscience', 'runs', id), { recursive: true });
  writeFileSync(join(ws, '.conscience', 'runs', id, 'run.json'), JSON.stringify({
    id, recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: ws, remoteDir: ws,
    outputDir: join(ws, 'out'), python: 'python', state: 'completed', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0,
    createdAt: 1, updatedAt: 1, finishedAt: 2, command: 'x', attempts: 1, reward: 'high', step: '7', maxSteps: { n: 8 },
  }));
  const rec = (await readRun(ws, id))!;
  assert.equal(rec.reward, null);
  assert.equal(rec.step, undefined);
  assert.equal(rec.maxSteps, undefined);
  assert.match(runDescription(rec), /^completed/);
  const cli = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'runs', '--workspace', ws, '--no-refresh'],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /tiny-cpu/);
  assert.doesNotMatch(cli.stdout + cli.stderr, /toFixed|high/);

  // a run.json without the fields every reader relies on is not a run: listed past (and said so
  // on stderr), and named with its file and cause when asked for
  const odd = join(ws, '.conscience', 'runs', 'r2');
  mkdirSync(odd, { recursive: true });
  writeFileSync(join(odd, 'run.json'), JSON.stringify({ state: 'completed' }));
  const runs = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'runs', '--workspace', ws, '--no-refresh'],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(runs.status, 0, runs.stderr);
  assert.match(runs.stdout, /tiny-cpu/);
  assert.equal(runs.stderr, `conscience: ${join(odd, 'run.json')}: not a run record (no string id, recipe, target)\n`);
  await assert.rejects(readRun(ws, 'r2'), new RegExp(`${join(odd, 'run.json')}: not a run record \\(no string id, recipe, target\\)`));
  const logs = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'logs', 'r2', '--workspace', ws],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(logs.status, 0);
  // it crashed on it once ("Cannot read properties of undefined"), then said "no run 'r2'"
  assert.equal(logs.stderr, `conscience: ${join(odd, 'run.json')}: not a run record (no string id, recipe, target)\n`);
  assert.doesNotMatch(logs.stderr, /Cannot read properties/);
});

test('a hand-edited run.json with an unknown state, times that are not numbers or an exit code that is not one: refused or shown as unknown, never NaN', async () => {
  const ws = mkdtempSync(join(tmpdir(), 'cc-store-'));
  after(() => rmSync(ws, { recursive: true, force: true }));
  const base = {
    recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: ws, remoteDir: ws,
    outputDir: join(ws, 'out'), python: 'python', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, updatedAt: 1, command: 'x', attempts: 1,
  };
  const put = (id: string, rec: object) => {
    mkdirSync(join(ws, '.conscience', 'runs', id), { recursive: true });
    writeFileSync(join(ws, '.conscience', 'runs', id, 'run.json'), JSON.stringify({ id, ...base, ...rec }));
  };
  put('odd-times', { state: 'completed', startedAt: 'yesterday', finishedAt: 'later', exitCode: 'x' });
  put('bogus-state', { state: 'bogus', createdAt: 5 });
  const rec = (await readRun(ws, 'odd-times'))!;
  assert.equal(rec.startedAt, undefined);
  assert.equal(rec.finishedAt, undefined);
  assert.equal(rec.exitCode, undefined);
  assert.equal(rec.createdAt, 0);
  const file = join(ws, '.conscience', 'runs', 'bogus-state', 'run.json');
  await assert.rejects(readRun(ws, 'bogus-state'), (err: Error) => err.message.startsWith(`${file}: not a run record (state 'bogus' is none of preparing, `));
  const cli = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'runs', '--workspace', ws, '--no-refresh'],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(cli.status, 0, cli.stderr);
  const row = cli.stdout.split('\n').find((l) => l.startsWith('odd-times'));
  assert.match(row ?? '', /^odd-times\s+completed\s+-\s+-\s+-\s+local/, cli.stdout);
  assert.doesNotMatch(cli.stdout, /NaN|bogus|\(x\)/);
  assert.match(cli.stderr, /bogus-state\/run\.json: not a run record \(state 'bogus'/);
});
