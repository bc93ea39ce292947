// One budget everywhere: the budget the editor shows for a prompt set row (core/allocator/
// training.ts) is the one the runtime's prompt_sets.assign_budgets gives the same row under the
// same recipe settings. Both sides run here: the shipped model in onnxruntime-node and in Python.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Allocator, parsePolicy } from '../../src/core/allocator';
import { budgetSettings, datasetFiles, driverOf, trainingBudget, trainingHint } from '../../src/core/allocator/training';
import { MODEL_DIR, REPO, python } from './helpers';

const ROWS = readFileSync(join(REPO, 'demo/prompts/sample.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { prompt: string; label: string; budget?: number });
// rows with their own budget too (one above the clip), and one without a label
const rows = [...ROWS.slice(0, 12), { ...ROWS[0]!, budget: 700 }, { ...ROWS[1]!, budget: 3 }, { prompt: ROWS[2]!.prompt, label: 'borderline' }];

const demo = readFileSync(join(REPO, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
assert.match(demo, /^allocator: \{\}$/m, 'the demo recipe has an empty allocator: section the variants fill');
const VARIANTS: Record<string, string> = {
  'demo (auto, max_budget 16)': demo,
  // (the demo's own `allocator: {}` replaced: a second allocator: key is refused as a duplicate, on both sides)
  'allocator policy override, max_budget 600': demo.replace(/^( {2}max_budget:).*$/m, '$1 600').replace(/^allocator: \{\}$/m, 'allocator:\n  budget_deep: 300\n  ambiguity_deep: 0.4'),
  'budget_source label': demo.replace(/^( {2}budget_source:).*$/m, '$1 label'),
  'budget_source dataset': demo.replace(/^( {2}budget_source:).*$/m, '$1 dataset'),
  'allocator disabled': demo.replace(/^allocator: \{\}$/m, 'allocator:\n  enabled: false'),
};

test('hints and the inspector give the budget training assigns, for every budget source and clip', async () => {
  const alloc = await Allocator.load(MODEL_DIR);
  try {
    const scores = await alloc.assess(rows.map((r) => r.prompt));
    for (const [name, text] of Object.entries(VARIANTS)) {
      const s = budgetSettings(text, 'recipes/demo/tiny-cpu.yaml');
      const policy = s.allocator ? parsePolicy(s.allocator, 'test', alloc.policy) : alloc.policy;
      const ts = rows.map((r, i) => trainingBudget(r, scores[i]!, policy, s).budget);
      const py = JSON.parse(python(`
import json, sys
from conscience.recipe import load_recipe
from conscience.prompt_sets import assign_budgets
import tempfile, os
d = tempfile.mkdtemp()
p = os.path.join(d, 'r.yaml')
open(p, 'w').write(sys.argv[1])
r = load_recipe(p, [])
rows = json.loads(sys.stdin.read())
out, _ = assign_budgets(rows, r.safety, r.allocator)
print(json.dumps([x['budget'] for x in out]))
`, JSON.stringify(rows.map((r) => ({ ...r, budget: r.budget ?? null }))), [text])) as number[];
      assert.deepEqual(ts, py, `${name}: editor ${JSON.stringify(ts)} vs training ${JSON.stringify(py)}`);
    }
  } finally {
    alloc.dispose();
  }
});

test('the hint names the score that drove the tier and says when max_budget clipped it', () => {
  const s = budgetSettings(demo, 'recipes/demo/tiny-cpu.yaml');
  const p = parsePolicy({}, 'test');
  const amb = trainingBudget({ label: 'borderline' }, { risk: 0.3, ambiguity: 0.9 }, p, s);
  assert.equal(amb.driver, 'ambiguity');
  assert.equal(trainingHint(amb, { risk: 0.3, ambiguity: 0.9 }), 'ambiguity 90% → deep · 16 tok (clipped)');
  assert.equal(amb.clippedFrom, p.budget_deep);
  assert.match(amb.why, /^recipes\/demo\/tiny-cpu\.yaml: allocator tier deep, safety\.budget_source auto, clipped \d+ → 16 by safety\.max_budget 16$/);
  const risk = trainingBudget({}, { risk: 0.99, ambiguity: 0.1 }, p, s);
  assert.equal(driverOf(risk.decision!), 'risk');
  assert.match(trainingHint(risk, { risk: 0.99, ambiguity: 0.1 }), /^risk 99% → brief · \d+ tok/);
  const own = trainingBudget({ budget: 8, label: 'harmful' }, { risk: 0.99, ambiguity: 0.1 }, p, s);
  assert.equal(trainingHint(own, { risk: 0.99, ambiguity: 0.1 }), 'row budget · 8 tok');
});

test('every hint fits VS Code\'s inlay hint length (43): past it, the tier and budget stay and the score goes', () => {
  const s = budgetSettings(demo, 'recipes/demo/tiny-cpu.yaml');
  const wide = { ...s, maxBudget: 16384 };
  const p = parsePolicy({}, 'test');
  const cases: [Record<string, unknown>, { risk: number; ambiguity: number }, boolean][] = [];
  for (const scores of [{ risk: 0.3, ambiguity: 0.9 }, { risk: 0.99, ambiguity: 0.02 }, { risk: 0.49, ambiguity: 0.45 }, { risk: 1, ambiguity: 1 }]) {
    for (const truncated of [false, true]) for (const row of [{}, { label: 'borderline' }, { budget: 12345, label: 'harmful' }]) cases.push([row, scores, truncated]);
  }
  const seen = new Set<string>();
  for (const settings of [s, wide]) {
    for (const [row, scores, truncated] of cases) {
      const t = trainingBudget(row, scores, p, settings);
      const h = trainingHint(t, scores, truncated);
      assert.ok(h.length <= 43, `${JSON.stringify(h)} is ${h.length} characters`);
      assert.match(h, new RegExp(`(^| )${t.budget} tok`), h);
      if (t.decision) assert.ok(h.includes(t.decision.tier), h);
      if (truncated) assert.match(h, /· truncated$/);
      seen.add(h);
    }
  }
  // the demo's clipped ambiguity hint, 43 characters once its two leading spaces were gone, keeps its score
  assert.ok(seen.has('ambiguity 90% → deep · 16 tok (clipped)'));
  // a long one drops the score, not the flags
  const t = trainingBudget({}, { risk: 0.3, ambiguity: 0.9 }, p, s);
  assert.equal(trainingHint(t, { risk: 0.3, ambiguity: 0.9 }, true), 'deep · 16 tok (clipped) · truncated');
  // a label default clipped and truncated ("label default · 2048 tok (clipped) · truncated" is 46)
  const label = trainingBudget({ label: 'harmful' }, { risk: 0.99, ambiguity: 0.1 }, p, { ...s, budgetSource: 'label', budgetHarmful: 4096, maxBudget: 2048 });
  assert.equal(label.from, 'label default');
  assert.equal(trainingHint(label, { risk: 0.99, ambiguity: 0.1 }, true), '2048 tok (clipped) · truncated');
  assert.equal(trainingHint(label, { risk: 0.99, ambiguity: 0.1 }), 'label default · 2048 tok (clipped)');
});

test("a recipe's dataset_name finds its prompt set: beside the recipe, in the workspace, or the runtime's bundled set (the workspace's runtime/ or the installed extension's)", () => {
  const files = datasetFiles('prompts/sample.jsonl', 'recipes/demo/tiny-cpu.yaml', '/ws', '/ext');
  assert.deepEqual(files, ['/ws/recipes/demo/prompts/sample.jsonl', '/ws/prompts/sample.jsonl']);
  assert.ok(datasetFiles('../../prompts/sample.jsonl', 'recipes/demo/tiny-cpu.yaml', '/ws', '/ext').includes('/ws/prompts/sample.jsonl'));
  // an installed extension's workspace has no runtime/: the bundled set is the extension's
  const bundled = datasetFiles('conscience/safety_prompts', 'recipes/r.yaml', '/ws', '/home/u/.vscode/extensions/coc-1.0');
  assert.ok(bundled.includes('/home/u/.vscode/extensions/coc-1.0/runtime/conscience/data/safety_prompts.jsonl'), bundled.join('\n'));
  assert.ok(bundled.includes('/ws/runtime/conscience/data/safety_prompts.jsonl'));
  // a name that is not a bundled set's is only a path
  assert.equal(datasetFiles('conscience/../x', 'r.yaml', '/ws', '/ext').filter((f) => f.startsWith('/ext')).length, 0);
});
