// The monitor's copy of a host's events.jsonl (core/runs/copy.ts): a host file cut and written
// again past the offset copied, its new line ending exactly where the old one did (same line
// lengths, as a requeued attempt logging the same steps writes them), must not be taken for
// the old one: the local copy, which the dashboard and the Runs view read, gets every line
// written after the cut, and shows what the host's file says.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RunSeries } from '../../src/core/dashboard/series';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { loadTargets } from '../../src/core/launch/targets';
import { copyEventLines } from '../../src/core/runs/copy';
import { readEventsFrom } from '../../src/core/runs/events';
import { readRun, runDir, writeRun } from '../../src/core/runs/store';
import { localRunWorkspace, REPO } from '../hardening/helpers';
import { attempt, fresh, lineBytes, PYTHON, steps, write } from './writer';

/** A run's output folder (`out`, where the runtime's writer puts `host`, its events.jsonl) and the
 * run store's `local` copy, in a temporary folder removed after `fn`. */
async function withRun(fn: (p: { out: string; host: string; local: string }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ev-copy-'));
  try {
    const out = join(dir, 'out');
    mkdirSync(out);
    await fn({ out, host: join(out, 'events.jsonl'), local: join(dir, 'local.jsonl') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The runtime's writer after a cut: the file truncated to `cutTo`, then attempt `n` logs steps from..to. */
function writeAttempt(out: string, n: number, from: number, to: number, t0: number, cutTo: number): void {
  const r = spawnSync(PYTHON, ['-c', attempt(out, n, from, to, t0, { cutTo })], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

const ev = (seq: number, attempt: string) => JSON.stringify({ type: 'metrics', seq, time: 1000 + seq, step: seq, values: { reward: attempt === 'a' ? 1000 + seq : 2000 + seq } }) + '\n';
const build = (from: number, to: number, attempt: string) => Array.from({ length: to - from + 1 }, (_, i) => ev(from + i, attempt)).join('');

/** What the dashboard's charts show for a file: each step's reward. */
async function shown(file: string): Promise<Array<[number, number]>> {
  const s = new RunSeries('r');
  for (const e of (await readEventsFrom(file, 0)).events) if (e.type === 'metrics') s.append(e);
  return [...s.step].map((step, i) => [step, s.col('reward')![i]!]);
}

/** The host's readFrom (core/launch/host.ts): the bytes from an offset, undefined when the file is missing. */
const readFrom = (file: string) => async (offset: number): Promise<Buffer | undefined> => {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf;
  } finally {
    await fh.close();
  }
};

test('a host file cut and regrown past the copied offset, a line ending where the old one did: the copy takes every new line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-copy-'));
  try {
    const host = join(dir, 'host.jsonl');
    const local = join(dir, 'local.jsonl');
    writeFileSync(host, build(10, 30, 'a'));
    const first = await copyEventLines(readFrom(host), local, 0);
    assert.equal(first.bytes.length, readFileSync(host).length);
    // cut after seq 20; the next attempt logs 21..40 (same lengths): byte `offset - 1` still ends a line
    writeFileSync(host, build(10, 20, 'a') + build(21, 40, 'b'));
    assert.equal(readFileSync(host)[first.hostOffset - 1], 0x0a);
    const r = await copyEventLines(readFrom(host), local, first.shift);
    assert.deepEqual(await shown(local), await shown(host), 'the dashboard shows what the host file says');
    assert.deepEqual((await shown(local)).slice(11), Array.from({ length: 20 }, (_, i) => [21 + i, 2021 + i]));
    assert.match(r.cut ?? '', /was cut under the copy .*the first \d+ are unchanged/);
    // and then only what is new
    writeFileSync(host, build(10, 20, 'a') + build(21, 42, 'b'));
    const next = await copyEventLines(readFrom(host), local, r.shift);
    assert.equal(next.cut, undefined);
    assert.equal(next.bytes.toString(), build(41, 42, 'b'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the host file seen short for one poll (a stale NFS size, mid-line), then whole again and growing: the copy holds each of its lines once', () => withRun(async ({ out, host, local }) => {
  write(out, 1, 1, 30, 5000);
  let stale: number | undefined; // the size the host's file shows, for a while
  const read = async (o: number) => {
    const b = await readFrom(host)(o);
    return b && stale !== undefined ? b.subarray(0, Math.max(0, stale - o)) : b;
  };
  const first = await copyEventLines(read, local, 0);
  assert.equal(first.bytes.length, readFileSync(host).length);
  stale = lineBytes(host, 21) + 17;
  const short = await copyEventLines(read, local, first.shift, first.view);
  assert.equal(short.bytes.length, 0);
  assert.match(short.cut ?? '', /was cut under the copy/, 'it cannot tell a short view from a cut yet');
  // the file comes back whole, and the run goes on (a resume continues the file)
  stale = undefined;
  write(out, 2, 31, 35, 5100);
  const back = await copyEventLines(read, local, short.shift, short.view);
  assert.equal(back.cut, undefined);
  assert.deepEqual(readFileSync(local), readFileSync(host), 'the copy is the host\'s file: no line twice');
  assert.deepEqual(await shown(local), await shown(host));
  assert.deepEqual([back.shift, back.view], [0, undefined], 'a verbatim copy again');
  write(out, 3, 36, 37, 5200);
  const next = await copyEventLines(read, local, back.shift, back.view);
  assert.deepEqual(readFileSync(local), readFileSync(host));
  assert.equal(next.bytes.length, readFileSync(host).length - back.hostOffset);
}));

test('a full copy synced back over the host file, seen while it was half written: no line of it is appended twice', () => withRun(async ({ out, host, local }) => {
  write(out, 1, 1, 40, 5000);
  const first = await copyEventLines(readFrom(host), local, 0);
  const whole = readFileSync(host);
  // the sync writes a new file in place of the old one: the copy looks while half of it is there
  rmSync(host);
  writeFileSync(host, whole.subarray(0, Math.floor(whole.length / 2)));
  const half = await copyEventLines(readFrom(host), local, first.shift, first.view);
  assert.equal(half.bytes.length, 0);
  writeFileSync(host, whole);
  write(out, 2, 41, 45, 5100);
  const r = await copyEventLines(readFrom(host), local, half.shift, half.view);
  assert.deepEqual(readFileSync(local), readFileSync(host));
  assert.equal(r.shift, 0);
}));

test('the host file cut a second time, the requeued attempt\'s seq going on from the cut (below the last seq copied): the copy takes every line written after each cut', () => withRun(async ({ out, host, local }) => {
  write(out, 1, 1, 30, 5000);
  let r = await copyEventLines(readFrom(host), local, 0);
  // first cut: the last 10 steps lost, a requeued attempt (clock behind) logs 21..40
  writeAttempt(out, 2, 21, 40, 4000, lineBytes(host, 21));
  r = await copyEventLines(readFrom(host), local, r.shift, r.view);
  assert.match(r.cut ?? '', /was cut under the copy/);
  assert.deepEqual(await shown(local), await shown(host));
  // second cut, inside the lines appended after the first: the next attempt logs 31..45, its
  // seq going on from the cut, below the last seq the copy took
  writeAttempt(out, 3, 31, 45, 3000, lineBytes(host, 32));
  r = await copyEventLines(readFrom(host), local, r.shift, r.view);
  assert.deepEqual(await shown(local), [...steps(1, 20, 1), ...steps(21, 30, 2), ...steps(31, 45, 3)]);
  assert.deepEqual(await shown(local), await shown(host));
  assert.match(r.cut ?? '', /was cut under the copy .*the first \d+ are unchanged/);
  // every line once: attempt 1 (31 lines), then attempt 2's 21 lines, then attempt 3's 16
  assert.equal((await readEventsFrom(local, 0)).events.length, 31 + 21 + 16);
  // and then only what is new
  write(out, 4, 46, 47, 3100);
  const next = await copyEventLines(readFrom(host), local, r.shift, r.view);
  assert.equal(next.cut, undefined);
  assert.equal(next.bytes.toString(), readFileSync(host).subarray(r.hostOffset).toString());
}));

/** The complete lines of a file, in order. */
const linesOf = (file: string) => readFileSync(file, 'utf8').split('\n').slice(0, -1);

test("a run.json the previous version wrote after a cut (eventShift, no eventView): the monitor's next poll matches the host's lines to the copy's once, appends only the lines it lacks, and records the view, so every later poll reads on from there", async () => {
  // the host's file and the store's copy as the previous version left them: attempt 1 logged
  // steps 1..30 and was copied; its file was cut after step 20 and a requeued attempt logged
  // 21..25, which the previous version appended after the copy's 31 lines (eventShift: the copy's
  // length less the host's)
  const ws = await localRunWorkspace('');
  const session = new LaunchSession(ws.root, (await loadTargets(ws.root)).targets, {});
  try {
    const host = join(ws.outputDir, 'events.jsonl');
    const store = join(runDir(ws.root, ws.id), 'events.jsonl');
    write(ws.outputDir, 1, 1, 30, 5000);
    const before = readFileSync(host);
    writeAttempt(ws.outputDir, 2, 21, 25, 4000, lineBytes(host, 21));
    const cutAt = lineBytes(host, 21);
    const after = readFileSync(host);
    mkdirSync(runDir(ws.root, ws.id), { recursive: true });
    writeFileSync(store, Buffer.concat([before, after.subarray(cutAt)]));
    const shift = before.length - cutAt;
    const rec = (await readRun(ws.root, ws.id))!;
    await writeRun(ws.root, { ...rec, eventOffset: after.length, eventShift: shift, lastSeq: 37 });
    assert.equal((await readRun(ws.root, ws.id))!.eventView, undefined, 'the layout of the previous version: no view');
    // the requeued attempt goes on (a resume, attempt 3: steps 26..35) before the editor's next poll
    write(ws.outputDir, 3, 26, 35, 4100);
    const m = new RunMonitor(session, ws.id, { statusMs: 60_000 });
    const problems: string[] = [];
    m.on('problems', (ps: Array<{ message: string }>) => problems.push(...ps.map((p) => p.message)));
    await m.pollOnce();

    // what a user sees: the dashboard and the Runs view read the store's copy
    const want = [...steps(1, 20, 1), ...steps(21, 25, 2), ...steps(26, 35, 3)];
    assert.deepEqual(await fresh(store), want, 'the charts show each step of the attempt that holds it');
    assert.deepEqual(await fresh(store), await fresh(host), 'the copy shows what the host file says');
    // every line of the host's file in the copy once, in the host's order: the copy's 31 + 6
    // lines, then attempt 3's 11, appended once
    const local = linesOf(store);
    assert.deepEqual(local, [...linesOf(host).slice(0, 21), ...before.toString().split('\n').slice(21, -1), ...linesOf(host).slice(21)]);
    for (const line of linesOf(host)) assert.equal(local.filter((l) => l === line).length, 1, `once in the copy: ${line}`);
    assert.equal((await readEventsFrom(store, 0)).events.length, 31 + 6 + 11);
    assert.deepEqual(problems, [], 'a rebuilt view is no cut');

    // run.json is upgraded: the view of the host's file (its bytes are the host's, in order), the
    // same shift, the host offset reached; the events seen are applied to the record
    const up = (await readRun(ws.root, ws.id))!;
    assert.ok(up.eventView, 'the view is kept');
    const copy = readFileSync(store);
    assert.deepEqual(Buffer.concat(up.eventView.map(([a, b]) => copy.subarray(a, b))), readFileSync(host), "the view holds the host's bytes");
    assert.equal(up.eventOffset, readFileSync(host).length);
    assert.equal(up.eventShift, shift);
    assert.equal(up.step, 35);

    // the next poll reads on from the view: only the new lines, no rebuild and no cut reported
    write(ws.outputDir, 4, 36, 40, 4200);
    const grown = readFileSync(host);
    await m.pollOnce();
    assert.deepEqual(readFileSync(store).subarray(copy.length), grown.subarray(up.eventOffset), 'only the lines written since');
    assert.deepEqual(await fresh(store), [...want, ...steps(36, 40, 4)]);
    assert.deepEqual(problems, []);
    const next = (await readRun(ws.root, ws.id))!;
    assert.deepEqual([next.eventOffset, next.eventShift], [grown.length, shift]);
    assert.deepEqual(Buffer.concat(next.eventView!.map(([a, b]) => readFileSync(store).subarray(a, b))), grown);
  } finally {
    await session.close();
    rmSync(ws.root, { recursive: true, force: true });
  }
});

test('a backlog is copied in bounded pieces: no read past maxBytes (a line longer than it is read to its end), every line once, in order', () => withRun(async ({ host, local }) => {
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(JSON.stringify({ type: 'heartbeat', seq: i, time: i, pad: 'x'.repeat(i === 200 ? 5000 : 50) }) + '\n');
  writeFileSync(host, lines.join('') + '{"type":"heartb'); // and a partial line being written
  const max = 1024;
  let largest = 0;
  const readFrom = async (o: number, m?: number) => {
    const fh = await open(host, 'r');
    try {
      const { size } = await fh.stat();
      const n = Math.max(0, Math.min(size - o, m ?? Infinity));
      const b = Buffer.alloc(n);
      await fh.read(b, 0, n, o);
      largest = Math.max(largest, n);
      return b;
    } finally {
      await fh.close();
    }
  };
  let shift = 0;
  let view: Awaited<ReturnType<typeof copyEventLines>>['view'];
  let passes = 0;
  for (;;) {
    const r = await copyEventLines(readFrom, local, shift, view, max);
    shift = r.shift;
    view = r.view;
    passes++;
    if (!r.more) break;
    assert.ok(passes < 1000, 'the copy does not end');
  }
  assert.equal(readFileSync(local, 'utf8'), lines.join(''));
  assert.ok(passes > 10, `${passes} passes`);
  assert.ok(largest <= 4096 + 5200, `a read of ${largest} bytes (pieces of ${max})`);
}));

test("a run's stdout backlog of hundreds of MB is copied without holding it in memory", async () => {
  const w = await localRunWorkspace('', { exitCode: 0, state: 'running' });
  try {
    writeFileSync(join(w.root, 'conscience.targets.yaml'), 'local:\n  type: local\n');
    const backlog = 400 * 1024 * 1024;
    spawnSync('truncate', ['-s', String(backlog), join(w.remoteDir, 'stdout.log')]);
    const tsx = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    const r = spawnSync('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, '--import', `file://${tsx}`, join(REPO, 'extension/src/cli/main.ts'), 'runs', '--workspace', w.root],
      { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const kb = Number(/maxrss=(\d+)/.exec(r.stderr)?.[1]);
    assert.ok(kb > 0, r.stderr);
    assert.equal(statSync(join(w.root, '.conscience', 'runs', w.id, 'stdout.log')).size, backlog);
    assert.ok(kb * 1024 < backlog / 2, `conscience runs used ${Math.round(kb / 1024)} MB for a ${backlog >> 20} MB backlog`);
  } finally {
    rmSync(w.root, { recursive: true, force: true });
  }
});
