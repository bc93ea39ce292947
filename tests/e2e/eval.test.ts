// `conscience eval` end to end through the real CLI, the real launcher (local target) and the
// real runtime: the tiny model on CPU, three arms over the same prompts, results back in the
// run store and on stdout. A bad eval recipe is refused at FILE:LINE:COL and nothing starts.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCompletions, parseResults } from '../../extension/src/core/eval/results';
import { readRun, runDir } from '../../extension/src/core/runs/store';
import type { Browser, Page } from 'playwright-core';
import { PYTHON, REPO, cli, killRunsOf, makeWorkspace, removeWorkspaces } from '../launch/workspace';
import {
  cleanup, extensionLog, launchBrowser, openFile, openWorkbench, pickQuickItem, readProblems, runCommand, screenshot,
  startCodeServer, waitFor, waitForActivation, webviewFrame, type CodeServer,
} from './harness';

const ENV = { CONSCIENCE_CACHE: join(REPO, '.cache', 'conscience-test-w0'), CONSCIENCE_TINY_WARMUP: '0' };

describe('conscience eval (CLI, local target)', { timeout: 600_000 }, () => {
  let root: string;
  before(() => {
    root = makeWorkspace({ here: { type: 'local', python: PYTHON } });
    const demo = readFileSync(join(REPO, 'recipes/demo/eval-tiny.yaml'), 'utf8');
    const small = demo
      .replace(/^max_prompts:.*$/m, 'max_prompts: 6')
      .replace(/^arms:.*$/m, 'arms: [allocator, label, none]')
      .replace(/^batch_size:.*$/m, 'batch_size: 6')
      .replace(/^max_new_tokens:.*$/m, 'max_new_tokens: 8');
    assert.notEqual(small, demo);
    writeFileSync(join(root, 'recipes/demo/eval-small.yaml'), small);
    writeFileSync(join(root, 'recipes/demo/eval-bad.yaml'), small.replace(/^arms:.*$/m, 'arms: [allocator, lable]'));
    writeFileSync(join(root, 'recipes/demo/eval-slow.yaml'), small.replace(/^batch_size:.*$/m, 'batch_size: 1').replace(/^max_new_tokens:.*$/m, 'max_new_tokens: 32'));
  });
  after(() => {
    if (root) killRunsOf(root);
    removeWorkspaces();
  });
  const runs = () => (existsSync(join(root, '.conscience/runs')) ? readdirSync(join(root, '.conscience/runs')) : []);

  it('refuses a bad eval recipe at FILE:LINE:COL and starts nothing', async () => {
    const r = await cli(root, ['eval', 'recipes/demo/eval-bad.yaml', '--target', 'here'], ENV);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /recipes\/demo\/eval-bad\.yaml:13:\d+: error CC500: Unknown arm 'lable'.*Did you mean 'label'\?/);
    assert.deepEqual(runs(), []);
  });

  it('refuses a training recipe with a usage error', async () => {
    const r = await cli(root, ['eval', 'recipes/demo/tiny-cpu.yaml'], ENV);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is a `kind: grpo` recipe; conscience eval runs `kind: eval` recipes/);
  });

  it('runs every arm over the same prompts and prints the results', async () => {
    const r = await cli(root, ['eval', 'recipes/demo/eval-small.yaml', '--target', 'here', '--wait', '--format', 'json'], ENV);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.equal(out.run.state, 'completed');
    const res = parseResults(JSON.stringify(out.results));
    assert.deepEqual(res.arms_order, ['allocator', 'label', 'none']);
    assert.equal(res.total, 18);
    assert.equal(res.partial, false);
    for (const arm of res.arms_order) assert.equal(res.arms[arm]!.overall.n, 6);
    // max_prompts spreads over the labels
    assert.deepEqual(Object.keys(res.arms.label!.label).sort(), ['benign', 'borderline', 'harmful']);
    // results.json and completions.jsonl are kept in the run store (a later run may write the same output dir)
    const stored = parseResults(readFileSync(join(runDir(root, out.run.id), 'results.json'), 'utf8'));
    assert.deepEqual(stored.arms, res.arms);
    assert.equal(readFileSync(join(runDir(root, out.run.id), 'completions.jsonl'), 'utf8'), readFileSync(join(out.run.outputDir, 'completions.jsonl'), 'utf8'));
    const { rows, errors } = parseCompletions(readFileSync(join(runDir(root, out.run.id), 'completions.jsonl'), 'utf8'));
    assert.deepEqual(errors, []);
    const ids = (arm: string) => rows.filter((c) => c.arm === arm).map((c) => c.id).sort();
    assert.deepEqual(ids('allocator'), ids('label'));
    assert.deepEqual(ids('none'), ids('label'));
    // progress reached the run store as events: step = completions done, max_steps = total
    const events = readFileSync(join(runDir(root, out.run.id), 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(events.find((e) => e.type === 'run_started').max_steps, 18);
    assert.equal(events.filter((e) => e.type === 'metrics').at(-1).step, 18);
    // `conscience runs` shows it like a training run
    const list = await cli(root, ['runs', '--format', 'json'], ENV);
    const rec = JSON.parse(list.stdout).find((x: { id: string }) => x.id === out.run.id);
    assert.equal(rec.state, 'completed');
    assert.equal(rec.step, 18);
  });

  it('cancels an eval, and resume finishes it without redoing finished prompts', async () => {
    const r = await cli(root, ['eval', 'recipes/demo/eval-slow.yaml', '--target', 'here'], ENV);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const rec = await readRun(root, id);
    const comp = join(rec!.outputDir, 'completions.jsonl');
    const lines = () => (existsSync(comp) ? readFileSync(comp, 'utf8').split('\n').filter(Boolean) : []);
    const deadline = Date.now() + 180_000;
    while (lines().length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    const c = await cli(root, ['cancel', id], ENV);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /cancelled/);
    const before = readFileSync(comp, 'utf8');
    const n = before.split('\n').filter(Boolean).length;
    assert.ok(n >= 2 && n < 18, `${n} completions at cancel`);
    const res = await cli(root, ['resume', id, '--wait', '--format', 'json'], ENV);
    assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
    // --format json: the finished run's record, as launch --wait prints it (it printed "ID completed")
    const fin = JSON.parse(res.stdout) as { id: string; state: string };
    assert.equal(fin.id, id);
    assert.equal(fin.state, 'completed');
    const after = readFileSync(comp, 'utf8');
    assert.ok(after.startsWith(before), 'the completions finished before the cancel are kept as they were');
    const keys = after.split('\n').filter(Boolean).map((l) => { const o = JSON.parse(l); return `${o.id}/${o.arm}`; });
    assert.equal(keys.length, 18);
    assert.equal(new Set(keys).size, 18, 'no prompt evaluated twice');
    assert.equal((await readRun(root, id))?.state, 'completed');
  });
});

// The editor side in a real VS Code (code-server): an eval recipe's mistakes in the Problems
// panel at their line, and the eval report opened from a run in the workspace's run store.
describe('eval in the editor (code-server)', { timeout: 300_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const RUN = 'e2e-eval-1';
  const CASE = JSON.parse(readFileSync(join(REPO, 'runtime/tests/data/eval_results_case.json'), 'utf8'));

  before(async () => {
    const demo = readFileSync(join(REPO, 'recipes/demo/eval-tiny.yaml'), 'utf8');
    server = await startCodeServer('eval', {
      files: {
        'recipes/eval-bad.yaml': 'kind: eval\nmodel_name_or_path: conscience/tiny\narms: [allocator, lable]\nbatchsize: 4\n',
        'recipes/demo/tiny-cpu.yaml': { copyFrom: join(REPO, 'recipes/demo/tiny-cpu.yaml') },
        'recipes/demo/eval-small.yaml': demo.replace(/^max_prompts:.*$/m, 'max_prompts: 6').replace(/^arms:.*$/m, 'arms: [allocator, label, none]')
          .replace(/^max_new_tokens:.*$/m, 'max_new_tokens: 8'),
      },
      workspaceSettings: { 'conscience.targets': { local: { type: 'local', python: PYTHON } } },
    });
    const out = join(server.workspace, 'eval-out');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'results.json'), JSON.stringify(CASE.results));
    writeFileSync(join(out, 'completions.jsonl'), CASE.completions.map((c: unknown) => JSON.stringify(c) + '\n').join(''));
    const dir = join(server.workspace, '.conscience/runs', RUN);
    mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    writeFileSync(join(dir, 'events.jsonl'), '');
    writeFileSync(join(dir, 'run.json'), JSON.stringify({
      id: RUN, recipe: 'recipes/demo/eval-tiny.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: server.workspace,
      remoteDir: dir, outputDir: out, python: 'python3', state: 'completed', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, step: 15, maxSteps: 15,
      createdAt: now - 60, startedAt: now - 60, updatedAt: now, finishedAt: now, lastEventTime: now, command: 'python -m conscience.eval', attempts: 1,
    }, null, 2));
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });
  after(async () => {
    if (page) await screenshot(page, 'eval-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  it('shows an eval recipe\'s mistakes at their lines', async () => {
    await openFile(page, 'recipes/eval-bad.yaml');
    const problems = await waitFor('eval recipe diagnostics', async () => {
      const p = await readProblems(page);
      return p.length >= 2 ? p : undefined;
    }, 60_000);
    const arm = problems.find((p) => p.text.includes("Unknown arm 'lable'"));
    assert.ok(arm, JSON.stringify(problems));
    assert.equal(arm.line, 3);
    const key = problems.find((p) => p.text.includes('Unknown key `batchsize`'));
    assert.ok(key && key.line === 4, JSON.stringify(problems));
  });

  it('launches an eval recipe from the editor, and its report shows the real results', async () => {
    const runsDir = join(server!.workspace, '.conscience/runs');
    const known = readdirSync(runsDir);
    await openFile(page, 'recipes/demo/eval-small.yaml');
    await runCommand(page, 'Chain of Conscience: Launch Recipe');
    const id = await waitFor('a new run', () => (existsSync(runsDir) ? readdirSync(runsDir).find((x) => !known.includes(x)) : undefined), 90_000);
    const state = () => JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8')) as { state: string; error?: string; outputDir: string; step?: number };
    await waitFor('the eval run to complete', () => {
      const st = state();
      if (st.state === 'failed' || st.state === 'cancelled') throw new Error(`eval run ${id} ended ${st.state}: ${st.error ?? ''}\n${extensionLog(server!)}`);
      return st.state === 'completed';
    }, 240_000, 500);
    assert.equal(state().step, 18, 'the Runs view progress counts completions: 6 prompts x 3 arms');
    const results = parseResults(readFileSync(join(state().outputDir, 'results.json'), 'utf8'));
    await runCommand(page, 'Chain of Conscience: Open Eval Report');
    await pickQuickItem(page, id);
    const frame = webviewFrame(page);
    await frame.locator('[data-testid="table-0"]').waitFor({ state: 'visible', timeout: 60_000 });
    const cell = await frame.locator('[data-testid="table-0"] tr[data-arm="label"][data-label="all"] td[data-stat="refusal"]').textContent();
    assert.equal(cell, `${((results.arms.label!.overall.refusal ?? 0) * 100).toFixed(1)}%`);
    assert.equal((await frame.locator('[data-testid="browser-count"]').textContent())!.trim(), '18 completions');
    await runCommand(page, 'View: Close All Editors');
  });

  it('opens the eval report of a run: table, Pareto chart and completions', async () => {
    await runCommand(page, 'Chain of Conscience: Open Eval Report');
    await pickQuickItem(page, RUN);
    const frame = webviewFrame(page);
    await frame.locator('[data-testid="table-0"]').waitFor({ state: 'visible', timeout: 60_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });
    const harmful = await frame.locator('[data-testid="table-0"] tr[data-arm="label"][data-label="harmful"] td[data-stat="refusal"]').textContent();
    assert.equal(harmful, `${(CASE.results.arms.label.label.harmful.refusal * 100).toFixed(1)}%`);
    assert.equal(await frame.locator('[data-testid="pareto-point"]').count(), CASE.results.arms_order.length);
    assert.equal((await frame.locator('[data-testid="browser-count"]').textContent())!.trim(), `${CASE.completions.length} completions`);
    await screenshot(page, 'eval-report');
  });
});
