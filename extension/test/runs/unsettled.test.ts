// A run the monitor saw end (run_finished completed) while its process was still going away is
// terminal but not settled (no finishedAt). `conscience runs` used to refresh only runs that had
// not ended, so such a run was never settled and its ELAPSED grew for ever (6m33s for a run of
// 27 s); it is settled by the next refresh now, and until then its wall time stops at its
// run_finished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { cli, localRunWorkspace } from '../hardening/helpers';
import { readRun, type RunRecord } from '../../src/core/runs/store';
import { runElapsed } from '../../src/core/runs/present';

test('a run that ended unsettled is settled by `conscience runs`, and its ELAPSED stops at its end', async () => {
  const now = Date.now() / 1000;
  const finished = { status: 'completed' as const, exit_code: 0, time: now - 400 };
  const w = await localRunWorkspace('', { state: 'completed', extra: { startedAt: now - 427, createdAt: now - 430, updatedAt: now - 399, finished, sawStarted: true, exitCode: 0 } });
  try {
    const before = (await readRun(w.root, w.id))!;
    assert.equal(before.finishedAt, undefined);
    // without a refresh: the wall time is the run's, not the time since it started
    assert.equal(runElapsed(before, now), '0m27s');
    const plain = cli(['runs', '--workspace', w.root, '--no-refresh'], { timeoutMs: 60_000 });
    assert.match(plain.stdout, new RegExp(`${w.id}\\s+completed.*\\s0m27s`), plain.stdout);
    const r = cli(['runs', '--workspace', w.root, '--format', 'json'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const rec = (JSON.parse(r.stdout) as RunRecord[])[0]!;
    assert.equal(rec.state, 'completed');
    assert.ok(rec.finishedAt && Math.abs(rec.finishedAt - finished.time) < 1, `finishedAt ${rec.finishedAt}: the run_finished time`);
    assert.equal(runElapsed(rec, now + 3600), '0m27s', 'an hour later it still reads 27 s');
  } finally {
    rmSync(w.root, { recursive: true, force: true });
  }
});
