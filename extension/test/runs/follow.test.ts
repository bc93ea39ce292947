// Following a live events.jsonl (core/runs/events.ts) while the runtime's own writer
// (runtime/conscience/events.py) writes it, and the file is cut and regrown under the reader:
// a requeued SLURM job whose node lost the unsynced tail and whose clock is behind the first
// node's, a new run started in the same output_dir (the old file moved aside), a file deleted
// and written again. What a user sees is the dashboard's series (core/dashboard/series.ts, the
// rows its charts draw): a reader that followed the file must end up showing exactly what a
// reader opening the file afresh shows, every event after a cut taken once, none lost.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventTail, MAX_EVENT_LINE_BYTES, readEventsFrom, type ParseProblem, type RunEvent } from '../../src/core/runs/events';
import { runDir, watchRun } from '../../src/core/runs/store';
import { attempt, fresh, lineBytes, PYTHON, problemText, shown, steps, write } from './writer';

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'ev-follow-'));
}

/** A run's output folder and its events.jsonl, in a temporary folder removed after `fn`. */
async function withEvents(fn: (out: string, file: string) => Promise<void>): Promise<void> {
  const out = dir();
  try {
    await fn(out, join(out, 'events.jsonl'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

test('a requeued job cut the file and wrote past the reader, its clock behind: the dashboard shows the new attempt, every event once', () => withEvents(async (out, file) => {
  write(out, 1, 1, 30, 5000);
  const tail = new EventTail(file);
  const taken: RunEvent[] = [...(await tail.read()).events];
  assert.deepEqual(shown(taken), steps(1, 30, 1));
  // the node is preempted and its last 10 lines are lost; the requeued job (on a node whose
  // clock is 1000 s behind) resumes from checkpoint-20 and writes past where the reader was
  const cut = lineBytes(file, 21);
  truncateSync(file, cut);
  write(out, 2, 21, 40, 4000);
  const r = await tail.read();
  taken.push(...r.events);
  assert.deepEqual(shown(taken), [...steps(1, 20, 1), ...steps(21, 40, 2)], 'steps 21..40 as the requeued attempt logged them');
  assert.deepEqual(shown(taken), await fresh(file));
  // every line written after the cut, once: the new attempt's run_started and steps 21..40
  assert.deepEqual(r.events.map((e) => [e.type, e.seq]), (await readEventsFrom(file, cut)).events.map((e) => [e.type, e.seq]));
  assert.equal(r.events.length, 21);
  assert.equal(r.rewound, true);
  assert.match(problemText(r.problems), /written again under the reader .*going on from byte \d+/);
  // and then only what is new
  write(out, 3, 41, 42, 4100);
  assert.deepEqual((await tail.read()).events.map((e) => e.type === 'metrics' ? e.step : e.type), ['run_started', 41, 42]);
}));

test('a requeued job cut the file and the reader looks while it is still shorter, its clock behind: nothing written after the cut is lost', () => withEvents(async (out, file) => {
  write(out, 1, 1, 30, 5000);
  const tail = new EventTail(file);
  const taken: RunEvent[] = [...(await tail.read()).events];
  truncateSync(file, lineBytes(file, 21));
  write(out, 2, 21, 24, 4000); // 5 lines where 10 were cut: still shorter than what was read
  const r = await tail.read();
  taken.push(...r.events);
  assert.equal(r.rewound, true);
  assert.match(problemText(r.problems), /shrank to \d+ bytes under the reader .*the events written after the cut are read/);
  assert.deepEqual(r.events.map((e) => e.type === 'metrics' ? e.step : e.type), ['run_started', 21, 22, 23, 24]);
  write(out, 3, 25, 40, 4100);
  taken.push(...(await tail.read()).events);
  assert.deepEqual(shown(taken), [...steps(1, 20, 1), ...steps(21, 24, 2), ...steps(25, 40, 3)]);
  assert.deepEqual(shown(taken), await fresh(file));
}));

test('a new run in the same output_dir (the old events.jsonl moved aside) grows past the reader: every event of the new file is taken', () => withEvents(async (out, file) => {
  write(out, 1, 1, 30, 5000);
  const tail = new EventTail(file);
  const taken: RunEvent[] = [...(await tail.read()).events];
  write(out, 2, 1, 40, 6000, { resume: false }); // EventWriter(resume=False): events.1.jsonl, a new stream at seq 0
  assert.ok(existsSync(join(out, 'events.1.jsonl')));
  const r = await tail.read();
  taken.push(...r.events);
  assert.deepEqual(shown(taken), steps(1, 40, 2));
  assert.deepEqual(shown(taken), await fresh(file));
  assert.deepEqual(r.events.map((e) => e.seq), Array.from({ length: 41 }, (_, i) => i));
  assert.equal(r.rewound, true);
  assert.match(problemText(r.problems), /replaced under the reader/);
}));

test('a file deleted, read while missing, then written again with lines of the same lengths: the new lines are not passed over', () => withEvents(async (out, file) => {
  const ev = (seq: number, tag: string) => JSON.stringify({ type: 'metrics', seq, time: 1000 + seq, step: seq, values: { reward: tag === 'new' ? 2000 + seq : 1000 + seq } }) + '\n';
  const build = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ev(100 + i, tag)).join('');
  writeFileSync(file, build(10, 'old'));
  const tail = new EventTail(file);
  assert.equal((await tail.read()).events.length, 10);
  rmSync(file);
  const missing = await tail.read();
  assert.deepEqual([missing.events, missing.problems], [[], []]);
  // the same line lengths: the byte before the reader's offset ends a line in the new file too
  writeFileSync(file, build(15, 'new'));
  const r = await tail.read();
  assert.deepEqual(r.events.map((e) => e.type === 'metrics' && e.values.reward), Array.from({ length: 15 }, (_, i) => 2100 + i));
  assert.equal(r.rewound, true);
}));

test('CRLF lines (a Windows writer), a partial last line and an over-long line written in pieces: each event once, no cut reported', () => withEvents(async (out, file) => {
  const ev = (seq: number) => JSON.stringify({ type: 'metrics', seq, time: 1000 + seq, step: seq, values: { reward: seq } });
  writeFileSync(file, ev(0) + '\r\n' + ev(1) + '\r\n' + ev(2).slice(0, 20));
  const tail = new EventTail(file);
  const got: number[] = [];
  const problems: ParseProblem[] = [];
  const read = async () => {
    const r = await tail.read();
    got.push(...r.events.map((e) => e.seq));
    problems.push(...r.problems);
    return r;
  };
  await read();
  assert.deepEqual(got, [0, 1], 'the partial line is not an event yet');
  appendFileSync(file, ev(2).slice(20) + '\r\n');
  await read();
  // an over-long line arrives in pieces, the reader looking between them
  const long = '{"type":"heartbeat","seq":3,"time":1003,"pad":"' + 'x'.repeat(MAX_EVENT_LINE_BYTES + 10) + '"}\r\n';
  appendFileSync(file, long.slice(0, MAX_EVENT_LINE_BYTES + 5));
  const mid = await read();
  assert.equal(mid.rewound, false);
  appendFileSync(file, long.slice(MAX_EVENT_LINE_BYTES + 5) + ev(4) + '\r\n');
  await read();
  appendFileSync(file, ev(5) + '\r\n');
  const last = await read();
  assert.equal(last.rewound, false);
  assert.deepEqual(got, [0, 1, 2, 4, 5]);
  assert.deepEqual(problems.map((p) => [p.line, /longer than 16777216: skipped/.test(p.message)]), [[4, true]], problemText(problems));
}));

test('watchRun (Runs view, dashboard, logs --follow) follows a live writer; a requeued job syncs back a cut and regrown copy over the file: it ends showing what the file says', async () => {
  const root = dir();
  try {
    const id = 'live';
    const out = runDir(root, id);
    mkdirSync(out, { recursive: true });
    const file = join(out, 'events.jsonl');
    const go = join(root, 'go');
    const got: RunEvent[] = [];
    const problems: ParseProblem[] = [];
    const w = watchRun(root, id, { pollMs: 20 });
    w.on('events', (evs: RunEvent[]) => got.push(...evs));
    w.on('problems', (ps: ParseProblem[]) => problems.push(...ps));
    const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) => {
      const end = Date.now() + ms;
      while (!(await cond())) {
        if (Date.now() > end) return assert.fail(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      const first = spawn(PYTHON, ['-c', attempt(out, 1, 1, 30, 5000)], { stdio: 'ignore' });
      await new Promise((r) => first.on('exit', r));
      await until('the first attempt on the dashboard', () => got.length === 31);
      const cut = lineBytes(file, 21);
      // the requeued attempt (its copy lacks the last 10 lines; its clock is behind) writes steps
      // 21..40 and syncs its file back over the shared one, while watchRun polls
      const second = spawn(PYTHON, ['-c', attempt(out, 2, 21, 40, 4000, { waitFor: go, cutTo: cut, staged: true })], { stdio: 'ignore' });
      const exited = new Promise((r) => second.on('exit', r));
      writeFileSync(go, '');
      await exited;
      const want = [...steps(1, 20, 1), ...steps(21, 40, 2)];
      assert.deepEqual(await fresh(file), want);
      let seen: unknown;
      await until('the dashboard to show what the file says', () => {
        seen = shown(got);
        return JSON.stringify(seen) === JSON.stringify(want);
      }, 5_000).catch(() => assert.deepEqual(seen, want, problemText(problems)));
      assert.equal(got.length, 31 + 21, 'each line written after the cut once');
      assert.ok(problems.some((p) => /replaced under the reader/.test(p.message)), problemText(problems));
      // then the job goes on in place: only the new lines
      const third = spawn(PYTHON, ['-c', attempt(out, 3, 41, 42, 4100)], { stdio: 'ignore' });
      await new Promise((r) => third.on('exit', r));
      await until('the lines appended after the sync', () => got.length === 31 + 21 + 3);
      assert.deepEqual(shown(got), await fresh(file));
    } finally {
      w.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
