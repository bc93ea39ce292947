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
import { readRun, withRunLock, type RunRecord } from '../../src/core/runs/store';
import { followRun } from '../../src/cli/runs';
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

const finishedRun = (t0: number) =>
  line({ type: 'run_started', seq: 0, time: t0, run_id: 'r', max_steps: 2, resumed_from: null, reward_funcs: ['a'] }) +
  line({ type: 'metrics', seq: 1, time: t0 + 1, step: 1, values: { reward: 0.5 } }) +
  line({ type: 'run_finished', seq: 2, time: t0 + 2, status: 'completed', exit_code: 0, error: null });

test('a pass that copied the events and then failed (a log it cannot read) loses none of them: the completed run is recorded completed', async () => {
  const t0 = Date.now() / 1000 - 60;
  const w = await ws(finishedRun(t0), { exitCode: 0, state: 'running' });
  try {
    // the trainer's stdout.log cannot be read (here: a folder in its place), after the events are copied
    const stdout = join(w.remoteDir, 'stdout.log');
    rmSync(stdout);
    mkdirSync(stdout);
    const first = cli(['runs', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.match(first.stderr, /EISDIR/, first.stderr);
    const local = join(w.root, '.conscience', 'runs', w.id, 'events.jsonl');
    assert.equal(readFileSync(local, 'utf8'), finishedRun(t0), 'the events are in the local copy');
    const mid = (await readRun(w.root, w.id))!;
    assert.ok(mid.sawStarted && mid.finished?.status === 'completed', `the record has what was copied: ${JSON.stringify(mid)}`);
    // the log readable again (a retried I/O error, a reconnect): the run is what its events say
    rmSync(stdout, { recursive: true });
    writeFileSync(stdout, 'hi\n');
    const again = cli(['runs', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${w.id}\\s+completed`));
    assert.doesNotMatch(again.stdout, /failed/);
    assert.equal((await readRun(w.root, w.id))!.state, 'completed');
  } finally {
    await w.session.close();
  }
});

test('events copied by a pass killed before it wrote its record are taken in by the next pass', async () => {
  const t0 = Date.now() / 1000 - 60;
  const w = await ws(finishedRun(t0), { exitCode: 0, state: 'running' });
  try {
    // the local copy holds every event, the record none of them (eventOffset 0): the copy was
    // appended, then the process died (SIGKILL, a full disk on the record's write)
    writeFileSync(join(w.root, '.conscience', 'runs', w.id, 'events.jsonl'), finishedRun(t0));
    const r = cli(['runs', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${w.id}\\s+completed`), r.stdout);
    const rec = (await readRun(w.root, w.id))!;
    assert.equal(rec.state, 'completed');
    assert.equal(rec.step, 1);
    assert.equal(rec.eventOffset, Buffer.byteLength(finishedRun(t0)));
    // and nothing is taken in twice, or copied again
    await new RunMonitor(w.session, w.id).pollOnce();
    assert.equal(readFileSync(join(w.root, '.conscience', 'runs', w.id, 'events.jsonl'), 'utf8'), finishedRun(t0));
  } finally {
    await w.session.close();
  }
});

test('a run deleted while it is followed ends `logs --follow` and `--wait` with a clear error, and its folder is not brought back', async () => {
  // running as last recorded, with no process to ask about: followers poll on
  const w = await ws(line({ type: 'run_started', seq: 0, time: 1, run_id: 'r', max_steps: 2, resumed_from: null, reward_funcs: ['a'] }), { state: 'running', extra: { pid: undefined, pgid: undefined } });
  rmSync(join(w.remoteDir, 'exit_code'));
  const folder = join(w.root, '.conscience', 'runs', w.id);
  try {
    const tsx = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const p = spawn(process.execPath, ['--import', tsx, join(REPO, 'extension/src/cli/main.ts'), 'logs', w.id, '--follow', '--workspace', w.root], { cwd: w.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    // following (the first pass has copied the events)
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(folder, 'events.jsonl'))) {
      assert.ok(Date.now() < deadline, `logs --follow did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000));
    // (the follower may be writing its lock or record in the folder at that instant: retried, as a user's rm -rf would be)
    rmSync(folder, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(timer);
    assert.equal(code, 1, `logs --follow went on after the run was deleted: ${stderr}`);
    assert.match(stderr, new RegExp(`run ${w.id} was deleted while it was followed`));
    assert.ok(!existsSync(folder), 'the follower brought the deleted folder back');

    // launch --wait and resume --wait follow through followRun: the same end, once, not an error 4 times a second
    const w2 = await ws('', { state: 'running', extra: { pid: undefined, pgid: undefined } });
    rmSync(join(w2.remoteDir, 'exit_code'));
    const following = followRun(w2.session, w2.id, {});
    await new Promise((r) => setTimeout(r, 1000));
    rmSync(join(w2.root, '.conscience', 'runs', w2.id), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    await assert.rejects(following, /was deleted while it was followed/);
    assert.ok(!existsSync(join(w2.root, '.conscience', 'runs', w2.id)));
    await w2.session.close();
  } finally {
    await w.session.close();
  }
});

test('a lock left by a killed CLI does not hold up cancel: its holder is gone, the lock is taken over at once; a live holder is waited for and named', async () => {
  const w = await ws('', { state: 'running', extra: { pid: undefined, pgid: undefined } });
  try {
    // a process that takes the run's lock and holds it (a `logs --follow` inside a pass), then is killed
    const holder = join(w.root, 'hold.mts');
    writeFileSync(holder, `import { withRunLock } from ${JSON.stringify(join(REPO, 'extension/src/core/runs/store.ts'))};\n` +
      `await withRunLock(process.argv[2]!, process.argv[3]!, async () => { process.stdout.write('held\\n'); await new Promise(() => setInterval(() => undefined, 1000)); }, { wait: true });\n`);
    const tsx = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const hold = () => {
      const p = spawn(process.execPath, ['--import', tsx, holder, w.root, w.id], { stdio: ['ignore', 'pipe', 'inherit'] });
      return { p, held: new Promise<void>((res) => p.stdout.on('data', () => res())), exited: new Promise<void>((res) => p.on('close', () => res())) };
    };
    const lock = join(w.root, '.conscience', 'runs', w.id, '.lock');
    const live = hold();
    await live.held;
    // alive: waited for, then refused with who holds it
    await assert.rejects(withRunLock(w.root, w.id, async () => 'x', { wait: true, timeoutMs: 500 }), new RegExp(`locked by another process \\(pid ${live.p.pid} on `));
    assert.ok(existsSync(lock), 'a live holder keeps its lock');
    live.p.kill('SIGKILL');
    await live.exited;
    assert.ok(existsSync(lock), 'the killed holder left its lock');
    const t = Date.now();
    const c = cli(['cancel', w.id, '--grace', '1', '--workspace', w.root], { timeoutMs: 60_000 });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /cancelled/);
    assert.ok(Date.now() - t < 15_000, `cancel waited ${Date.now() - t} ms for a lock whose holder is gone`);
    assert.ok(!existsSync(lock));
  } finally {
    await w.session.close();
  }
});

test('`--format json` on cancel and logs, which print no JSON, is a usage error (exit 2), not text handed to a script', async () => {
  const w = await ws('', { state: 'completed', extra: { finishedAt: Date.now() / 1000 } });
  try {
    for (const verb of ['cancel', 'logs']) {
      const r = cli([verb, w.id, '--format', 'json', '--workspace', w.root], { timeoutMs: 30_000 });
      assert.equal(r.code, 2, `${verb}: ${r.stdout}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /--format json: this command has no JSON output/);
      assert.equal(cli([verb, w.id, '--format', 'text', '--workspace', w.root], { timeoutMs: 30_000 }).code, 0);
    }
  } finally {
    await w.session.close();
  }
});
