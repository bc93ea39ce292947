// The whole loop in a real VS Code, one code-server session: an empty Runs view offers "Launch a
// recipe"; "Show Launch Command" opens a read-only document; the launch guard stops a recipe with
// errors; the demo recipe launched on the `local` target shows its short name, `step n/N · x%`
// and a status bar item while it trains (a real GRPO run of the tiny model on the CPU) and
// offers no resume once completed, and Show Run Logs shows its logs in the run's own output
// channel; a recipe launched anyway fails, and its notification names the
// trainer's error line, "Show Logs" opens stderr.log at that line and resume is offered; the
// dashboards show the failure's cause, the samples table, one colour per compared run with a
// config diff, and follow a live theme switch.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { runFailure, rootCause } from '../../extension/src/core/runs/present';
import {
  COLOURED_PIXELS, ROOT, cleanup, contributedCommands, extensionLog, launchBrowser, openWorkbench, runCommand,
  screenshot, startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from './harness';

const LAUNCH = contributedCommands.find((c) => c.command === 'conscience.launch');
const RUNS_VIEW = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).contributes?.views?.explorer as Array<{ id: string; name: string }> | undefined)
  ?.find((v) => v.id === 'conscience.runs');
const PYTHON = join(ROOT, '.venv/bin/python');
const DEMO = readFileSync(join(ROOT, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
// an unknown reward function: the validator's CC301 at line 18, and a KeyError in the trainer
const BAD = DEMO.replace(/^reward_funcs:.*$/m, 'reward_funcs: [safety_format, no_such_reward]').replace(/^reward_weights:.*$/m, 'reward_weights: [1.0, 0.5]').replace(/^max_steps:.*$/m, 'max_steps: 2');

describe('launch, progress, failures and dashboards in the editor', { timeout: 720_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let okRun = '';
  let badRun = '';

  before(async () => {
    assert.ok(LAUNCH, 'package.json contributes the command conscience.launch');
    assert.ok(RUNS_VIEW, 'package.json contributes the Runs view conscience.runs');
    assert.ok(existsSync(PYTHON), `the runtime's Python environment (${PYTHON}); run: bash scripts/setup.sh`);
    server = await startCodeServer('launch', {
      files: { recipes: { copyFrom: join(ROOT, 'recipes') }, 'recipes/demo/bad.yaml': BAD },
      // No runtime/ in the workspace: launch syncs the runtime the extension ships.
      // as in the demo workspace (demo/.vscode/settings.json): torch's ports are not offered as apps
      workspaceSettings: { 'conscience.targets': { local: { type: 'local', python: PYTHON } }, 'remote.autoForwardPorts': false },
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
  const runIds = () => (existsSync(runsDir()) ? readdirSync(runsDir()) : []);
  const runState = (id: string) => JSON.parse(readFileSync(join(runsDir(), id, 'run.json'), 'utf8')) as { id: string; state: string; error?: string; recipe: string; projectDir?: string; finished?: { error?: string } };
  const runsRow = (text: string | RegExp) => page.locator('.pane-body .monaco-list-row').filter({ hasText: text }).first();
  const dialog = () => page.locator('.monaco-dialog-box');
  /** Quick Open, then the row that is exactly this file (the launch-command preview is in the history too). */
  const openRecipe = async (rel: string) => {
    const base = rel.split('/').pop()!;
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor({ state: 'visible' });
    await input.fill(rel);
    const exact = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${base.replace('.', '\\.')}$`) }) }).first();
    await exact.waitFor({ state: 'visible' });
    await exact.click();
    await page.locator(`.tab.active[data-resource-name="${base}"]`).first().waitFor({ state: 'visible' });
  };
  const launchFrom = async (file: string) => {
    await openRecipe(file);
    await runCommand(page, `${LAUNCH!.category}: ${LAUNCH!.title}`);
  };
  const newRun = (known: string[]) => waitFor('a new run', () => runIds().find((id) => !known.includes(id)), 90_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
  });
  const closeEditors = () => runCommand(page, 'View: Close All Editors');

  it('shows "Launch a recipe" in the empty Runs view', async () => {
    await runCommand(page, `Focus on ${RUNS_VIEW!.name} View`);
    const welcome = page.locator('.welcome-view-content').filter({ hasText: 'No runs yet' });
    await welcome.waitFor({ state: 'visible', timeout: 20_000 });
    assert.equal(await welcome.locator('.monaco-button').filter({ hasText: 'Launch a recipe' }).count(), 1);
    await screenshot(page, 'runs-welcome');
  });

  it('shows the launch command in a read-only document with nothing to save', async () => {
    await openRecipe('recipes/demo/tiny-cpu.yaml');
    await runCommand(page, 'Chain of Conscience: Show Launch Command');
    const tab = page.locator('.tab').filter({ hasText: 'tiny-cpu on local · launch command.sh' }).first();
    await tab.waitFor({ state: 'visible', timeout: 60_000 });
    const editor = page.locator('.editor-instance .monaco-editor').first();
    const first = (await editor.locator('.view-line').first().innerText()).replace(/\u00a0/g, ' ');
    assert.match(first, /^run \S+: recipes\/demo\/tiny-cpu\.yaml on local/);
    await editor.locator('.view-lines').click();
    await page.keyboard.type('xyz');
    await page.waitForTimeout(300);
    assert.equal((await editor.locator('.view-line').first().innerText()).replace(/\u00a0/g, ' '), first, 'typing does not change it');
    assert.equal(await tab.evaluate((e) => e.classList.contains('dirty')), false, 'not dirty: nothing asks to be saved');
    await screenshot(page, 'launch-command-readonly');
    await closeEditors();
  });

  it('asks before launching a recipe with errors, naming the first', async () => {
    await launchFrom('recipes/demo/bad.yaml');
    await dialog().waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await dialog().innerText(), /1 error in recipes\/demo\/bad\.yaml — Launch anyway\?[\s\S]*Line 18: CC301 Unknown reward function 'no_such_reward'/);
    await screenshot(page, 'launch-guard');
    await dialog().locator('.monaco-button').filter({ hasText: 'Cancel' }).click();
    await page.waitForTimeout(1000);
    assert.deepEqual(runIds(), [], 'nothing launched');
  });

  it('launches the demo recipe: a short name, step n/N · x% and a status bar item while it trains, no resume once completed', async () => {
    // Every render of the row is recorded in the page: a fast machine trains the 8 steps in a
    // second or two, quicker than a poll from here can be sure to catch one of them.
    await page.evaluate(() => {
      const w = window as unknown as { cocProgress?: string };
      new MutationObserver((muts) => {
        for (const m of muts) {
          if (w.cocProgress) return;
          const row = (m.target instanceof Element ? m.target : m.target.parentElement)?.closest('.monaco-list-row');
          const text = row?.textContent ?? '';
          if (/tiny-cpu · \d\d:\d\d.*step [1-7]\/8 · \d+%/.test(text)) w.cocProgress = text;
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await launchFrom('recipes/demo/tiny-cpu.yaml');
    okRun = await newRun([]);
    await runCommand(page, `Focus on ${RUNS_VIEW!.name} View`);
    const row = runsRow(/tiny-cpu · \d\d:\d\d/);
    await row.waitFor({ state: 'visible', timeout: 60_000 });
    assert.ok(!(await row.innerText()).includes(okRun), 'the row shows a short name, not the timestamp id');
    const status = page.locator('.statusbar-item').filter({ hasText: /tiny-cpu · \d\d:\d\d/ }).first();
    let sawStatus = false;
    await waitFor('the run to reach completed in the Runs view', async () => {
      const st = runState(okRun);
      if (st.state === 'failed' || st.state === 'cancelled') throw new Error(`run ${okRun} ended ${st.state}: ${st.error ?? ''}`);
      if (!sawStatus && (await status.isVisible().catch(() => false))) {
        sawStatus = /tiny-cpu · \d\d:\d\d · (step|starting|running|preparing)/.test(await status.innerText());
        if (sawStatus) await screenshot(page, 'launch-running');
      }
      return /completed/.test(await row.innerText());
    }, 360_000, 500).catch((err) => {
      const dir = join(runsDir(), okRun);
      const tail = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').slice(-3000) : '');
      throw new Error(`${(err as Error).message}\nrun.json: ${tail('run.json')}\nstderr: ${tail('stderr.log')}\nlog:\n${extensionLog(server!)}`);
    });
    assert.ok(sawStatus, 'a status bar item named the run while it went');
    const sawProgress = await page.evaluate(() => (window as unknown as { cocProgress?: string }).cocProgress ?? '');
    assert.ok(sawProgress, 'the row showed step n/8 · x% while it trained');
    assert.match(await row.innerText(), /completed · step 8\/8 · 100%/);
    await waitFor('the status bar item to go', async () => !(await status.isVisible().catch(() => false)), 20_000);
    // torch.distributed listened on local ports during the run: nothing offered to forward them
    const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
    assert.deepEqual(toasts.filter((t) => /port \d+|forward/i.test(t)), [], 'no port-forwarding notification');
    await row.hover();
    assert.equal(await row.locator('.action-label[aria-label="Resume Run"]').count(), 0, 'no resume for a completed run');
    assert.equal(await row.locator('.action-label[aria-label="Open Run Dashboard"]').count(), 1);
    await screenshot(page, 'launch-completed');
  });

  it('Show Run Logs puts the completed run\'s logs in its own output channel', async () => {
    assert.ok(okRun, 'the run launched above');
    // the lines the run wrote (stdout.log, stderr.log), whitespace left out: the view wraps long lines,
    // and the channel holds them in the order they arrived (it was filled while the run went)
    const squash = (t: string) => t.replace(/[\s\u00a0]+/g, '');
    const logLines = ['stdout.log', 'stderr.log'].map((f) => join(runsDir(), okRun, f)).filter(existsSync)
      .flatMap((f) => readFileSync(f, 'utf8').split('\n')).map(squash).filter((l) => l.length >= 30).map((l) => l.slice(0, 30));
    assert.ok(logLines.length, 'the run wrote logs into its store');
    await runCommand(page, 'Chain of Conscience: Show Run Logs');
    const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: okRun }).first();
    await row.waitFor({ state: 'visible', timeout: 30_000 });
    await row.click();
    const panel = page.locator('.part.panel');
    const output = panel.locator('.monaco-editor .view-lines').first();
    /** the channel chosen in the output view's picker */
    const chosen = () => panel.locator('select').evaluateAll((els) => els.map((e) => { const s = e as HTMLSelectElement; return s.options[s.selectedIndex]?.text ?? ''; }));
    await waitFor('the run\'s own channel chosen, showing lines of its logs', async () => {
      if (!(await chosen().catch(() => [] as string[])).includes(`Conscience Run ${okRun}`)) return false;
      const shown = squash(await output.innerText().catch(() => ''));
      return logLines.some((l) => shown.includes(l));
    }, 30_000).catch(async (err) => {
      await screenshot(page, 'launch-logs-missing');
      throw new Error(`${(err as Error).message}\nchosen: ${JSON.stringify(await chosen().catch(() => []))}\npanel: ${await panel.innerText().catch(() => '(no panel)')}`);
    });
    await screenshot(page, 'launch-logs');
    await runCommand(page, 'View: Hide Panel');
  });

  it('a recipe launched anyway fails with its root cause in the notification; Show Logs opens stderr.log at that line; resume is offered', async () => {
    await launchFrom('recipes/demo/bad.yaml');
    await dialog().waitFor({ state: 'visible', timeout: 30_000 });
    await dialog().locator('.monaco-button').filter({ hasText: 'Launch Anyway' }).click();
    badRun = await newRun([okRun]);
    const toast = page.locator('.notifications-toasts .notification-list-item').filter({ hasText: /failed.*no_such_reward/ }).first();
    await toast.waitFor({ state: 'visible', timeout: 240_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\nrun.json: ${JSON.stringify(runState(badRun))}\nlog:\n${extensionLog(server!)}`);
    });
    const text = await toast.innerText();
    assert.doesNotMatch(text, /exited with code/, 'the trainer\'s error, not the exit code');
    await screenshot(page, 'launch-failed-notification');
    const stderr = readFileSync(join(runsDir(), badRun, 'stderr.log'), 'utf8');
    const st = runState(badRun);
    const cause = rootCause(stderr, st.finished?.error, st.error)!;
    assert.ok(cause.line !== undefined, 'the cause is a line of stderr.log');
    await toast.locator('.monaco-button').filter({ hasText: 'Show Logs' }).click();
    await page.locator('.tab.active').filter({ hasText: 'stderr.log' }).waitFor({ state: 'visible', timeout: 20_000 });
    const ln = page.locator('.statusbar-item[id="status.editor.selection"]');
    await waitFor('the cursor on the cause', async () => new RegExp(`Ln ${cause.line! + 1},`).test(await ln.innerText()), 10_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}: status bar says ${await ln.innerText()}, cause at line ${cause.line! + 1}: ${cause.message}`);
    });
    await screenshot(page, 'launch-show-logs-at-cause');
    await runCommand(page, `Focus on ${RUNS_VIEW!.name} View`);
    const row = runsRow(/bad · \d\d:\d\d/);
    await row.waitFor({ state: 'visible' });
    await row.hover();
    assert.equal(await row.locator('.action-label[aria-label="Resume Run"]').count(), 1, 'resume for a failed run');
    // the tooltip names the cause too (and the run's id)
    const hover = page.locator('.workbench-hover, .monaco-hover').filter({ hasText: 'cause:' }).first();
    await hover.waitFor({ state: 'visible', timeout: 15_000 });
    const tip = (await hover.innerText()).replace(/\u00a0/g, ' ');
    assert.ok(tip.includes(badRun), tip);
    // the cause names the workspace's recipe, not the run's project copy on the host nor the
    // trainer's own copy of the recipe beside it
    const shown = runFailure(st as unknown as Parameters<typeof runFailure>[0], stderr)!.message;
    assert.ok(!shown.includes('.conscience-') && shown.includes('bad.yaml'), shown);
    assert.ok(tip.includes(`cause: ${shown}`), `${tip}\n---\ncause: ${shown}`);
    await closeEditors();
  });

  it('dashboards: the failure\'s cause, the samples table, one colour per compared run with a config diff, a live theme switch', async () => {
    // the failed run's dashboard says why instead of waiting for metrics forever
    await runCommand(page, 'Chain of Conscience: Open Run Dashboard');
    await page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: badRun }).first().click();
    const cause = webviewFrame(page).locator('[data-testid=cause]');
    await cause.waitFor({ state: 'visible', timeout: 60_000 });
    assert.match(await cause.innerText(), /^Run failed: .*no_such_reward/);
    assert.match(await webviewFrame(page).locator('.grid .empty').innerText(), /No metrics were logged/);
    await screenshot(page, 'dashboard-failed');
    await closeEditors();

    // compare both: one colour per run (chips), the recipes' differences
    await runCommand(page, 'Chain of Conscience: Compare Runs');
    for (const id of [okRun, badRun]) await page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: id }).first().click();
    await page.keyboard.press('Enter');
    const f = webviewFrame(page);
    await f.locator('[data-testid=chart-reward]').waitFor({ state: 'visible', timeout: 60_000 });
    const chips = await f.locator('.run-chip').allInnerTexts();
    assert.equal(chips.length, 2);
    assert.ok(chips.every((c) => /^(tiny-cpu|bad) · \d\d:\d\d$/.test(c)), `short names: ${chips}`);
    await f.locator('[data-testid=config] tbody tr').first().waitFor({ state: 'visible', timeout: 30_000 });
    const keys = await f.locator('[data-testid=config] tbody td.key').allInnerTexts();
    assert.deepEqual(keys.sort(), ['max_steps', 'reward_funcs', 'reward_weights']);
    // the samples table: the completed run's last logged step, safety block and answer apart
    await f.locator('[data-testid=samples] tbody tr').first().waitFor({ state: 'visible', timeout: 30_000 });
    const heads = await f.locator('[data-testid=samples] th').allInnerTexts();
    assert.deepEqual(heads.slice(0, 7), ['Run', 'Label', 'Budget', 'Safety tokens', 'Prompt', 'Safety block', 'Answer']);
    assert.match(await f.locator('[data-testid=samples-page]').innerText(), /^step 8 · 1 of 8$/);
    // page back through the logged steps; a click shows a cell's full text
    await f.locator('[data-testid=samples-older]').click();
    await waitFor('the previous step', async () => /^step 7 · 2 of 8$/.test(await f.locator('[data-testid=samples-page]').innerText()), 10_000);
    const cell = f.locator('[data-testid=samples] tbody tr').first().locator('td.prompt');
    await cell.click();
    assert.equal(await cell.evaluate((e) => e.classList.contains('full')), true);
    // the tooltip at the cursor: every series' value, the reward with its std
    await f.locator('[data-testid=chart-reward]').scrollIntoViewIfNeeded();
    const box = (await f.locator('[data-testid=chart-reward] .u-over').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    const tip = f.locator('[data-testid=tooltip]');
    await tip.waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await tip.innerText(), /^step \d[\s\S]*tiny-cpu · \d\d:\d\d · reward\s*-?[\d.e-]+ ± [\d.e-]+ std/);
    await page.mouse.move(0, 0);
    const reward = f.locator('[data-testid=chart-reward] canvas').first();
    assert.ok((await reward.evaluate(COLOURED_PIXELS)) > 50, 'the completed run\'s reward curve is drawn');
    // a run's chip hides it on every chart, and shows it again
    const chip = f.locator('.run-chip').filter({ hasText: /^tiny-cpu/ });
    await chip.click();
    await waitFor('the run hidden', async () => (await reward.evaluate(COLOURED_PIXELS)) < 10, 10_000);
    await chip.click();
    await waitFor('the run shown again', async () => (await reward.evaluate(COLOURED_PIXELS)) > 50, 10_000);
    await screenshot(page, 'dashboard-compare');

    // a live theme switch: the charts' axes follow (VS Code rewrites the webview's variables)
    const near = (rgb: [number, number, number]) => reward.evaluate((c, rgb) => {
      const canvas = c as HTMLCanvasElement;
      const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 200 && Math.abs(d[i]! - rgb[0]) + Math.abs(d[i + 1]! - rgb[1]) + Math.abs(d[i + 2]! - rgb[2]) < 24) n++;
      return n;
    }, rgb);
    // the theme's foreground as the webview has it now, then the other theme's
    const fg = async (): Promise<[number, number, number]> => {
      const v = await f.locator('body').evaluate(() => getComputedStyle(document.body).getPropertyValue('--vscode-foreground').trim());
      const m = /^#([0-9a-f]{6})/i.exec(v);
      assert.ok(m, `--vscode-foreground is ${v}`);
      const n = parseInt(m[1]!, 16);
      return [n >> 16, (n >> 8) & 255, n & 255];
    };
    const before = await fg();
    assert.ok((await near(before)) > 30, `axis labels in the theme's foreground ${before}`);
    const light = await f.locator('body.vscode-light').count();
    const other = light ? 'Dark Modern' : 'Light Modern';
    // as a user switches it: Preferences: Color Theme, then the theme
    await runCommand(page, 'Preferences: Color Theme');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor({ state: 'visible' });
    await input.fill(other);
    const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${other}$`) }) }).first();
    await row.waitFor({ state: 'visible' });
    await row.click();
    await f.locator(light ? 'body.vscode-dark' : 'body.vscode-light').waitFor({ state: 'attached', timeout: 30_000 });
    const after = await fg();
    assert.notDeepEqual(after, before);
    await waitFor(`axis labels in ${other}'s foreground`, async () => (await near(before)) < 5 && (await near(after)) > 30, 15_000);
    await screenshot(page, 'dashboard-compare-theme-switched');
  });
});
