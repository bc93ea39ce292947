// The dashboard host (core/dashboard) on the runs a long training job really produces: attempts
// requeued on another node (a clock behind, a step logged again), metric names that are
// Object.prototype members, more keys than it keeps, failures whose text is long, a smoothing
// slider dragged over long runs, compared runs' samples past a page, a big events.jsonl
// read in batches, and a live run of 100k steps with eval rows between its logging steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetricsEvent, RunEvent } from '../../src/core/runs/events';
import { DashboardSession } from '../../src/core/dashboard/session';
import { RunSeries } from '../../src/core/dashboard/series';
import { toCsv } from '../../src/core/dashboard/csv';
import { work } from '../../src/core/dashboard/decimate';
import { ema, emaInto } from '../../src/core/dashboard/ema';
import { parseToWebview, type ToWebview } from '../../src/core/protocol/dashboard';
import { toF64 } from '../../src/core/protocol/validate';
import { RunFeed } from '../../src/core/runs/feed';
import { writeEvents } from './fixtures/write';

function session(ids = ['r'], o: { saveCsv?: () => Promise<string | null>; savePng?: () => Promise<string | null> } = {}) {
  const sent: ToWebview[] = [];
  const logs: string[] = [];
  const s = new DashboardSession(ids.map((id) => ({ id })), {
    title: 't', post: (m) => sent.push(m), throttleMs: 0, log: (m) => logs.push(m),
    saveCsv: o.saveCsv ?? (async () => '/x.csv'), savePng: o.savePng ?? (async () => '/x.png'),
  });
  return { s, sent, logs };
}
const started = (seq: number, time: number): RunEvent => ({ type: 'run_started', seq, time, resumed_from: null });
const m = (seq: number, time: number, step: number, values: Record<string, number | null>): MetricsEvent => ({ type: 'metrics', seq, time, step, values });
const lastWindow = (sent: ToWebview[]) => {
  const w = sent.filter((x) => x.type === 'window').at(-1);
  assert.ok(w && w.type === 'window');
  return w;
};

test('metrics logged on different steps (eval between logging steps) each draw as their own line; a logged null stays a gap', async () => {
  const ev: RunEvent[] = [];
  let seq = 0;
  for (let step = 10; step <= 400; step += 10) {
    ev.push(m(seq++, 1e9 + step, step, { loss: step === 200 ? null : step }));
    ev.push(m(seq++, 1e9 + step + 5, step + 5, { 'eval/base/harmful/refusal': step / 1000 }));
  }
  const { s, sent } = session();
  s.ingest('r', ev);
  await s.receive({ type: 'ready', view: null });
  const w = lastWindow(sent);
  const loss = w.charts.find((c) => c.chartId === 'loss')!.runs[0]!;
  const evl = w.charts.find((c) => c.chartId === 'eval-harmful')!.runs[0]!;
  // every loss row, one after the other: no eval row between them, the null at step 200 a gap
  assert.deepEqual([...loss.x], Array.from({ length: 40 }, (_, i) => 10 + 10 * i));
  assert.deepEqual([...loss.y.loss!].map((v) => (Number.isNaN(v) ? null : v)), Array.from({ length: 40 }, (_, i) => (i === 19 ? null : 10 + 10 * i)));
  assert.equal(loss.total, 39);
  assert.deepEqual([...evl.x], Array.from({ length: 40 }, (_, i) => 15 + 10 * i));
  assert.ok([...evl.y['eval/base/harmful/refusal']!].every((v) => Number.isFinite(v)));
  assert.equal(evl.total, 40);
});

test('a requeued attempt whose clock is behind the first one still draws on the time axes', async () => {
  const ev: RunEvent[] = [started(0, 1e9)];
  let seq = 1;
  for (let step = 10; step <= 100; step += 10) ev.push(m(seq++, 1e9 + step * 10, step, { loss: step }));
  // requeued on a node whose clock is an hour behind, resumed from checkpoint 50
  ev.push(started(seq++, 1e9 - 3600 + 2500));
  for (let step = 60; step <= 120; step += 10) ev.push(m(seq++, 1e9 - 3600 + 2000 + step * 10, step, { loss: step }));
  for (const xAxis of ['relative', 'wall'] as const) {
    const { s, sent } = session();
    s.ingest('r', ev);
    await s.receive({ type: 'ready', view: { xAxis, range: null, smoothing: 0, width: 600, hidden: [] } });
    const w = lastWindow(sent);
    const loss = w.charts.find((c) => c.chartId === 'loss')!.runs[0]!;
    // every row (5 of the first attempt, 7 of the second) is drawn, in order, the second attempt
    // after the first with its own spacing
    assert.deepEqual([...loss.y.loss!], [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]);
    assert.equal(loss.total, 12);
    const x = [...loss.x];
    for (let i = 1; i < x.length; i++) assert.ok(x[i]! >= x[i - 1]!, `${xAxis}: x ascending: ${x}`);
    assert.equal(x[11]! - x[5]!, 600, `${xAxis}: the second attempt keeps its 100 s per step: ${x}`);
    assert.ok(w.extent && w.extent[1] > w.extent[0]);
    // a zoom into the second attempt finds its rows
    await s.receive({ type: 'view', viewId: 1, xAxis, range: [x[7]! - 1, x[9]! + 1], smoothing: 0, width: 600, hidden: [] });
    const z = lastWindow(sent).charts.find((c) => c.chartId === 'loss')!.runs[0]!;
    assert.equal(z.total, 3);
  }
});

test('a time far out of range (1.7e308, then -1.7e308) draws as a missing time: the time axes still get a window their webview takes', async () => {
  for (const times of [[1.7e308, -1.7e308, 5], [1e308, -1e308, 1e308, 5]]) {
    for (const xAxis of ['wall', 'relative', 'step'] as const) {
      const { s, sent } = session();
      s.ingest('r', times.map((t, i) => m(i + 1, t, i + 1, { loss: i })));
      await s.receive({ type: 'ready', view: { xAxis, range: null, smoothing: 0, width: 600, hidden: [] } });
      for (const msg of sent) {
        const p = parseToWebview(structuredClone(msg));
        assert.ok(p.ok, `${times} on ${xAxis}: the webview would drop the ${msg.type}: ${!p.ok && p.error}`);
      }
      const w = lastWindow(sent);
      const loss = w.charts.find((c) => c.chartId === 'loss')!.runs[0]!;
      assert.deepEqual([...loss.y.loss!], times.map((_, i) => i), `${times} on ${xAxis}: every row drawn`);
      const x = [...toF64(loss.x)];
      assert.ok(x.every(Number.isFinite) && x.every((v, i) => !i || v >= x[i - 1]!), `${times} on ${xAxis}: x ${x}`);
      assert.ok(w.extent && w.extent.every(Number.isFinite), `${xAxis}: extent ${w.extent}`);
    }
  }
  // the CSV keeps the times as logged
  const series = new RunSeries('r');
  [1.7e308, -1.7e308, 5].forEach((t, i) => series.append(m(i + 1, t, i + 1, { loss: i })));
  assert.deepEqual([...series.time], [1.7e308, -1.7e308, 5]);
  assert.deepEqual([...series.monoTime], [1.7e308, 1.7e308, 1.7e308]);
});

test('a new attempt logging the last step of the one before supersedes it; the CSV keeps both rows', () => {
  const s = new RunSeries('r');
  s.noteTime(1000);
  s.newAttempt();
  s.append(m(1, 1001, 10, { loss: 1 }));
  s.append(m(2, 1002, 20, { loss: 2 }));
  s.append(m(3, 1003, 30, { loss: 3 }));
  s.append(m(4, 1003, 30, { 'eval/base/harmful/refusal': 0.5 })); // the same attempt's eval at step 30: merged
  assert.equal(s.len, 3);
  assert.equal(s.archived.length, 0);
  s.newAttempt(); // requeued: resumes from a checkpoint at step 30 and logs step 30 again
  s.append(m(6, 2000, 30, { loss: 3.5 }));
  assert.equal(s.len, 3);
  assert.deepEqual([...s.col('loss')!], [1, 2, 3.5]);
  assert.equal(s.seq[2], 6);
  assert.equal(s.time[2], 2000);
  assert.ok(Number.isNaN(s.col('eval/base/harmful/refusal')![2]!), 'the new row does not carry the old attempt\'s eval');
  const csv = toCsv([s]);
  assert.equal(csv.rows, 4);
  assert.deepEqual(csv.text.trim().split('\n').slice(1), [
    'r,1,10,1001,1,',
    'r,2,20,1002,2,',
    'r,3,30,1003,3,0.5',
    'r,6,30,2000,3.5,',
  ]);
});

test('metric names that are Object.prototype members are kept, charted nowhere, and exported', () => {
  const s = new RunSeries('r');
  const values = JSON.parse('{"constructor": 1, "toString": 2, "valueOf": 3, "hasOwnProperty": 4, "__proto__": 5, "loss": 6}');
  s.append(m(0, 1, 1, values));
  assert.deepEqual(s.keys(), ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', 'loss']);
  const [head, row] = toCsv([s]).text.trim().split('\n');
  assert.equal(head, 'run_id,seq,step,time,loss,__proto__,constructor,hasOwnProperty,toString,valueOf');
  assert.equal(row, 'r,0,1,1,6,5,1,4,2,3');
});

test('keys past the 2,000 kept are reported to the user and the log, and never the ones the charts draw', async () => {
  const { s, sent, logs } = session();
  const values: Record<string, number> = {};
  for (let i = 0; i < 2005; i++) values[`m${String(i).padStart(4, '0')}`] = i;
  values['eval/base/harmful/refusal'] = 0.9;
  values['safety/tokens_mean'] = 40;
  s.ingest('r', [m(0, 1, 1, values)]);
  await s.receive({ type: 'ready', view: null });
  const layout = sent.find((x) => x.type === 'layout');
  assert.ok(layout && layout.type === 'layout');
  assert.ok(parseToWebview(layout).ok);
  assert.deepEqual(layout.charts.map((c) => c.id), ['safety', 'eval-harmful']);
  assert.equal(layout.runs[0]!.keysDropped, 5);
  assert.ok(logs.some((l) => /run r: 5 metric key\(s\) past the first 2000 not kept.*"m2000"/.test(l)), logs.join('\n'));
  const header = s.csv().text.split('\n')[0]!.split(',');
  assert.ok(header.includes('eval/base/harmful/refusal') && header.includes('safety/tokens_mean'));
  assert.ok(!header.includes('m2004'));
});

test('an export or config failure with a long message reaches the webview, clipped, not rejected', async () => {
  const long = 'EACCES: permission denied, open ' + '/x'.repeat(3000);
  const { s, sent } = session(['r'], { saveCsv: async () => { throw new Error(long); }, savePng: async () => { throw new Error(long); } });
  await s.receive({ type: 'ready', view: null });
  await s.receive({ type: 'exportCsv', reqId: 1 });
  const png = 'data:image/png;base64,' + Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]).toString('base64');
  await s.receive({ type: 'exportPng', reqId: 2, chartId: 'loss', dataUrl: png });
  s.setConfig([], 3, 'run-a: ' + 'e'.repeat(5000));
  const exported = sent.filter((x) => x.type === 'exported');
  assert.equal(exported.length, 2);
  for (const msg of [...exported, sent.find((x) => x.type === 'config')!]) {
    const p = parseToWebview(msg);
    assert.ok(p.ok, p.ok ? '' : p.error);
  }
  for (const e of exported) assert.ok(e.type === 'exported' && e.error!.startsWith('EACCES: permission denied, open /x/x') && e.error!.endsWith('…'));
  // a saved file's path past the limit is clipped too
  const { s: s2, sent: sent2 } = session(['r'], { saveCsv: async () => '/p'.repeat(3000) });
  await s2.receive({ type: 'exportCsv', reqId: 1 });
  assert.ok(parseToWebview(sent2.at(-1)).ok);
});

test('smoothing: the EMA is exactly what it was (running product of the weight), and a slider dragged over a growing run draws what a fresh load draws', async () => {
  // the EMA as it was computed before weight^n stopped short of subnormals (ema.ts)
  const before = (src: Float64Array, weight: number): Float64Array => {
    const out = new Float64Array(src.length);
    let last = 0;
    let wn = 1;
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (!Number.isFinite(v)) { out[i] = NaN; continue; }
      last = last * weight + (1 - weight) * v;
      wn *= weight;
      out[i] = last / (weight === 1 ? 1 : 1 - wn);
    }
    return out;
  };
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
    assert.equal(a.length, b.length, what);
    for (let i = 0; i < a.length; i++) {
      const [x, y] = [a[i]!, b[i]!];
      assert.ok(Object.is(x, y) || Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(y)), `${what}, point ${i}: ${x} != ${y}`);
    }
  };
  const src = Float64Array.from({ length: 20_000 }, (_, i) => (i % 977 === 5 ? NaN : i % 1511 === 7 ? Infinity : Math.sin(i / 50) * 1e3 + i));
  for (const w of [0, 0.1, 0.5, 0.6, 0.9, 0.99, 0.999, 0.9999, 1]) {
    const want = before(src, w);
    const got = ema(src, w);
    for (let i = 0; i < src.length; i++) assert.ok(Object.is(got[i], want[i]), `weight ${w}, point ${i}: ${got[i]} != ${want[i]}`);
    // and in pieces, as appends extend it (weight^n taken again at each piece's start: equal to the last bits or so)
    const parts = new Float64Array(src.length);
    let st = emaInto(src, parts, w, 0, 7000);
    st = emaInto(src, parts, w, 7000, 7001, st);
    emaInto(src, parts, w, 7001, src.length, st);
    close(parts, got, `weight ${w} in pieces`);
  }
  // a slider dragged back and forth while the run grows (each weight recomputed in the buffer there is)
  const rows = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => m(from + i + 1, from + i, from + i, { loss: Math.cos((from + i) / 30), kl: (from + i) % 17 }));
  const { s, sent } = session();
  s.ingest('r', rows(0, 3000));
  await s.receive({ type: 'ready', view: null });
  let id = 1;
  for (const [w, grow] of [[0.6, 0], [0.9, 0], [0.6, 500], [0.95, 0], [0.95, 2000], [0.3, 0]] as const) {
    const n = s.runs.get('r')!.series.len;
    if (grow) s.ingest('r', rows(n, n + grow));
    const view = { xAxis: 'step' as const, range: null, smoothing: w, width: 400, hidden: [] };
    await s.receive({ type: 'view', viewId: id++, ...view });
    const fresh = session();
    fresh.s.ingest('r', rows(0, s.runs.get('r')!.series.len));
    await fresh.s.receive({ type: 'ready', view });
    const a = lastWindow(sent);
    const b = lastWindow(fresh.sent);
    assert.deepEqual(a.charts.map((c) => c.chartId), b.charts.map((c) => c.chartId));
    a.charts.forEach((c, i) => {
      const [ra, rb] = [c.runs[0]!, b.charts[i]!.runs[0]!];
      assert.deepEqual([ra.x, ra.total, Object.keys(ra.y), ra.raw], [rb.x, rb.total, Object.keys(rb.y), rb.raw], `weight ${w}, ${c.chartId}`);
      for (const k of Object.keys(ra.y)) close(toF64(ra.y[k]!), toF64(rb.y[k]!), `weight ${w}, ${c.chartId}/${k}`);
    });
  }
});

test('views sent faster than the host computes them (a smoothing drag) are answered once, for the latest', async () => {
  const { s, sent } = session(['a', 'b']);
  for (const id of ['a', 'b']) {
    const ev: RunEvent[] = [];
    for (let step = 1; step <= 20000; step++) ev.push(m(step, 1e9 + step, step, { loss: Math.sin(step), kl: Math.cos(step), reward: step % 7 }));
    s.ingest(id, ev);
  }
  await s.receive({ type: 'ready', view: null });
  const before = sent.filter((x) => x.type === 'window').length;
  const replies: Promise<void>[] = [];
  for (let i = 1; i <= 30; i++) replies.push(s.receive({ type: 'view', viewId: i, xAxis: 'step', range: null, smoothing: i / 40, width: 600, hidden: [] }));
  await Promise.all(replies);
  const windows = sent.filter((x) => x.type === 'window').slice(before);
  assert.equal(windows.length, 1, `${windows.length} windows computed for 30 views`);
  const w = windows[0]!;
  assert.ok(w.type === 'window' && w.viewId === 30 && w.smoothing === 30 / 40);
  // and the next view after that is answered as well
  await s.receive({ type: 'view', viewId: 31, xAxis: 'step', range: null, smoothing: 0.5, width: 600, hidden: [] });
  assert.equal(lastWindow(sent).viewId, 31);
  s.dispose();
});

test('compared runs with more sample rows at one step than a page holds: every row is on a page', async () => {
  const rows = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ prompt: `${tag} p${i}`, completion: `<safety>r</safety>a${i}`, rewards: { r: i }, label: 'harmful' }));
  const { s, sent } = session(['a', 'b']);
  s.ingest('a', [{ type: 'samples', seq: 0, time: 1, step: 10, rows: rows(100, 'a') }, { type: 'samples', seq: 1, time: 2, step: 20, rows: rows(2, 'a') }]);
  s.ingest('b', [{ type: 'samples', seq: 0, time: 1, step: 10, rows: rows(40, 'b') }]);
  await s.receive({ type: 'ready', view: null });
  const seen: string[] = [];
  let pages = 0;
  for (let page = 0; ; page++) {
    if (page) await s.receive({ type: 'samplesQuery', page, label: null, reward: null });
    const p = sent.filter((x) => x.type === 'samples').at(-1)!;
    assert.ok(p.type === 'samples' && parseToWebview(p).ok);
    pages = p.pages;
    assert.equal(p.total, 142);
    seen.push(...p.rows.map((r) => `${r.step} ${r.prompt}`));
    if (page >= p.pages - 1) break;
  }
  assert.equal(pages, 1 + 3); // step 20, then step 10's 140 rows on three pages of up to 64
  assert.equal(new Set(seen).size, 142);
  assert.ok(seen.includes('10 a p99') && seen.includes('10 b p39'));
});

test('a big events.jsonl reaches the dashboard in bounded batches, each event once and in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dash-batches-'));
  try {
    const root = dir;
    const file = join(root, '.conscience', 'runs', 'r', 'events.jsonl');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(root, '.conscience', 'runs', 'r'), { recursive: true });
    const ev: RunEvent[] = [];
    for (let i = 0; i < 4000; i++) ev.push(m(i, 1e9 + i, i + 1, { loss: i, pad: i }), { type: 'samples', seq: 0, time: 1e9 + i, step: i + 1, rows: [{ prompt: 'p'.repeat(1000), completion: 'c', rewards: {} }] });
    ev.forEach((e, i) => { e.seq = i; });
    writeEvents(file, ev);
    const batches: number[] = [];
    const got: number[] = [];
    const feed = new RunFeed();
    await new Promise<void>((resolve, reject) => {
      const reader = feed.followRun(root, 'r', {
        events: (events) => {
          batches.push(events.length);
          for (const e of events) got.push(e.seq);
          if (got.length === ev.length) { reader.close(); resolve(); }
        },
        run: () => {},
        error: reject,
      }, { batchBytes: 256 * 1024 });
    });
    assert.deepEqual(got, ev.map((e) => e.seq));
    // ~4.3 MB in batches of about 256 KB (one line of ~1 KB past it at most)
    assert.ok(batches.length >= 15, `${batches.length} batches`);
    assert.ok(Math.max(...batches) <= 2 * 256 + 2, `largest batch ${Math.max(...batches)} events`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a live 100k-step run with eval rows between logging steps: an append looks at the new rows, not the run, and draws what a fresh load draws', async () => {
  // eval every 25 steps, logging every 10: the eval rows lack the training keys, so no training
  // chart has every row; each still extends its own rows on an append instead of rebuilding them
  const N = 100_000;
  const train = (step: number) => ({ loss: step === 5000 ? null : Math.sin(step), reward: Math.cos(step), reward_std: 0.1, kl: step / N, grad_norm: 1 });
  const ev: RunEvent[] = [started(0, 1e9)];
  let seq = 1;
  for (let step = 1; step <= N; step++) {
    ev.push(step % 25 === 0 && step % 10 !== 0 ? m(seq++, 1e9 + step, step, { 'eval/base/harmful/refusal': step / N }) : m(seq++, 1e9 + step, step, train(step)));
  }
  const view = { xAxis: 'step' as const, range: null, smoothing: 0, width: 100, hidden: [] };
  const { s, sent } = session();
  s.ingest('r', ev);
  await s.receive({ type: 'ready', view });
  const more = [m(seq++, 2e9, N + 1, train(N + 1)), m(seq++, 2e9 + 1, N + 2, { loss: null }), m(seq++, 2e9 + 2, N + 3, train(N + 3)),
    m(seq++, 2e9 + 3, N + 5, { 'eval/base/harmful/refusal': 0.7 }), m(seq++, 2e9 + 4, N + 6, train(N + 6))];
  for (const e of more) {
    work.scanned = 0;
    work.gathered = 0;
    s.ingest('r', [e]);
    // 6 charts: each looks at the one new row and M4 re-scans its last pixel column (1/100 of
    // the run's width, ~1,000 rows); what is copied is what is drawn (a few hundred points a chart)
    assert.ok(work.scanned < 10_000, `an append scanned ${work.scanned} rows`);
    assert.ok(work.gathered < 10_000, `an append copied ${work.gathered} values`);
    ev.push(e);
  }
  const fresh = session();
  fresh.s.ingest('r', ev);
  await fresh.s.receive({ type: 'ready', view });
  const live = lastWindow(sent);
  const loaded = lastWindow(fresh.sent);
  assert.deepEqual(live.charts, loaded.charts);
  const loss = live.charts.find((c) => c.chartId === 'loss')!.runs[0]!;
  assert.equal(loss.x.at(-1), N + 6);
  // the training rows (all but the 2,000 eval rows) and the three appended with a loss, less
  // the one logged as null at step 5000 (the one at N+2 is a gap too, and never counted)
  assert.equal(loss.total, N - 2000 + 3 - 1);
  const evl = live.charts.find((c) => c.chartId === 'eval-harmful')!.runs[0]!;
  assert.equal(evl.x.at(-1), N + 5);
});

test('a chart whose keys change (a reward function added) keeps no row lists for its old key sets', async () => {
  const { s } = session();
  await s.receive({ type: 'ready', view: null });
  let seq = 0;
  for (let step = 1; step <= 30; step++) s.ingest('r', [m(seq++, 1e9 + step, step, { loss: step, [`rewards/f${step}/mean`]: step })]);
  // one list per chart of the run (loss, reward functions), not one per key set the run had
  assert.equal(s['rowsWith'].size, 2);
});
