// The dashboard's feed in one window: a real RunMonitor follows a run on the local host (a real
// process, a real events file); a reader that joins mid-run gets the file's events once, then
// the very objects the monitor parsed (no second read, no repeat), and falls back to the disk
// when the monitor goes, without losing or repeating an event.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { loadTargets } from '../../src/core/launch/targets';
import { formatProblem, type ParseProblem, type RunEvent } from '../../src/core/runs/events';
import { RunFeed } from '../../src/core/runs/feed';
import { writeRun, type RunRecord } from '../../src/core/runs/store';

let root: string;
let proc: ChildProcess;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'feed-'));
  proc = spawn('sleep', ['120'], { detached: true, stdio: 'ignore' });
});
after(() => {
  try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
  rmSync(root, { recursive: true, force: true });
});

const line = (e: object) => JSON.stringify(e) + '\n';
const metrics = (seq: number, step: number, reward = step / 10) => ({ type: 'metrics', seq, time: 1000 + seq, step, values: { reward } });
async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a reader joins the monitor mid-run, takes its parsed events, and goes back to the disk when it stops', async () => {
  const id = 'feed-run';
  const host = join(root, 'host');
  const out = join(host, 'output');
  mkdirSync(out, { recursive: true });
  const hostEvents = join(out, 'events.jsonl');
  appendFileSync(hostEvents, line({ type: 'run_started', seq: 0, time: 1000, max_steps: 10 }) + line(metrics(1, 1)) + line(metrics(2, 2)));
  const now = Date.now() / 1000;
  const rec: RunRecord = {
    id, recipe: 'r.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: host, remoteDir: host, outputDir: out,
    python: 'python3', pid: proc.pid, pgid: proc.pid, state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0,
    createdAt: now, startedAt: now, updatedAt: now, command: 'sleep', attempts: 1, sawStarted: true,
  };
  await writeRun(root, rec);
  const session = new LaunchSession(root, (await loadTargets(root)).targets);
  const feed = new RunFeed();
  const m = new RunMonitor(session, id, { intervalMs: 30, statusMs: 200 });
  const fromMonitor: RunEvent[] = [];
  m.on('events', (evs: RunEvent[]) => fromMonitor.push(...evs));
  feed.attach(root, id, m);
  const following = m.follow();
  try {
    await until('the monitor copies the first events', () => fromMonitor.length === 3);
    const got: RunEvent[] = [];
    const reader = feed.followRun(root, id, { events: (evs) => got.push(...evs), run: () => undefined }, { pollMs: 50 });
    assert.equal(reader.source, 'monitor');
    await until('the backlog from the file', () => got.length === 3);
    appendFileSync(hostEvents, line(metrics(3, 3)) + line(metrics(4, 4)));
    await until('live events', () => got.length === 5);
    assert.deepEqual(got.map((e) => e.seq), [0, 1, 2, 3, 4]);
    // the live ones are the monitor's own objects: parsed once, in one place
    assert.equal(got[3], fromMonitor[3]);
    assert.equal(got[4], fromMonitor[4]);
    // the monitor goes (the window stops following): the disk takes over from the same offset
    m.stop();
    await following;
    feed.detach(root, id, m);
    assert.equal(reader.source, 'disk');
    appendFileSync(join(root, '.conscience/runs', id, 'events.jsonl'), line(metrics(5, 5)));
    await until('events from the disk', () => got.length === 6);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got.map((e) => e.seq), [0, 1, 2, 3, 4, 5], 'each event once');
    reader.close();
  } finally {
    m.stop();
    await session.close();
  }
});

test('a bad line after events taken from the monitor is reported at its own line of the file', async () => {
  const id = 'feed-lines';
  const file = join(root, '.conscience/runs', id, 'events.jsonl');
  mkdirSync(join(root, '.conscience/runs', id), { recursive: true });
  appendFileSync(file, line(metrics(0, 0)) + line(metrics(1, 1)));
  const feed = new RunFeed();
  const mon = new EventEmitter();
  feed.attach(root, id, mon);
  const got: number[] = [];
  const problems: ParseProblem[] = [];
  const reader = feed.followRun(root, id, { events: (evs) => got.push(...evs.map((e) => e.seq)), run: () => undefined, problems: (ps) => problems.push(...ps) }, { pollMs: 30 });
  try {
    await until('the backlog from the file', () => got.length === 2);
    // the monitor appends lines 3..10 and hands them over with their byte span
    for (let seq = 2; seq < 10; seq++) {
      const from = statSync(file).size;
      appendFileSync(file, line(metrics(seq, seq)));
      mon.emit('events', [metrics(seq, seq)], { from, to: statSync(file).size });
    }
    await until('the monitor\'s events', () => got.length === 10);
    feed.detach(root, id, mon);
    appendFileSync(file, 'not json\n' + line(metrics(10, 10)) + '{"type":"metrics","seq":11}\n'); // lines 11, 12, 13
    await until('the lines after them', () => got.length === 11 && problems.length === 2);
    assert.deepEqual(problems.map((p) => formatProblem(p).split(': ').slice(0, 2).join(': ')), [
      `${file}:11: byte ${problems[0]!.offset}`,
      `${file}:13: seq 11, byte ${problems[1]!.offset}`,
    ]);
  } finally {
    reader.close();
  }
});

// A multi-root workspace: two workspace folders each hold a run of the same id (one recipe
// launched in both in the same second, or a run store copied between projects). The window
// follows the first folder's run with a real RunMonitor; the dashboard of the SECOND folder's
// run must show that run (its own state and its own events from its own store), never the
// first folder's monitor's.
test('two folders with a run of the same id: the second folder\'s dashboard reads its own run, not the first folder\'s monitor', async () => {
  const id = '20260101-120000-tiny-cpu-abcd';
  const alpha = join(root, 'alpha');
  const beta = join(root, 'beta');
  // alpha: a run going on the local host (a real process), followed by this window's monitor
  const host = join(alpha, 'host');
  const out = join(host, 'output');
  mkdirSync(out, { recursive: true });
  const hostEvents = join(out, 'events.jsonl');
  appendFileSync(hostEvents, line({ type: 'run_started', seq: 0, time: 1000, max_steps: 10 }) + line(metrics(1, 1, 0.5)));
  const now = Date.now() / 1000;
  const going: RunRecord = {
    id, recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: host, remoteDir: host, outputDir: out,
    python: 'python3', pid: proc.pid, pgid: proc.pid, state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0,
    createdAt: now, startedAt: now, updatedAt: now, command: 'sleep', attempts: 1, sawStarted: true,
  };
  await writeRun(alpha, going);
  // beta: a finished run of the same id, its events in its own store (nothing follows it)
  await writeRun(beta, { ...going, projectDir: join(beta, 'host'), remoteDir: join(beta, 'host'), outputDir: join(beta, 'host/output'), pid: undefined, pgid: undefined, state: 'completed', finishedAt: now, exitCode: 0 });
  const betaEvents = join(beta, '.conscience/runs', id, 'events.jsonl');
  appendFileSync(betaEvents, line({ type: 'run_started', seq: 0, time: 1000, max_steps: 2 }) + line(metrics(1, 1, -7)) + line(metrics(2, 2, -8)));

  const session = new LaunchSession(alpha, (await loadTargets(alpha)).targets);
  const feed = new RunFeed();
  const m = new RunMonitor(session, id, { intervalMs: 30, statusMs: 200 });
  const fromMonitor: RunEvent[] = [];
  m.on('events', (evs: RunEvent[]) => fromMonitor.push(...evs));
  feed.attach(alpha, id, m);
  const following = m.follow();
  try {
    await until('the monitor copies alpha\'s first events', () => fromMonitor.length === 2);
    const got: RunEvent[] = [];
    const states: string[] = [];
    const reader = feed.followRun(beta, id, { events: (evs) => got.push(...evs), run: (rec) => states.push(rec.state) }, { pollMs: 50 });
    try {
      assert.equal(reader.source, 'disk', 'no monitor follows beta\'s run in this window');
      await until('beta\'s events and state', () => got.length === 3 && states.length > 0);
      // alpha's run goes on: its monitor's chunks and records are alpha's, not beta's
      appendFileSync(hostEvents, line(metrics(2, 2, 0.6)) + line(metrics(3, 3, 0.7)));
      await until('alpha\'s monitor takes its new events', () => fromMonitor.length === 4);
      // beta's own store grows (a CLI resume writing there): the dashboard sees it
      appendFileSync(betaEvents, line(metrics(3, 3, -9)));
      await until('beta\'s new event from its store', () => got.length === 4);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(got.map((e) => (e.type === 'metrics' ? e.values.reward : e.type)), ['run_started', -7, -8, -9], 'beta\'s events, each once');
      assert.deepEqual([...new Set(states)], ['completed'], 'beta\'s state, never alpha\'s "running"');
    } finally {
      reader.close();
    }
    assert.ok(feed.has(alpha, id) && !feed.has(beta, id));
  } finally {
    m.stop();
    await following;
    feed.detach(alpha, id, m);
    await session.close();
  }
});
