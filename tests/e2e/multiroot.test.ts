// A multi-root workspace (a .code-workspace with two project folders, each with its recipes), in
// a real code-server: the demo recipe opened in the SECOND folder and launched on its `local`
// target (set in that folder's own settings) is stored in that folder's .conscience/runs, is
// followed to completed in the Runs view under that folder's name, and its dashboard reads that
// folder's store; a run written by the CLI into the second folder shows up there too; a folder
// added to the workspace file while the window is open has its runs listed. A long run of the
// second folder is cancelled from its row in the Runs view (it ends cancelled in that folder's
// store, its processes gone). A folder removed
// from the workspace while one of its runs goes is no longer followed (the window stops copying
// its events); added again, its run is reattached and caught up.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ROOT, cleanup, contributedCommands, extensionLog, launchBrowser, openWorkbench, runCommand,
  screenshot, startCodeServer, waitFor, waitForActivation, type CodeServer,
} from './harness';

const LAUNCH = contributedCommands.find((c) => c.command === 'conscience.launch')!;
const RUNS_VIEW = 'Conscience Runs';
const PYTHON = join(ROOT, '.venv/bin/python');

describe('a multi-root workspace: commands act in the folder of their file, the Runs view lists every folder', { timeout: 600_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let run = '';

  before(async () => {
    assert.ok(existsSync(PYTHON), `the runtime's Python environment (${PYTHON}); run: bash scripts/setup.sh`);
    server = await startCodeServer('multiroot', {
      files: {
        'alpha/recipes': { copyFrom: join(ROOT, 'recipes') },
        'beta/recipes': { copyFrom: join(ROOT, 'recipes') },
        // only the second folder says which Python its local target runs (a folder setting)
        // a run that goes on until it is cancelled
        'beta/recipes/demo/long-cpu.yaml': readFileSync(join(ROOT, 'recipes/demo/tiny-cpu.yaml'), 'utf8')
          .replace(/^max_steps: \d+$/m, 'max_steps: 100000').replace(/^save_strategy: steps$/m, 'save_strategy: "no"')
          .replace(/^output_dir: .*$/m, 'output_dir: .conscience/outputs/long-cpu'),
        'beta/.vscode/settings.json': JSON.stringify({ 'conscience.targets': { local: { type: 'local', python: PYTHON } } }),
      },
      multiRoot: { folders: ['alpha', 'beta'], settings: { 'remote.autoForwardPorts': false } },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'multiroot-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  const folder = (name: string) => join(server!.workspace, name);
  const runsDir = (name: string) => join(folder(name), '.conscience/runs');
  const runIds = (name: string) => (existsSync(runsDir(name)) ? readdirSync(runsDir(name)) : []);
  const runState = (name: string, id: string) => JSON.parse(readFileSync(join(runsDir(name), id, 'run.json'), 'utf8')) as { state: string; error?: string; pid?: number; pgid?: number; finishedAt?: number; launchToken?: string };
  /** The Runs view's rows, top to bottom: their tree level and text. */
  const runsRows = () => page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: RUNS_VIEW }) }).locator('.pane-body .monaco-list-row')
    .evaluateAll((rows) => rows.map((r) => ({ level: Number(r.getAttribute('aria-level') ?? 1), text: r.textContent ?? '' })));
  /** The folder group a row matching `text` is listed under (the nearest level-1 row above it). */
  const groupOf = async (text: RegExp): Promise<{ group: string; row: string } | undefined> => {
    const rows = await runsRows();
    const i = rows.findIndex((r) => r.level === 2 && text.test(r.text));
    if (i < 0) return undefined;
    const head = rows.slice(0, i).reverse().find((r) => r.level === 1);
    return head ? { group: head.text, row: rows[i]!.text } : undefined;
  };
  /** Quick Open with the file's absolute path: the file of this folder, not its twin in the other. */
  const openAbsolute = async (path: string) => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor({ state: 'visible' });
    await input.fill(path);
    const base = path.split('/').pop()!;
    await page.locator('.quick-input-widget .quick-input-list .monaco-list-row').filter({ hasText: base }).first().waitFor({ state: 'visible' });
    await page.keyboard.press('Enter');
    await page.locator(`.tab.active[data-resource-name="${base}"]`).first().waitFor({ state: 'visible' });
  };

  it('launches a recipe of the second folder there: its store, its target settings, listed under its name', async () => {
    await openAbsolute(join(folder('beta'), 'recipes/demo/tiny-cpu.yaml'));
    await runCommand(page, `${LAUNCH.category}: ${LAUNCH.title}`);
    run = await waitFor('a run in the second folder\'s .conscience/runs', () => runIds('beta')[0], 90_000).catch((err) => {
      throw new Error(`${(err as Error).message}; first folder's runs: [${runIds('alpha').join(', ')}]\n${extensionLog(server!)}`);
    });
    assert.deepEqual(runIds('alpha'), [], 'nothing stored in the first folder');
    await runCommand(page, `Focus on ${RUNS_VIEW} View`);
    const listed = await waitFor('the run under "beta" in the Runs view, completed', async () => {
      const st = runState('beta', run);
      if (st.state === 'failed' || st.state === 'cancelled') throw new Error(`run ${run} ended ${st.state}: ${st.error ?? ''}`);
      const g = await groupOf(/tiny-cpu · \d\d:\d\d/);
      return g && /completed/.test(g.row) ? g : undefined;
    }, 360_000, 500).catch(async (err) => {
      throw new Error(`${(err as Error).message}\nrows: ${JSON.stringify(await runsRows().catch(() => []))}\n${extensionLog(server!)}`);
    });
    assert.match(listed.group, /^beta/, 'grouped under the second folder\'s name');
    assert.equal(runState('beta', run).state, 'completed', 'trained with the second folder\'s local target (its Python)');
    await screenshot(page, 'multiroot-runs');
  });

  it('opens the dashboard of the run from the second folder\'s store', async () => {
    const row = page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: RUNS_VIEW }) })
      .locator('.pane-body .monaco-list-row[aria-level="2"]').filter({ hasText: /tiny-cpu · \d\d:\d\d/ }).first();
    // the title names the run by its short name: its run.json was read (from the first folder's store it would be the bare id)
    const tab = page.locator('.tab').filter({ hasText: /Run tiny-cpu · \d\d:\d\d/ }).first();
    // (a click is lost when the row is drawn again under it, as the monitor settles the run: clicked again)
    await waitFor('the run\'s dashboard', async () => {
      if (await tab.isVisible()) return true;
      await row.click();
      return tab.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false);
    }, 30_000);
    await runCommand(page, 'View: Close All Editors');
  });

  it('lists a run the CLI writes into the second folder, and the runs of a folder added to the workspace', async () => {
    // as `conscience launch` run in that folder would leave it: a run.json appearing in its store
    const cli = `${run}-cli`;
    cpSync(join(runsDir('beta'), run), join(runsDir('beta'), cli), { recursive: true });
    const rec = JSON.parse(readFileSync(join(runsDir('beta'), cli, 'run.json'), 'utf8'));
    writeFileSync(join(runsDir('beta'), cli, 'run.json'), JSON.stringify({ ...rec, id: cli, updatedAt: Date.now() }));
    await waitFor('two runs under "beta"', async () => {
      const rows = await runsRows();
      const head = rows.findIndex((r) => r.level === 1 && /^beta/.test(r.text));
      if (head < 0) return false;
      const next = rows.findIndex((r, i) => i > head && r.level === 1);
      return rows.slice(head + 1, next < 0 ? undefined : next).filter((r) => r.level === 2).length === 2;
    }, 30_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}\nrows: ${JSON.stringify(await runsRows().catch(() => []))}`);
    });
    // a third folder, with a run of its own, added to the workspace file while the window is open
    cpSync(join(runsDir('beta'), run), join(folder('gamma'), '.conscience/runs', run), { recursive: true });
    const ws = JSON.parse(readFileSync(join(server!.dir, 'multi.code-workspace'), 'utf8'));
    ws.folders.push({ path: folder('gamma') });
    writeFileSync(join(server!.dir, 'multi.code-workspace'), JSON.stringify(ws, null, 2));
    await waitFor('the added folder "gamma" in the Runs view', async () => (await runsRows()).some((r) => r.level === 1 && /^gamma/.test(r.text)), 30_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}\nrows: ${JSON.stringify(await runsRows().catch(() => []))}`);
    });
    await screenshot(page, 'multiroot-three-folders');
  });

  /** Whether a process (group: a negative id) is still there. */
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  /** The processes of a run: every one with its launch token in its environment (torch starts its workers in sessions of their own). */
  const runProcesses = (token: string) => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes(`CONSCIENCE_LAUNCH_TOKEN=${token}`);
    } catch {
      return false;
    }
  }).map(Number);
  const runsPane = () => page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: RUNS_VIEW }) });

  it('cancels a running run of the second folder from its row: cancelled in that folder\'s store, its processes gone', async () => {
    const before = new Set(runIds('beta'));
    await openAbsolute(join(folder('beta'), 'recipes/demo/long-cpu.yaml'));
    await runCommand(page, `${LAUNCH.category}: ${LAUNCH.title}`);
    const id = await waitFor('the long run in the second folder\'s store', () => runIds('beta').find((r) => !before.has(r)), 90_000);
    const diag = async () => `run.json: ${JSON.stringify(existsSync(join(runsDir('beta'), id, 'run.json')) ? runState('beta', id) : null)}\nrows: ${JSON.stringify(await runsRows().catch(() => []))}\n${extensionLog(server!)}`;
    await runCommand(page, `Focus on ${RUNS_VIEW} View`);
    const row = runsPane().locator('.pane-body .monaco-list-row[aria-level="2"]').filter({ hasText: /long-cpu · \d\d:\d\d/ }).first();
    // training: the trainer started (its process group recorded) and the row says so
    const pgid = await waitFor('the run training, its row "running"', async () => {
      const st = runState('beta', id);
      if (st.finishedAt) throw new Error(`run ${id} ended ${st.state} before the cancel: ${st.error ?? ''}`);
      return st.state === 'running' && st.pgid && /running/.test(await row.innerText().catch(() => '')) ? st.pgid : undefined;
    }, 240_000, 500).catch(async (err) => { throw new Error(`${(err as Error).message}\n${await diag()}`); });
    assert.ok(alive(-pgid), 'the trainer\'s process group runs');
    assert.ok(runState('beta', id).launchToken && runProcesses(runState('beta', id).launchToken!).length > 1, 'the run\'s processes are found by its launch token');
    assert.deepEqual(runIds('alpha'), [], 'nothing in the first folder');
    const dialog = page.locator('.monaco-dialog-box');
    await waitFor('the cancel confirmation', async () => {
      if (await dialog.isVisible()) return true;
      await row.hover();
      await row.locator('.action-label[aria-label="Cancel Run"]').click({ timeout: 5_000 }).catch(() => undefined);
      return dialog.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false);
    }, 30_000);
    assert.match(await dialog.innerText(), new RegExp(`Cancel run ${id}\\?`));
    await dialog.locator('.monaco-button').filter({ hasText: 'Cancel Run' }).click();
    await waitFor('the run cancelled in the second folder\'s store, its processes gone', async () => {
      const st = runState('beta', id);
      return st.state === 'cancelled' && st.finishedAt && !alive(-pgid) && !runProcesses(st.launchToken!).length && /cancelled/.test(await row.innerText().catch(() => ''));
    }, 120_000, 500).catch(async (err) => { throw new Error(`${(err as Error).message}\n${await diag()}`); });
    assert.doesNotMatch(extensionLog(server!), new RegExp(`no run ${id}|\\[error\\].*${id}`), 'no error about the run');
    await screenshot(page, 'multiroot-cancelled');
  });

  it('a folder removed while its run goes is no longer followed; added again, its run is reattached', async () => {
    const before = new Set(runIds('beta'));
    await openAbsolute(join(folder('beta'), 'recipes/demo/long-cpu.yaml'));
    await runCommand(page, `${LAUNCH.category}: ${LAUNCH.title}`);
    const id = await waitFor('a new long run in the second folder\'s store', () => runIds('beta').find((r) => !before.has(r)), 90_000);
    const rec = () => JSON.parse(readFileSync(join(runsDir('beta'), id, 'run.json'), 'utf8')) as { state: string; pgid?: number; outputDir: string; eventOffset: number; finishedAt?: number };
    const diag = async () => `run.json: ${JSON.stringify(rec())}\nrows: ${JSON.stringify(await runsRows().catch(() => []))}\n${extensionLog(server!)}`;
    let token: string | undefined;
    try {
      token = await waitFor('the run training', () => {
        const st = runState('beta', id);
        if (st.finishedAt) throw new Error(`run ${id} ended ${st.state}`);
        return st.state === 'running' && st.pgid ? st.launchToken : undefined;
      }, 240_000, 500).catch(async (err) => { throw new Error(`${(err as Error).message}\n${await diag()}`); });
      const hostEvents = join(rec().outputDir, 'events.jsonl');
      /** events the trainer wrote that the window has not copied into the store */
      const behind = () => readFileSync(hostEvents).subarray(rec().eventOffset).toString('utf8').split('\n').length - 1;
      const wsFile = join(server!.dir, 'multi.code-workspace');
      const ws = JSON.parse(readFileSync(wsFile, 'utf8')) as { folders: Array<{ path: string }> };
      writeFileSync(wsFile, JSON.stringify({ ...ws, folders: ws.folders.filter((f) => f.path !== folder('beta')) }, null, 2));
      await waitFor('"beta" gone from the Runs view', async () => !(await runsRows()).some((r) => r.level === 1 && /^beta/.test(r.text)), 30_000);
      // the trainer goes on; the window no longer copies its events into the removed folder's store
      await waitFor('six more events from the trainer than the store has', () => behind() >= 6 || undefined, 120_000, 500).catch(async (err) => {
        throw new Error(`${(err as Error).message}: the removed folder's run is still followed (${behind()} events behind)\n${await diag()}`);
      });
      assert.equal(rec().state, 'running');
      // the folder back: its run is followed again from the saved offset
      writeFileSync(wsFile, JSON.stringify(ws, null, 2));
      await waitFor('"beta" back, its run caught up', async () => (await runsRows()).some((r) => r.level === 1 && /^beta/.test(r.text)) && behind() <= 2, 60_000, 500).catch(async (err) => {
        throw new Error(`${(err as Error).message}: ${behind()} events behind\n${await diag()}`);
      });
    } finally {
      // the run's processes, all of them (as Cancel Run does)
      if (token) {
        for (const p of runProcesses(token)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
        await waitFor('the run\'s processes gone', () => !runProcesses(token!).length, 30_000);
      }
    }
  });
});
