// Reading events.jsonl (core/runs/events.ts) when the file is cut under the reader and the
// writer goes on before the reader looks again (docs/events.md: every event written after the
// cut is read, none read before is taken again).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventTail, formatProblem, MAX_EVENT_LINE_BYTES, readEventsFrom, type ParseProblem } from '../../src/core/runs/events';
import { fresh, shown, write } from './writer';

const line = (o: object) => JSON.stringify(o) + '\n';
const metrics = (seq: number, time: number, tag: string) => line({ type: 'metrics', seq, time, step: seq, values: { reward: seq / 1000 }, tag });
const build = (from: number, to: number, time0: number, tag: string) => {
  let s = '';
  for (let q = from; q <= to; q++) s += metrics(q, time0 + q, tag);
  return s;
};

test('a file cut and written again before the next read: the events written after the cut are all read, once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-cut-'));
  try {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, build(0, 20, 1000, 'first'));
    const tail = new EventTail(file);
    assert.equal((await tail.read()).events.length, 21);
    // cut back to the end of seq 10; the resumed writer goes on from seq 11, later, and is still
    // shorter than what the reader had read when it looks again
    truncateSync(file, Buffer.byteLength(build(0, 10, 1000, 'first')));
    appendFileSync(file, build(11, 15, 2000, 'resumed'));
    const r = await tail.read();
    assert.equal(r.rewound, true);
    assert.deepEqual(r.events.map((e) => [e.seq, (e as unknown as { tag: string }).tag]), [11, 12, 13, 14, 15].map((q) => [q, 'resumed']));
    assert.match(r.problems.map(formatProblem).join('\n'), /shrank to \d+ bytes under the reader .*the events written after the cut are read/);
    // and after it, only what is new; a bad line is reported at its own line (18 of the file)
    appendFileSync(file, build(16, 16, 2000, 'resumed') + 'not json\n');
    const next = await tail.read();
    assert.deepEqual(next.events.map((e) => e.seq), [16]);
    assert.deepEqual(next.problems.map((p) => p.line), [18]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lines taken from another reader (a monitor\'s chunk), then the file cut inside them and rewritten with lines of the same lengths: only the events after the cut are read, none lost, none taken again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-cut-'));
  try {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, build(0, 9, 1000, 'first'));
    const tail = new EventTail(file);
    const monitor = new EventTail(file);
    assert.equal((await tail.read()).events.length, 10);
    assert.equal((await monitor.read()).events.length, 10);
    // seq 10..19 reach this reader parsed by the monitor (core/runs/feed.ts): taken with their lines' marks
    appendFileSync(file, build(10, 19, 1000, 'first'));
    const chunk = await monitor.read();
    assert.equal(tail.take(chunk.marks!), true);
    assert.equal(tail.offset, Buffer.byteLength(build(0, 19, 1000, 'first')));
    // cut after seq 15; the next attempt (its clock behind, same digits: the same line lengths, so
    // a line still ends where the reader is) writes 16..30 in the same file
    truncateSync(file, Buffer.byteLength(build(0, 15, 1000, 'first')));
    appendFileSync(file, build(16, 30, 2000, 'other'));
    assert.equal(readFileSync(file)[tail.offset - 1], 0x0a);
    const r = await tail.read();
    assert.equal(r.rewound, true);
    assert.deepEqual(r.events.map((e) => [e.seq, (e as unknown as { tag: string }).tag]), Array.from({ length: 15 }, (_, i) => [16 + i, 'other']));
    assert.doesNotMatch(r.problems.map(formatProblem).join('\n'), /may be taken again/);
    appendFileSync(file, build(31, 31, 2000, 'other'));
    assert.deepEqual((await tail.read()).events.map((e) => e.seq), [31]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a reader that starts at an offset, then the file cut before it and rewritten with lines of the same lengths: the last line before the offset is checked, the events after the cut read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-cut-'));
  try {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, build(0, 19, 1000, 'first'));
    // a follower that takes the file as read up to here (the monitor starts at its copy's size)
    const tail = new EventTail(file, Buffer.byteLength(build(0, 19, 1000, 'first')));
    assert.deepEqual((await tail.read()).events, []);
    truncateSync(file, Buffer.byteLength(build(0, 15, 1000, 'first')));
    appendFileSync(file, build(16, 22, 2000, 'other'));
    assert.equal(readFileSync(file)[tail.offset - 1], 0x0a, 'a line still ends where the reader is');
    const r = await tail.read();
    assert.equal(r.rewound, true);
    // the bytes before the offset are known by their last line only: they are read again from
    // the start, and that is said; nothing written after the cut is lost
    assert.deepEqual(r.events.map((e) => e.seq), [...Array.from({ length: 16 }, (_, i) => i), ...Array.from({ length: 7 }, (_, i) => 16 + i)]);
    assert.match(r.problems.map(formatProblem).join('\n'), /taken without this reader reading them, so their events from byte 0 on may be taken again/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a long unfinished last line, polled again and again while it grows: each poll reads the new bytes only, and the line, once finished, is taken once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-partial-'));
  try {
    write(dir, 1, 1, 5, 5000);
    const file = join(dir, 'events.jsonl');
    const rows = [{ prompt: 'p', completion: 'x'.repeat(6 * 1024 * 1024), rewards: { r: 1 } }];
    const samples = JSON.stringify({ type: 'samples', seq: 6, time: 5006, step: 5, rows }) + '\n';
    const over = '{"type":"heartbeat","seq":7,"time":5007,"pad":"' + 'y'.repeat(MAX_EVENT_LINE_BYTES + 24 * 1024 * 1024) + '"}\n'; // 40 MiB, over-long
    const tail = new EventTail(file);
    const got = [...(await tail.read()).events];
    const problems: ParseProblem[] = [];
    const poll = async () => {
      const before = tail.bytesRead;
      const r = await tail.read();
      got.push(...r.events);
      problems.push(...r.problems);
      assert.equal(r.rewound, false);
      return tail.bytesRead - before;
    };
    const polls = async (text: string, pieces: number) => {
      const cost: number[] = [];
      for (let i = 0; i < pieces; i++) {
        const piece = text.slice(Math.floor((text.length * i) / pieces), Math.floor((text.length * (i + 1)) / pieces));
        appendFileSync(file, piece);
        const read = await poll();
        cost.push(read - (i < pieces - 1 ? piece.length : 0));
        if (i < pieces - 1) {
          // polled again with nothing new: a few KiB (the last line's check and the unfinished line's head)
          const idle = await poll();
          assert.ok(idle < 16 * 1024, `an idle poll of an unfinished line of ${text.length} bytes read ${idle} bytes`);
        }
      }
      return cost;
    };
    // a valid 6 MiB samples event written in 8 pieces
    const costs = await polls(samples, 8);
    assert.ok(costs.slice(1, -1).every((c) => c < 16 * 1024), `the bytes each poll read beyond the new ones: ${costs}`);
    assert.deepEqual(got.map((e) => e.type), ['run_started', 'metrics', 'metrics', 'metrics', 'metrics', 'metrics', 'samples']);
    // a 40 MiB line in 10 pieces: reported once, skipped, and the event after it taken
    await polls(over + JSON.stringify({ type: 'metrics', seq: 8, time: 5008, step: 6, values: { reward: 1006 } }) + '\n', 10);
    assert.deepEqual(got, (await readEventsFrom(file, 0)).events, 'what a fresh read of the file shows');
    assert.deepEqual(shown(got), await fresh(file));
    assert.deepEqual(problems.map((p) => [p.line, /longer than 16777216: skipped/.test(p.message)]), [[8, true]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('what a follower remembers of each line read takes 12 bytes (and room to grow), and still finds a cut', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-mem-'));
  try {
    const file = join(dir, 'events.jsonl');
    const n = 200_000;
    writeFileSync(file, build(0, n - 1, 1000, 'first'));
    const tail = new EventTail(file);
    assert.equal((await tail.read()).events.length, n);
    assert.ok(tail.memoryBytes <= 12 * Math.ceil(1.5 * n), `${tail.memoryBytes} bytes for ${n} lines`);
    // cut after seq 150000 and written again with lines of the same lengths
    truncateSync(file, Buffer.byteLength(build(0, 150_000, 1000, 'first')));
    appendFileSync(file, build(150_001, n + 9, 1000, 'other'));
    const r = await tail.read();
    assert.equal(r.rewound, true);
    assert.deepEqual([r.events.length, r.events[0]!.seq], [n + 9 - 150_000, 150_001]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
