// A run whose run.json is corrupted is that run, broken, not "no run": `conscience logs/cancel
// RUN` give readRun's error (FILE: why), and `conscience runs` lists the others and says on
// stderr which folder it skipped and why. The real CLI on a real store.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, localRunWorkspace } from '../hardening/helpers';

test('a corrupted run.json is reported with its file and cause, by the run verbs and by `runs`', async () => {
  const w = await localRunWorkspace('', { state: 'completed', extra: { finishedAt: Date.now() / 1000 } });
  try {
    writeFileSync(join(w.root, 'conscience.targets.yaml'), 'local:\n  type: local\n');
    const bad = '20261126-111111-broken';
    const file = join(w.root, '.conscience', 'runs', bad, 'run.json');
    mkdirSync(join(w.root, '.conscience', 'runs', bad), { recursive: true });
    writeFileSync(file, '{"id": "20261126-111111-broken", "state": "runn');
    const l = cli(['logs', bad, '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(l.code, 1);
    assert.ok(l.stderr.startsWith(`conscience: ${file}: invalid JSON`), l.stderr);
    assert.doesNotMatch(l.stderr, /no run/);
    // a prefix: the broken run alone is that run, broken; with a readable run it is ambiguous (it
    // named the readable run's logs)
    const alone = cli(['logs', '20261126-1111', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(alone.code, 1);
    assert.ok(alone.stderr.startsWith(`conscience: ${file}: invalid JSON`), alone.stderr);
    const both = cli(['logs', '20261126-1', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(both.code, 1, both.stdout);
    assert.match(both.stderr, new RegExp(`'20261126-1' matches 2 runs: ${w.id}, ${bad} \\(run\\.json unreadable\\)`));
    const r = cli(['runs', '--workspace', w.root, '--no-refresh'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(w.id));
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.startsWith(`conscience: ${file}: invalid JSON: `), r.stderr);
  } finally {
    rmSync(w.root, { recursive: true, force: true });
  }
});

test('a run folder copied aside (its run.json names the original run) is not taken for that run', async () => {
  const w = await localRunWorkspace('', { state: 'completed', extra: { finishedAt: Date.now() / 1000 } });
  try {
    writeFileSync(join(w.root, 'conscience.targets.yaml'), 'local:\n  type: local\n');
    const runs = join(w.root, '.conscience', 'runs');
    writeFileSync(join(runs, w.id, 'stdout.log'), 'original\n');
    cpSync(join(runs, w.id), join(runs, 'backup-of-run'), { recursive: true });
    writeFileSync(join(runs, 'backup-of-run', 'stdout.log'), 'original\nfoo\n');
    const file = join(runs, 'backup-of-run', 'run.json');
    const why = `${file}: id '${w.id}' does not match its folder 'backup-of-run'`;
    // listed once (not the same id twice), the copy said on stderr
    const r = cli(['runs', '--workspace', w.root, '--format', 'json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Array<{ id: string }>).map((x) => x.id), [w.id]);
    assert.ok(r.stderr.includes(why), r.stderr);
    // its logs are not the original's, and cancel/resume do not act on the original run
    const l = cli(['logs', 'backup-of-run', '--workspace', w.root], { timeoutMs: 30_000 });
    assert.equal(l.code, 1);
    assert.doesNotMatch(l.stdout, /original/);
    assert.ok(l.stderr.includes(why), l.stderr);
    for (const verb of ['cancel', 'resume']) {
      const c = cli([verb, 'backup-of-run', '--workspace', w.root], { timeoutMs: 30_000 });
      assert.equal(c.code, 1, c.stdout);
      assert.ok(c.stderr.includes(why), c.stderr);
    }
  } finally {
    rmSync(w.root, { recursive: true, force: true });
  }
});
