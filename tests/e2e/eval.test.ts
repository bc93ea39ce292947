// `conscience eval` end to end through the real CLI, the real launcher (local target) and the
// real runtime: the tiny model on CPU, three arms over the same prompts, results back in the
// run store and on stdout. A bad eval recipe is refused at FILE:LINE:COL and nothing starts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCompletions, parseResults } from '../../extension/src/core/eval/results';
import { runDir } from '../../extension/src/core/runs/store';
import { PYTHON, REPO, cli, killRunsOf, makeWorkspace, removeWorkspaces } from '../launch/workspace';

const ENV = { CONSCIENCE_CACHE: join(REPO, '.cache', 'conscience-test-w0') };

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
  });
  after(() => {
    if (root) killRunsOf(root);
    removeWorkspaces();
  });
  const runs = () => (existsSync(join(root, '.conscience/runs')) ? readdirSync(join(root, '.conscience/runs')) : []);

  it('refuses a bad eval recipe at FILE:LINE:COL and starts nothing', async () => {
    const r = await cli(root, ['eval', 'recipes/demo/eval-bad.yaml', '--target', 'here'], ENV);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /recipes\/demo\/eval-bad\.yaml:13:\d+: error CC400: Unknown arm 'lable'.*Did you mean 'label'\?/);
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
    // results.json is kept in the run store; completions on the host (local: the output dir)
    const stored = parseResults(readFileSync(join(runDir(root, out.run.id), 'results.json'), 'utf8'));
    assert.deepEqual(stored.arms, res.arms);
    const { rows, errors } = parseCompletions(readFileSync(join(out.run.outputDir, 'completions.jsonl'), 'utf8'));
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
});
