// The dashboard's feed (core/runs/feed.ts) takes the events a real RunMonitor parsed from the run
// store's events.jsonl, while the runtime's own writer (runtime/conscience/events.py) writes the
// host's file; then the store's file is cut under both. What a user sees is the dashboard's
// series: it must end up equal to what a fresh read of the store's file shows, every event after
// the cut taken once, none lost.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { loadTargets } from '../../src/core/launch/targets';
import type { ParseProblem, RunEvent } from '../../src/core/runs/events';
import { RunFeed } from '../../src/core/runs/feed';
import { runDir } from '../../src/core/runs/store';
import { localRunWorkspace } from '../hardening/helpers';
import { attempt, fresh, lineBytes, PYTHON, problemText, shown, steps, write } from './writer';

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A local run, its monitor (polled by the test) and the dashboard's reader on the feed, after two attempts (steps 1..20, then a resume 21..30) reached the dashboard through the monitor. */
async function following() {
  const ws = await localRunWorkspace('');
  const session = new LaunchSession(ws.root, (await loadTargets(ws.root)).targets, {});
  const m = new RunMonitor(session, ws.id, { statusMs: 60_000 });
  const feed = new RunFeed();
  feed.attach(ws.root, ws.id, m);
  const got: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  const reader = feed.followRun(ws.root, ws.id, { events: (evs) => got.push(...evs), run: () => undefined, problems: (ps) => problems.push(...ps) });
  const host = join(ws.outputDir, 'events.jsonl');
  const store = join(runDir(ws.root, ws.id), 'events.jsonl');
  assert.equal(reader.source, 'monitor');
  write(ws.outputDir, 1, 1, 20, 5000);
  await m.pollOnce();
  await until('the first attempt on the dashboard', () => got.length === 21);
  write(ws.outputDir, 2, 21, 30, 6000);
  await m.pollOnce();
  await until('the resume on the dashboard', () => got.length === 32);
  const close = async () => {
    reader.close();
    await session.close();
    rmSync(ws.root, { recursive: true, force: true });
  };
  return { ws, m, got, problems, host, store, close };
}

/** Waits until the dashboard shows `want`, then says what it shows. */
async function shows(got: RunEvent[], want: Array<[number, number]>, problems: ParseProblem[]): Promise<void> {
  await until('the dashboard to show what the file says', () => JSON.stringify(shown(got)) === JSON.stringify(want), 3_000).catch(() => undefined);
  assert.deepEqual(shown(got), want, problemText(problems));
}

test('the store\'s file cut inside the lines the dashboard took from the monitor and written again in place, each line ending where one did: the dashboard shows what the file says, each event once', async () => {
  const f = await following();
  try {
    const had = statSync(f.store).size;
    // the resume's lines are lost (a node that never synced them) and a requeued attempt, its
    // clock behind, resumes from checkpoint-20; the store's copy is written again in place (the
    // same inode) from the host's file: its lines have the lengths of the ones they replace
    const r = spawnSync(PYTHON, ['-c', attempt(f.ws.outputDir, 3, 21, 40, 4000, { cutTo: lineBytes(f.host, 21) })], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    writeFileSync(f.store, readFileSync(f.host));
    assert.equal(readFileSync(f.store)[had - 1], 0x0a, 'a line still ends where the dashboard was');
    await f.m.pollOnce();
    const want = [...steps(1, 20, 1), ...steps(21, 40, 3)];
    assert.deepEqual(await fresh(f.store), want);
    await shows(f.got, want, f.problems);
    assert.equal(f.got.length, 32 + 21, 'each line after the cut once: the new run_started and steps 21..40');
    // then only what is new, from the monitor
    write(f.ws.outputDir, 4, 41, 42, 4100);
    await f.m.pollOnce();
    await until('the lines after it', () => f.got.length === 32 + 21 + 3);
    assert.deepEqual(shown(f.got), await fresh(f.store));
  } finally {
    await f.close();
  }
});

test('the store\'s file cut and the monitor finds no new line there: the lines written after the cut, shorter than what the dashboard had, reach the dashboard', async () => {
  const f = await following();
  try {
    // the resume's lines are lost on the host and in the store (a copy synced back); the monitor looks before anything new is written
    const had = statSync(f.store).size;
    const cut = lineBytes(f.host, 21);
    truncateSync(f.host, cut);
    truncateSync(f.store, cut);
    await f.m.pollOnce();
    // the requeued attempt writes steps 21..23: fewer bytes than the dashboard had taken
    write(f.ws.outputDir, 3, 21, 23, 4000);
    await f.m.pollOnce();
    assert.ok(statSync(f.store).size < had);
    const want = [...steps(1, 20, 1), ...steps(21, 23, 3)];
    assert.deepEqual(await fresh(f.store), want);
    await shows(f.got, want, f.problems);
    assert.equal(f.got.length, 32 + 4);
    write(f.ws.outputDir, 4, 24, 40, 4100);
    await f.m.pollOnce();
    await shows(f.got, [...steps(1, 20, 1), ...steps(21, 23, 3), ...steps(24, 40, 4)], f.problems);
    assert.equal(f.got.length, 32 + 4 + 18);
  } finally {
    await f.close();
  }
});
