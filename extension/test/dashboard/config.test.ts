// Compare's config diff: the recipes flattened to dotted keys, one row per key that differs; and
// the compared runs' labels (core/dashboard/labels.ts), unique.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configDiff, recipeConfig } from '../../src/core/dashboard/config';
import { uniqueRunLabels } from '../../src/core/dashboard/labels';
import { DashboardSession } from '../../src/core/dashboard/session';
import type { ToWebview } from '../../src/core/protocol/dashboard';
import { runName } from '../../src/core/runs/present';

const ROOT = join(import.meta.dirname, '../../..');

test('two shipped-recipe variants differ in exactly the keys that were changed, nested ones dotted', () => {
  const text = readFileSync(join(ROOT, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
  const a = recipeConfig(text, 'a.yaml');
  const b = recipeConfig(text.replace(/^learning_rate:.*$/m, 'learning_rate: 5.0e-5').replace(/^( {2}num_processes:).*$/m, '$1 1').replace(/^beta:.*\n/m, ''), 'b.yaml');
  const { rows, keys } = configDiff([a, b]);
  assert.deepEqual(rows, [
    { key: 'beta', values: ['0.04', null] },
    { key: 'launch.num_processes', values: ['2', '1'] },
    { key: 'learning_rate', values: ['0.0001', '0.00005'] },
  ]);
  assert.equal(keys, Object.keys(a).length);
  assert.equal(a.reward_funcs, '["safety_format","safety_budget","refusal","repetition_penalty"]', 'a list is one value');
  assert.deepEqual(configDiff([a, a]).rows, [], 'identical recipes: no rows');
  assert.deepEqual(configDiff([a, null]).rows.length, keys, 'a run without a recipe differs in every key');
  assert.throws(() => recipeConfig('- a\n- b\n', 'x.yaml'), /x\.yaml: not a YAML mapping/);
});

test('a recipe key named like an Object member (constructor, toString) compares as any other key', () => {
  const a = recipeConfig('constructor: 1\nlr: 1\n', 'a.yaml');
  const b = recipeConfig('lr: 1\n', 'b.yaml');
  assert.deepEqual(configDiff([a, b]).rows, [{ key: 'constructor', values: ['1', null] }]);
  assert.deepEqual(configDiff([b, recipeConfig('toString: x\nlr: 1\n', 'c.yaml')]).rows, [{ key: 'toString', values: [null, 'x'] }]);
});

test('compared runs that read the same (one recipe launched twice in a minute, or one file name in two folders) get labels that tell them apart', async () => {
  const now = new Date(2026, 10, 28, 21, 3, 40);
  const at = (s: number) => now.getTime() / 1000 - 40 + s;
  const runs = [
    { id: '20261128-210215-ab12', recipe: 'recipes/demo/tiny-cpu.yaml', createdAt: at(-60) },
    { id: '20261128-210300-cd34', recipe: 'recipes/demo/tiny-cpu.yaml', createdAt: at(0) },
    { id: '20261128-210320-ef56', recipe: 'recipes/demo/tiny-cpu.yaml', createdAt: at(20) },
    { id: '20261128-210321-gh78', recipe: 'recipes/other/tiny-cpu.yaml', createdAt: at(21) },
    { id: '20261128-210322-ij90', recipe: 'recipes/grpo.yaml', createdAt: at(22) },
  ];
  const names = runs.map((r) => runName(r, now));
  assert.deepEqual(names, ['tiny-cpu · 21:02', 'tiny-cpu · 21:03', 'tiny-cpu · 21:03', 'tiny-cpu · 21:03', 'grpo · 21:03']);
  const labels = uniqueRunLabels(runs, names);
  assert.deepEqual(labels, ['tiny-cpu · 21:02', 'demo/tiny-cpu · 21:03 (cd34)', 'demo/tiny-cpu · 21:03 (ef56)', 'other/tiny-cpu · 21:03', 'grpo · 21:03']);
  // what the webview shows as chips, legend prefixes and columns: the session's run labels
  const sent: ToWebview[] = [];
  const s = new DashboardSession(runs.map((r, i) => ({ id: r.id, label: labels[i] })), { title: 't', post: (m) => sent.push(m), throttleMs: 0, saveCsv: async () => null, savePng: async () => null });
  await s.receive({ type: 'ready', view: null });
  const layout = sent.find((m) => m.type === 'layout') as Extract<ToWebview, { type: 'layout' }>;
  assert.equal(new Set(layout.runs.map((r) => r.label)).size, runs.length);
  // runs without a record (their id is the name) and one id twice stay apart too
  assert.deepEqual(uniqueRunLabels([{ id: 'a' }, { id: 'a' }], ['a', 'a']), ['a (a)', 'a (a) #2']);
  assert.deepEqual(uniqueRunLabels([runs[0]!], [names[0]!]), [names[0]]);
});
