// What the editor shows, tested on the core it adapts: quick fixes that really fix, hover
// text from TRL's help strings, completion of keys, enum values and reward names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateText } from '../../src/core/recipe';
import { completionsAt, hoverAt } from '../../src/core/recipe/assist';
import { applyEdits } from './helpers';

const BASE = `model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct
reward_funcs:
- safety_format
- refusal
- safety_budget
reward_weights:
- 1.0
- 0.5
per_device_train_batch_size: 4
gradient_accumulation_steps: 3
num_generations: 5
launch:
  num_processes: 2
`;

function fixOnce(text: string, code: string): string {
  const d = validateText(text).find((x) => x.code === code);
  assert.ok(d, `${code} reported`);
  assert.ok(d.fixes?.length, `${code} has a quick fix`);
  return applyEdits(text, d.fixes[0]!.edits);
}

test('quick fix: num_generations is set to the nearest valid value', () => {
  const fixed = fixOnce(BASE, 'CC204');
  assert.match(fixed, /^num_generations: 4$/m); // 2 x 4 x 3 = 24: valid 2,3,4,6,8,12,24; nearest to 5 is 4 (tie with 6 -> smaller)
  assert.ok(!validateText(fixed).some((d) => d.code === 'CC204'));
});

test('quick fix: reward_weights gets one weight per reward function, keeping the existing ones', () => {
  const fixed = fixOnce(BASE, 'CC207');
  assert.match(fixed, /^reward_weights:\n\[1\.0, 0\.5, 1\.0\]$/m);
  assert.ok(!validateText(fixed).some((d) => d.code === 'CC207'));
});

test('quick fix: an unknown key is renamed to the suggestion', () => {
  const text = BASE.replace('per_device_train_batch_size', 'per_device_train_batchsize');
  const d = validateText(text).find((x) => x.code === 'CC100');
  assert.ok(d);
  assert.match(d.message, /Did you mean 'per_device_train_batch_size'\?/);
  assert.equal(d.line, 8);
  assert.equal(d.column, 0);
  const fixed = applyEdits(text, d.fixes![0]!.edits);
  assert.equal(fixed, BASE);
});

test('quick fix: YAML 1.1 `no` for a string field gets quoted', () => {
  const fixed = fixOnce(BASE + 'save_strategy: no\n', 'CC101');
  assert.match(fixed, /^save_strategy: 'no'$/m);
});

test('num_generations missing: the fix adds it', () => {
  const text = BASE.replace('num_generations: 5\n', '').replace('gradient_accumulation_steps: 3', 'gradient_accumulation_steps: 1').replace('num_processes: 2', 'num_processes: 3');
  // default num_generations 8 does not divide 3 x 4 x 1 = 12
  const fixed = fixOnce(text, 'CC204');
  assert.match(fixed, /^num_generations: 6$/m);
  assert.ok(!validateText(fixed).some((d) => d.code === 'CC204'));
});

test('hover on a key shows TRL help, type, default and the TRL version', () => {
  const off = BASE.indexOf('num_generations') + 3;
  const h = hoverAt(BASE, off);
  assert.ok(h);
  assert.match(h.markdown, /\*\*num_generations\*\*/);
  assert.match(h.markdown, /Number of generations to sample/);
  assert.match(h.markdown, /default: `8`/);
  assert.match(h.markdown, /TRL 0\.18/);
  assert.equal(BASE.slice(h.start, h.end), 'num_generations');
  const l = hoverAt(BASE, BASE.indexOf('num_processes') + 1);
  assert.ok(l);
  assert.match(l.markdown, /launch\.num_processes/);
  assert.equal(hoverAt(BASE, BASE.indexOf('Qwen/')), undefined, 'no hover on values');
});

test('completion: keys at the start of a line, enum values after the colon, reward names in lists', () => {
  const keys = completionsAt(BASE + 'num_', BASE.length + 4).map((c) => c.label);
  assert.ok(keys.includes('num_iterations'));
  assert.ok(!keys.includes('num_generations'), 'keys already present are not offered again');
  const t2 = BASE + 'torch_dtype: ';
  assert.deepEqual(completionsAt(t2, t2.length).map((c) => c.label), ['auto', 'bfloat16', 'float16', 'float32']);
  const t3 = BASE + "eval_strategy: ";
  const ev = completionsAt(t3, t3.length);
  assert.equal(ev.find((c) => c.label === 'no')?.insertText, "'no'", "'no' is quoted for YAML 1.1");
  const t4 = BASE.replace('- refusal\n', '- refusal\n- \n');
  const at = t4.indexOf('- \n') + 2;
  const rewards = completionsAt(t4, at).map((c) => c.label);
  assert.ok(rewards.includes('safety_budget') && rewards.includes('soft_overlong_punishment'));
  const t5 = BASE + 'launch_extra: 1\n';
  const sect = completionsAt(BASE.replace('  num_processes: 2\n', '  vllm'), BASE.replace('  num_processes: 2\n', '  vllm').length).map((c) => c.label);
  assert.ok(sect.includes('vllm_server'), 'launch: keys inside the section');
  assert.ok(t5.length > 0);
});

// A quick fix must leave the recipe clean of the problem and of new ones.
const CLEAN = 'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nreward_funcs: [refusal]\nper_device_train_batch_size: 4\nnum_generations: 4\n';
const problems = (text: string) => validateText(text).filter((d) => d.severity !== 'info').map((d) => `${d.code}@${d.line + 1}: ${d.message}`);

function onlyFix(text: string, code: string) {
  const d = validateText(text).find((x) => x.code === code);
  assert.ok(d, `${code} reported`);
  assert.equal(d.fixes?.length, 1, `${code}: one fix (${d.fixes?.map((f) => f.title).join(', ')})`);
  return { title: d.fixes[0]!.title, fixed: applyEdits(text, d.fixes[0]!.edits) };
}

test('quick fix: a choice YAML 1.1 reads as a boolean is written quoted, and `off` for a strategy becomes \'no\'', () => {
  assert.deepEqual(problems(CLEAN), []);
  const enumFix = onlyFix(CLEAN + 'save_strategy: "No"\n', 'CC102');
  assert.equal(enumFix.title, "Change to 'no'");
  assert.match(enumFix.fixed, /^save_strategy: 'no'$/m);
  assert.deepEqual(problems(enumFix.fixed), []);
  const off = onlyFix(CLEAN + 'eval_strategy: off\n', 'CC101');
  assert.equal(off.title, "Change to 'no'");
  assert.deepEqual(problems(off.fixed), []);
  // a boolean that quoted is a choice keeps the quote fix
  assert.equal(onlyFix(CLEAN + 'eval_strategy: no\n', 'CC101').title, "Quote 'no'");
});

test('quick fix: a rename whose new name is set already removes the key instead (no duplicate key, CC003)', () => {
  const v1 = 'launch:\n  trl: 1.16.0\n';
  const cases: Array<[string, string, string]> = [
    [CLEAN + 'torch_dtype: float32\ndtype: float32\n' + v1, 'CC104', "Remove 'torch_dtype'"],
    [CLEAN + 'no_cuda: true\nuse_cpu: true\n' + v1, 'CC104', "Remove 'no_cuda'"],
    [CLEAN + 'torch_dtype: float32\ndtype: float32\n', 'CC106', "Remove 'dtype' ('torch_dtype' is already set)"],
    [CLEAN + 'seed: 1\nsedd: 2\n', 'CC100', "Remove 'sedd' ('seed' is already set)"],
    [CLEAN + 'launch:\n  num_processes: 1\n  num_proceses: 1\n', 'CC100', "Remove 'num_proceses' ('num_processes' is already set)"],
  ];
  for (const [text, code, title] of cases) {
    const f = onlyFix(text, code);
    assert.equal(f.title, title);
    assert.deepEqual(problems(f.fixed), [], title);
  }
  // without the new name, the rename is still offered (and the removal for a removed field)
  const d = validateText(CLEAN + 'torch_dtype: float32\n' + v1).find((x) => x.code === 'CC104')!;
  assert.deepEqual(d.fixes!.map((f) => f.title), ["Rename to 'dtype'", "Remove 'torch_dtype'"]);
});
