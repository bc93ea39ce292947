// The eval report webview (webview/src/eval, the real bundle) in Chromium under the same CSP as
// in VS Code. The extension host is a stand-in at its boundary (acquireVsCodeApi records what
// the page posts); the messages it sends are built from what the runtime writes
// (runtime/tests/data/eval_results_case.json, conscience.eval.build_results) and checked by the
// real protocol. Two evals side by side, table, Pareto chart, per category, the completions
// browser and its filters, CSV export and compare requests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { dashboardHtml } from '../../extension/src/core/dashboard/html';
import { parseToWebview } from '../../extension/src/core/protocol/eval';
import { launch, ORIGIN, ROOT } from './helpers';

const OUT = join(ROOT, '.cache', 'webview-test-eval');
const CASE = JSON.parse(readFileSync(join(ROOT, 'runtime', 'tests', 'data', 'eval_results_case.json'), 'utf8'));

function view(name: string, mutate?: (r: typeof CASE.results) => void) {
  const results = structuredClone(CASE.results);
  mutate?.(results);
  const completions = CASE.completions.map((c: Record<string, unknown>) => {
    const { judge: _j, completion: _c, ...rest } = c;
    return rest;
  });
  return { name, results, completions, completionErrors: [] as string[] };
}

describe('eval report webview', { timeout: 120_000 }, () => {
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  before(async () => {
    execFileSync(process.execPath, ['-e', `require('esbuild').buildSync({ entryPoints: { eval: 'webview/src/eval/main.ts' }, outdir: ${JSON.stringify(OUT)},
      bundle: true, platform: 'browser', format: 'iife', target: 'es2022', loader: { '.css': 'css' }, logLevel: 'warning', define: { __TEST_HOOKS__: 'false' } })`], { cwd: ROOT, stdio: 'inherit' });
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const nonce = 'eval-nonce-1234567890';
    const stub = `window.__posted=[];window.acquireVsCodeApi=()=>({postMessage:(m)=>window.__posted.push(structuredClone(m)),getState:()=>undefined,setState:()=>{}});`;
    const html = dashboardHtml({ cspSource: ORIGIN, nonce, title: 'Eval report', scriptUri: `${ORIGIN}/eval.js`, styleUri: `${ORIGIN}/eval.css` })
      .replace('<script nonce', `<script nonce="${nonce}">${stub}</script>\n<script nonce`);
    await page.route(`${ORIGIN}/**`, async (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === '/index.html') return route.fulfill({ contentType: 'text/html', body: html });
      if (path === '/eval.js' || path === '/eval.css') return route.fulfill({ contentType: path.endsWith('.css') ? 'text/css' : 'text/javascript', body: readFileSync(join(OUT, path.slice(1))) });
      return route.fulfill({ status: 404, body: 'not found' });
    });
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(String(e)));
    await page.goto(`${ORIGIN}/index.html`);
    await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'));
    const msg = { type: 'show', evals: [view('ckpt-100'), view('ckpt-200', (r) => { r.arms.label.label.harmful.refusal = 0.5; })] };
    assert.deepEqual(parseToWebview(msg).ok, true, 'the message passes the protocol');
    await page.evaluate((m) => window.postMessage(m, '*'), msg);
    await page.waitForSelector('[data-testid="table-1"]');
  });
  after(async () => {
    await browser?.close();
  });

  it('shows a table per eval, arm x label, with the runtime\'s figures', async () => {
    const cell = (i: number, arm: string, label: string) => page.locator(`[data-testid="table-${i}"] tr[data-arm="${arm}"][data-label="${label}"] td[data-stat="refusal"]`).textContent();
    assert.equal(await cell(0, 'label', 'harmful'), '100.0%');
    assert.equal(await cell(1, 'label', 'harmful'), '50.0%');
    assert.equal(await cell(0, 'none', 'harmful'), `${(CASE.results.arms.none.label.harmful.refusal * 100).toFixed(1)}%`);
    // 3 arms x (3 labels + all)
    assert.equal(await page.locator('[data-testid="table-0"] tr[data-arm]').count(), 12);
  });

  it('plots one Pareto point per arm and eval, sized by safety tokens', async () => {
    assert.equal(await page.locator('[data-testid="pareto-point"]').count(), 6);
    const r = async (arm: string) => Number(await page.locator(`[data-testid="pareto-point"][data-eval="0"][data-arm="${arm}"] circle`).getAttribute('r'));
    // the label arm spends more safety tokens than none in the case: a larger marker
    assert.ok(CASE.results.arms.label.overall.safety_tokens !== CASE.results.arms.none.overall.safety_tokens);
    assert.equal((await r('label')) > (await r('none')), CASE.results.arms.label.overall.safety_tokens > CASE.results.arms.none.overall.safety_tokens);
  });

  it('breaks refusal down per category', async () => {
    const rows = await page.locator('[data-testid="categories-0"] tr').count();
    assert.equal(rows, 1 + Object.keys(CASE.results.arms.label.category).length);
  });

  it('browses completions with the safety block and the answer apart, filtered by arm, label and refused', async () => {
    const count = async () => (await page.locator('[data-testid="browser-count"]').textContent())!.trim();
    assert.equal(await count(), `${CASE.completions.length} completions`);
    await page.selectOption('[data-testid="filter-arm"]', 'none');
    await page.selectOption('[data-testid="filter-refused"]', 'yes');
    const want = CASE.completions.filter((c: { arm: string; refused: boolean }) => c.arm === 'none' && c.refused);
    assert.equal(await count(), `${want.length} completion${want.length === 1 ? '' : 's'}`);
    const first = page.locator('[data-testid="completion"]').first();
    assert.equal(await first.getAttribute('data-arm'), 'none');
    assert.equal(await first.locator('[data-testid="safety"]').textContent(), want[0].safety);
    assert.equal(await first.locator('[data-testid="answer"]').textContent(), want[0].answer);
    await page.selectOption('[data-testid="filter-label"]', 'benign');
    assert.equal(await count(), '0 completions');
  });

  it('asks the host for a CSV export and for another eval to compare', async () => {
    await page.click('[data-testid="export-csv"]');
    await page.click('[data-testid="compare"]');
    const posted = await page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted.map((m) => m.type));
    assert.deepEqual(posted.filter((t) => t !== 'ready'), ['exportCsv', 'compare']);
  });

  it('rejects a malformed message and renders no user text as HTML', async () => {
    await page.evaluate(() => window.postMessage({ type: 'show', evals: [{ name: '<img src=x onerror=alert(1)>', results: { arms: 1 }, completions: [], completionErrors: [] }] }, '*'));
    // window.postMessage is delivered as a later task: wait for the page to report it.
    await page.waitForFunction(() => document.querySelector('#root')?.textContent?.includes('Ignored a malformed message'), undefined, { timeout: 10_000 });
    assert.equal(await page.locator('img').count(), 0);
    assert.deepEqual(problems, []);
  });
});
