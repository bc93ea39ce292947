// End-to-end harness: a real VS Code (code-server 4.99, installed into .cache/code-server by
// scripts/setup.d/code-server.sh) with this repository loaded as an unpacked extension, driven
// by Debian's Chromium through playwright-core. Each test file starts its own code-server on
// 127.0.0.1 with a fresh user-data-dir and extensions-dir, and stops it in `after`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page, type FrameLocator } from 'playwright-core';

export const ROOT = resolve(__dirname, '../..');
export const CODE_SERVER = join(ROOT, '.cache/code-server/node_modules/code-server/out/node/entry.js');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts/e2e');

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  publisher: string;
  name: string;
  version: string;
  contributes?: { commands?: Array<{ command: string; title: string; category?: string }> };
};
export const EXTENSION_ID = `${pkg.publisher}.${pkg.name}`;
export const contributedCommands = pkg.contributes?.commands ?? [];

/** Fails with a message that says how to get the prerequisite (never a silent skip). */
export function requirePrerequisites(): void {
  const missing: string[] = [];
  if (!existsSync(CODE_SERVER)) missing.push(`code-server (${CODE_SERVER}); run: bash scripts/setup.d/code-server.sh`);
  if (!existsSync(CHROMIUM)) missing.push(`Chromium (${CHROMIUM}); run as root: apt-get install chromium`);
  if (!existsSync(join(ROOT, 'dist/extension.js'))) missing.push('dist/extension.js; run: node esbuild.mjs');
  if (missing.length) throw new Error(`end-to-end prerequisites missing:\n  ${missing.join('\n  ')}`);
}

export interface CodeServer {
  url: string;
  dir: string;
  workspace: string;
  userDataDir: string;
  proc: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

export interface StartOptions {
  /** Files copied into the workspace: path inside the workspace → content, or a source path to copy. */
  files?: Record<string, string | { copyFrom: string }>;
  /** Extra user settings merged over the harness defaults. */
  settings?: Record<string, unknown>;
  /** Workspace settings (.vscode/settings.json). */
  workspaceSettings?: Record<string, unknown>;
  /** Symlinks made in the workspace: path inside the workspace → target. */
  links?: Record<string, string>;
  /** Install this .vsix (code-server --install-extension) instead of loading the repository unpacked. */
  vsix?: string;
  /** A multi-root workspace: a .code-workspace file (beside the workspace folder, in no folder)
   * with these folders (paths inside the workspace folder) and settings is opened instead of the
   * workspace folder. */
  multiRoot?: { folders: string[]; settings?: Record<string, unknown> };
}

/** User settings that keep the workbench quiet and deterministic, and trust the workspace. */
export const baseUserSettings: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'update.mode': 'none',
  'workbench.enableExperiments': false,
  'editor.accessibilitySupport': 'off',
  'window.restoreWindows': 'none',
  'files.hotExit': 'off',
  'git.enabled': false,
};

export async function startCodeServer(name: string, opts: StartOptions = {}): Promise<CodeServer> {
  requirePrerequisites();
  const dir = mkdtempSync(join(tmpdir(), `cc-e2e-${name}-`));
  const workspace = join(dir, 'workspace');
  const userDataDir = join(dir, 'user-data');
  const extensionsDir = join(dir, 'extensions');
  mkdirSync(join(userDataDir, 'User'), { recursive: true });
  mkdirSync(extensionsDir, { recursive: true });
  mkdirSync(workspace, { recursive: true });
  if (opts.vsix) {
    // As a user installs it: code-server unpacks the package into the extensions dir.
    const r = spawnSync(process.execPath, [CODE_SERVER, '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir,
      '--install-extension', opts.vsix], { encoding: 'utf8', env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'xdg-config') }, timeout: 120_000 });
    if (r.status !== 0) throw new Error(`code-server --install-extension ${opts.vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  } else {
    // An unpacked extension in a NEW extensions dir is picked up (docs/development.md).
    symlinkSync(ROOT, join(extensionsDir, `${EXTENSION_ID}-${pkg.version}`), 'dir');
  }
  writeFileSync(
    join(userDataDir, 'User/settings.json'),
    JSON.stringify({ ...baseUserSettings, ...opts.settings }, null, 2),
  );
  for (const [rel, content] of Object.entries(opts.files ?? {})) {
    const dest = join(workspace, rel);
    mkdirSync(resolve(dest, '..'), { recursive: true });
    if (typeof content === 'string') writeFileSync(dest, content);
    else cpSync(content.copyFrom, dest, { recursive: true });
  }
  for (const [rel, target] of Object.entries(opts.links ?? {})) symlinkSync(target, join(workspace, rel));
  if (opts.workspaceSettings) {
    mkdirSync(join(workspace, '.vscode'), { recursive: true });
    writeFileSync(join(workspace, '.vscode/settings.json'), JSON.stringify(opts.workspaceSettings, null, 2));
  }
  writeFileSync(join(dir, 'config.yaml'), 'auth: none\ncert: false\n');
  let opened = workspace;
  if (opts.multiRoot) {
    opened = join(dir, 'multi.code-workspace');
    for (const f of opts.multiRoot.folders) mkdirSync(join(workspace, f), { recursive: true });
    writeFileSync(opened, JSON.stringify({ folders: opts.multiRoot.folders.map((f) => ({ path: join(workspace, f) })), settings: opts.multiRoot.settings ?? {} }, null, 2));
  }

  const args = [
    CODE_SERVER,
    '--auth', 'none',
    '--bind-addr', '127.0.0.1:0',
    '--config', join(dir, 'config.yaml'),
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    opened,
  ];
  const env = {
    ...process.env,
    VSCODE_IPC_HOOK_CLI: '',
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_DATA_HOME: join(dir, 'xdg-data'),
  };
  const proc = spawn(process.execPath, args, { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));

  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`code-server did not start within 60 s:\n${out}`)), 60_000);
    const check = () => {
      const m = /HTTPS? server listening on (https?:\/\/[.:\d]+)\/?/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`code-server exited with ${code} before listening:\n${out}`));
    });
  });

  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    try {
      process.kill(-proc.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 5000);
    await exited;
    clearTimeout(t);
  };
  return { url, dir, workspace, userDataDir, proc, output: () => out, stop };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Opens the workbench and waits until it is rendered and the extension host is up. */
export async function openWorkbench(browser: Browser, server: CodeServer): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(server.url, { waitUntil: 'domcontentloaded' });
  await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
  return page;
}

/** The extension's log channel ("Chain of Conscience") as written by the extension host. */
export function findExtensionLog(server: CodeServer): string | undefined {
  const logs = join(server.userDataDir, 'logs');
  if (!existsSync(logs)) return undefined;
  const stack = [logs];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = statSync(p);
      if (st.isDirectory()) stack.push(p);
      else if (e === 'Chain of Conscience.log') return p;
    }
  }
  return undefined;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** Waits for "activated in N ms" in the extension's log and returns N. */
export async function waitForActivation(server: CodeServer, timeoutMs = 60_000): Promise<{ ms: number; log: string }> {
  return waitFor(
    'the extension to log "activated in N ms"',
    () => {
      const file = findExtensionLog(server);
      if (!file) return undefined;
      const log = readFileSync(file, 'utf8');
      const m = /activated in (\d+) ms/.exec(log);
      return m ? { ms: Number(m[1]), log } : undefined;
    },
    timeoutMs,
  );
}

export function extensionLog(server: CodeServer): string {
  const f = findExtensionLog(server);
  return f ? readFileSync(f, 'utf8') : '';
}

/** Runs a command through the command palette by its title, as a user would. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await openPalette(page, title);
  const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: title }).first();
  await row.waitFor({ state: 'visible' });
  await row.click();
}

/** Opens the command palette with `text` typed and returns the visible row labels. */
export async function openPalette(page: Page, text: string): Promise<string[]> {
  await dismissQuickInput(page);
  await page.locator('.monaco-workbench').click({ position: { x: 5, y: 5 }, force: true }).catch(() => undefined);
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${text}`);
  await page.waitForTimeout(400);
  return page.locator('.quick-input-widget .quick-input-list .monaco-list-row .label-name').allInnerTexts();
}

export async function dismissQuickInput(page: Page): Promise<void> {
  if (await page.locator('.quick-input-widget input.input').isVisible().catch(() => false)) await page.keyboard.press('Escape');
}

/** Opens a workspace file in the editor through Quick Open. */
export async function openFile(page: Page, relPath: string): Promise<void> {
  await dismissQuickInput(page);
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible' });
  await input.fill(relPath);
  const base = relPath.split('/').pop()!;
  const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: base }).first();
  await row.waitFor({ state: 'visible' });
  await page.keyboard.press('Enter');
  await page.locator(`.tab[data-resource-name="${base}"]`).first().waitFor({ state: 'visible' });
  await page.locator('.monaco-editor .view-lines').first().waitFor({ state: 'visible' });
}

export function webviewFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

export function cleanup(server: CodeServer | undefined): void {
  if (server && !process.env.CC_E2E_KEEP) rmSync(server.dir, { recursive: true, force: true });
}

/** Moves the cursor to a 1-based line (Go to Line). */
export async function gotoLine(page: Page, line: number, column = 1): Promise<void> {
  await dismissQuickInput(page);
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`:${line}:${column}`);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(150);
}

/** Selects `length` characters from a 1-based line and column in the active editor. */
export async function selectRange(page: Page, line: number, column: number, length: number): Promise<void> {
  await gotoLine(page, line, column);
  for (let i = 0; i < length; i++) await page.keyboard.press('Shift+ArrowRight');
}

/** Text of the visible editor lines, in order (inlay hints and all), keyed by 1-based line number. */
export async function visibleLines(page: Page): Promise<Map<number, string>> {
  const rows = await page.locator('.editor-group-container.active .monaco-editor .view-lines .view-line').evaluateAll((els) =>
    els.map((e) => ({ top: parseFloat((e as HTMLElement).style.top || '0'), text: (e as HTMLElement).innerText })),
  );
  const numbers = await page.locator('.editor-group-container.active .monaco-editor .margin .line-numbers').evaluateAll((els) =>
    els.map((e) => ({ top: parseFloat(((e.parentElement as HTMLElement)?.style.top) || '0'), n: Number((e as HTMLElement).innerText.trim()) })),
  );
  const byTop = new Map(numbers.map((x) => [x.top, x.n]));
  const out = new Map<number, string>();
  // A wrapped line has its number on its first row only: later rows continue that line.
  let current: number | undefined;
  for (const r of rows.sort((a, b) => a.top - b.top)) {
    current = byTop.get(r.top) ?? current;
    if (current) out.set(current, (out.get(current) ?? '') + r.text.replace(/\u00a0/g, ' '));
  }
  return out;
}

/** Picks the quick-pick row whose label contains `text` (after a command asked for one). */
export async function pickQuickItem(page: Page, text: string): Promise<void> {
  const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: text }).first();
  await row.waitFor({ state: 'visible' });
  await row.click();
}

/** Counts the saturated (coloured, not grey) pixels a canvas holds: drawn series, not axes or grid. */
export const COLOURED_PIXELS = (c: Element): number => {
  const canvas = c as HTMLCanvasElement;
  const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i]!, g = data[i + 1]!, b = data[i + 2]!, a = data[i + 3]!;
    if (a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
  }
  return n;
};

export interface Problem {
  text: string;
  line: number;
  column: number;
}

/** Opens the Problems panel and reads its marker rows (message, code, line and column). */
export async function readProblems(page: Page): Promise<Problem[]> {
  const panel = page.locator('.markers-panel');
  if (!(await panel.isVisible().catch(() => false))) {
    await dismissQuickInput(page);
    await page.keyboard.press('Control+Shift+M');
    await panel.waitFor({ state: 'visible' });
  }
  const rows = await panel.locator('.monaco-list-row').allInnerTexts();
  const out: Problem[] = [];
  for (const text of rows) {
    const m = /\[Ln (\d+), Col (\d+)\]/.exec(text);
    if (m) out.push({ text: text.replace(/\s+/g, ' '), line: Number(m[1]), column: Number(m[2]) });
  }
  return out;
}

/** Opens the quick-fix menu at the cursor and applies the action whose title contains `text`. */
export async function applyQuickFix(page: Page, text: string | RegExp): Promise<string[]> {
  const widget = page.locator('.action-widget');
  // Right after an edit, VS Code may ask for code actions before the edited document's
  // diagnostics are back, and then shows "No code actions available" instead of the menu:
  // ask again, as a user would, a few times.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Control+.');
    const shown = await widget.waitFor({ state: 'visible', timeout: 7_500 }).then(() => true, () => false);
    if (shown) break;
    if (attempt === 4) throw new Error(`no quick-fix menu after ${attempt} tries (Ctrl+.) for ${String(text)}`);
    await page.keyboard.press('Escape');
    await page.waitForTimeout(1_000);
  }
  const titles = await widget.locator('.monaco-list-row').allInnerTexts();
  const row = widget.locator('.monaco-list-row.action').filter({ hasText: text }).first();
  await row.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {
    throw new Error(`no quick fix matching ${String(text)}; offered: ${titles.join(' | ')}`);
  });
  // The menu lies under a pointer block: choose with the keyboard, as a user would.
  for (let i = 0; i <= titles.length; i++) {
    const focused = (await widget.locator('.monaco-list-row.focused').innerText().catch(() => '')).trim();
    if (typeof text === 'string' ? focused.includes(text) : text.test(focused)) {
      await page.keyboard.press('Enter');
      await widget.waitFor({ state: 'hidden' });
      return titles;
    }
    await page.keyboard.press('ArrowDown');
  }
  throw new Error(`could not focus the quick fix matching ${String(text)}; offered: ${titles.join(' | ')}`);
}

/** VS Code's own activation times (Developer: Show Running Extensions), in ms, by extension name. */
export async function runningExtensionTimes(page: Page): Promise<Map<string, number>> {
  await runCommand(page, 'Developer: Show Running Extensions');
  const rows = page.locator('.runtime-extensions-editor .monaco-list-row');
  await rows.first().waitFor({ state: 'visible' });
  await page.waitForTimeout(500);
  const out = new Map<string, number>();
  for (const text of await rows.allInnerTexts()) {
    const name = text.split('\n')[0]!.trim();
    const m = /Activation: (\d+)\s*ms/.exec(text);
    if (m) out.set(name, Number(m[1]));
  }
  return out;
}
