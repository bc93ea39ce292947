// The dashboard panel in a real VS Code (code-server, tests/e2e/harness.ts) comes back after
// "Developer: Reload Window" through its webview panel serializer, with the run it showed and
// the view the user set (smoothing), and draws again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { RunRecord } from '../../extension/src/core/runs/store';
import { generateRun } from '../../extension/test/dashboard/fixtures/grpo';
import {
  COLOURED_PIXELS, cleanup, extensionLog, launchBrowser, openWorkbench, pickQuickItem, runCommand, screenshot,
  startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from '../e2e/harness';

const RUN = 'restore-1';

describe('dashboard restore after reload', { timeout: 300_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    server = await startCodeServer('dashboard-restore', { files: { 'recipes/demo.yaml': 'model_name_or_path: tiny\n' } });
    const dir = join(server.workspace, '.conscience/runs', RUN);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'events.jsonl'), generateRun({ runId: RUN, steps: 80 }).map((e) => JSON.stringify(e) + '\n').join(''));
    const now = Date.now() / 1000;
    const rec: RunRecord = {
      id: RUN, recipe: 'recipes/demo.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: '/tmp/none',
      remoteDir: '/tmp/none', outputDir: '/tmp/none', python: 'python3', state: 'completed', exitCode: 0, eventOffset: 0,
      stdoutOffset: 0, stderrOffset: 0, createdAt: now - 60, updatedAt: now, command: 'python -m conscience.train', attempts: 1,
    };
    writeFileSync(join(dir, 'run.json'), JSON.stringify(rec, null, 2));
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'dashboard-restore-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  it('reopens the run with its smoothing after Developer: Reload Window', async () => {
    await runCommand(page, 'Chain of Conscience: Open Run Dashboard');
    await pickQuickItem(page, RUN);
    let frame = webviewFrame(page);
    const kl = () => webviewFrame(page).locator('[data-testid=chart-kl]');
    await kl().waitFor({ state: 'visible', timeout: 60_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });
    await frame.locator('[data-testid=smoothing]').fill('0.7');
    await waitFor('the smoothed value shown', async () => (await frame.locator('.smooth-value').textContent()) === '0.70');
    // give VS Code a moment to persist the webview state
    await page.waitForTimeout(1500);
    await runCommand(page, 'Developer: Reload Window');
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    frame = webviewFrame(page);
    await kl().waitFor({ state: 'visible', timeout: 90_000 });
    assert.equal(await frame.locator('.smooth-value').textContent(), '0.70');
    // the restored panel is the run's, by its short name (recipe + start time)
    assert.match(await page.locator('.tab.active .label-name, .tab.active .monaco-icon-label').first().textContent() ?? '', /Run demo · \d\d:\d\d/);
    const drawn = await waitFor('coloured pixels on the restored KL chart',
      async () => (await kl().locator('canvas').first().evaluate(COLOURED_PIXELS)) || undefined);
    assert.ok(drawn > 200, `only ${drawn} coloured pixels`);
    await screenshot(page, 'dashboard-restored');
  });
});
