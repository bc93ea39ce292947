// A resumed run's ETA: the monitor takes the step the trainer starts from out of run_started's
// resumed_from (checkpoint-N) and when it saw it, so the pace counts only this attempt's steps
// (a real RunMonitor following a local run: a real process, a real events file).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { loadTargets } from '../../src/core/launch/targets';
import { runProgress } from '../../src/core/runs/present';
import { readRun, writeRun, type RunRecord } from '../../src/core/runs/store';

let root: string;
let proc: ChildProcess;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'eta-'));
  proc = spawn('sleep', ['120'], { detached: true, stdio: 'ignore' });
});
after(() => {
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  rmSync(root, { recursive: true, force: true });
});

const line = (e: object) => JSON.stringify(e) + '\n';

test('a run resumed from checkpoint-500 paces its ETA by the steps since 500', async () => {
  const id = 'resumed';
  const out = join(root, 'host', 'output');
  mkdirSync(out, { recursive: true });
  const events = join(out, 'events.jsonl');
  // the first attempt's events, then the resume's run_started and its first steps
  appendFileSync(events, line({ type: 'run_started', seq: 0, time: 1, max_steps: 1000, resumed_from: null })
    + line({ type: 'metrics', seq: 1, time: 2, step: 520, values: {} })
    + line({ type: 'run_started', seq: 2, time: 3, max_steps: 1000, resumed_from: `${out}/checkpoint-500` }));
  const now = Date.now() / 1000;
  const rec: RunRecord = {
    id, recipe: 'r.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: join(root, 'host'), remoteDir: join(root, 'host'),
    outputDir: out, python: 'python3', pid: proc.pid, pgid: proc.pid, state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0,
    createdAt: now - 5000, startedAt: now - 5000, updatedAt: now, command: 'sleep', attempts: 2, sawStarted: false,
  };
  await writeRun(root, rec);
  const session = new LaunchSession(root, (await loadTargets(root)).targets);
  const m = new RunMonitor(session, id, { intervalMs: 30, statusMs: 200 });
  const following = m.follow();
  try {
    const end = Date.now() + 20_000;
    let r = await readRun(root, id);
    while (r?.startStep !== 500 && Date.now() < end) { await new Promise((res) => setTimeout(res, 30)); r = await readRun(root, id); }
    assert.equal(r!.startStep, 500);
    assert.ok(r!.attemptSeenAt! >= now - 1, 'the attempt is timed from its run_started, not from the run\'s first start');
    // 10 steps in 100 s since the resume: 490 left at 10 s each (counting from 0, or from the
    // first start 5000 s ago, it would be a few minutes or several hours)
    const p = runProgress({ ...r!, step: 510, attemptSeenAt: 1000, lastActivityAt: 1100 });
    assert.equal(p!.etaS, 4900);
  } finally {
    m.stop();
    await following;
    await session.close();
  }
});
