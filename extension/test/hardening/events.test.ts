// Issue #16 item 3 and item 7 (truncation): every event field is checked against
// docs/events.md at the reader; a bad event is reported with its file and seq and skipped,
// never fatal; a file that shrank under a reader is noticed and nothing after the cut is lost.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EventTail, formatProblem, MAX_EVENT_LINE_BYTES, readEventsFrom, type ParseProblem, type RunEvent } from '../../src/core/runs/events';
import { checkEvent, RUN_FINISHED_STATUSES } from '../../src/core/runs/event-fields';
import { readRun, watchRun } from '../../src/core/runs/store';
import { cli, localRunWorkspace } from './helpers';

const line = (o: object) => JSON.stringify(o) + '\n';
const started = (seq: number) => line({ type: 'run_started', seq, time: 1000 + seq, run_id: 'r', max_steps: 400, resumed_from: null, reward_funcs: ['a'] });
const metrics = (seq: number, step: number, values: Record<string, unknown>) => line({ type: 'metrics', seq, time: 1000 + seq, run_id: 'r', step, values });

describe('event fields are validated at the reader', () => {
  it('a metrics event with "reward": "high" and a run_finished with status "bogus" are reported (file, seq) and skipped', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ev-')), 'events.jsonl');
    writeFileSync(file, started(0) + metrics(1, 1, { reward: 'high' }) + metrics(2, 2, { reward: 0.5, kl: null }) + line({ type: 'run_finished', seq: 3, time: 9, status: 'bogus', exit_code: 0, error: null }));
    const r = await readEventsFrom(file, 0);
    assert.deepEqual(r.events.map((e) => e.seq), [0, 2]);
    assert.equal(r.problems.length, 2);
    assert.deepEqual(r.problems.map((p) => [p.file, p.seq]), [[file, 1], [file, 3]]);
    assert.match(formatProblem(r.problems[0]!), new RegExp(`^${file.replace(/[.]/g, '\\.')}:2: seq 1, byte \\d+: bad event, skipped: values\\.reward must be a number or null, got the string "high"$`));
    assert.deepEqual(r.problems.map((p) => p.line), [2, 4]);
    assert.equal(r.nextOffset, readFileSync(file).length, 'the reader moves past bad lines: they are not read again');
    // a reader that starts mid-file still names the line (counted when a problem needs it)
    appendFileSync(file, '\n' + metrics(4, 3, { kl: '0.1' }));
    const later = await readEventsFrom(file, r.nextOffset);
    assert.deepEqual(later.problems.map((p) => p.line), [6]);
    assert.equal(later.nextLine, 7);
    assert.match(r.problems[1]!.message, /status must be one of completed, failed, cancelled, got the string "bogus"/);
  });

  it('each documented field is type-checked; extra fields are kept; unknown types and missing fields are named', () => {
    const ok = { type: 'checkpoint', seq: 4, time: 1.5, run_id: 'r', step: 10, path: '/o/checkpoint-10', extra: { any: 'thing' } };
    assert.equal(checkEvent(ok), undefined);
    const cases: Array<[object, RegExp]> = [
      [{ ...ok, seq: -1 }, /^seq must be an integer >= 0, got -1/],
      [{ ...ok, seq: 1.5 }, /^seq must be an integer >= 0/],
      [{ ...ok, time: '12:00' }, /^time must be a number/],
      [{ ...ok, run_id: 7 }, /^run_id must be a string/],
      [{ ...ok, type: 'metric' }, /^type must be one of run_started, metrics/],
      [{ type: 'checkpoint', seq: 1, time: 1, step: 3 }, /^path is missing \(string\)/],
      [{ type: 'samples', seq: 1, time: 1, step: 3, rows: [{ prompt: 'p', completion: 'c', rewards: { a: 'x' } }] }, /^rows\[0\]\.rewards\.a must be a number or null/],
      [{ type: 'samples', seq: 1, time: 1, step: 3, rows: 'none' }, /^rows must be a list of rows/],
      [{ type: 'run_started', seq: 0, time: 1, max_steps: '400' }, /^max_steps must be an integer >= 0 or null/],
      [{ type: 'run_started', seq: 0, time: 1, versions: { trl: 18 } }, /^versions\.trl must be a string/],
      [{ type: 'run_finished', seq: 0, time: 1, status: 'completed', exit_code: '0' }, /^exit_code must be an integer/],
      [{ type: 'heartbeat', seq: 0, time: 1, step: null }, /^step must be an integer >= 0, got null/],
      [[1, 2], /not an event: a JSON a list/],
    ];
    for (const [ev, re] of cases) assert.match(checkEvent(ev) ?? 'accepted', re, JSON.stringify(ev));
    for (const status of RUN_FINISHED_STATUSES) assert.equal(checkEvent({ type: 'run_finished', seq: 0, time: 1, status, exit_code: 0 }), undefined);
  });

  it('one corrupt line with a huge seq does not silence the events after it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ev-')), 'events.jsonl');
    writeFileSync(file, started(0) + metrics(9_000_000, 1, { reward: 1 }) + metrics(2, 2, {}));
    const tail = new EventTail(file);
    assert.deepEqual((await tail.read()).events.map((e) => e.seq), [0, 9_000_000, 2]);
    appendFileSync(file, metrics(3, 3, {}));
    assert.deepEqual((await tail.read()).events.map((e) => e.seq), [3]);
  });

  it('an over-long line is reported with its offset and skipped; memory stays bounded by a piece', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ev-')), 'events.jsonl');
    const big = '{"type":"heartbeat","seq":1,"time":1,"pad":"' + 'x'.repeat(MAX_EVENT_LINE_BYTES + 10) + '"}\n';
    writeFileSync(file, started(0) + big + metrics(2, 1, {}));
    const r = await readEventsFrom(file, 0);
    assert.deepEqual(r.events.map((e) => e.seq), [0, 2]);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.offset, Buffer.byteLength(started(0)));
    assert.match(r.problems[0]!.message, /longer than 16777216: skipped/);
  });
});

describe('a file truncated under a reader (issue #16 item 7)', () => {
  // The case: the reader had read through seq 686 when the file was cut back to end
  // after seq 680 and the writer went on; the reader's offset then lay past the new lines.
  const build = (from: number, to: number, tag: string) => {
    let s = '';
    for (let q = from; q <= to; q++) s += metrics(q, q, { reward: q / 1000, tag_len: tag.length });
    return s;
  };
  it('notices the shrink, says so, and takes every event written after the cut (the issue lost 681-686)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ev-')), 'events.jsonl');
    writeFileSync(file, started(0) + build(1, 686, 'first'));
    const tail = new EventTail(file);
    const first = await tail.read();
    assert.equal(first.events.length, 687);
    // cut back to the end of seq 680, then the writer appends 681.. with other contents (a resumed writer)
    const keep = Buffer.byteLength(started(0) + build(1, 680, 'first'));
    truncateSync(file, keep);
    const second = await tail.read();
    assert.equal(second.rewound, true);
    assert.match(second.problems.map(formatProblem).join('\n'), /shrank to \d+ bytes under the reader .*the events written after the cut are read/);
    appendFileSync(file, build(681, 700, 'second attempt, longer'));
    const third = await tail.read();
    assert.deepEqual(second.events, [], 'what is left before the cut was read already');
    // the events written after the cut are all read, once, with what the file now says
    assert.deepEqual(third.events.map((e) => e.seq), Array.from({ length: 20 }, (_, i) => 681 + i));
    assert.ok(third.events.every((e) => e.type === 'metrics' && e.values.tag_len === 'second attempt, longer'.length));
  });

  it('a file replaced by a longer one (no shrink visible) is noticed by the line boundary', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ev-')), 'events.jsonl');
    writeFileSync(file, started(0) + build(1, 686, 'a'));
    const tail = new EventTail(file);
    await tail.read();
    // cut after 680 and the writer appends more than was cut before the reader looks again
    truncateSync(file, Buffer.byteLength(started(0) + build(1, 680, 'a')));
    appendFileSync(file, build(681, 720, 'a much longer second attempt'));
    const r = await tail.read();
    assert.equal(r.rewound, true);
    // 681..686 are new events of the second attempt, not the ones read before: every line
    // after the cut is read once, whatever its seq
    assert.deepEqual(r.events.map((e) => e.seq), Array.from({ length: 40 }, (_, i) => 681 + i));
    assert.ok(r.events.slice(0, 6).every((e) => e.type === 'metrics' && e.values.tag_len === 'a much longer second attempt'.length));
    assert.ok(r.problems.some((p) => /cut and written again under the reader/.test(p.message)), r.problems.map((p) => p.message).join('\n'));
  });

  it('watchRun (dashboard) reports the truncation and emits every line written after it once', async () => {
    const ws = await localRunWorkspace('');
    const file = join(ws.root, '.conscience', 'runs', ws.id, 'events.jsonl');
    writeFileSync(file, started(0) + build(1, 50, 'x'));
    const got: number[] = [];
    const problems: ParseProblem[] = [];
    const w = watchRun(ws.root, ws.id, { pollMs: 30 });
    w.on('events', (evs: RunEvent[]) => got.push(...evs.map((e) => e.seq)));
    w.on('problems', (p: ParseProblem[]) => problems.push(...p));
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
    };
    await until(() => got.length === 51);
    truncateSync(file, Buffer.byteLength(started(0) + build(1, 40, 'x')));
    await until(() => problems.length > 0);
    appendFileSync(file, build(41, 60, 'yy'));
    await until(() => got.length === 71);
    w.close();
    assert.deepEqual(got, [...Array.from({ length: 51 }, (_, i) => i), ...Array.from({ length: 20 }, (_, i) => 41 + i)], 'the lines after the cut, once');
    assert.ok(problems.some((p) => /shrank/.test(p.message)));
  });
});

describe('the CLI with bad events from the host (issue #16 item 3)', () => {
  it('`conscience runs` lists the run instead of failing; `logs --follow` ends with the run failed, not "bogus"', async () => {
    const events = started(0) + metrics(1, 1, { reward: 'high' }) + metrics(2, 2, { reward: 0.25 }) + line({ type: 'run_finished', seq: 3, time: 9, status: 'bogus', exit_code: 0, error: null });
    const ws = await localRunWorkspace(events, { exitCode: 0 });
    const runs = cli(['runs', '--workspace', ws.root], { timeoutMs: 60_000 });
    assert.equal(runs.code, 0, runs.stderr);
    assert.doesNotMatch(runs.stderr, /toFixed/);
    const row = runs.stdout.split('\n').find((l) => l.startsWith(ws.id))!;
    assert.match(row, /failed/, runs.stdout);
    assert.match(row, /0\.250/, 'the valid metrics event still counts');
    const rec = await readRun(ws.root, ws.id);
    assert.equal(rec?.state, 'failed');
    assert.match(rec?.error ?? '', /before writing run_finished/);
    const logs = cli(['logs', ws.id, '--follow', '--events', '--workspace', ws.root], { timeoutMs: 60_000 });
    assert.equal(logs.timedOut, false);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stderr, new RegExp(`${ws.id} failed`));
  });

  it('`logs --follow` names each bad line by file and seq on one line, control characters escaped', async () => {
    const events = started(0) + metrics(1, 1, { reward: 'high' }) + '{"type":"metrics","seq":2,"time":1,"step":2,"values":{"x\\u001b[2J\\n":"\\u001b[31m"}}\n' + '{"seq":3, oops\u001b[2J}\n';
    const ws = await localRunWorkspace(events, { exitCode: 1 });
    const logs = cli(['logs', ws.id, '--follow', '--events', '--workspace', ws.root], { timeoutMs: 60_000 });
    assert.equal(logs.code, 0, logs.stderr);
    const store = join(ws.root, '.conscience', 'runs', ws.id, 'events.jsonl');
    const lines = logs.stderr.split('\n').filter((l) => l.includes('bad event') || l.includes('invalid JSON'));
    assert.equal(lines.length, 3, logs.stderr);
    assert.ok(lines[0]!.startsWith(`conscience: ${store}:2: seq 1, byte `), lines[0]);
    assert.match(lines[1]!, /seq 2, byte \d+: bad event, skipped: values\.x\\u001b\[2J\\n must be a number or null/);
    assert.match(lines[2]!, /:4: byte \d+: invalid JSON/);
    assert.doesNotMatch(logs.stderr, /\u001b/, 'no raw escape sequence reaches the terminal');
  });
});
