// The run dashboard in a real VS Code: "Open Run Dashboard" on a run in the workspace's run
// store opens the webview (nested iframes), which draws the run's curves and keeps drawing
// them as the run appends events.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { generateRun } from '../../extension/test/dashboard/fixtures/grpo';
import type { RunRecord } from '../../extension/src/core/runs/store';
import {
  COLOURED_PIXELS, cleanup, extensionLog, launchBrowser, openWorkbench, pickQuickItem, runCommand, screenshot,
  startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from './harness';

const RUN = 'e2e-dash-1';
const SFT = 'e2e-sft-stage';
const GRPO = 'e2e-grpo-stage';
const STEPS = 60;
const all = generateRun({ runId: RUN, steps: STEPS + 30, finished: false, t0: Date.now() / 1000 - 600 });
// The first STEPS metrics (and the samples among them) are on disk when the panel opens.
const cut = all.findIndex((e) => e.type === 'metrics' && (e as { step: number }).step === STEPS + 1);
const first = all.slice(0, cut);
const later = all.slice(cut);

function record(): RunRecord {
  const now = Date.now() / 1000;
  return {
    id: RUN, recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local',
    projectDir: '/tmp/none', remoteDir: '/tmp/none', outputDir: '/tmp/none', python: 'python3',
    state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, step: STEPS, maxSteps: STEPS + 30,
    createdAt: now - 600, startedAt: now - 600, updatedAt: now, lastEventTime: now, command: 'python -m conscience.train', attempts: 1,
  };
}

describe('run dashboard webview', { timeout: 240_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let events = '';

  before(async () => {
    server = await startCodeServer('dashboard', { files: { 'recipes/demo/tiny-cpu.yaml': 'model_name_or_path: tiny\n' } });
    const dir = join(server.workspace, '.conscience/runs', RUN);
    mkdirSync(dir, { recursive: true });
    events = join(dir, 'events.jsonl');
    writeFileSync(events, first.map((e) => JSON.stringify(e) + '\n').join(''));
    writeFileSync(join(dir, 'run.json'), JSON.stringify(record(), null, 2));
    // A two-stage pipeline: a GRPO run whose model is a warm-start SFT run's output names it in
    // run_started.init_from (docs/events.md), as runtime/conscience/train.py writes it.
    for (const [id, parent] of [[SFT, null], [GRPO, SFT]] as const) {
      const d = join(server.workspace, '.conscience/runs', id);
      mkdirSync(d, { recursive: true });
      const evs = generateRun({ runId: id, steps: 20, finished: true, t0: Date.now() / 1000 - 300 });
      Object.assign(evs[0]!, { init_from: parent ? { run_id: parent, output_dir: `/o/${parent}`, model_path: `/o/${parent}` } : null });
      writeFileSync(join(d, 'events.jsonl'), evs.map((e) => JSON.stringify(e) + '\n').join(''));
      writeFileSync(join(d, 'run.json'), JSON.stringify({ ...record(), id, state: 'completed', step: 20, maxSteps: 20, recipe: `recipes/demo/${id}.yaml` }, null, 2));
    }
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'dashboard-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  it('opens from the command palette and draws the reward curves of the run', async () => {
    await runCommand(page, 'Chain of Conscience: Open Run Dashboard');
    await pickQuickItem(page, RUN);
    const frame = webviewFrame(page);
    const reward = frame.locator('[data-testid=chart-reward]');
    await reward.waitFor({ state: 'visible', timeout: 60_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });
    for (const id of ['reward', 'rewards', 'kl', 'loss', 'length', 'safety']) {
      await frame.locator(`[data-testid=chart-${id}]`).waitFor({ state: 'visible' });
    }
    const points = await waitFor('the reward chart to hold points', async () => Number(await reward.getAttribute('data-points')) || undefined);
    assert.ok(points >= STEPS, `reward chart holds ${points} points, the run has ${STEPS} steps`);
    const drawn = await waitFor('coloured curve pixels on the reward chart',
      async () => (await reward.locator('canvas').first().evaluate(COLOURED_PIXELS)) || undefined);
    assert.ok(drawn > 200, `only ${drawn} coloured pixels drawn on the reward chart`);
    // The samples table shows the latest logged step's completions, the safety block apart from the answer.
    const samples = frame.locator('[data-testid=samples]');
    await waitFor('sample rows', async () => (await samples.locator('tbody td.safety').count()) > 0);
    assert.match(await samples.locator('tbody td.safety').first().innerText(), /Low risk; household chemistry\./);
    assert.match(await samples.locator('tbody td.answer').first().innerText(), /^Take them to a collection point/);
    assert.doesNotMatch(await samples.innerText(), /<safety>/, 'the tags are not shown inline');
    await screenshot(page, 'dashboard');
  });

  it('keeps drawing as the run appends events', async () => {
    const reward = webviewFrame(page).locator('[data-testid=chart-reward]');
    const before = Number(await reward.getAttribute('data-points'));
    appendFileSync(events, later.map((e) => JSON.stringify(e) + '\n').join(''));
    const after = await waitFor('the reward chart to grow with the new steps', async () => {
      const n = Number(await reward.getAttribute('data-points'));
      return n > before ? n : undefined;
    }, 30_000);
    assert.ok(after >= before + 20, `reward chart grew from ${before} to ${after} points after 30 new steps`);
    await screenshot(page, 'dashboard-live');
  });

  it('opens a GRPO run warm-started from an SFT run with both stages of the pipeline', async () => {
    await runCommand(page, 'Chain of Conscience: Open Run Dashboard');
    await pickQuickItem(page, GRPO);
    const frame = webviewFrame(page);
    for (const id of [SFT, GRPO]) {
      await frame.locator(`[data-testid=run-toggle-${id}]`).waitFor({ state: 'visible', timeout: 60_000 }).catch((err) => {
        throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
      });
    }
    const chips = await frame.locator('[data-testid=runs] [data-testid^=run-toggle-]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.testid));
    assert.deepEqual(chips, [`run-toggle-${SFT}`, `run-toggle-${GRPO}`], 'the SFT stage first, then GRPO');
    await screenshot(page, 'dashboard-pipeline');
  });
});
