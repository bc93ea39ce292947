// A new user's first run, as README.md's quick start and the walkthrough (package.json
// "walkthroughs", media/walkthrough/) tell it: the demo workspace as `npm start` prepares it
// (demo/ and recipes/, the `local` target on this repository's .venv, npm start's user
// settings), the walkthrough found the way the READMEs say first (the command palette), and
// its launch page true to what Launch does with the demo's one target (no target pick; the
// exact command is behind "Show launch command"). Help → Welcome, the READMEs' second route,
// is VS Code's own page and not tested here (driving it from a fresh window was not reliable).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ROOT, cleanup, dismissQuickInput, extensionLog, launchBrowser, openPalette, openWorkbench, pickQuickItem, runCommand,
  screenshot, startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from './harness';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const WT = pkg.contributes.walkthroughs[0] as { title: string; steps: Array<{ id: string; title: string }> };
const PYTHON = join(ROOT, '.venv/bin/python');
// demo/.vscode/settings.json with the path npm start writes into it (JSON with comments)
const demoSettings = JSON.parse(
  readFileSync(join(ROOT, 'demo/.vscode/settings.json'), 'utf8').split('\n').filter((l) => !l.trim().startsWith('//')).join('\n')
    .split('__CONSCIENCE_ROOT__').join(ROOT),
) as Record<string, unknown>;

describe('the first run, as the READMEs and the walkthrough say', { timeout: 420_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    assert.ok(existsSync(PYTHON), `the runtime's Python environment (${PYTHON}); run: bash scripts/setup.sh`);
    server = await startCodeServer('walkthrough', {
      files: {
        'README.md': { copyFrom: join(ROOT, 'demo/README.md') },
        prompts: { copyFrom: join(ROOT, 'demo/prompts') },
        recipes: { copyFrom: join(ROOT, 'recipes') },
      },
      workspaceSettings: demoSettings,
      // npm start's user settings (scripts/start.sh): the README opens, VS Code's own walkthroughs are left as they are
      settings: { 'workbench.startupEditor': 'readme', 'workbench.welcomePage.walkthroughs.openOnInstall': undefined },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'walkthrough-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  const wtTab = () => page.locator('.tab').filter({ hasText: 'Walkthrough: Chain of Conscience' }).first();
  const stepTitle = (title: string) => page.locator('.getting-started-step .step-title').filter({ hasText: title }).first();
  const stepButton = (text: string) => page.locator('.getting-started-step.expanded a, .getting-started-step.expanded button').filter({ hasText: text }).first();

  it('opens from the command palette, Welcome: Open Walkthrough…, with its steps in order', async () => {
    // the Welcome page keeps the keyboard focus: F1 from the status bar, as a click there would
    await page.locator('.part.statusbar').click({ position: { x: 600, y: 5 } });
    await openPalette(page, 'Welcome: Open Walkthrough');
    await page.keyboard.press('Enter');
    await pickQuickItem(page, WT.title);
    await wtTab().waitFor({ state: 'visible' });
    const titles = (await page.locator('.getting-started-step .step-title').allInnerTexts()).map((t) => t.trim());
    assert.deepEqual(titles, WT.steps.map((s) => s.title));
  });

  it('launch page: Launch starts on the one target without asking; the exact command is behind "Show launch command"', async () => {
    const step = WT.steps.find((s) => s.id === 'launch')!;
    await stepTitle(step.title).click();
    const md = webviewFrame(page);
    await md.locator('h1', { hasText: 'Launch the tiny CPU demo' }).waitFor({ state: 'visible' });
    const text = (await md.locator('body').innerText()).replace(/\s+/g, ' ');
    assert.doesNotMatch(text, /pick the `?local`? target/i, 'the demo has one target: nothing to pick');
    assert.doesNotMatch(text, /You see the exact command before it runs/, 'Launch shows no command first');
    assert.match(text, /Show launch command/);
    await screenshot(page, 'walkthrough-launch-page');

    // as the page says: the step's button, the demo recipe, and it starts with no target to pick
    await stepButton('Launch a recipe').click();
    await pickQuickItem(page, 'recipes/demo/tiny-cpu.yaml');
    const runs = join(server!.workspace, '.conscience/runs');
    const id = await waitFor('a run', () => existsSync(runs) && readdirSync(runs)[0], 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });
    const placeholder = await page.locator('.quick-input-widget input.input').getAttribute('placeholder').catch(() => null);
    assert.notEqual(placeholder, 'Launch target', 'no target pick with one target');
    const state = await waitFor('the run to end', () => {
      const r = JSON.parse(readFileSync(join(runs, id, 'run.json'), 'utf8')) as { state: string };
      return ['completed', 'failed', 'cancelled', 'lost'].includes(r.state) && r.state;
    }, 300_000);
    assert.equal(state, 'completed', `run ${id}: ${readFileSync(join(runs, id, 'stderr.log'), 'utf8').slice(-2000)}`);
    await runCommand(page, 'Focus on Conscience Runs View');
    await page.locator('.pane-body .monaco-list-row').filter({ hasText: /tiny-cpu · \d\d:\d\d.*completed/ }).first().waitFor({ state: 'visible', timeout: 30_000 });

    // "Show launch command" on the recipe: the preview, and no second run
    await dismissQuickInput(page);
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input.input').fill('recipes/demo/tiny-cpu.yaml');
    await pickQuickItem(page, 'tiny-cpu.yaml');
    await page.locator('.codelens-decoration a').filter({ hasText: 'Show launch command' }).first().click();
    await page.locator('.tab').filter({ hasText: 'tiny-cpu on local · launch command.sh' }).first().waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(readdirSync(runs).length, 1, 'the preview starts nothing');
    await screenshot(page, 'walkthrough-launch-command');
  });
});
