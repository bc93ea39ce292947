// `npm run bench dashboard`: the dashboard webview in headless Chromium with 1,000,000 points
// (100,000 steps × 10 logged series), against a naive peer in the same run: uPlot fed every
// raw point of the same series in the same charts (no host, no decimation).
//   dashboard.first_render_ms   host holds the run; webview says ready → every chart drawn
//                               (layout + the windows for its width, message copies included);
//                               median of 5 fresh pages
//   dashboard.update_ms_p95     one metrics event appended every 100 ms (10 Hz): ingest →
//                               decimate → post → validate → setData → every chart drawn
//   dashboard.heap_mb           page memory after GC: V8 heap + ArrayBuffer backing stores
//                               (the harness page holds the host's full series AND the webview)
//   dashboard.ingest_ms         host: 100,000 metrics events into the series store
// and the same figures for the peer (`dashboard.naive_*`) and the ratios peer/ours.
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { join } from 'node:path';
import { launch, openDashboard, ROOT, ORIGIN } from '../tests/webview/helpers';

const STEPS = 100_000;
const KEYS = 10;
const UPDATES = 60;
/** First renders are timed on this many fresh pages; the median is reported (the machine is shared). */
const REPEATS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const p95 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)];
};
const r2 = (x: number) => Math.round(x * 100) / 100;

/** JS heap in use after a full GC, plus ArrayBuffer backing stores (typed arrays live outside the V8 heap). */
async function heapMb(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const u = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; backingStorageSize?: number };
  await cdp.detach();
  if (u.backingStorageSize === undefined) throw new Error('this Chromium does not report ArrayBuffer backing storage');
  return (u.usedSize + u.backingStorageSize) / 2 ** 20;
}

async function ours(browser: Browser, withUpdates: boolean) {
  const { page, cspViolations, consoleErrors } = await openDashboard(browser, { width: 1280, height: 900 });
  try {
    const first = await page.evaluate(async ([steps, keys]) => {
      const w = window as any;
      const h = w.__harness;
      const d = w.__dashboard.debug;
      h.prepare([{ id: 'big', label: 'big run' }], { throttleMs: 0 });
      const events = h.bigRun('big', steps, keys);
      const t0 = performance.now();
      h.ingest('big', events);
      const ingestMs = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 50));
      d.renders.length = 0;
      const t1 = performance.now();
      h.connect();
      await new Promise((r) => setTimeout(r, 0));
      return { ingestMs, firstRenderMs: Math.max(...d.renders) - t1, charts: w.__dashboard.plots.size, draws: d.renders.length };
    }, [STEPS, KEYS] as const);
    if (first.charts < 7 || first.draws < first.charts) throw new Error(`dashboard drew ${first.draws} times for ${first.charts} charts`);
    if (!withUpdates) return { ...first, updateP95: NaN, updateMedian: NaN, heap: NaN };
    const updates: number[] = await page.evaluate(async ([steps, keys, n]) => {
      const w = window as any;
      const h = w.__harness;
      const d = w.__dashboard.debug;
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const ev = h.bigRun('big', 1, keys, steps + 1 + i, steps + i);
        d.renders.length = 0;
        const t = performance.now();
        h.ingest('big', ev);
        await new Promise((r) => setTimeout(r, 0));
        if (!d.renders.length) throw new Error('an append drew nothing');
        out.push(Math.max(...d.renders) - t);
      }
      return out;
    }, [STEPS, KEYS, UPDATES] as const);
    const heap = await heapMb(page);
    if (cspViolations.length || consoleErrors.length) throw new Error(`page errors: ${[...cspViolations, ...consoleErrors].join('; ')}`);
    return { ...first, updateP95: p95(updates), updateMedian: median(updates), heap };
  } finally {
    await page.close();
  }
}

async function naive(browser: Browser, withUpdates: boolean) {
  const r = await build({
    entryPoints: [join(ROOT, 'tests/webview/harness/peer.ts')], bundle: true, write: false, outdir: '/peer-out',
    platform: 'browser', format: 'iife', target: 'es2022', logLevel: 'silent', loader: { '.css': 'css' },
  });
  const js = r.outputFiles.find((f) => f.path.endsWith('.js'))!.text;
  const css = r.outputFiles.find((f) => f.path.endsWith('.css'))!.text;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    await page.route(`${ORIGIN}/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === '/peer.js') return route.fulfill({ contentType: 'text/javascript', body: js });
      if (path === '/peer.css') return route.fulfill({ contentType: 'text/css', body: css });
      return route.fulfill({ contentType: 'text/html', body: '<!DOCTYPE html><html><head><link rel="stylesheet" href="/peer.css"></head><body><script src="/peer.js"></script></body></html>' });
    });
    await page.goto(`${ORIGIN}/peer.html`);
    const first = await page.evaluate(async ([steps, keys]) => {
      const p = (window as any).__peer;
      const { cols, steps: xs } = p.columns(steps, keys);
      await new Promise((r) => setTimeout(r, 50));
      p.draws.length = 0;
      const t1 = performance.now();
      p.render(cols, xs);
      await new Promise((r) => setTimeout(r, 0));
      return { firstRenderMs: Math.max(...p.draws) - t1, draws: p.draws.length };
    }, [STEPS, KEYS] as const);
    if (!withUpdates) return { ...first, updateP95: NaN, updateMedian: NaN, heap: NaN };
    const updates: number[] = await page.evaluate(async ([steps, keys, n]) => {
      const p = (window as any).__peer;
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const values = Array.from({ length: keys }, () => Math.random());
        p.draws.length = 0;
        const t = performance.now();
        p.append(steps + 1 + i, values);
        await new Promise((r) => setTimeout(r, 0));
        out.push(Math.max(...p.draws) - t);
      }
      return out;
    }, [STEPS, KEYS, UPDATES] as const);
    const heap = await heapMb(page);
    return { ...first, updateP95: p95(updates), updateMedian: median(updates), heap };
  } finally {
    await page.close();
  }
}

export default async function bench(): Promise<Record<string, number>> {
  const browser = await launch();
  try {
    const a = await ours(browser, true);
    const b = await naive(browser, true);
    const firstOurs = [a.firstRenderMs];
    const firstNaive = [b.firstRenderMs];
    for (let i = 1; i < REPEATS; i++) {
      firstOurs.push((await ours(browser, false)).firstRenderMs);
      firstNaive.push((await naive(browser, false)).firstRenderMs);
    }
    a.firstRenderMs = median(firstOurs);
    b.firstRenderMs = median(firstNaive);
    return {
      'dashboard.points': STEPS * KEYS,
      'dashboard.ingest_ms': r2(a.ingestMs),
      'dashboard.first_render_ms': r2(a.firstRenderMs),
      'dashboard.update_ms_p95': r2(a.updateP95),
      'dashboard.update_ms_median': r2(a.updateMedian),
      'dashboard.heap_mb': r2(a.heap),
      'dashboard.naive_first_render_ms': r2(b.firstRenderMs),
      'dashboard.naive_update_ms_p95': r2(b.updateP95),
      'dashboard.naive_update_ms_median': r2(b.updateMedian),
      'dashboard.naive_heap_mb': r2(b.heap),
      'dashboard.first_render_speedup_vs_naive': r2(b.firstRenderMs / a.firstRenderMs),
      'dashboard.update_p95_speedup_vs_naive': r2(b.updateP95 / a.updateP95),
      'dashboard.heap_ratio_vs_naive': r2(a.heap / b.heap),
    };
  } finally {
    await browser.close();
  }
}
