// One answer to "is this a recipe?" (issue #18 item 4): recipeKind decides for the editor's
// validation, the Launch CodeLens and the CLI's folder walk, from the same top-level keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectKind, parseYaml, recipeKind } from '../../src/core/recipe';
import { REPO } from './helpers';

test('shipped recipes are recipes, shipped accelerate configs are accelerate configs', () => {
  for (const f of ['recipes/demo/tiny-cpu.yaml', 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml']) assert.equal(recipeKind(readFileSync(join(REPO, f), 'utf8')), 'recipe', f);
  for (const f of ['recipes/accelerate/ddp.yaml', 'recipes/accelerate/zero2.yaml', 'recipes/accelerate/zero3.yaml']) assert.equal(recipeKind(readFileSync(join(REPO, f), 'utf8')), 'accelerate', f);
});

test('a recipe with a syntax error (mid-edit) is still a recipe, so it keeps its diagnostics and its CodeLens', () => {
  const text = 'model_name_or_path: x\nreward_funcs: [refusal\nlaunch:\n  num_processes: 2\n';
  assert.equal(parseYaml(text).root, undefined, 'the YAML does not parse');
  assert.equal(recipeKind(text), 'recipe');
  assert.equal(recipeKind('distributed_type: MULTI_GPU\nnum_processes: [2\n'), 'accelerate');
});

test('other YAML is neither, and parsed text gives the same answer as detectKind', () => {
  for (const text of ['name: ci\non: [push]\njobs: {}\n', '- a\n- b\n', 'prompts:\n  - text: hi\n', '', '# only a comment\n']) {
    assert.equal(recipeKind(text), 'other', JSON.stringify(text));
  }
  for (const text of ['kind: eval\npolicy_recipe: ../r.yaml\n', 'launch:\n  num_processes: 1\n', 'mixed_precision: bf16\ndistributed_type: NO\n']) {
    assert.equal(recipeKind(text), detectKind(parseYaml(text).root), text);
  }
  assert.equal(recipeKind('kind: sft\nmax_steps: 2\n'), 'recipe', 'the recipe kind key marks a recipe');
});

test('a kind: sft recipe is checked against SFTConfig\'s keys, without the GRPO rules', async () => {
  const { validateText } = await import('../../src/core/recipe');
  const base = 'kind: sft\nmodel_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nmax_length: 512\nper_device_train_batch_size: 3\nlaunch:\n  num_processes: 2\n';
  assert.deepEqual(validateText(base).map((d) => d.code), [], 'max_length is an SFTConfig key; no C4 on a batch of 3 x 2');
  const bad = validateText(base + 'num_generations: 4\nmax_lenght: 3\n');
  assert.deepEqual(bad.map((d) => d.code).sort(), ['CC100', 'CC100']);
  assert.match(bad.find((d) => /max_lenght/.test(d.message))!.message, /Did you mean 'max_length'/);
  // the same keys in a GRPO recipe: max_length is not a GRPOConfig key
  assert.ok(validateText(base.replace('kind: sft\n', '')).some((d) => d.code === 'CC100' && /max_length/.test(d.message)));
});

test('hover and completion of a kind: sft recipe offer SFTConfig\'s keys', async () => {
  const { completionsAt, hoverAt } = await import('../../src/core/recipe/assist');
  const text = 'kind: sft\nmax_length: 512\nmax_';
  const labels = completionsAt(text, text.length).map((c) => c.label);
  assert.ok(labels.includes('max_seq_length') || labels.includes('packing'), 'an SFTConfig key is offered');
  assert.ok(!labels.includes('num_generations'), 'GRPO keys are not');
  assert.match(hoverAt(text, text.indexOf('max_length') + 2)!.markdown, /SFTConfig/);
});
