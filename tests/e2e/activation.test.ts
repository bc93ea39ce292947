// The extension loads in a real VS Code (code-server), activates without a feature failing,
// and every command it contributes is reachable from the command palette.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ROOT, cleanup, contributedCommands, extensionLog, launchBrowser, openPalette, openWorkbench,
  screenshot, startCodeServer, waitForActivation, dismissQuickInput, runCommand, pickQuickItem, waitFor, webviewFrame,
  type CodeServer,
} from './harness';

describe('extension in code-server', { timeout: 180_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    server = await startCodeServer('activation', {
      files: {
        recipes: { copyFrom: join(ROOT, 'recipes') },
        // workspaceContains:**/*.yaml activates the extension.
        'my-recipe.yaml': 'model_name_or_path: tiny\nreward_funcs: [safety_format]\n',
      },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
  });

  after(async () => {
    if (page) await screenshot(page, 'activation-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  it('activates in a workspace with recipes and logs its activation time', async () => {
    const { ms, log } = await waitForActivation(server!);
    assert.ok(ms >= 0 && ms < 30_000, `activation took ${ms} ms`);
    const failed = log.split('\n').filter((l) => /failed to activate/.test(l));
    assert.deepEqual(failed, [], `a feature failed to activate:\n${failed.join('\n')}`);
    await screenshot(page, 'activation');
  });

  it('lists every contributed command in the command palette', async () => {
    const missing: string[] = [];
    for (const c of contributedCommands) {
      const title = c.category ? `${c.category}: ${c.title}` : c.title;
      const rows = await openPalette(page, title);
      if (!rows.some((r) => r.includes(c.title))) missing.push(`${c.command} ("${title}"); palette showed: ${rows.join(' | ')}`);
    }
    await dismissQuickInput(page);
    assert.deepEqual(missing, [], `commands missing from the palette:\n${missing.join('\n')}`);
  });

  it('offers the walkthrough from a target to a first run', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const wt = pkg.contributes?.walkthroughs?.[0];
    assert.ok(wt, 'package.json contributes a walkthrough');
    await runCommand(page, 'Welcome: Open Walkthrough...');
    await pickQuickItem(page, wt.title);
    const steps = page.locator('.getting-started-step .step-title');
    await waitFor('the walkthrough steps', async () => (await steps.count()) === wt.steps.length);
    const titles = (await steps.allInnerTexts()).map((t) => t.trim());
    assert.deepEqual(titles, wt.steps.map((s: { title: string }) => s.title));
    // The first step's markdown page renders beside the steps.
    await webviewFrame(page).locator('text=launch targets').first().waitFor({ state: 'visible' });
    await screenshot(page, 'walkthrough');
  });

  it('shows no extension error notification', async () => {
    const errs = await page.locator('.notifications-toasts .notification-list-item .codicon-error').count();
    const msgs = await page.locator('.notification-list-item-message').allInnerTexts();
    assert.equal(errs, 0, `error notifications: ${msgs.join(' | ')}\n${extensionLog(server!)}`);
  });
});
