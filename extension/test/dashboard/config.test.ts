// Compare's config diff: the recipes flattened to dotted keys, one row per key that differs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configDiff, recipeConfig } from '../../src/core/dashboard/config';

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
