// Every YAML file shipped in recipes/ validates clean: no diagnostic at all, not even
// information (the recipes say which TRL they are written for in launch.trl), except that a
// warm-start stage may name the previous stage's output folder before it exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, fmt, validateFile } from './helpers';

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e)) out.push(p);
  }
  return out.sort();
}

const files = yamlFiles(join(REPO, 'recipes'));

test('recipes/ holds the shipped recipes and accelerate configs', () => {
  const rel = files.map((f) => f.slice(REPO.length + 1));
  for (const want of ['recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml', 'recipes/accelerate/ddp.yaml', 'recipes/accelerate/zero2.yaml', 'recipes/accelerate/zero3.yaml', 'recipes/demo/tiny-cpu.yaml']) {
    assert.ok(rel.includes(want), `${want} is shipped`);
  }
});

for (const f of files) {
  test(`${f.slice(REPO.length + 1)} validates clean`, () => {
    const { diags } = validateFile(f);
    // The one information allowed: a warm-start recipe naming the output folder of the stage
    // before it (recipes/demo/grpo-from-sft.yaml names sft-tiny.yaml's), which exists only once
    // that stage ran.
    const stageOutput = (d: (typeof diags)[number]) => d.code === 'CC305' && d.severity === 'info' && /\.conscience\/outputs\//.test(d.message);
    assert.deepEqual(diags.filter((d) => !stageOutput(d)).map(fmt), []);
  });
}

test('the Qwen recipe really uses 3 processes, ZeRO-2 and vLLM, and its batch satisfies C4', () => {
  const { text } = validateFile(join(REPO, 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml'));
  assert.match(text, /^model_name_or_path: Qwen\/Qwen2\.5-1\.5B-Instruct$/m);
  assert.match(text, /^  num_processes: 3$/m);
  assert.match(text, /^  accelerate_config: \.\.\/accelerate\/zero2\.yaml$/m);
  assert.match(text, /^use_vllm: true$/m);
  // Changing num_generations to one that does not divide 3 x 8 x 4 = 96 must be caught.
  const { validateText } = require('../../src/core/recipe') as typeof import('../../src/core/recipe');
  const broken = text.replace(/^num_generations: 8$/m, 'num_generations: 7');
  const d = validateText(broken).find((x) => x.code === 'CC204');
  assert.ok(d, 'CC204 for num_generations 7');
  assert.match(d.message, /\(3 x 8 x 4\)/);
  assert.match(d.message, /\[2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96\]/);
});
