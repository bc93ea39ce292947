// Shared by the Chromium tests and the benchmark: launches Debian's chromium through
// playwright-core, serves the real webview bundle (webview/src/dashboard, built with its test
// hooks on into .cache/webview-test/) and the
// host harness from a fake origin via request interception, with the same CSP as in VS Code.
import { build } from 'esbuild';
import { existsSync, mkdirSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { dashboardHtml } from '../../extension/src/core/dashboard/html';

export const ROOT = resolve(__dirname, '../..');
export const ORIGIN = 'https://webview.test';
export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Where the test bundle of the dashboard goes: the production one ships no test hooks. */
export const TEST_BUNDLE = join(ROOT, '.cache', 'webview-test');

/**
 * Builds the dashboard bundle the tests load: the same entry and options as esbuild.mjs, with
 * `__TEST_HOOKS__` on so the page exposes window.__dashboard (what was drawn, timings). Rebuilt
 * when missing or older than its sources.
 */
export function ensureBundle(): void {
  const out = join(TEST_BUNDLE, 'dashboard.js');
  const src = Math.max(newest(join(ROOT, 'webview/src')), newest(join(ROOT, 'extension/src/core/protocol')));
  if (!existsSync(out) || statSync(out).mtimeMs < src) {
    execFileSync(process.execPath, ['-e', `require('esbuild').buildSync({
      entryPoints: { dashboard: 'webview/src/dashboard/main.ts' }, outdir: ${JSON.stringify(TEST_BUNDLE)}, bundle: true,
      platform: 'browser', format: 'iife', target: 'es2022', loader: { '.css': 'css' }, logLevel: 'warning',
      define: { __TEST_HOOKS__: 'true' } })`], { cwd: ROOT, stdio: 'inherit' });
  }
  if (!existsSync(out)) throw new Error(`${out} was not built`);
}

let harnessJs: string | undefined;
export async function harnessBundle(): Promise<string> {
  if (harnessJs) return harnessJs;
  const r = await build({
    entryPoints: [join(ROOT, 'tests/webview/harness/host.ts')],
    bundle: true, write: false, platform: 'browser', format: 'iife', target: 'es2022', logLevel: 'silent',
  });
  harnessJs = r.outputFiles[0].text;
  return harnessJs;
}

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; scripts/setup.sh does it)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-precise-memory-info'],
  });
}

/** VS Code's Dark Modern theme variables (a subset), as VS Code injects them into webviews. */
const THEME = `:root{--vscode-font-family:-apple-system,BlinkMacSystemFont,"Segoe WPC","Segoe UI","Ubuntu","Droid Sans",sans-serif;
--vscode-font-size:13px;--vscode-font-weight:normal;--vscode-editor-font-family:"Droid Sans Mono",monospace;
--vscode-foreground:#cccccc;--vscode-descriptionForeground:#9d9d9d;--vscode-errorForeground:#f85149;
--vscode-editor-background:#1f1f1f;--vscode-panel-border:#2b2b2b;--vscode-focusBorder:#0078d4;
--vscode-button-background:#0078d4;--vscode-button-foreground:#ffffff;--vscode-button-hoverBackground:#026ec1;
--vscode-button-secondaryBackground:#313131;--vscode-button-secondaryForeground:#cccccc;--vscode-button-secondaryHoverBackground:#3c3c3c;
--vscode-dropdown-background:#313131;--vscode-dropdown-border:#3c3c3c;--vscode-dropdown-foreground:#cccccc;--vscode-dropdown-listBackground:#1f1f1f;
--vscode-badge-background:#616161;--vscode-badge-foreground:#f8f8f8;--vscode-list-hoverBackground:#2a2d2e;
--vscode-editorWidget-border:#454545;--vscode-editor-selectionBackground:#264f78;
--vscode-charts-blue:#3794ff;--vscode-charts-orange:#d18616;--vscode-charts-green:#89d185;--vscode-charts-purple:#b180d7;
--vscode-charts-red:#f14c4c;--vscode-charts-yellow:#cca700;--vscode-checkbox-background:#313131;--vscode-checkbox-border:#3c3c3c;
--vscode-input-background:#313131;--vscode-input-foreground:#cccccc;--vscode-settings-dropdownListBorder:#454545}
body{background-color:var(--vscode-editor-background);color:var(--vscode-foreground);font-family:var(--vscode-font-family)}`;

export interface Opened {
  page: Page;
  cspViolations: string[];
  consoleErrors: string[];
}

/** Opens the dashboard page: theme, harness (stub acquireVsCodeApi), then the real bundle, under the real CSP. */
export async function openDashboard(browser: Browser, o: { state?: unknown; width?: number; height?: number } = {}): Promise<Opened> {
  ensureBundle();
  const harness = await harnessBundle();
  const page = await browser.newPage({ viewport: { width: o.width ?? 1280, height: o.height ?? 900 } });
  const nonce = 'harness-nonce-1234567890';
  let html = dashboardHtml({
    cspSource: ORIGIN, nonce, title: 'Dashboard',
    scriptUri: `${ORIGIN}/dist/webview/dashboard.js`, styleUri: `${ORIGIN}/dist/webview/dashboard.css`,
  });
  html = html
    .replace('</head>', `<style nonce="${nonce}">${THEME}</style>\n</head>`)
    .replace('<script nonce', `<script nonce="${nonce}" src="${ORIGIN}/harness.js"></script>\n<script nonce`);
  await page.route(`${ORIGIN}/**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/index.html') return route.fulfill({ contentType: 'text/html', body: html });
    if (path === '/harness.js') return route.fulfill({ contentType: 'text/javascript', body: harness });
    if (path.startsWith('/dist/webview/') && !path.includes('..')) {
      const file = join(TEST_BUNDLE, path.slice('/dist/webview/'.length));
      if (existsSync(file)) {
        return route.fulfill({ contentType: path.endsWith('.css') ? 'text/css' : 'text/javascript', body: readFileSync(file) });
      }
    }
    return route.fulfill({ status: 404, body: 'not found' });
  });
  const cspViolations: string[] = [];
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.exposeFunction('__cspViolation', (s: string) => cspViolations.push(s));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __cspViolation(s: string): void }).__cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}:${e.columnNumber} ${e.sample}`);
    });
  });
  const hash = o.state === undefined ? '' : `#${encodeURIComponent(JSON.stringify(o.state))}`;
  await page.goto(`${ORIGIN}/index.html${hash}`);
  await page.waitForFunction(() => !!(window as unknown as { __dashboard?: unknown }).__dashboard);
  return { page, cspViolations, consoleErrors };
}

export function artifactsDir(): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return ARTIFACTS;
}
