// The whole loop in a real VS Code: the demo recipe launched on the `local` target from the
// editor appears in the Runs view and reaches completed (a real GRPO run of the tiny model
// on the CPU), and its dashboard draws the run's real curves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  COLOURED_PIXELS, ROOT, cleanup, contributedCommands, extensionLog, launchBrowser, openFile, openWorkbench, runCommand,
  screenshot, startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from './harness';

const LAUNCH = contributedCommands.find((c) => c.command === 'conscience.launch');
const RUNS_VIEW = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).contributes?.views?.explorer as Array<{ id: string; name: string }> | undefined)
  ?.find((v) => v.id === 'conscience.runs');
const PYTHON = join(ROOT, '.venv/bin/python');

describe('launch the demo run from the editor', { timeout: 480_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let runId = '';

  before(async () => {
    assert.ok(LAUNCH, 'package.json contributes the command conscience.launch');
    assert.ok(RUNS_VIEW, 'package.json contributes the Runs view conscience.runs');
    assert.ok(existsSync(PYTHON), `the runtime's Python environment (${PYTHON}); run: bash scripts/setup.sh`);
    server = await startCodeServer('launch', {
      files: { recipes: { copyFrom: join(ROOT, 'recipes') } },
      // No runtime/ in the workspace: launch syncs the runtime the extension ships.
      workspaceSettings: { 'conscience.targets': { local: { type: 'local', python: PYTHON } } },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'launch-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  const runsDir = () => join(server!.workspace, '.conscience/runs');
  const runState = (id: string) => JSON.parse(readFileSync(join(runsDir(), id, 'run.json'), 'utf8')) as { state: string; error?: string };

  it('launches the demo recipe on the local target and shows it in the Runs view until completed', async () => {
    await openFile(page, 'recipes/demo/tiny-cpu.yaml');
    await runCommand(page, `${LAUNCH!.category}: ${LAUNCH!.title}`);
    // The command asks for the target (a quick pick) and may show the exact command to confirm.
    await waitFor('the run to start', async () => {
      const pick = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: /^\s*local\b/ }).first();
      if (await pick.isVisible().catch(() => false)) await pick.click();
      const confirm = page.locator('.monaco-dialog-box .monaco-button').filter({ hasText: /Launch|Run|Start/ }).first();
      if (await confirm.isVisible().catch(() => false)) await confirm.click();
      const ids = existsSync(runsDir()) ? readdirSync(runsDir()) : [];
      if (ids.length) runId = ids[0]!;
      return runId;
    }, 90_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });

    // The Runs view lists the run; it reaches completed.
    await runCommand(page, `Focus on ${RUNS_VIEW!.name} View`);
    const row = page.locator('.pane-body .monaco-list-row').filter({ hasText: runId }).first();
    await row.waitFor({ state: 'visible', timeout: 60_000 });
    await screenshot(page, 'launch-running');
    await waitFor('the run to reach completed in the Runs view', async () => {
      const st = runState(runId);
      if (st.state === 'failed' || st.state === 'cancelled') throw new Error(`run ${runId} ended ${st.state}: ${st.error ?? ''}`);
      return /completed/i.test(await row.innerText());
    }, 360_000, 2000).catch((err) => {
      const dir = join(runsDir(), runId);
      const tail = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').slice(-3000) : '');
      throw new Error(`${(err as Error).message}\nrun.json: ${tail('run.json')}\nstderr: ${tail('stderr.log')}\nlog:\n${extensionLog(server!)}`);
    });
    assert.equal(runState(runId).state, 'completed');
    await screenshot(page, 'launch-completed');
  });

  it("opens the finished run's dashboard with its curves", async () => {
    assert.ok(runId, 'a run was launched');
    await runCommand(page, 'Chain of Conscience: Open Run Dashboard');
    const pick = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: runId }).first();
    await pick.waitFor({ state: 'visible' });
    await pick.click();
    const reward = webviewFrame(page).locator('[data-testid=chart-reward]');
    await reward.waitFor({ state: 'visible', timeout: 60_000 });
    const events = readFileSync(join(runsDir(), runId, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    const steps = events.filter((e) => e.type === 'metrics').length;
    assert.ok(steps > 0, 'the run logged metrics');
    await waitFor('one point per logged step', async () => Number(await reward.getAttribute('data-points')) === steps);
    const drawn = await waitFor('a drawn reward curve', async () => (await reward.locator('canvas').first().evaluate(COLOURED_PIXELS)) || undefined);
    assert.ok(drawn > 50, `${drawn} coloured pixels on the reward chart`);
    await screenshot(page, 'launch-dashboard');
  });
});
