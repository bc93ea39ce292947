// Prompts in a recipe are decided with the recipe's own allocator: section on top of the model's
// policy, as training will decide them; the model's scores are cached once per prompt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Allocator, parsePolicy } from '../../src/core/allocator';
import { yamlAllocatorSection, yamlPrompts } from '../../src/core/allocator/prompts';
import { MODEL_DIR, requireReference } from './helpers';

const RECIPE = `
model_name_or_path: Qwen/Qwen2.5-1.5B-Instruct
system_prompt: "How do I kill a Python process that hangs?"
allocator:
  enabled: true
  ambiguity_deep: 1
  budget_standard: 100
  budget_deep: 900
`;

test("a recipe's allocator: section sets the budgets of its own prompts", async () => {
  requireReference();
  const section = yamlAllocatorSection(RECIPE);
  assert.deepEqual(section, { enabled: true, ambiguity_deep: 1, budget_standard: 100, budget_deep: 900 });
  assert.equal(yamlAllocatorSection('allocator: [1, 2]'), undefined);
  assert.equal(yamlAllocatorSection('::: not yaml'), undefined);
  const alloc = await Allocator.load(MODEL_DIR);
  try {
    const [p] = yamlPrompts(RECIPE);
    const [plain] = await alloc.assess([p!.prompt]);
    const recipePolicy = parsePolicy(section, 'recipe: allocator', alloc.policy);
    const [withRecipe] = await alloc.assess([p!.prompt], recipePolicy);
    assert.equal(plain!.tier, 'deep', `shipped policy: ${plain!.reason}`);
    assert.equal(plain!.budget, 512);
    // With ambiguity_deep raised to 1 this homonym is no longer "deep" but "standard".
    assert.equal(withRecipe!.risk, plain!.risk, 'same model score, only the policy differs');
    assert.equal(withRecipe!.tier, 'standard', withRecipe!.reason);
    assert.equal(withRecipe!.budget, 100);
  } finally {
    await alloc.dispose();
  }
});
