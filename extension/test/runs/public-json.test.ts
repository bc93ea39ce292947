// `conscience runs --format json` is read by scripts: it prints each run's own fields (what it
// is, where it runs, how far it got, how it ended) and a failed run's cause, not the store's
// bookkeeping (log offsets, the launcher's identity, the per-start cancel token), which changes
// as the store does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PUBLIC_RUN_FIELDS } from '../../src/core/runs/present';

const REPO = join(import.meta.dirname, '..', '..', '..');

test('runs --format json prints the public fields of each run and a failed run\'s cause', () => {
  const ws = mkdtempSync(join(tmpdir(), 'cc-public-'));
  after(() => rmSync(ws, { recursive: true, force: true }));
  const base = {
    recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: ws, remoteDir: ws,
    python: 'python3', createdAt: 1_780_000_000, updatedAt: 1_780_000_100, command: 'bash run.sh', attempts: 2,
    // the store's bookkeeping
    eventOffset: 4096, stdoutOffset: 17, stderrOffset: 99, eventShift: 3, eventView: [[0, 10]], lastSeq: 41, sawStarted: true,
    launchToken: 'c0ffee1234', attemptOffset: 2048, lastActivityAt: 1_780_000_090, startStep: 4, attemptSeenAt: 1_780_000_050,
    launcher: { pid: 1, host: 'h', boot: 'b' }, supersededJob: '12',
  };
  const done = '20261126-101232-tiny-cpu-ab12';
  const bad = '20261126-101300-tiny-cpu-cd34';
  for (const [id, extra] of [
    [done, { state: 'completed', exitCode: 0, step: 8, maxSteps: 8, reward: 0.5, finishedAt: 1_780_000_100, pid: 7, pgid: 7, outputDir: join(ws, 'o1'), versions: { trl: '0.18.2' } }],
    [bad, { state: 'failed', exitCode: 1, error: 'exit 1', finishedAt: 1_780_000_100, outputDir: join(ws, 'o2'), finished: { status: 'failed', exit_code: 1, error: 'ValueError: num_generations must divide the batch' } }],
  ] as const) {
    mkdirSync(join(ws, '.conscience', 'runs', id), { recursive: true });
    writeFileSync(join(ws, '.conscience', 'runs', id, 'run.json'), JSON.stringify({ id, ...base, ...extra }));
  }
  writeFileSync(join(ws, '.conscience', 'runs', bad, 'stderr.log'), 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: num_generations must divide the batch\n');
  const cli = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'runs', '--workspace', ws, '--no-refresh', '--format', 'json'],
    { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(cli.status, 0, cli.stderr);
  const runs = JSON.parse(cli.stdout) as Record<string, unknown>[];
  const byId = new Map(runs.map((r) => [r.id, r]));
  const ok = byId.get(done)!;
  assert.deepEqual(
    { id: ok.id, state: ok.state, exitCode: ok.exitCode, step: ok.step, maxSteps: ok.maxSteps, reward: ok.reward, attempts: ok.attempts, pid: ok.pid, outputDir: ok.outputDir, versions: ok.versions },
    { id: done, state: 'completed', exitCode: 0, step: 8, maxSteps: 8, reward: 0.5, attempts: 2, pid: 7, outputDir: join(ws, 'o1'), versions: { trl: '0.18.2' } },
  );
  for (const r of runs) {
    const extra = Object.keys(r).filter((k) => !(PUBLIC_RUN_FIELDS as readonly string[]).includes(k) && k !== 'cause');
    assert.deepEqual(extra, [], `${String(r.id)}: no bookkeeping field printed`);
  }
  assert.doesNotMatch(cli.stdout, /c0ffee1234|eventOffset|launcher/);
  assert.match(String(byId.get(bad)!.cause), /ValueError: num_generations must divide the batch \(stderr\.log:3\)/);
  assert.equal(ok.cause, undefined);
});
