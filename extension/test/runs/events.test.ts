// Reading events.jsonl (core/runs/events.ts) when the file is cut under the reader and the
// writer goes on before the reader looks again (docs/events.md: every event written after the
// cut is read, none read before is taken again).
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EventTail, formatProblem } from '../../src/core/runs/events';

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

test('lines taken from another reader (a monitor\'s chunk), then the file cut inside them: they are read again from where they began, nothing after the cut lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-cut-'));
  try {
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, build(0, 9, 1000, 'first'));
    const tail = new EventTail(file);
    assert.equal((await tail.read()).events.length, 10);
    // seq 10..19 reach this reader parsed by the monitor (core/runs/feed.ts): taken, not read here
    appendFileSync(file, build(10, 19, 1000, 'first'));
    tail.skipTo(Buffer.byteLength(build(0, 19, 1000, 'first')));
    // cut after seq 15, the next attempt (its clock behind) writes 16..30 past the reader
    truncateSync(file, Buffer.byteLength(build(0, 15, 1000, 'first')));
    appendFileSync(file, build(16, 30, 500, 'resumed'));
    const r = await tail.read();
    assert.equal(r.rewound, true);
    assert.deepEqual(r.events.map((e) => [e.seq, (e as unknown as { tag: string }).tag]), [
      ...[10, 11, 12, 13, 14, 15].map((q) => [q, 'first']),
      ...Array.from({ length: 15 }, (_, i) => [16 + i, 'resumed']),
    ]);
    assert.match(r.problems.map(formatProblem).join('\n'), /taken without this reader reading them, so their events from byte \d+ on may be taken again/);
    appendFileSync(file, build(31, 31, 500, 'resumed'));
    assert.deepEqual((await tail.read()).events.map((e) => e.seq), [31]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
