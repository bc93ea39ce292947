// The eval report webview (webview/src/eval, the real bundle) in Chromium under the same CSP as
// in VS Code. The extension host is a stand-in at its boundary (acquireVsCodeApi records what
// the page posts); the messages it sends are built from what the runtime writes
// (runtime/tests/data/eval_results_case.json, conscience.eval.build_results) and checked by the
// real protocol. Two evals side by side, table, Pareto chart, per category, the completions
// in the samples table (ui/samples.ts) with the eval's filters and pages, CSV export and compare
// requests.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { dashboardHtml } from '../../extension/src/core/dashboard/html';
import { parseToWebview, reportCompletion } from '../../extension/src/core/protocol/eval';
import { artifactsDir, launch, ORIGIN, ROOT } from './helpers';

const OUT = join(ROOT, '.cache', 'webview-test-eval');
const CASE = JSON.parse(readFileSync(join(ROOT, 'runtime', 'tests', 'data', 'eval_results_case.json'), 'utf8'));

function view(name: string, mutate?: (r: typeof CASE.results) => void) {
  const results = structuredClone(CASE.results);
  mutate?.(results);
  const completions = CASE.completions.map(reportCompletion); // as the host (editor/eval.ts) sends them
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
    // a completion with no answer: its own share, in neither rate
    const noAnswer = (arm: string, label: string) => page.locator(`[data-testid="table-0"] tr[data-arm="${arm}"][data-label="${label}"] td[data-stat="no_answer"]`).textContent();
    assert.equal(await noAnswer('fixed:8', 'borderline'), '100.0%');
    assert.equal(await cell(0, 'fixed:8', 'borderline'), '–');
    assert.equal(await noAnswer('fixed:8', 'all'), '20.0%');
    assert.equal(await noAnswer('label', 'all'), '0.0%');
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

  it('browses completions in the samples table: filtered by arm, refused and label, safety block and answer apart, paged', async () => {
    type C = { id: string; arm: string; label: string; refused: boolean | null; no_answer?: boolean; prompt: string; safety: string; answer: string; format_ok: boolean };
    const all: C[] = CASE.completions;
    const text = (sel: string) => page.evaluate((s) => document.querySelector(s)?.textContent?.trim() ?? null, sel);
    /** Waits until the page shows `want` in `sel` (messages and re-renders land as later tasks). */
    const shows = async (sel: string, want: string) => {
      await page.waitForFunction(([s, w]) => document.querySelector(s!)?.textContent?.trim() === w, [sel, want], { timeout: 10_000 })
        .catch(async () => assert.fail(`${sel}: want ${JSON.stringify(want)}, shows ${JSON.stringify(await text(sel))}`));
    };
    const count = (n: number) => shows('[data-testid="browser-count"]', `${n} completion${n === 1 ? '' : 's'}`);
    const pick = async (testid: string, option: string) => {
      await page.click(`[data-testid="${testid}"]`);
      await page.click(`[data-testid="${testid}"] vscode-option:text-is("${option}")`);
    };
    const first = (td: string) => text(`[data-testid="samples"] tbody tr:first-child ${td}`);
    const rowCount = () => page.locator('[data-testid="samples"] tbody tr').count();

    await count(all.length);
    await shows('[data-testid="samples-page"]', `rows 1–${all.length} of ${all.length}`);
    const heads = await page.$$eval('[data-testid="samples"] thead th', (ths) => ths.map((t) => t.textContent));
    assert.deepEqual(heads.slice(0, 4), ['Arm', 'Label', 'Category', 'Refused']);
    assert.ok(heads.includes('Safety block') && heads.includes('Answer'), JSON.stringify(heads));
    assert.equal(await page.locator('[data-testid="samples-reward"]').isVisible(), false, 'no reward filter: eval completions have no rewards');

    // a fixed-budget arm's refusals: the first row's arm, its safety block and its answer apart
    await pick('filter-arm', 'fixed:8');
    await pick('filter-refused', 'yes');
    const want = all.filter((c) => c.arm === 'fixed:8' && c.refused);
    assert.ok(want.length > 0 && want[0]!.safety !== '');
    await count(want.length);
    assert.equal(await rowCount(), want.length);
    assert.equal(await first('td.run-cell'), 'fixed:8');
    assert.equal(await first('td.safety .clamp'), want[0]!.safety);
    assert.equal(await first('td.answer .clamp'), want[0]!.answer);
    assert.equal(await first('td.safety summary'), `${want[0]!.safety.length} chars`);

    // the no-instruction arm writes no safety block: "no block", the answer still apart
    await pick('filter-arm', 'none');
    const none = all.filter((c) => c.arm === 'none' && c.refused);
    await count(none.length);
    assert.equal(await first('td.run-cell'), 'none');
    assert.equal(await first('td.safety'), 'no block');
    assert.equal(await first('td.answer .clamp'), none[0]!.answer);

    // a completion with no answer is neither refused nor complying: its own filter and text
    await pick('filter-arm', 'any');
    await pick('filter-refused', 'no answer');
    const cut = all.filter((c) => c.no_answer);
    assert.ok(cut.length > 0);
    await count(cut.length);
    assert.equal(await first('td.run-cell'), cut[0]!.arm);
    assert.equal((await page.$$eval('[data-testid="samples"] tbody tr:first-child td', (tds) => tds.map((t) => t.textContent))).includes('no answer'), true);
    await pick('filter-refused', 'no');
    await count(all.filter((c) => c.refused === false).length);
    await pick('filter-arm', 'none');
    await pick('filter-refused', 'yes');

    // and a label with none of those: an empty table that says so
    await pick('samples-label', 'benign');
    await count(0);
    await shows('[data-testid="samples"] p.empty', 'No completions match the filters.');
    for (const [testid, option] of [['samples-label', 'any'], ['filter-refused', 'any'], ['filter-arm', 'any']] as const) await pick(testid, option);
    await count(all.length);

    // more completions than a page (50): pages, and a filter goes back to the first page
    const times = 12;
    const many = (name: string) => {
      const v = view(name);
      v.completions = Array.from({ length: times }, (_, k) => v.completions.map((c: Record<string, unknown>) => ({ ...c, id: `${c.id}#${k}` }))).flat();
      return v;
    };
    const big = { type: 'show', evals: [many('ckpt-100'), view('ckpt-200')] };
    assert.equal(parseToWebview(big).ok, true);
    await page.evaluate((m) => window.postMessage(m, '*'), big);
    const n = all.length * times;
    await count(n);
    await shows('[data-testid="samples-page"]', `rows 1–50 of ${n}`);
    assert.equal(await rowCount(), 50);
    await page.click('[data-testid="samples-older"]');
    await shows('[data-testid="samples-page"]', `rows 51–100 of ${n}`);
    assert.equal(await first('td.prompt .clamp'), all[50 % all.length]!.prompt);
    await page.click('[data-testid="samples-older"]');
    await page.click('[data-testid="samples-older"]');
    await shows('[data-testid="samples-page"]', `rows 151–${n} of ${n}`);
    assert.equal(await rowCount(), n - 150);
    assert.equal(await page.locator('[data-testid="samples-older"]').getAttribute('disabled'), '', 'the last page: no next page');
    await page.click('[data-testid="samples-newer"]');
    await shows('[data-testid="samples-page"]', `rows 101–150 of ${n}`);
    await pick('filter-arm', 'label');
    const label = all.filter((c) => c.arm === 'label').length * times;
    assert.ok(label > 50, 'the filtered rows still fill more than a page');
    await count(label);
    await shows('[data-testid="samples-page"]', `rows 1–50 of ${label}`);
    const harmful = all.filter((c) => c.arm === 'label' && c.label === 'harmful').length;
    await pick('samples-label', 'harmful');
    await count(harmful * times);
    await shows('[data-testid="samples-page"]', `rows 1–${harmful * times} of ${harmful * times}`);

    // the second eval's completions (not repeated), through the eval picker; the filters stay
    await pick('filter-eval', '2: ckpt-200');
    await count(harmful);
    await shows('[data-testid="samples-page"]', `rows 1–${harmful} of ${harmful}`);
    await page.screenshot({ path: join(artifactsDir(), 'eval-completions.png'), fullPage: true });
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
