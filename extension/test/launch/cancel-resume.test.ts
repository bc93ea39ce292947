// Cancel and resume decide on the run as the host has it now (one status/copy pass under the
// run's lock), not on the state last recorded; a run whose launch never started is cancelled
// without a process to stop; an interrupted launch is not left preparing for ever; the end time
// of a run is its run_finished's, not the moment someone looked. Real processes and the real CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { cancelRun, resumeRun } from '../../src/core/launch/launcher';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import type { Target } from '../../src/core/launch/targets';
import { readRun, type RunRecord } from '../../src/core/runs/store';
import { cli, localRunWorkspace, REPO } from '../hardening/helpers';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function ws(events: string, opts: { exitCode?: number; state?: RunRecord['state']; extra?: Partial<RunRecord> } = {}) {
  const w = await localRunWorkspace(events, opts);
  roots.push(w.root);
  writeFileSync(join(w.root, 'conscience.targets.yaml'), 'local:\n  type: local\n  cancelGrace: 1\n');
  const session = new LaunchSession(w.root, new Map<string, Target>([['local', { name: 'local', type: 'local', cancelGrace: 1 }]]), {});
  return { ...w, session };
}

const line = (o: object) => JSON.stringify(o) + '\n';

test('cancelling a run that already failed keeps it failed, with its exit code', async () => {
  // recorded as running; its trainer exited with code 3 since, without run_finished
  const w = await ws('', { exitCode: 3, state: 'running' });
  try {
    const rec = await cancelRun(w.session, w.id, 1);
    assert.equal(rec.state, 'failed');
    assert.equal(rec.exitCode, 3);
    assert.ok(!rec.cancelRequested, 'no cancel was sent to a run that had ended');
    const stored = (await readRun(w.root, w.id))!;
    assert.equal(stored.state, 'failed');
    assert.equal(stored.exitCode, 3);
  } finally {
    await w.session.close();
  }
});

test('resume takes a run recorded as cancelling whose process has ended', async () => {
  const w = await ws('', { exitCode: 143, state: 'cancelling', extra: { cancelRequested: true } });
  try {
    // past the state check: what stops it now is the missing recipe of this stand-in run
    await assert.rejects(resumeRun(w.session, w.id), (err: Error) => {
      assert.doesNotMatch(err.message, /is cancelling/);
      assert.match(err.message, /recipe not found/);
      return true;
    });
    assert.equal((await readRun(w.root, w.id))!.state, 'cancelled');
  } finally {
    await w.session.close();
  }
});

test('a run left preparing (nothing started) is cancelled without a process, and logs --follow does not wait for ever', async () => {
  const w = await ws('', { state: 'preparing', extra: { pid: undefined, pgid: undefined, startedAt: undefined } });
  try {
    const f = cli(['logs', w.id, '--follow', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(f.timedOut, false, 'logs --follow hung on a run with nothing to follow');
    assert.equal(f.code, 1);
    assert.match(f.stderr, /is preparing with no process or job recorded/);
    const rec = await cancelRun(w.session, w.id, 1);
    assert.equal(rec.state, 'cancelled');
    assert.ok(rec.finishedAt, 'finishedAt set');
    assert.equal((await readRun(w.root, w.id))!.state, 'cancelled');
  } finally {
    await w.session.close();
  }
});

test('logs on a run whose target is now invalid or gone shows the local copy and says why; --follow ends instead of polling for ever', async () => {
  const w = await ws(line({ type: 'run_started', seq: 0, time: 1, run_id: 'r', max_steps: 2, resumed_from: null, reward_funcs: ['a'] }), { state: 'running' });
  try {
    // the local copy has what the host wrote so far; the run is still running there
    writeFileSync(join(w.root, '.conscience', 'runs', w.id, 'events.jsonl'), line({ type: 'run_started', seq: 0, time: 1, run_id: 'r', max_steps: 2, resumed_from: null, reward_funcs: ['a'] }));
    // the targets file now has the run's target broken (a typo in its type)
    writeFileSync(join(w.root, 'conscience.targets.yaml'), 'local:\n  type: locl\n');
    const f = cli(['logs', w.id, '--follow', '--events', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(f.timedOut, false, 'logs --follow polled for ever in silence');
    assert.equal(f.code, 1);
    assert.match(f.stdout, /"run_started"/, 'the local copy is shown');
    assert.match(f.stderr, /ran on target 'local', which cannot be reached now: .*conscience\.targets\.yaml:1: .*nothing more can be followed/);
    const once = cli(['logs', w.id, '--events', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(once.code, 0);
    assert.match(once.stderr, /cannot be reached now/);
    // a target removed from the file: the same
    writeFileSync(join(w.root, 'conscience.targets.yaml'), 'other:\n  type: local\n');
    const rec = (await readRun(w.root, w.id))!;
    writeFileSync(join(w.root, '.conscience', 'runs', w.id, 'run.json'), JSON.stringify({ ...rec, target: 'gone' }));
    const g = cli(['logs', w.id, '--follow', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(g.timedOut, false);
    assert.equal(g.code, 1);
    assert.match(g.stderr, /ran on target 'gone', which cannot be reached now: unknown target 'gone'/);
    // a run that had finished: its local copy is all of it, and following it ends as before (exit 0)
    writeFileSync(join(w.root, '.conscience', 'runs', w.id, 'run.json'), JSON.stringify({ ...rec, target: 'gone', state: 'completed', exitCode: 0, finishedAt: 5 }));
    const done = cli(['logs', w.id, '--follow', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(done.timedOut, false);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stderr, /completed exit 0/);
  } finally {
    await w.session.close();
  }
});

test("a settled run's finishedAt is its run_finished's time, not when it was looked at", async () => {
  const now = Date.now() / 1000;
  const t0 = now - 7200;
  const events =
    line({ type: 'run_started', seq: 0, time: t0, run_id: 'r', max_steps: 2, resumed_from: null, reward_funcs: ['a'] }) +
    line({ type: 'run_finished', seq: 1, time: t0 + 100, status: 'completed', exit_code: 0, error: null });
  const w = await ws(events, { exitCode: 0, state: 'running', extra: { startedAt: t0 - 5, createdAt: t0 - 10 } });
  try {
    await new RunMonitor(w.session, w.id).pollOnce();
    const rec = (await readRun(w.root, w.id))!;
    assert.equal(rec.state, 'completed');
    assert.equal(rec.finishedAt, t0 + 100);
    const list = cli(['runs', '--workspace', w.root, '--no-refresh'], { timeoutMs: 30_000 });
    assert.match(list.stdout, /completed\s+\S+\s+\S+\s+1m45s/);
  } finally {
    await w.session.close();
  }
});

test('Ctrl-C during `conscience launch` records the run failed ("launch interrupted"), not preparing for ever', async () => {
  const root = mkdtempSync(join(tmpdir(), 'conscience-int-'));
  roots.push(root);
  mkdirSync(join(root, 'recipes', 'demo'), { recursive: true });
  copyFileSync(join(REPO, 'recipes', 'demo', 'tiny-cpu.yaml'), join(root, 'recipes', 'demo', 'tiny-cpu.yaml'));
  copyFileSync(join(REPO, 'recipes', 'demo', 'grpo-prompts.jsonl'), join(root, 'recipes', 'demo', 'grpo-prompts.jsonl'));
  // a "python" that takes its time answering the launcher's check: the launch is preparing meanwhile
  const slow = join(root, 'slow-python');
  writeFileSync(slow, '#!/bin/sh\nexec sleep 20\n', { mode: 0o755 });
  writeFileSync(join(root, 'conscience.targets.yaml'), `slow:\n  type: local\n  python: ${slow}\n`);
  const tsx = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const p = spawn(process.execPath, ['--import', tsx, join(REPO, 'extension/src/cli/main.ts'), 'launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'slow', '--force', '--workspace', root], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
  const runs = join(root, '.conscience', 'runs');
  const deadline = Date.now() + 60_000;
  let id: string | undefined;
  // preparing, and past the sync (checking the python)
  while (!(id && /sync: /.test(stderr))) {
    assert.ok(Date.now() < deadline, `the launch did not reach preparing: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
    id = existsSync(runs) ? readdirSync(runs)[0] : undefined;
  }
  assert.equal(JSON.parse(readFileSync(join(runs, id, 'run.json'), 'utf8')).state, 'preparing');
  p.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  const rec = JSON.parse(readFileSync(join(runs, id, 'run.json'), 'utf8')) as RunRecord;
  assert.equal(rec.state, 'failed');
  assert.equal(rec.error, 'launch interrupted');
  assert.ok(rec.finishedAt);
});
