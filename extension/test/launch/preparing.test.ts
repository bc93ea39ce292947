// A run that is `preparing` (its launch is syncing or checking/building the Python) belongs to
// the process launching it. A cancel meanwhile wins over that launch: the launch starts nothing
// (or stops what it had just started) instead of writing its record over the cancel. A launch
// whose process died (a killed CLI, a closed window) does not leave the run preparing for ever:
// the refresh records it failed ("launch interrupted"), while a launcher still alive, or on
// another machine, is left alone. Real launches of the demo recipe on the local target, whose
// "python" waits for a gate file before answering the launcher's check (the preparing phase held
// open), and the real CLI.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { cancelRun, launchRun, NotStartedError, resumeRun } from '../../src/core/launch/launcher';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import type { Target } from '../../src/core/launch/targets';
import { launcherIdentity, readRun, SUBMIT_GRACE_S, writeRun, type RunRecord } from '../../src/core/runs/store';
import { cli, deadPid, localRunWorkspace, REPO } from '../hardening/helpers';

const roots: string[] = [];
const groups: number[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const TSX = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const RECIPE = 'recipes/demo/tiny-cpu.yaml';

/** A workspace with the demo recipe and a local target `gated` whose python waits for <root>/gate. */
function gatedWorkspace(): { root: string; target: Target; session: () => LaunchSession } {
  const root = mkdtempSync(join(tmpdir(), 'conscience-prep-'));
  roots.push(root);
  mkdirSync(join(root, 'recipes', 'demo'), { recursive: true });
  copyFileSync(join(REPO, RECIPE), join(root, RECIPE));
  copyFileSync(join(REPO, 'recipes', 'demo', 'grpo-prompts.jsonl'), join(root, 'recipes', 'demo', 'grpo-prompts.jsonl'));
  const python = join(root, 'gated-python');
  // says it is called (waiting), then waits for the gate; a bounded wait, so nothing outlives the test
  writeFileSync(python, [
    '#!/bin/sh',
    `touch '${root}/waiting'`,
    'i=0',
    `while [ ! -e '${root}/gate' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`,
    'exec python3 "$@"',
    '',
  ].join('\n'), { mode: 0o755 });
  writeFileSync(join(root, 'conscience.targets.yaml'), `gated:\n  type: local\n  python: ${python}\n  cancelGrace: 1\n`);
  const target: Target = { name: 'gated', type: 'local', python, cancelGrace: 1 };
  return { root, target, session: () => new LaunchSession(root, new Map([['gated', target]]), {}) };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const runIds = (root: string): string[] => {
  const d = join(root, '.conscience', 'runs');
  return existsSync(d) ? readdirSync(d) : [];
};

/** Whether any process of the group still runs (zombies aside). */
function groupAlive(pgid: number): boolean {
  try {
    return execFileSync('ps', ['-o', 'stat=', '-g', String(pgid)], { encoding: 'utf8' }).split('\n').some((s) => s.trim() && !s.startsWith('Z'));
  } catch {
    return false;
  }
}

/** Remembers a started run's process group for the cleanup (a run that should not have started). */
async function noteGroup(root: string, id: string): Promise<RunRecord> {
  const rec = (await readRun(root, id))!;
  if (rec.pgid) groups.push(rec.pgid);
  return rec;
}

/** `conscience launch` of the demo recipe on `gated`, as a child process. */
function cliLaunch(root: string, env: NodeJS.ProcessEnv = process.env): { p: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const p = spawn(process.execPath, ['--import', TSX, join(REPO, 'extension/src/cli/main.ts'), 'launch', RECIPE, '--target', 'gated', '--force', '--workspace', root], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(p);
  let stderr = '';
  p.stderr!.on('data', (d) => (stderr += d));
  p.stdout!.resume();
  const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
  return { p, stderr: () => stderr, exited };
}

test('cancelling a run while its launch is preparing: the launch starts nothing and the run stays cancelled; the same for a resume', async () => {
  const w = gatedWorkspace();
  const s = w.session();
  const other = w.session(); // the cancel comes from elsewhere (`conscience cancel`, another window)
  try {
    const launching = launchRun(s, RECIPE, 'gated');
    launching.catch(() => undefined);
    // preparing: synced, and the launcher is checking the python (held at the gate)
    await until('the launch to wait at the python check', () => existsSync(join(w.root, 'waiting')));
    const [id] = runIds(w.root);
    assert.ok(id);
    assert.equal((await readRun(w.root, id))!.state, 'preparing');
    const c = await cancelRun(other, id, 1);
    assert.equal(c.state, 'cancelled');
    writeFileSync(join(w.root, 'gate'), '');
    await assert.rejects(launching, (err: Error) => {
      assert.ok(err instanceof NotStartedError, err.message);
      assert.match(err.message, new RegExp(`run ${id} was cancelled before it started: nothing was started`));
      return true;
    });
    const rec = await noteGroup(w.root, id);
    assert.equal(rec.state, 'cancelled', 'the launch wrote its record over the cancel');
    assert.equal(rec.pgid, undefined, 'a process was started for a cancelled run');
    assert.ok(rec.finishedAt);
    assert.match(rec.error ?? '', /cancelled while preparing/);
    // the wrapper never ran: no pid file in the run's folder on the host
    assert.equal(existsSync(join(rec.remoteDir, 'pid')), false, 'the run was started');
    assert.equal(existsSync(join(rec.remoteDir, 'secrets.env')), false);

    // resume goes through preparing too: a cancel meanwhile wins the same way
    rmSync(join(w.root, 'gate'));
    rmSync(join(w.root, 'waiting'));
    const resuming = resumeRun(s, id);
    resuming.catch(() => undefined);
    await until('the resume to wait at the python check', () => existsSync(join(w.root, 'waiting')));
    const r = (await readRun(w.root, id))!;
    assert.equal(r.state, 'preparing');
    assert.equal(r.attempts, 2);
    assert.equal((await cancelRun(other, id, 1)).state, 'cancelled');
    writeFileSync(join(w.root, 'gate'), '');
    await assert.rejects(resuming, /was cancelled before it started: nothing was started/);
    const after = await noteGroup(w.root, id);
    assert.equal(after.state, 'cancelled', 'the resume wrote its record over the cancel');
    assert.equal(after.pgid, undefined);
    assert.equal(existsSync(join(after.remoteDir, 'pid')), false, 'the resumed run was started');
  } finally {
    await s.close();
    await other.close();
  }
});

/**
 * An environment whose `ps` takes `seconds` the first time it runs (and leaves `ps-called` in
 * `root`): the launched wrapper's first `ps` (it records its process group with it) holds the
 * launcher inside the submit, waiting for the wrapper's pid file.
 */
function slowFirstPs(root: string, seconds: number): NodeJS.ProcessEnv {
  const bin = join(root, 'bin');
  mkdirSync(bin);
  const realPs = execFileSync('sh', ['-c', 'command -v ps'], { encoding: 'utf8' }).trim();
  writeFileSync(join(bin, 'ps'), `#!/bin/sh\nif [ ! -e '${root}/ps-called' ]; then touch '${root}/ps-called'; sleep ${seconds}; fi\nexec '${realPs}' "$@"\n`, { mode: 0o755 });
  return { ...process.env, PATH: `${bin}:${process.env.PATH}` };
}

test('a cancel that lands while the launch is submitting stops the process just started; it is not lost', async () => {
  const w = gatedWorkspace();
  writeFileSync(join(w.root, 'gate'), '');
  // the wrapper's first `ps` (it records its process group with it) says so and takes a while:
  // the launcher is then inside the submit, waiting for the wrapper's pid file
  const l = cliLaunch(w.root, slowFirstPs(w.root, 2));
  const s = w.session();
  try {
    await until('the wrapper to start', () => existsSync(join(w.root, 'ps-called')) || l.p.exitCode !== null);
    // the launcher, frozen between its submit and its record
    l.p.kill('SIGSTOP');
    const [id] = runIds(w.root);
    assert.equal((await readRun(w.root, id!))!.state, 'preparing', 'the launch recorded its start before the cancel: nothing to test');
    assert.equal((await cancelRun(s, id!, 1)).state, 'cancelled');
    l.p.kill('SIGCONT');
    const code = await l.exited;
    assert.equal(code, 1, l.stderr());
    assert.match(l.stderr(), /was cancelled while it was starting: the process it had just started is being stopped/);
    const rec = await noteGroup(w.root, id!);
    assert.ok(rec.pgid, 'the started process is recorded');
    assert.equal(rec.cancelRequested, true);
    assert.notEqual(rec.state, 'starting', 'the launch wrote its start over the cancel');
    // followed to the end: cancelled, and nothing of it runs any more
    const fin = await new RunMonitor(s, id!, { intervalMs: 100, statusMs: 200 }).follow();
    assert.equal(fin?.state, 'cancelled');
    await until('the run to be gone', () => !groupAlive(rec.pgid!), 30_000);
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGCONT');
    await s.close();
  }
});

test('a CLI launch killed while preparing is shown failed ("launch interrupted") by the refresh; a live one is left preparing', async () => {
  const w = gatedWorkspace();
  const l = cliLaunch(w.root);
  await until('the launch to wait at the python check', () => existsSync(join(w.root, 'waiting')) || l.p.exitCode !== null);
  const [id] = runIds(w.root);
  assert.ok(id, l.stderr());
  const prep = (await readRun(w.root, id))!;
  assert.equal(prep.state, 'preparing');
  assert.equal(prep.launcher?.pid, l.p.pid, 'the launching process is recorded');
  // alive: the refresh (CLI and monitor) leaves it preparing
  const live = cli(['runs', '--workspace', w.root, '--format', 'json'], { timeoutMs: 60_000 });
  assert.equal(live.code, 0, live.stderr);
  assert.equal((JSON.parse(live.stdout) as RunRecord[])[0]!.state, 'preparing');
  const s = w.session();
  try {
    await new RunMonitor(s, id).pollOnce();
    assert.equal((await readRun(w.root, id))!.state, 'preparing', 'a live launch was marked failed');
  } finally {
    await s.close();
  }
  l.p.kill('SIGKILL');
  await l.exited;
  // the gated "python" the killed launcher was waiting on ends too
  writeFileSync(join(w.root, 'gate'), '');
  assert.equal((await readRun(w.root, id))!.state, 'preparing');
  const r = cli(['runs', '--workspace', w.root], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${id}\\s+failed`));
  const rec = (await readRun(w.root, id))!;
  assert.equal(rec.state, 'failed');
  assert.equal(rec.error, 'launch interrupted');
  assert.ok(rec.finishedAt && Math.abs(rec.finishedAt - Date.now() / 1000) < 60);
});

test("the editor's monitor poll settles a preparing run whose launcher is gone (a reused pid included); other machines and old records are left alone", async () => {
  const me = launcherIdentity();
  const cases: Array<[string, RunRecord['launcher'] | undefined, RunRecord['state']]> = [
    // this process's pid, but another process's start time: the launcher's pid was reused
    ['reused', { ...me, start: String(Number(me.start ?? 0) + 1) }, 'failed'],
    ['another-machine', { ...me, pid: 999_999_999, host: `${me.host}-elsewhere` }, 'preparing'],
    ['alive', me, 'preparing'],
    ['old-record', undefined, 'preparing'],
  ];
  for (const [name, launcher, want] of cases) {
    const w = await localRunWorkspace('', { id: `20261128-010000-${name}`, state: 'preparing', extra: { pid: undefined, pgid: undefined, startedAt: undefined } });
    roots.push(w.root);
    const rec = (await readRun(w.root, w.id))!;
    if (launcher) rec.launcher = launcher;
    await writeRun(w.root, rec);
    const s = new LaunchSession(w.root, new Map<string, Target>([['local', { name: 'local', type: 'local' }]]), {});
    try {
      const got = (await new RunMonitor(s, w.id).pollOnce())!;
      assert.equal(got.state, want, name);
      assert.equal((await readRun(w.root, w.id))!.state, want, name);
      if (want === 'failed') {
        assert.equal(got.error, 'launch interrupted');
        assert.ok(got.finishedAt);
      }
    } finally {
      await s.close();
    }
  }
});

test('a run whose launch was interrupted (launcher gone) can be resumed: resume does not refuse it as preparing', async () => {
  const w = await localRunWorkspace('', { id: '20261128-010000-gone', state: 'preparing', extra: { pid: undefined, pgid: undefined, startedAt: undefined } });
  roots.push(w.root);
  const rec = (await readRun(w.root, w.id))!;
  rec.launcher = { ...launcherIdentity(), pid: deadPid() };
  await writeRun(w.root, rec);
  const s = new LaunchSession(w.root, new Map<string, Target>([['local', { name: 'local', type: 'local' }]]), {});
  try {
    // past the state check: what stops it now is the missing recipe of this stand-in run
    await assert.rejects(resumeRun(s, w.id), (err: Error) => {
      assert.doesNotMatch(err.message, /is preparing/);
      assert.match(err.message, /recipe not found/);
      return true;
    });
    const after = (await readRun(w.root, w.id))!;
    assert.equal(after.state, 'failed');
    // why it ended, and why the resume did not start it
    assert.match(after.error ?? '', /^launch interrupted; resume failed: .*recipe not found$/);
  } finally {
    await s.close();
  }
});

test('a CLI launch killed while it submits: the process it started is found on the host and followed, not called interrupted; resume refuses it while it runs, cancel stops it', async () => {
  const w = gatedWorkspace();
  writeFileSync(join(w.root, 'gate'), '');
  // the wrapper's first `ps` is slow: the launcher is inside the submit, waiting for the pid file
  const l = cliLaunch(w.root, slowFirstPs(w.root, 3));
  const s = w.session();
  try {
    await until('the wrapper to start', () => existsSync(join(w.root, 'ps-called')) || l.p.exitCode !== null);
    l.p.kill('SIGKILL');
    await l.exited;
    const [id] = runIds(w.root);
    const prep = (await readRun(w.root, id!))!;
    assert.equal(prep.state, 'preparing', 'the launch recorded its start before it was killed: nothing to test');
    assert.ok(prep.submitting, 'the record says it is being submitted');
    assert.ok(!existsSync(join(prep.remoteDir, 'pid')), 'the wrapper had not written its pid yet: the host is asked by the launch token');
    // the refresh asks the host: the run is found running, not failed
    const r = cli(['runs', '--workspace', w.root, '--format', 'json'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const listed = (JSON.parse(r.stdout) as RunRecord[]).find((x) => x.id === id)!;
    assert.notEqual(listed.state, 'failed', `the running run was called ${listed.error}`);
    const rec = await noteGroup(w.root, id!);
    assert.ok(rec.pgid && groupAlive(rec.pgid), 'its process group is recorded and alive');
    assert.equal(rec.submitting, undefined);
    await assert.rejects(resumeRun(s, id!), /cancel it before resuming/);
    // its recorded handle is the real one: a cancel stops the process the dead launcher started
    assert.equal((await cancelRun(s, id!, 1)).state, 'cancelling');
    const fin = await new RunMonitor(s, id!, { intervalMs: 100, statusMs: 200 }).follow();
    assert.equal(fin?.state, 'cancelled');
    await until('the run to be gone', () => !groupAlive(rec.pgid!), 30_000);
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGKILL');
    await s.close();
  }
});

test('a launch killed while it submits, whose process never started: the host is asked; within the grace period the run waits (the submit may be on its way), after it the run is interrupted', async () => {
  const w = await localRunWorkspace('', { id: '20261128-020000-submit', state: 'preparing', extra: { pid: undefined, pgid: undefined, startedAt: undefined } });
  roots.push(w.root);
  const rec = (await readRun(w.root, w.id))!;
  rec.launcher = { ...launcherIdentity(), pid: deadPid() };
  rec.submitting = Date.now() / 1000;
  rec.launchToken = `no-process-has-this-token-${process.pid}`;
  await writeRun(w.root, rec);
  // without a host check it is left alone: only the host can tell
  const plain = cli(['runs', '--workspace', w.root, '--no-refresh', '--format', 'json'], { timeoutMs: 60_000 });
  assert.equal((JSON.parse(plain.stdout) as RunRecord[])[0]!.state, 'preparing');
  const s = new LaunchSession(w.root, new Map<string, Target>([['local', { name: 'local', type: 'local' }]]), {});
  try {
    await new RunMonitor(s, w.id).pollOnce();
    assert.equal((await readRun(w.root, w.id))!.state, 'preparing', 'asked within the grace period: the submit may still land');
    await assert.rejects(resumeRun(s, w.id), /is preparing; cancel it before resuming/);
    // the grace period is over and nothing of it runs
    const old = (await readRun(w.root, w.id))!;
    old.submitting = Date.now() / 1000 - SUBMIT_GRACE_S - 5;
    await writeRun(w.root, old);
    await new RunMonitor(s, w.id).pollOnce();
    const after = (await readRun(w.root, w.id))!;
    assert.equal(after.state, 'failed');
    assert.equal(after.error, 'launch interrupted');
    assert.equal(after.submitting, undefined);
  } finally {
    await s.close();
  }
});

test('a cancel of a run whose launcher died while submitting it, before the host could tell: recorded, and what the host then shows is stopped', async () => {
  const w = await localRunWorkspace('', { id: '20261128-030000-submit', state: 'preparing', extra: { pid: undefined, pgid: undefined, startedAt: undefined } });
  roots.push(w.root);
  const token = `tok-${process.pid}-${Date.now()}`;
  const rec = (await readRun(w.root, w.id))!;
  Object.assign(rec, { launcher: { ...launcherIdentity(), pid: deadPid() }, submitting: Date.now() / 1000, launchToken: token });
  await writeRun(w.root, rec);
  const s = new LaunchSession(w.root, new Map<string, Target>([['local', { name: 'local', type: 'local', cancelGrace: 1 }]]), {});
  let pgid = 0;
  try {
    const c = await cancelRun(s, w.id, 1);
    assert.equal(c.state, 'preparing', 'nothing found yet: the cancel waits for the host to tell');
    assert.equal(c.cancelRequested, true);
    // the submit lands: the wrapper the dead launcher started, with the run's token, in a session of its own
    const p = spawn('setsid', ['sh', '-c', 'sleep 60 & wait'], { env: { ...process.env, CONSCIENCE_LAUNCH_TOKEN: token }, stdio: 'ignore', detached: false });
    children.push(p);
    await until('the stand-in wrapper', () => existsSync(`/proc/${p.pid}`));
    await new Promise((r) => setTimeout(r, 200));
    const fin = await new RunMonitor(s, w.id, { intervalMs: 100, statusMs: 200, cancelGrace: 1 }).follow();
    const got = (await readRun(w.root, w.id))!;
    pgid = got.pgid!;
    assert.ok(pgid > 0, 'the process was found by its token');
    groups.push(pgid);
    assert.equal(fin?.state, 'cancelled');
    await until('its processes to be gone', () => !groupAlive(pgid), 30_000);
  } finally {
    await s.close();
  }
});

test('Ctrl-C of a CLI launch while it submits: the run is not called interrupted (its process may have started); the next refresh finds it', async () => {
  const w = gatedWorkspace();
  writeFileSync(join(w.root, 'gate'), '');
  const l = cliLaunch(w.root, slowFirstPs(w.root, 3));
  const s = w.session();
  try {
    await until('the wrapper to start', () => existsSync(join(w.root, 'ps-called')) || l.p.exitCode !== null);
    l.p.kill('SIGINT');
    assert.equal(await l.exited, 130, l.stderr());
    // the wrapper's pid came back from the start command before the launcher waited for its pid file
    assert.match(l.stderr(), /: interrupted (while submitting the run: it may have started; `conscience runs` asks|after the start; the run goes on)/);
    assert.doesNotMatch(l.stderr(), /launch interrupted/);
    const [id] = runIds(w.root);
    const rec = (await readRun(w.root, id!))!;
    assert.equal(rec.state, 'preparing');
    const r = cli(['runs', '--workspace', w.root, '--format', 'json'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const found = await noteGroup(w.root, id!);
    assert.ok(['starting', 'running'].includes(found.state), found.state);
    assert.equal((await cancelRun(s, id!, 1)).state, 'cancelling');
    const fin = await new RunMonitor(s, id!, { intervalMs: 100, statusMs: 200 }).follow();
    assert.equal(fin?.state, 'cancelled');
  } finally {
    if (l.p.exitCode === null) l.p.kill('SIGKILL');
    await s.close();
  }
});
