// Functional tests of the dashboard webview in headless Chromium: the real bundle
// (dist/webview/dashboard.js) under the real CSP, with a stubbed acquireVsCodeApi whose other
// end is the real host session (core/dashboard). Screenshots go to test-artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { readEventsFrom, type MetricsEvent, type RunEvent } from '../../extension/src/core/runs/events';
import { generateRun } from '../../extension/test/dashboard/fixtures/grpo';
import { writeEvents } from '../../extension/test/dashboard/fixtures/write';
import { ROOT, TEST_BUNDLE, artifactsDir, ensureBundle, launch, openDashboard, type Opened } from './helpers';

let browser: Browser;
let recorded: RunEvent[];
let tmp: string;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'dash-webview-'));
  const file = join(tmp, 'events.jsonl');
  writeEvents(file, generateRun({ runId: 'run-a', steps: 200, finished: false }));
  const r = await readEventsFrom(file, 0);
  assert.deepEqual(r.problems, []);
  recorded = r.events;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

type W = Window & { __harness: any; __dashboard: any };
const metrics = (ev: RunEvent[]) => ev.filter((e): e is MetricsEvent => e.type === 'metrics');

async function start(o: Opened, runs: { id: string; label?: string }[], events: Record<string, RunEvent[]>): Promise<void> {
  await o.page.evaluate(([runs, events]) => {
    const h = (window as unknown as W).__harness;
    h.start(runs);
    for (const [id, ev] of Object.entries(events)) h.ingest(id, ev);
  }, [runs, events] as const);
  await waitDrawn(o.page);
}

/** Waits until the webview has applied a window that the host computed for its current view. */
/** The tooltip's lines (x first, then one per series: label + value) once it shows. */
async function tooltip(page: Page): Promise<string[]> {
  await page.waitForSelector('[data-testid="tooltip"]:not([hidden])');
  return page.$$eval('[data-testid="tooltip"] > div', (els) => els.map((e) => e.textContent ?? ''));
}

/** The samples table's body, as cell texts. */
function sampleRows(page: Page): Promise<string[][]> {
  return page.$$eval('[data-testid="samples"] tbody tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent ?? '')));
}

async function waitDrawn(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const w = window as unknown as W;
    const d = w.__dashboard.debug;
    return d.windows > 0 && w.__dashboard.plots.size > 0 && d.appliedViewId === d.sentViewId;
  });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))));
}

/** Pixels of the chart's canvas within `tol` of colour `rgb`. */
function countColour(page: Page, chartId: string, rgb: [number, number, number], tol = 40): Promise<number> {
  return page.evaluate(([chartId, rgb, tol]) => {
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="chart-${chartId}"] canvas`)!;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < tol) n++;
    }
    return n;
  }, [chartId, rgb, tol] as const);
}
function canvasHash(page: Page, chartId: string): Promise<string> {
  return page.evaluate((chartId) => {
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="chart-${chartId}"] canvas`)!;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (Math.imul(h, 31) + d[i]) | 0;
    return String(h);
  }, chartId);
}
const BLUE: [number, number, number] = [0x37, 0x94, 0xff];

function assertClean(o: Opened): void {
  assert.deepEqual(o.cspViolations, [], 'no CSP violations');
  assert.deepEqual(o.consoleErrors, [], 'no console errors');
}

test('curves render from a recorded events file: every chart, legend entries, a tooltip at the cursor, samples', async () => {
  const o = await openDashboard(browser);
  try {
    await start(o, [{ id: 'run-a', label: 'demo' }], { 'run-a': recorded });
    const { page } = o;
    const ids = await page.$$eval('[data-testid^="chart-"]', (els) => els.map((e) => (e as HTMLElement).dataset.chartId));
    assert.deepEqual(ids, ['reward', 'rewards', 'safety', 'kl', 'loss', 'length', 'clipped', 'lr', 'grad']);
    for (const id of ids) assert.ok((await countColour(page, id!, BLUE)) > 150, `chart ${id} draws its first series`);
    const legend = await page.$$eval('[data-testid="chart-rewards"] .u-legend .u-series:not(.aux) .u-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(legend, ['refusal_reward', 'safety_budget_reward', 'safety_format_reward']);
    const safety = await page.$$eval('[data-testid="chart-safety"] .u-legend .u-series .u-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(safety, ['tokens', 'budget']);
    const shown = await page.$$eval('.u-legend .u-series', (els) => els.filter((e) => getComputedStyle(e).display !== 'none').map((e) => e.querySelector('.u-label')?.textContent ?? ''));
    assert.deepEqual(shown.filter((l) => /\((lo|hi|raw)\)$/.test(l)), [], 'band bounds are drawn, not listed');
    assert.match(await page.textContent('[data-testid="status-run-a"]') ?? '', /running · step 200\/200/);

    // hover the KL chart: the tooltip at the cursor shows the step under it and KL's value there
    const over = page.locator('[data-testid="chart-kl"] .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    const tipText = await tooltip(page);
    const step = Number(/^step (\d+)/.exec(tipText[0] ?? '')?.[1]);
    assert.ok(step > 100 && step < 140, `hovered step ${tipText[0]}`);
    const expected = metrics(recorded).find((m) => m.step === step)!.values.kl!;
    const klText = /^kl(\S+)$/.exec(tipText[1] ?? '')?.[1];
    assert.ok(Math.abs(Number(klText) - expected) <= Math.abs(expected) * 1e-4, `kl at ${step}: ${tipText[1]} vs ${expected}`);
    // the tooltip sits at the cursor, not in the legend
    const tb = (await page.locator('[data-testid="tooltip"]').boundingBox())!;
    assert.ok(Math.abs(tb.x - (box.x + box.width * 0.6)) < 60 && Math.abs(tb.y - (box.y + box.height / 2)) < 60, `tooltip at ${tb.x},${tb.y}`);
    // the reward chart's tooltip gives the std beside the mean
    const rbox = (await page.locator('[data-testid="chart-reward"] .u-over').boundingBox())!;
    await page.mouse.move(rbox.x + rbox.width * 0.5, rbox.y + rbox.height / 2);
    const rt = await tooltip(page);
    const rstep = Number(/^step (\d+)/.exec(rt[0] ?? '')?.[1]);
    const rv = metrics(recorded).find((m) => m.step === rstep)!.values;
    const m = /^reward([-\d.e]+) ± ([-\d.e]+) std$/.exec(rt[1] ?? '');
    assert.ok(m, `reward row with std: ${rt.join(' | ')}`);
    assert.ok(Math.abs(Number(m[1]) - rv.reward!) < 1e-3 && Math.abs(Number(m[2]) - rv.reward_std!) < 1e-3, `${rt[1]} vs ${rv.reward} ± ${rv.reward_std}`);

    // samples table: one logged step per page, newest first; label, budget, safety tokens, rewards
    const rows = await sampleRows(page);
    assert.equal(rows.length, 3);
    assert.deepEqual(rows.map((r) => [r[0], r[1]]), [['benign', '64'], ['benign', '80'], ['harmful', '96']]);
    const heads = await page.$$eval('[data-testid="samples"] th', (ths) => ths.map((t) => t.textContent));
    assert.deepEqual(heads, ['Label', 'Budget', 'Safety tokens', 'Prompt', 'Safety block', 'Answer', 'refusal', 'safety_budget', 'safety_format']);
    assert.match(await page.textContent('[data-testid="samples-page"]') ?? '', /^step 200 · 1 of 20$/);
    await page.mouse.move(0, 0);
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-run.png'), fullPage: true });
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('new events update the curves live', async () => {
  const o = await openDashboard(browser);
  try {
    const first = recorded.slice(0, 100);
    await start(o, [{ id: 'run-a' }], { 'run-a': first });
    const { page } = o;
    const lastX = () => page.evaluate(() => { const u = (window as unknown as W).__dashboard.plots.get('reward').u; return u.data[0][u.data[0].length - 1]; });
    const before = await lastX();
    const px = await countColour(page, 'kl', BLUE);
    await page.evaluate((ev) => (window as unknown as W).__harness.ingest('run-a', ev), recorded.slice(100));
    await waitDrawn(page);
    assert.ok(before < 100, `before: last step ${before}`);
    assert.equal(await lastX(), 200);
    assert.ok((await countColour(page, 'kl', BLUE)) !== px, 'the KL curve was redrawn');
    assert.match(await page.textContent('[data-testid="status-run-a"]') ?? '', /step 200/);
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('the smoothing slider redraws every series as the debiased EMA', async () => {
  const o = await openDashboard(browser);
  try {
    await start(o, [{ id: 'run-a' }], { 'run-a': recorded });
    const { page } = o;
    const hash = await canvasHash(page, 'grad');
    await page.locator('[data-testid="smoothing"]').fill('0.9');
    await page.waitForFunction(() => (window as unknown as W).__harness.view().smoothing === 0.9);
    await waitDrawn(page);
    assert.notEqual(await canvasHash(page, 'grad'), hash, 'grad norm chart changed');
    const drawn: (number | null)[][] = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('grad').u.data);
    // series 1 = raw (faint), series 2 = smoothed
    const raw = metrics(recorded).map((m) => m.values.grad_norm!);
    assert.deepEqual(drawn[1], raw);
    let last = 0;
    raw.forEach((v, i) => {
      last = last * 0.9 + 0.1 * v;
      assert.ok(Math.abs(drawn[2][i]! - last / (1 - 0.9 ** (i + 1))) < 1e-9, `point ${i}`);
    });
    assert.equal(await page.textContent('.smooth-value'), '0.90');
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-smoothed.png') });
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('drag-zoom asks the host for a finer window; double-click resets', async () => {
  const o = await openDashboard(browser);
  try {
    const big = generateRun({ runId: 'run-a', steps: 20_000, samplesEvery: 5000 });
    await start(o, [{ id: 'run-a' }], { 'run-a': big });
    const { page } = o;
    const count = () => page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.data[0].length);
    const full = await count();
    assert.ok(full < 20_000 / 4, `full view decimated to ${full} points`);
    assert.match(await page.textContent('[data-testid="chart-kl"] .count') ?? '', /of 20,000 points/);
    const over = page.locator('[data-testid="chart-kl"] .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.4, box.y + 20);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.42, box.y + 30, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(() => (window as unknown as W).__harness.view().range !== null);
    await waitDrawn(page);
    const range: [number, number] = await page.evaluate(() => (window as unknown as W).__harness.view().range);
    assert.ok(range[0] > 7000 && range[1] < 9000 && range[1] - range[0] > 200, `range ${range}`);
    const xs: number[] = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.data[0]);
    const inRange = xs.filter((x) => x >= range[0] && x <= range[1]).length;
    const span = Math.floor(range[1]) - Math.ceil(range[0]) + 1;
    assert.ok(span < 4 * box.width, 'the window is narrow enough to be sent whole');
    assert.equal(inRange, span, 'every step in the zoomed window is drawn');
    assert.match(await page.textContent('[data-testid="chart-kl"] .count') ?? '', new RegExp(`^${span} points`));
    // all charts share the zoom
    const lrScale = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('lr').u.scales.x);
    assert.ok(Math.abs(lrScale.min - range[0]) < 1e-6 && Math.abs(lrScale.max - range[1]) < 1e-6);
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-zoomed.png') });
    await over.dblclick();
    await page.waitForFunction(() => (window as unknown as W).__harness.view().range === null);
    await waitDrawn(page);
    const reset: number[] = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.data[0]);
    assert.ok(reset.length < 20_000 / 4 && reset[0] === 1 && reset[reset.length - 1] === 20_000, 'back to the whole run, decimated');
    const views = await page.evaluate(() => (window as unknown as W).__harness.received.filter((m: { type: string }) => m.type === 'view'));
    assert.equal(views.filter((v: { range: unknown }) => v.range !== null).length, 1, 'one zoom gesture, one request');
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('legend click hides a series, and the choice survives a reload with the view state', async () => {
  const o = await openDashboard(browser);
  let state: unknown;
  try {
    await start(o, [{ id: 'run-a' }], { 'run-a': recorded });
    const { page } = o;
    assert.ok((await countColour(page, 'kl', BLUE)) > 150);
    // the legend lists the series (values are in the tooltip at the cursor)
    await page.click('[data-testid="chart-kl"] .u-legend .u-series:nth-child(1) .u-label');
    await waitDrawn(page);
    assert.ok((await countColour(page, 'kl', BLUE)) < 20, 'KL line gone');
    await page.locator('[data-testid="smoothing"]').fill('0.5');
    await page.waitForFunction(() => (window as unknown as W).__harness.view().smoothing === 0.5);
    state = await page.evaluate(() => (window as unknown as W).__harness.state());
    assert.deepEqual((state as { runIds: string[] }).runIds, ['run-a']);
    assert.deepEqual((state as { view: { hidden: string[] } }).view.hidden, ['kl/run-a/kl']);
  } finally {
    await o.page.close();
  }
  const o2 = await openDashboard(browser, { state });
  try {
    await start(o2, [{ id: 'run-a' }], { 'run-a': recorded });
    const { page } = o2;
    const ready = await page.evaluate(() => (window as unknown as W).__harness.received.find((m: { type: string }) => m.type === 'ready'));
    assert.ok(ready);
    assert.equal(await page.inputValue('[data-testid="smoothing"]'), '0.5');
    assert.equal(await page.evaluate(() => (window as unknown as W).__harness.view().smoothing), 0.5);
    assert.ok((await countColour(page, 'kl', BLUE)) < 20, 'KL still hidden after reload');
    assert.ok((await countColour(page, 'loss', BLUE)) > 150);
    assertClean(o2);
  } finally {
    await o2.page.close();
  }
});

test('CSV export writes every row of every series, and PNG export saves the chart image', async () => {
  const o = await openDashboard(browser);
  try {
    const big = generateRun({ runId: 'run-a', steps: 12_000, samplesEvery: 4000 });
    await start(o, [{ id: 'run-a' }], { 'run-a': big });
    const { page } = o;
    await page.click('[data-testid="export-csv"]');
    await page.waitForSelector('[data-testid="status"][data-ok="true"][data-kind="csv"]');
    assert.match(await page.textContent('[data-testid="status"]') ?? '', /Saved CSV \(12,000 rows\) to \/saved\/run-a\.csv/);
    const csv: string = await page.evaluate(() => (window as unknown as W).__harness.saved.csv[0].text);
    const lines = csv.trimEnd().split('\n');
    const ms = metrics(big);
    assert.equal(lines.length, ms.length + 1, 'header + one line per metrics event');
    const header = lines[0].split(',');
    for (const key of Object.keys(ms[0].values)) assert.ok(header.includes(key), `column ${key}`);
    for (let i = 0; i < ms.length; i += 997) {
      const cells = lines[i + 1].split(',');
      assert.equal(Number(cells[2]), ms[i].step);
      for (const [k, v] of Object.entries(ms[i].values)) assert.equal(Number(cells[header.indexOf(k)]), v, `row ${i} ${k}`);
    }
    await page.click('[data-testid="png-reward"]');
    await page.waitForSelector('[data-testid="status"][data-ok="true"][data-kind="png"]');
    const png = await page.evaluate(() => (window as unknown as W).__harness.saved.png[0]);
    assert.deepEqual(png.bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(png.size > 5000, `png of ${png.size} bytes`);
    assert.match(png.name, /run-a-reward\.png$/);
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('compare view draws several runs on the same axes', async () => {
  const o = await openDashboard(browser);
  try {
    const b = generateRun({ runId: 'run-b', steps: 150, seed: 9, samplesEvery: 50 });
    await start(o, [{ id: 'run-a', label: 'baseline' }, { id: 'run-b', label: 'budget-tuned' }], { 'run-a': recorded, 'run-b': b });
    const { page } = o;
    const legend = await page.$$eval('[data-testid="chart-kl"] .u-legend .u-series:not(.aux) .u-label', (els) => els.map((e) => e.textContent));
    assert.deepEqual(legend, ['baseline · kl', 'budget-tuned · kl']);
    assert.ok((await countColour(page, 'kl', BLUE)) > 150);
    assert.ok((await countColour(page, 'kl', [0xd1, 0x86, 0x16])) > 150, 'second run in orange');
    const data: (number | null)[][] = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.data);
    assert.equal(data[0].length, 200, 'x joined over both runs');
    assert.equal(data[2].filter((v) => v != null).length, 150);
    assert.equal(data[1].filter((v) => v != null).length, 200);
    const heads = await page.$$eval('[data-testid="samples"] th', (ths) => ths.map((t) => t.textContent));
    assert.equal(heads[0], 'Run');
    // one colour per run: run-b's chip is orange, as its curves; a click hides run-b on every chart
    const chip = page.locator('[data-testid="run-toggle-run-b"]');
    assert.equal(await chip.textContent(), 'budget-tuned');
    await chip.click();
    await page.waitForFunction(() => (window as unknown as W).__dashboard.plots.get('kl').u.series.length === 2);
    assert.equal(await countColour(page, 'kl', [0xd1, 0x86, 0x16]), 0, 'run-b hidden');
    assert.ok((await countColour(page, 'kl', BLUE)) > 150, 'run-a still drawn');
    assert.deepEqual((await page.evaluate(() => (window as unknown as W).__harness.state())).view.hiddenRuns, ['run-b']);
    await chip.click();
    await page.waitForFunction(() => (window as unknown as W).__dashboard.plots.get('kl').u.series.length === 3);
    // the config diff: one row per differing recipe key, a column per run
    await page.evaluate(() => (window as unknown as W).__harness.setConfig([{ key: 'learning_rate', values: ['1e-4', '5e-5'] }, { key: 'safety.max_budget', values: [null, '16'] }], 41));
    await page.waitForSelector('[data-testid="config"]:not([hidden]) tbody tr');
    const cfg = await page.$$eval('[data-testid="config"] tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent)));
    assert.deepEqual(cfg, [['key', 'baseline', 'budget-tuned'], ['learning_rate', '1e-4', '5e-5'], ['safety.max_budget', '(unset)', '16']]);
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-compare.png'), fullPage: true });
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('malformed host messages are reported, and hostile strings stay text', async () => {
  const o = await openDashboard(browser);
  try {
    const ev = recorded.map((e) => e.type === 'samples'
      ? { ...e, rows: [{ prompt: '<img src=x onerror="window.__pwned=1">', completion: '<script>window.__pwned=2</script>', rewards: {}, budget: 1, label: '<b>x</b>' }] }
      : e);
    await start(o, [{ id: 'run-a' }], { 'run-a': ev as RunEvent[] });
    const { page } = o;
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.equal(await page.$$eval('[data-testid="samples"] img, [data-testid="samples"] script, [data-testid="samples"] b', (e) => e.length), 0);
    assert.match(await page.textContent('[data-testid="samples"] tbody') ?? '', /<img src=x onerror=/);
    await page.evaluate(() => (window as unknown as W).__harness.sendRaw({ type: 'window', viewId: 99, charts: 'all' }));
    await page.waitForSelector('[data-testid="error"]:not([hidden])');
    assert.match(await page.textContent('[data-testid="error"]') ?? '', /malformed message.*message\.xAxis/);
    assertClean({ ...o, consoleErrors: o.consoleErrors });
  } finally {
    await o.page.close();
  }
});

test('x axis by wall time or time since start', async () => {
  const o = await openDashboard(browser);
  try {
    await start(o, [{ id: 'run-a' }], { 'run-a': recorded });
    const { page } = o;
    const ms = metrics(recorded);
    await page.click('[data-testid="x-axis"]');
    await page.click('vscode-option:has-text("Wall time")');
    await page.waitForFunction(() => (window as unknown as W).__harness.view().xAxis === 'wall');
    await waitDrawn(page);
    const wall = await page.evaluate(() => { const u = (window as unknown as W).__dashboard.plots.get('kl').u; return { x0: u.data[0][0], time: u.scales.x.time }; });
    assert.equal(wall.x0, ms[0].time);
    assert.equal(wall.time, true);
    const hoverX = async () => {
      const box = (await page.locator('[data-testid="chart-kl"] .u-over').boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
      return (await tooltip(page))[0]!;
    };
    assert.match(await hoverX() ?? '', /\d+:\d\d:\d\d/, 'hover shows the wall-clock time');
    await page.click('[data-testid="x-axis"]');
    await page.click('vscode-option:has-text("Relative time")');
    await page.waitForFunction(() => (window as unknown as W).__harness.view().xAxis === 'relative');
    await waitDrawn(page);
    const rel: number[] = await page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.data[0]);
    const t0 = recorded[0].time; // run_started: the origin of relative time
    assert.ok(Math.abs(rel[0] - (ms[0].time - t0)) < 1e-6);
    assert.ok(Math.abs(rel[rel.length - 1] - (ms[ms.length - 1].time - t0)) < 1e-6);
    await page.mouse.move(0, 0);
    assert.match(await hoverX() ?? '', /^\d+(\.\d)?m$/, 'hover shows minutes since the start');
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('samples page through logged steps, filter by label and reward, split the safety block from the answer', async () => {
  const o = await openDashboard(browser);
  try {
    const ev = recorded.map((e) => e.type === 'samples'
      ? { ...e, rows: e.rows.map((r, i) => ({ ...r, safety: i === 2 ? null : `risk note ${e.step}.${i} `.repeat(30).trim(), answer: `answer ${e.step}.${i}`, safety_tokens: i === 1 ? 120 : 20 })) }
      : e);
    await start(o, [{ id: 'run-a' }], { 'run-a': ev as RunEvent[] });
    const { page } = o;
    const page1 = await sampleRows(page);
    // label, budget, tokens used / budget, prompt, safety block (collapsible), answer, rewards
    assert.deepEqual(page1.map((r) => [r[0], r[1], r[2], r[5]]), [['benign', '64', '20 / 64', 'answer 200.0'], ['benign', '80', '120 / 80', 'answer 200.1'], ['harmful', '96', '20 / 96', 'answer 200.2']]);
    assert.match(page1[0]![4]!, /^\d+ charsrisk note 200\.0/);
    assert.equal(page1[2]![4], 'no block');
    assert.equal(await page.locator('[data-testid="samples"] tbody tr:nth-child(2) td.num.over').count(), 1, 'over budget is marked');
    // text columns get the width: the prompt is wider than every number column together
    const widths = await page.$$eval('[data-testid="samples"] thead th', (ths) => ths.map((t) => t.getBoundingClientRect().width));
    assert.ok(widths[3]! > widths[1]! * 3 && widths[5]! > widths[2]!, `column widths ${widths.map(Math.round)}`);
    // a click shows the full text of a clamped cell
    const cell = page.locator('[data-testid="samples"] tbody tr:first-child td.safety .clamp');
    const clamped = (await cell.boundingBox())!.height;
    await cell.click();
    assert.ok((await cell.boundingBox())!.height > clamped * 1.5, 'the full safety block shows on click');
    // older / newer pages
    await page.click('[data-testid="samples-older"]');
    await page.waitForFunction(() => /^step 190 /.test(document.querySelector('[data-testid="samples-page"]')?.textContent ?? ''));
    assert.deepEqual((await sampleRows(page)).map((r) => r[5]), ['answer 190.0', 'answer 190.1', 'answer 190.2']);
    // filter by label: harmful rows only, still a page per step
    await page.click('[data-testid="samples-label"]');
    await page.click('[data-testid="samples-label"] vscode-option:has-text("harmful")');
    await page.waitForFunction(() => /^step 200 · 1 of 20$/.test(document.querySelector('[data-testid="samples-page"]')?.textContent ?? '') && document.querySelectorAll('[data-testid="samples"] tbody tr').length === 1);
    assert.deepEqual((await sampleRows(page)).map((r) => r[0]), ['harmful']);
    // and by a reward's range: no harmful row has refusal above 2
    await page.click('[data-testid="samples-reward"]');
    await page.click('[data-testid="samples-reward"] vscode-option:has-text("refusal_reward")');
    await page.fill('[data-testid="samples-reward-min"]', '2');
    await page.press('[data-testid="samples-reward-min"]', 'Enter');
    await page.waitForSelector('[data-testid="samples"] p.empty');
    assert.equal(await page.textContent('[data-testid="samples"] p.empty'), 'No samples match the filter.');
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-samples.png'), fullPage: true });
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('charts follow a live theme switch, and a failed run shows its root cause', async () => {
  const o = await openDashboard(browser);
  try {
    await start(o, [{ id: 'run-a', label: 'tiny-cpu · 10:12' }], { 'run-a': recorded });
    const { page } = o;
    const axisColour = () => page.evaluate(() => (window as unknown as W).__dashboard.plots.get('kl').u.axes[1].stroke());
    assert.equal(await axisColour(), '#cccccc');
    // VS Code switches the theme by rewriting the variables on <html> and the class on <body>
    await page.evaluate(() => {
      const st = document.documentElement.style;
      for (const [k, v] of [['--vscode-foreground', '#3b3b3b'], ['--vscode-editor-background', '#ffffff'], ['--vscode-charts-blue', '#005fb8'], ['--vscode-charts-orange', '#b35900']]) st.setProperty(k, v!);
      document.body.className = 'vscode-light';
    });
    await page.waitForFunction(() => (window as unknown as W).__dashboard.debug.themes === 1 && (window as unknown as W).__dashboard.plots.get('kl').u);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))));
    assert.equal(await axisColour(), '#3b3b3b', 'axis labels in the light theme\'s foreground');
    assert.ok((await countColour(page, 'kl', [0x00, 0x5f, 0xb8], 20)) > 150, 'the curve in the light theme\'s blue');
    assert.equal(await countColour(page, 'kl', BLUE, 20), 0, 'nothing left in the dark theme\'s blue');
    await page.screenshot({ path: join(artifactsDir(), 'dashboard-light-theme.png') });
    // where the budgets came from (run_started.budgets): a fallback to label defaults is a warning
    await page.evaluate(() => (window as unknown as W).__harness.ingest('run-a', [{ type: 'run_started', seq: 100000, time: 1_764_100_000,
      budgets: { source: { dataset: 0, allocator: 0, label: 64 }, allocator: 'failed: No module named onnxruntime' } }]));
    await page.waitForSelector('[data-testid="budgets"]:not([hidden]) .fallback');
    assert.equal(await page.textContent('[data-testid="budgets"]'), 'budgets: 64 label default (allocator failed: No module named onnxruntime; per-label defaults used instead)');
    await page.evaluate(() => (window as unknown as W).__harness.setStatus('run-a', 'failed', "KeyError: 'no_such_reward'"));
    await page.waitForSelector('[data-testid="cause"]:not([hidden])');
    assert.equal(await page.textContent('[data-testid="cause"]'), "Run failed: KeyError: 'no_such_reward'");
    assertClean(o);
  } finally {
    await o.page.close();
  }
});

test('the shipped bundle has no test hook; the tests\' bundle of the same sources has', () => {
  execFileSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, stdio: 'ignore' });
  ensureBundle();
  assert.doesNotMatch(readFileSync(join(ROOT, 'dist/webview/dashboard.js'), 'utf8'), /__dashboard/);
  assert.match(readFileSync(join(TEST_BUNDLE, 'dashboard.js'), 'utf8'), /__dashboard/);
});
