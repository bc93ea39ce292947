// Issue #16 item 7, the monitor's side: the host's events.jsonl shrank under the run's follower
// (truncated back to the end of seq 680 while 686 had been copied) and the writer went on; the
// follower's byte offset lay past the new lines, so events 681-686 of the new attempt were lost
// silently. The real RunMonitor on a local-target run; the local copy stays append-only.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { loadTargets } from '../../src/core/launch/targets';
import { readEventsFrom, type ParseProblem, type RunEvent } from '../../src/core/runs/events';
import { readRun, readRunEvents } from '../../src/core/runs/store';
import { localRunWorkspace } from './helpers';

const line = (o: object) => JSON.stringify(o) + '\n';
const build = (from: number, to: number, tag: string) => {
  let s = '';
  for (let q = from; q <= to; q++) s += line({ type: 'metrics', seq: q, time: 1000 + q, run_id: 'r', step: q, values: { reward: q / 1000 }, tag });
  return s;
};
const started = line({ type: 'run_started', seq: 0, time: 1000, run_id: 'r', max_steps: 1000 });

async function follower(root: string, id: string) {
  const s = new LaunchSession(root, (await loadTargets(root)).targets, {});
  const m = new RunMonitor(s, id, { statusMs: 60_000 });
  const events: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  m.on('events', (e: RunEvent[]) => events.push(...e));
  m.on('problems', (p: ParseProblem[]) => problems.push(...p));
  return { s, m, events, problems };
}

describe('the host events.jsonl cut under the monitor', () => {
  it('regrown past the copied offset before the next poll: the new attempt\'s lines 681.. are all copied, and the cut is reported', async () => {
    const ws = await localRunWorkspace(started + build(1, 686, 'first'));
    const host = join(ws.outputDir, 'events.jsonl');
    const f = await follower(ws.root, ws.id);
    try {
      await f.m.pollOnce();
      assert.equal(f.events.length, 687);
      truncateSync(host, Buffer.byteLength(started + build(1, 680, 'first')));
      appendFileSync(host, build(681, 700, 'second attempt, with longer lines'));
      await f.m.pollOnce();
      const fresh = f.events.slice(687);
      assert.deepEqual(fresh.map((e) => e.seq), Array.from({ length: 20 }, (_, i) => 681 + i), 'every line written after the cut, once');
      assert.ok(fresh.every((e) => (e as unknown as { tag: string }).tag === 'second attempt, with longer lines'));
      assert.ok(f.problems.some((p) => /was cut under the copy .*the lines written after the cut are appended/.test(p.message)), JSON.stringify(f.problems));
      // the store keeps every line it had, then the new ones; the next poll takes only new bytes
      const stored = await readRunEvents(ws.root, ws.id);
      assert.equal(stored.length, 687 + 20);
      appendFileSync(host, build(701, 705, 'more'));
      await f.m.pollOnce();
      assert.deepEqual(f.events.slice(707).map((e) => e.seq), [701, 702, 703, 704, 705]);
      const rec = await readRun(ws.root, ws.id);
      assert.equal(rec?.lastSeq, 705);
      assert.equal(rec?.step, 705);
      assert.equal(rec?.eventOffset, readFileSync(host).length, 'eventOffset is the host offset reached');
      // cut a second time (the copy is no longer verbatim): every line written after the cut is
      // appended, its seq going on from the cut (691..), not only those past the last seq taken
      truncateSync(host, Buffer.byteLength(started + build(1, 680, 'first') + build(681, 690, 'second attempt, with longer lines')));
      appendFileSync(host, build(691, 712, 'third'));
      await f.m.pollOnce();
      assert.deepEqual(f.events.slice(712).map((e) => e.seq), Array.from({ length: 22 }, (_, i) => 691 + i));
      assert.ok(f.events.slice(712).every((e) => (e as unknown as { tag: string }).tag === 'third'));
      assert.equal(f.problems.filter((p) => /was cut under the copy .*the first \d+ are unchanged/.test(p.message)).length, 2, JSON.stringify(f.problems));
      appendFileSync(host, build(713, 714, 'fourth'));
      await f.m.pollOnce();
      assert.deepEqual(f.events.slice(734).map((e) => e.seq), [713, 714], 'and after it, only the new bytes');
      // the store's copy, read afresh, ends with what the host's file says, each line once
      const last = new Map((await readRunEvents(ws.root, ws.id)).map((e) => [e.seq, (e as unknown as { tag: string }).tag]));
      const hostNow = new Map((await readEventsFrom(host, 0)).events.map((e) => [e.seq, (e as unknown as { tag: string }).tag]));
      assert.deepEqual(last, hostNow);
      assert.equal((await readRunEvents(ws.root, ws.id)).length, 736);
    } finally {
      await f.s.close();
    }
  });

  it('caught shrunk, then growing: nothing appended while shrunk, then every new line', async () => {
    const ws = await localRunWorkspace(started + build(1, 50, 'a'));
    const host = join(ws.outputDir, 'events.jsonl');
    const f = await follower(ws.root, ws.id);
    try {
      await f.m.pollOnce();
      truncateSync(host, Buffer.byteLength(started + build(1, 40, 'a')));
      await f.m.pollOnce();
      assert.equal(f.events.length, 51);
      assert.equal(f.problems.length, 1);
      appendFileSync(host, build(41, 45, 'b'));
      await f.m.pollOnce();
      assert.deepEqual(f.events.slice(51).map((e) => e.seq), [41, 42, 43, 44, 45]);
      assert.equal(f.problems.length, 1, 'the cut is reported once');
    } finally {
      await f.s.close();
    }
  });
});
