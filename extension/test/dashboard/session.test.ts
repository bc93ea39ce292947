import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventTail, readEventsFrom, type MetricsEvent, type RunEvent } from '../../src/core/runs/events';
import { DashboardSession, MAX_SAMPLE_ROWS_KEPT, sampleWork } from '../../src/core/dashboard/session';
import { RunSeries } from '../../src/core/dashboard/series';
import { toCsv } from '../../src/core/dashboard/csv';
import { parseToWebview, type ToWebview } from '../../src/core/protocol/dashboard';
import { toF64 } from '../../src/core/protocol/validate';
import { generateRun } from './fixtures/grpo';
import { writeEvents } from './fixtures/write';
import { rng } from '../rng';

function session(ids = ['run-a']) {
  const sent: ToWebview[] = [];
  const saved: { name: string; text: string }[] = [];
  const s = new DashboardSession(ids.map((id) => ({ id })), {
    title: 't', post: (m) => sent.push(m), throttleMs: 0,
    saveCsv: async (name, text) => { saved.push({ name, text }); return `/x/${name}`; },
    savePng: async () => '/x.png',
  });
  return { s, sent, saved };
}

const metrics = (events: RunEvent[]) => events.filter((e): e is MetricsEvent => e.type === 'metrics');

test('a recorded events file becomes charts for every GRPO metric, windows decimated to the width', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dash-'));
  try {
    const file = join(dir, 'events.jsonl');
    writeEvents(file, generateRun({ steps: 5000 }));
    const { events, problems } = await readEventsFrom(file, 0);
    assert.deepEqual(problems, []);
    const { s, sent } = session();
    s.ingest('run-a', events);
    await s.receive({ type: 'ready', view: { xAxis: 'step', range: null, smoothing: 0, width: 300, hidden: [] } });
    const layout = sent.find((m) => m.type === 'layout');
    assert.ok(layout && layout.type === 'layout');
    assert.deepEqual(layout.charts.map((c) => c.id), ['reward', 'rewards', 'safety', 'kl', 'loss', 'length', 'clipped', 'lr', 'grad']);
    assert.deepEqual(layout.charts[1].series.map((x) => x.label), ['refusal_reward', 'safety_budget_reward', 'safety_format_reward']);
    assert.equal(layout.runs[0].status, 'completed');
    assert.equal(layout.runs[0].rows, 5000);
    const w = sent.find((m) => m.type === 'window');
    assert.ok(w && w.type === 'window');
    const kl = w.charts.find((c) => c.chartId === 'kl')!.runs[0];
    assert.equal(kl.total, 5000);
    assert.ok(kl.x.length < 5000 && kl.x.length <= 300 * 4 + 4, `sent ${kl.x.length}`);
    assert.ok(kl.x instanceof Float64Array);
    assert.equal(kl.x[0], 1);
    assert.equal(kl.x[kl.x.length - 1], 5000);
    const samples = sent.find((m) => m.type === 'samples');
    // the table opens on the newest logged step, and every logged step is a page
    assert.ok(samples && samples.type === 'samples');
    assert.deepEqual([samples.page, samples.pages, samples.steps, samples.total], [0, 500, 500, 1500]);
    assert.deepEqual(samples.rows.map((r) => [r.runId, r.step]), [['run-a', 5000], ['run-a', 5000], ['run-a', 5000]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('new events push an updated window; smoothing sends the EMA and the raw values', async () => {
  const { s, sent } = session();
  const ev = generateRun({ steps: 100, finished: false });
  s.ingest('run-a', ev);
  await s.receive({ type: 'ready', view: null });
  sent.length = 0;
  s.ingest('run-a', generateRun({ steps: 10, firstStep: 101, firstSeq: 1000, finished: false }).filter((e) => e.type === 'metrics'));
  const w = sent.find((m) => m.type === 'window');
  assert.ok(w && w.type === 'window');
  const reward = w.charts.find((c) => c.chartId === 'reward')!.runs[0];
  assert.equal(reward.x[reward.x.length - 1], 110);
  sent.length = 0;
  await s.receive({ type: 'view', viewId: 1, xAxis: 'step', range: null, smoothing: 0.9, width: 600, hidden: [] });
  const sw = sent.find((m) => m.type === 'window');
  assert.ok(sw && sw.type === 'window' && sw.smoothing === 0.9);
  const r = sw.charts.find((c) => c.chartId === 'reward')!.runs[0];
  assert.ok(r.raw, 'raw values sent alongside the smoothed ones');
  const raw = toF64(r.raw!.reward);
  const y = toF64(r.y.reward);
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    last = last * 0.9 + 0.1 * raw[i];
    assert.ok(Math.abs(y[i] - last / (1 - 0.9 ** (i + 1))) < 1e-9, `point ${i}`);
  }
});

test('a resumed run supersedes the steps it repeats; the CSV still has every row', () => {
  const s = new RunSeries('r');
  const m = (seq: number, step: number, v: number): MetricsEvent => ({ type: 'metrics', seq, time: 100 + seq, step, values: { loss: v } });
  for (let i = 1; i <= 5; i++) s.append(m(i, i, i));
  s.append(m(6, 3, 30)); // resumed from checkpoint-2
  s.append(m(7, 4, 40));
  assert.deepEqual([...s.step], [1, 2, 3, 4]);
  assert.deepEqual([...s.col('loss')!], [1, 2, 30, 40]);
  const { text, rows } = toCsv([s]);
  assert.equal(rows, 7);
  const lines = text.trim().split('\n');
  assert.equal(lines[0], 'run_id,seq,step,time,loss');
  assert.deepEqual(lines.slice(1).map((l) => l.split(',')[4]), ['1', '2', '3', '4', '5', '30', '40']);
});

test('the last step written again after a cut shows what the file now holds, not a merge with the line cut (the CSV keeps the cut one apart)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dash-cut-'));
  try {
    const file = join(dir, 'events.jsonl');
    const line = (o: object) => JSON.stringify({ run_id: 'r1', ...o }) + '\n';
    let text = line({ type: 'run_started', seq: 0, time: 1000 });
    for (let i = 0; i < 10; i++) text += line({ type: 'metrics', seq: i + 1, time: 1001 + i, step: i, values: { loss: i, kl: 5 } });
    writeFileSync(file, text);
    const tail = new EventTail(file);
    const { s } = session(['r1']);
    s.ingest('r1', (await tail.read()).events);
    // the file is cut before step 9's line, and step 9 is written again with loss only
    const keep = text.split('\n').slice(0, 10).join('\n') + '\n';
    truncateSync(file, Buffer.byteLength(keep));
    appendFileSync(file, line({ type: 'metrics', seq: 10, time: 1010, step: 9, values: { loss: 42 } }));
    const again = await tail.read();
    assert.equal(again.rewound, true);
    s.ingest('r1', again.events);
    const r = s.runs.get('r1')!.series;
    assert.equal(r.len, 10);
    assert.deepEqual([r.col('loss')![9], r.col('kl')![9]], [42, NaN], 'step 9 as the file holds it: no kl');
    const csv = s.csv().text.trim().split('\n');
    assert.equal(csv[0], 'run_id,seq,step,time,kl,loss');
    // the row read first is kept apart (superseded, as a resume's), the file's row after it
    assert.deepEqual(csv.filter((l) => l.split(',')[2] === '9'), ['r1,10,9,1010,5,9', 'r1,10,9,1010,,42']);
    // a second log call at the same step, after the row (an eval), still merges into it
    s.ingest('r1', [{ type: 'metrics', seq: 11, time: 1011, step: 9, values: { 'eval/x': 1 } }]);
    assert.deepEqual([r.len, r.col('loss')![9], r.col('eval/x')![9]], [10, 42, 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CSV export is complete, exact and safe against formula injection', async () => {
  const { s, sent, saved } = session();
  const ev = generateRun({ steps: 3000 });
  ev.push({ type: 'metrics', seq: 99_999, time: 1, step: 99_999, values: { '=HYPERLINK("x")': 1, loss: null } });
  s.ingest('run-a', ev);
  await s.receive({ type: 'ready', view: null });
  await s.receive({ type: 'exportCsv', reqId: 7 });
  const done = sent.find((m) => m.type === 'exported');
  assert.ok(done && done.type === 'exported' && done.ok && done.rows === 3001 && done.reqId === 7);
  const lines = saved[0].text.trimEnd().split('\n');
  assert.equal(lines.length, 3002);
  const header = lines[0].split(',');
  assert.ok(header.includes(`"'=HYPERLINK(""x"")"`), header.join(','));
  const ms = metrics(ev);
  const col = header.indexOf('kl');
  for (let i = 0; i < ms.length - 1; i++) {
    const cells = lines[i + 1].split(',');
    assert.equal(Number(cells[2]), ms[i].step);
    assert.equal(Number(cells[col]), ms[i].values.kl, `row ${i}`);
  }
  assert.equal(lines[3001].split(',')[header.indexOf('loss')], '');
});

test('bad messages from the webview are rejected and reported, not acted on', async () => {
  const { s, sent, saved } = session();
  s.ingest('run-a', generateRun({ steps: 10 }));
  await s.receive({ type: 'exportCsv', reqId: -1 });
  await s.receive({ type: 'view', viewId: 1, xAxis: 'step', range: null, smoothing: 0, width: 600, hidden: [], extra: 1 });
  assert.equal(saved.length, 0);
  assert.equal(sent.filter((m) => m.type === 'error').length, 2);
  assert.equal(sent.filter((m) => m.type === 'window').length, 0);
});

test('malformed event values become gaps, not crashes', async () => {
  const { s, sent } = session();
  s.ingest('run-a', [
    { type: 'metrics', seq: 0, time: 1, step: 1, values: { kl: 'NaN' as unknown as number, loss: null } },
    { type: 'metrics', seq: 1, time: 2, step: 2, values: null as unknown as Record<string, number> },
    { type: 'metrics', seq: 2, time: 3, step: 'x' as unknown as number, values: { kl: 1 } },
    { type: 'samples', seq: 3, time: 3, step: 2, rows: [{ prompt: 'p'.repeat(100_000), completion: null as unknown as string, rewards: { a: 'x' as unknown as number }, budget: 'big' as unknown as number }] },
    { type: 'metrics', seq: 4, time: 4, step: 3, values: { kl: 0.5 } },
  ]);
  await s.receive({ type: 'ready', view: null });
  const w = sent.find((m) => m.type === 'window');
  assert.ok(w && w.type === 'window');
  const kl = w.charts.find((c) => c.chartId === 'kl')!.runs[0];
  // kl logged as a non-number is a gap (step 1); the row that did not log kl is not kl's (step 2)
  assert.deepEqual([...kl.x], [1, 3]);
  assert.ok(Number.isNaN(kl.y.kl[0]) && kl.y.kl[1] === 0.5);
  assert.equal(kl.total, 1);
  const smp = sent.find((m) => m.type === 'samples');
  assert.ok(smp && smp.type === 'samples');
  assert.ok(smp.rows[0].prompt.length <= 4001);
  assert.equal(smp.rows[0].completion, '');
  assert.equal(smp.rows[0].rewards.a, null);
  assert.equal(smp.rows[0].budget, null);
});

test('hostile events never make the host send a message its own webview rejects: text is clipped, extra keys left out and logged', async () => {
  const sent: ToWebview[] = [];
  const logged: string[] = [];
  const s = new DashboardSession([{ id: 'run-a' }], {
    title: 't', post: (m) => sent.push(m), log: (m) => logged.push(m), throttleMs: 0, saveCsv: async () => null, savePng: async () => null,
  });
  await s.receive({ type: 'ready', view: null });
  const longKey = 'rewards/' + 'x'.repeat(600) + '/mean';
  s.ingest('run-a', [
    { type: 'run_started', seq: 0, time: 1, max_steps: 10, budgets: { source: { ['k'.repeat(1100)]: 3 } } },
    { type: 'metrics', seq: 1, time: 2, step: 1, values: { reward: 0.5, [longKey]: 1, ...Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`rewards/f${String(i).padStart(4, '0')}/mean`, i])) } },
    { type: 'samples', seq: 2, time: 3, step: 1, rows: [{ prompt: 'p', completion: 'c', rewards: { ['r'.repeat(300)]: 1 }, label: 'L'.repeat(300) }] },
    { type: 'run_finished', seq: 3, time: 4, status: 's'.repeat(100) } as RunEvent,
  ]);
  s.flush();
  assert.ok(sent.length >= 4);
  for (const m of sent) {
    const p = parseToWebview(m);
    assert.ok(p.ok, `the webview would reject ${m.type}: ${!p.ok && p.error}`);
  }
  const layout = sent.filter((m) => m.type === 'layout').at(-1) as Extract<ToWebview, { type: 'layout' }>;
  const fns = layout.charts.find((c) => c.id === 'rewards')!;
  assert.equal(fns.series.length, 1000);
  assert.ok(fns.series.every((x) => x.key !== longKey));
  assert.ok(layout.charts.some((c) => c.id === 'reward'), 'the other charts are still drawn');
  const meta = (sent.filter((m) => m.type === 'runs' || m.type === 'layout').at(-1) as Extract<ToWebview, { type: 'runs' }>).runs[0];
  assert.equal(meta.budgets!.text.length, 1000);
  assert.ok(meta.budgets!.text.endsWith('…'));
  assert.equal(meta.status.length, 64);
  const page = sent.filter((m) => m.type === 'samples').at(-1) as Extract<ToWebview, { type: 'samples' }>;
  assert.equal(page.rows[0].label, 'L'.repeat(199) + '…');
  assert.deepEqual(page.rewardNames, ['r'.repeat(199) + '…']);
  // what was left out is said once, in the log
  const notes = logged.filter((l) => /not charted/.test(l));
  assert.equal(notes.length, 1, logged.join('\n'));
  assert.match(notes[0], /^dashboard: 2 metric key\(s\) not charted/);
});

test('comparing 8 runs with long names: the title is clipped to what the webview takes, so the layout still shows', async () => {
  // editor/dashboard.ts titles a comparison "Compare <name>, <name>, …": 8 recipe file names of
  // 150 characters are past the layout's limit, and the webview rejected the whole layout
  const ids = Array.from({ length: 8 }, (_, i) => `run-${i}`);
  const title = `Compare ${ids.map((id) => `${'grpo-qwen-long-experiment-name-'.repeat(5)}${id} · Mar 5 12:34`).join(', ')}`;
  assert.ok(title.length > 1000);
  const sent: ToWebview[] = [];
  const s = new DashboardSession(ids.map((id) => ({ id })), {
    title, post: (m) => sent.push(m), throttleMs: 0, saveCsv: async () => null, savePng: async () => null,
  });
  await s.receive({ type: 'ready', view: null });
  for (const id of ids) s.ingest(id, [{ type: 'metrics', seq: 1, time: 2, step: 1, values: { reward: 0.5 } }]);
  s.flush();
  const layouts = sent.filter((m) => m.type === 'layout') as Extract<ToWebview, { type: 'layout' }>[];
  assert.ok(layouts.length >= 1);
  for (const m of layouts) {
    const p = parseToWebview(m);
    assert.ok(p.ok, `the webview would reject the layout: ${!p.ok && p.error}`);
    assert.equal(m.title.length, 1000);
    assert.equal(m.title, title.slice(0, 999) + '…');
  }
});

test('the samples table pages through every logged step, filters, and stays on its step while new ones arrive', async () => {
  const { s, sent } = session(['run-a', 'run-b']);
  const rows = (step: number, n: number) => Array.from({ length: n }, (_, i) => ({
    prompt: `p${step}.${i}`, completion: `<safety>think ${i}</safety> answer ${i}`, rewards: { refusal_reward: i / 2 }, budget: 64, label: i % 2 ? 'harmful' : 'benign',
  }));
  const samplesEv = (step: number, seq: number, n = 2): RunEvent => ({ type: 'samples', seq, time: 1000 + step, step, rows: rows(step, n) });
  s.ingest('run-a', [samplesEv(10, 0), samplesEv(20, 1), samplesEv(30, 2)]);
  s.ingest('run-b', [samplesEv(20, 0, 1)]);
  await s.receive({ type: 'ready', view: null });
  const last = () => sent.filter((m) => m.type === 'samples').at(-1) as Extract<ToWebview, { type: 'samples' }>;
  let p = last();
  assert.deepEqual([p.page, p.pages, p.total, p.steps], [0, 3, 7, 3]);
  assert.deepEqual(p.rows.map((r) => [r.runId, r.step, r.safety, r.answer]), [['run-a', 30, 'think 0', 'answer 0'], ['run-a', 30, 'think 1', 'answer 1']]);
  assert.deepEqual(p.labels, ['benign', 'harmful']);
  assert.deepEqual(p.rewardNames, ['refusal_reward']);
  // page 1 is step 20, both runs' rows
  await s.receive({ type: 'samplesQuery', page: 1, label: null, reward: null });
  p = last();
  assert.deepEqual(p.rows.map((r) => [r.runId, r.step]), [['run-a', 20], ['run-a', 20], ['run-b', 20]]);
  // a newer step arrives: the table stays on step 20 (now page 2)
  s.ingest('run-a', [samplesEv(40, 3)]);
  s.flush();
  p = last();
  assert.deepEqual([p.page, p.pages, p.rows[0]!.step], [2, 4, 20]);
  // filters: harmful only, refusal_reward >= 0.5
  await s.receive({ type: 'samplesQuery', page: 0, label: 'harmful', reward: { name: 'refusal_reward', min: 0.5, max: null } });
  p = last();
  assert.deepEqual([p.pages, p.total], [4, 4]);
  assert.deepEqual(p.rows.map((r) => [r.step, r.label, r.rewards.refusal_reward]), [[40, 'harmful', 0.5]]);
  await s.receive({ type: 'samplesQuery', page: 0, label: 'harmful', reward: { name: 'refusal_reward', min: 0.6, max: null } });
  assert.deepEqual([last().pages, last().rows.length], [0, 0]);
});

test('after a resume, the samples of the steps the new attempt logs again replace the earlier attempt\'s (as its metrics do); earlier steps stay', async () => {
  const { s, sent } = session(['run-a']);
  const rows = (tag: string) => [{ prompt: `p-${tag}`, completion: `<safety>s</safety> ${tag}`, rewards: {} }];
  const started = (seq: number): RunEvent => ({ type: 'run_started', seq, time: seq, max_steps: 40 } as RunEvent);
  const ev = (seq: number, step: number, tag: string): RunEvent => ({ type: 'samples', seq, time: seq, step, rows: rows(tag) });
  // attempt 1 logs steps 10, 20, 30; it is resumed from the checkpoint at step 10 and logs 20 and 30 again
  s.ingest('run-a', [started(0), ev(1, 10, 'first'), ev(2, 20, 'first'), ev(3, 30, 'first'), started(4), ev(5, 20, 'second')]);
  await s.receive({ type: 'ready', view: null });
  const last = () => sent.filter((m) => m.type === 'samples').at(-1) as Extract<ToWebview, { type: 'samples' }>;
  let p = last();
  assert.deepEqual([p.pages, p.total, p.steps], [2, 2, 2], 'step 30 of the first attempt is superseded before the second reaches it');
  assert.deepEqual(p.rows.map((r) => [r.step, r.answer]), [[20, 'second']]);
  await s.receive({ type: 'samplesQuery', page: 1, label: null, reward: null });
  assert.deepEqual(last().rows.map((r) => [r.step, r.answer]), [[10, 'first']]);
  // the same attempt logging a step twice keeps both (a second batch of one step)
  s.ingest('run-a', [ev(6, 20, 'second-b'), ev(7, 30, 'second')]);
  await s.receive({ type: 'samplesQuery', page: 0, label: null, reward: null });
  await s.receive({ type: 'samplesQuery', page: 1, label: null, reward: null });
  assert.deepEqual(last().rows.map((r) => [r.step, r.answer]), [[20, 'second'], [20, 'second-b']]);
});

test('a file cut under the reader and read again from the cut shows each sample row once, as the file holds them', async () => {
  const { s, sent } = session(['run-a']);
  const rows = (tag: string) => [{ prompt: `p-${tag}`, completion: `<safety>s</safety> ${tag}`, rewards: {} }];
  const ev = (seq: number, step: number, tag: string): RunEvent => ({ type: 'samples', seq, time: seq, step, rows: rows(tag) });
  s.ingest('run-a', [{ type: 'run_started', seq: 0, time: 0, max_steps: 40 } as RunEvent, ev(1, 10, 'a'), ev(2, 20, 'a'), ev(3, 30, 'a')]);
  // the reader reports a cut at seq 2's line and reads from there: seq 2 again, then a rewritten 3 and a new 4
  s.ingest('run-a', [ev(2, 20, 'a'), ev(3, 30, 'b'), ev(4, 40, 'b')]);
  await s.receive({ type: 'ready', view: null });
  const last = () => sent.filter((m) => m.type === 'samples').at(-1) as Extract<ToWebview, { type: 'samples' }>;
  const all: [number, string][] = [];
  for (let page = 0; page < last().pages; page++) {
    await s.receive({ type: 'samplesQuery', page, label: null, reward: null });
    all.push(...last().rows.map((r): [number, string] => [r.step, r.answer]));
  }
  assert.deepEqual(all, [[40, 'b'], [30, 'b'], [20, 'a'], [10, 'a']]);
});

test('a long run\'s samples events are added without looking the kept rows over, and keep what dropping at every event keeps', async () => {
  // the reference: every samples event drops the rows it supersedes (an earlier attempt's from
  // its step on, this attempt's from its seq on: a re-read after a cut) and cuts to the limit
  const reference = (events: RunEvent[]): [number, string, number][] => {
    let kept: { step: number; tag: string; attempt: number; seq: number }[] = [];
    let attempt = 0;
    for (const ev of events) {
      if (ev.type === 'run_started') attempt++;
      if (ev.type !== 'samples') continue;
      const step = ev.step;
      const seq = typeof ev.seq === 'number' ? ev.seq : NaN;
      kept = kept.filter((x) => !(x.attempt < attempt ? x.step >= step : x.seq >= seq));
      for (const row of ev.rows) kept.push({ step, tag: row.prompt, attempt, seq });
      kept = kept.slice(-MAX_SAMPLE_ROWS_KEPT);
    }
    return kept.map((x) => [x.step, x.tag, x.attempt]);
  };
  const shown = (s: DashboardSession): [number, string, number][] => {
    const r = s.runs.get('run-a')!;
    return r.samples.map((x, i) => [x.step, x.prompt, r.sampleAttempts[i]!]);
  };
  // a seeded mix of in-order logging, resumes from earlier steps, re-reads after a cut, events
  // without a seq and large batches, ingested in batches of varying size
  const rnd = rng(7);
  const events: RunEvent[] = [];
  let seq = 0;
  let step = 0;
  let attempt = 0;
  for (let i = 0; i < 6000; i++) {
    const u = rnd();
    if (u < 0.003) {
      events.push({ type: 'run_started', seq: seq++, time: seq, max_steps: 1e6 } as RunEvent);
      attempt++;
      step = Math.max(0, step - Math.floor(rnd() * 500));
    } else if (u < 0.006) {
      seq = Math.max(0, seq - 1 - Math.floor(rnd() * 300)); // the reader reads again from a cut
    }
    const n = rnd() < 0.01 ? 300 + Math.floor(rnd() * 200) : 1 + Math.floor(rnd() * 4);
    const rows = Array.from({ length: n }, (_, j) => ({ prompt: `${attempt}.${step}.${i}.${j}`, completion: 'c', rewards: {} }));
    events.push({ type: 'samples', ...(rnd() < 0.02 ? {} : { seq: seq++ }), time: i, step, rows } as RunEvent);
    step += 1 + (rnd() < 0.5 ? 0 : 1);
  }
  const { s } = session(['run-a']);
  sampleWork.scanned = 0;
  sampleWork.dropped = 0;
  for (let i = 0, b = 1; i < events.length; i += b, b = 1 + Math.floor(rnd() * 900)) s.ingest('run-a', events.slice(i, i + b));
  const want = reference(events);
  // both paths ran: rows superseded (looked over), and the oldest dropped at the limit
  assert.ok(sampleWork.scanned > 0 && sampleWork.dropped > 0, `scanned ${sampleWork.scanned}, dropped ${sampleWork.dropped}`);
  assert.ok(want.length > 3000, `${want.length} rows kept`);
  const got = shown(s);
  assert.equal(JSON.stringify(got), JSON.stringify(want)); // (a deepEqual's diff of 3,000 rows takes minutes)

  // a run logging its samples in order, as the runtime does at every logging step: opening it
  // looks no kept row over (it looked 4,000 over per event) and drops the front in batches
  const long = session(['run-a']);
  const inOrder: RunEvent[] = [{ type: 'run_started', seq: 0, time: 0, max_steps: 1e6 } as RunEvent];
  for (let i = 1; i <= 20_000; i++) {
    inOrder.push({ type: 'samples', seq: i, time: i, step: i, rows: Array.from({ length: 4 }, (_, j) => ({ prompt: `${i}.${j}`, completion: 'c', rewards: {} })) });
  }
  sampleWork.scanned = 0;
  for (let i = 0; i < inOrder.length; i += 5000) long.s.ingest('run-a', inOrder.slice(i, i + 5000));
  assert.equal(sampleWork.scanned, 0, `looked ${sampleWork.scanned} kept rows over`);
  assert.equal(JSON.stringify(shown(long.s)), JSON.stringify(reference(inOrder)));
  assert.equal(long.s.runs.get('run-a')!.samples[0]!.prompt, '19001.0');
  await long.s.receive({ type: 'ready', view: null });
  const page = long.sent.filter((m) => m.type === 'samples').at(-1) as Extract<ToWebview, { type: 'samples' }>;
  assert.deepEqual([page.steps, page.total, page.rows[0]!.step], [1000, 4000, 20_000]);
  // a resume from step 19,500 still supersedes the steps it logs again
  long.s.ingest('run-a', [{ type: 'run_started', seq: 20_001, time: 1, max_steps: 1e6 } as RunEvent, { type: 'samples', seq: 20_002, time: 2, step: 19_500, rows: [{ prompt: 'again', completion: 'c', rewards: {} }] }]);
  const kept = long.s.runs.get('run-a')!.samples;
  assert.deepEqual([kept.length, kept.at(-2)!.step, kept.at(-1)!.prompt], [1997, 19_499, 'again']);
});
