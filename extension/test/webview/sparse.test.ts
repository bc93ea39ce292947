// Sparse and tiny series in the dashboard webview, in headless Chromium: the real bundle under
// the real CSP (tests/webview/helpers.ts), the real host session at the other end. An eval
// logged every N training steps draws as a line of its own values (not lone values between the
// training rows' gaps, which a line never reaches), a chart of one point shows it, each
// chart's count is its own values; a smoothing drag sends one view per frame; metric keys the
// host dropped are named.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import type { RunEvent } from '../../src/core/runs/events';
import { launch, openDashboard, type Opened } from '../../../tests/webview/helpers';

let browser: Browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

type W = Window & { __harness: any; __dashboard: any };
/** The theme's --vscode-charts-blue: a lone run's first series. */
const BLUE = [0x37, 0x94, 0xff];

async function open(events: RunEvent[]): Promise<Opened> {
  const o = await openDashboard(browser);
  await o.page.evaluate((ev) => {
    const h = (window as unknown as W).__harness;
    h.start([{ id: 'r' }]);
    h.ingest('r', ev);
  }, events);
  await o.page.waitForFunction(() => {
    const d = (window as unknown as W).__dashboard;
    return d.debug.windows > 0 && d.plots.size > 0 && d.debug.appliedViewId === d.debug.sentViewId;
  });
  await o.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50))));
  return o;
}

/** How many pixel columns of a chart's canvas hold the colour (a line spans many, a few markers few). */
function columnsWith(page: Page, chartId: string, rgb: number[]): Promise<number> {
  return page.evaluate(([chartId, rgb]) => {
    const c = document.querySelector<HTMLCanvasElement>(`[data-testid="chart-${chartId}"] canvas`);
    if (!c) return -1;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const cols = new Set<number>();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 40) cols.add((i / 4) % c.width);
    }
    return cols.size;
  }, [chartId, rgb] as const);
}

const count = (page: Page, chartId: string) => page.$eval(`[data-testid="chart-${chartId}"] .count`, (e) => e.textContent);

test('an eval logged every 100 steps during training draws as a line, and counts its own 10 values', async () => {
  const ev: RunEvent[] = [];
  let seq = 0;
  for (let step = 10; step <= 1000; step += 10) {
    ev.push({ type: 'metrics', seq: seq++, time: 1e9 + step, step, values: { reward: Math.sin(step / 50), loss: 0.5 } });
    if (step % 100 === 0) ev.push({ type: 'metrics', seq: seq++, time: 1e9 + step, step, values: { 'eval/base/harmful/refusal': 0.3 + step / 2000 } });
  }
  const o = await open(ev);
  const reward = await columnsWith(o.page, 'reward', BLUE);
  const evalCols = await columnsWith(o.page, 'eval-harmful', BLUE);
  // the eval's line runs from step 100 to 1000: most of the reward line's width (10..1000)
  assert.ok(evalCols > reward * 0.8, `eval chart: ${evalCols} columns drawn, reward: ${reward}`);
  assert.equal(await count(o.page, 'eval-harmful'), '10 points');
  assert.equal(await count(o.page, 'reward'), '100 points');
  assert.deepEqual(o.consoleErrors, []);
  await o.page.close();
});

test('a chart of a single point shows it', async () => {
  const o = await open([{ type: 'metrics', seq: 0, time: 1e9, step: 10, values: { reward: 0.5, reward_std: 0.1, loss: 1 } }]);
  assert.ok(await columnsWith(o.page, 'loss', BLUE) > 0, 'the loss point is drawn');
  assert.ok(await columnsWith(o.page, 'reward', BLUE) > 0, 'the reward point is drawn');
  assert.equal(await count(o.page, 'loss'), '1 points');
  assert.deepEqual(o.consoleErrors, []);
  await o.page.close();
});

test('a lone value between gaps of a dense series gets a marker', async () => {
  // loss logged on every row but NaN around step 50: the value at 50 has no neighbour to join
  const ev: RunEvent[] = [];
  for (let step = 1; step <= 100; step++) {
    const loss = step === 50 ? 0.9 : Math.abs(step - 50) <= 20 ? null : 0.1;
    ev.push({ type: 'metrics', seq: step, time: 1e9 + step, step, values: { loss, kl: 0.1 } });
  }
  const o = await open(ev);
  const page = o.page;
  // the marker sits in the middle columns, where the line has its gap
  const middle = await page.evaluate(([rgb]) => {
    const c = document.querySelector<HTMLCanvasElement>('[data-testid="chart-loss"] canvas')!;
    const d = c.getContext('2d')!.getImageData(Math.floor(c.width * 0.4), 0, Math.floor(c.width * 0.2), c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 40) n++;
    return n;
  }, [BLUE] as const);
  assert.ok(middle > 0, 'the lone value at step 50 is drawn');
  assert.equal(await count(page, 'loss'), '60 points');
  await page.close();
});

test('dragging the smoothing slider sends at most one view per frame, and the last value is the one drawn', async () => {
  const ev: RunEvent[] = [];
  for (let step = 1; step <= 2000; step++) ev.push({ type: 'metrics', seq: step, time: 1e9 + step, step, values: { loss: Math.sin(step / 30) } });
  const o = await open(ev);
  const page = o.page;
  const sent = await page.evaluate(() => {
    const h = (window as unknown as W).__harness;
    const before = h.received.filter((m: { type: string }) => m.type === 'view').length;
    const s = document.querySelector<HTMLInputElement>('[data-testid="smoothing"]')!;
    // 40 input events inside one task: what a fast drag delivers between two frames
    for (let i = 1; i <= 40; i++) {
      s.value = String(i / 50);
      s.dispatchEvent(new Event('input', { bubbles: true }));
    }
    return before;
  });
  await page.waitForFunction(() => {
    const d = (window as unknown as W).__dashboard.debug;
    return d.appliedViewId === d.sentViewId && (window as unknown as W).__harness.view().smoothing === 0.8;
  });
  const views = await page.evaluate(() => (window as unknown as W).__harness.received.filter((m: { type: string }) => m.type === 'view'));
  assert.equal(views.length - sent, 1, `${views.length - sent} views sent for one frame of input`);
  assert.equal(views.at(-1).smoothing, 0.8);
  await page.close();
});

test('metric keys the host could not keep are named in the dashboard', async () => {
  const values: Record<string, number> = { loss: 1 };
  for (let i = 0; i < 2010; i++) values[`extra/${i}`] = i;
  const o = await open([{ type: 'metrics', seq: 0, time: 1e9, step: 1, values }]);
  const note = await o.page.textContent('[data-testid="keys-dropped-r"]');
  assert.equal(note, '11 metric key(s) past the first 2,000 were not kept: not charted, not in the CSV export');
  assert.ok(await o.page.isVisible('[data-testid="keys-dropped-r"]'));
  await o.page.close();
});
