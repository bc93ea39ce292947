// Diagnostics' rough edges (issue #17 item 7) and YAML merge keys (issue #16): an empty value is
// reported at its key, a num_generations error offers one fix per valid value, and `<<:` is
// applied as PyYAML applies it instead of being an unknown key that hides the real error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateText } from '../../src/core/recipe';
import { formatError } from '../../src/core/recipe/rules';
import { REPO, applyEdits, fmt } from './helpers';

const HEAD = 'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nreward_funcs: [refusal]\n';

test('an empty value is reported at its key (line and column of the key), in the editor core and the CLI', () => {
  const text = HEAD + 'per_device_train_batch_size: 4\nwarmup_ratio:\nnum_generations: 4\nlaunch:\n  num_processes: 2\n  main_process_port:\n';
  const ds = validateText(text).filter((d) => d.code === 'CC101');
  assert.deepEqual(ds.map((d) => [d.line + 1, d.column + 1, d.endColumn + 1]), [[4, 1, 13]], ds.map(fmt).join('\n'));
  assert.match(ds[0]!.message, /warmup_ratio expects a number, got an empty value/);
  assert.equal(text.slice(ds[0]!.start, ds[0]!.end), 'warmup_ratio');
  // main_process_port is Optional[int]: empty is fine there.
  const dir = mkdtempSync(join(tmpdir(), 'conscience-empty-'));
  try {
    const f = join(dir, 'r.yaml');
    writeFileSync(f, text);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'validate', f], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    assert.match(r.stdout, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:1: error CC101: warmup_ratio expects a number`));
    assert.doesNotMatch(r.stdout, /:1:1: error CC101/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('an empty value in a section is reported at its key too', () => {
  const text = HEAD + 'launch:\n  num_processes:\n';
  const d = validateText(text).find((x) => x.code === 'CC101');
  assert.ok(d);
  assert.equal(text.slice(d.start, d.end), 'num_processes');
  assert.equal(d.line + 1, 4);
  assert.equal(d.column + 1, 3);
});

test('num_generations: one quick fix per valid value, the nearest first, and each one fixes the recipe', () => {
  // 1 process x 4 x 2 = 8: valid num_generations are 2, 4, 8.
  const text = HEAD + 'per_device_train_batch_size: 4\ngradient_accumulation_steps: 2\nnum_generations: 3\nlaunch:\n  num_processes: 1\n';
  const d = validateText(text).find((x) => x.code === 'CC204');
  assert.ok(d);
  assert.match(d.message, /\[2, 4, 8\]/);
  assert.deepEqual(d.fixes!.map((f) => f.title), ['Set num_generations to 2', 'Set num_generations to 4', 'Set num_generations to 8']);
  for (const f of d.fixes!) {
    const fixed = applyEdits(text, f.edits);
    assert.deepEqual(validateText(fixed).filter((x) => x.severity === 'error').map(fmt), [], `${f.title} leaves no error`);
  }
});

test('num_generations: 1 offers every valid value too (C3), and a large batch offers at most 12', () => {
  const text = HEAD + 'per_device_train_batch_size: 8\nnum_generations: 1\nlaunch:\n  num_processes: 1\n';
  const d = validateText(text).find((x) => x.code === 'CC203');
  assert.ok(d);
  assert.deepEqual(d.fixes!.map((f) => f.title), ['Set num_generations to 2', 'Set num_generations to 4', 'Set num_generations to 8']);
  const big = HEAD + 'per_device_train_batch_size: 720\nnum_generations: 7\nlaunch:\n  num_processes: 1\n';
  const e = validateText(big).find((x) => x.code === 'CC204');
  assert.ok(e);
  assert.equal(e.fixes!.length, 12);
  assert.equal(e.fixes![0]!.title, 'Set num_generations to 6');
});

test('merge key: `<<:` is not an unknown key, and the batch error in the merged values is reported', () => {
  const text = HEAD + 'launch: &shared\n  num_processes: 2\n<<: {per_device_train_batch_size: 3, num_generations: 4}\n';
  const ds = validateText(text);
  assert.ok(!ds.some((d) => d.code === 'CC100'), ds.map(fmt).join('\n'));
  const c4 = ds.find((d) => d.code === 'CC204');
  assert.ok(c4, `the batch error is reported:\n${ds.map(fmt).join('\n')}`);
  assert.match(c4.message, /\(2 x 3 x 1\)/);
  assert.equal(c4.line + 1, 5, 'at num_generations inside the merged mapping');
});

test('merge key: keys set in the mapping win over merged ones, earlier sources over later (the YAML merge spec; the runtime\'s _RecipeLoader merges the same: loader-parity.test.ts)', () => {
  const text = HEAD + 'launch: &a\n  num_processes: 4\nsafety: &b\n  max_budget: 16\n'
    + 'per_device_train_batch_size: 2\nnum_generations: 4\n<<: [{num_generations: 3}, {num_generations: 5}]\n';
  // Own num_generations (4) wins: 4 x 2 = 8 divisible by 4, so no C4 error.
  assert.deepEqual(validateText(text).filter((d) => d.severity === 'error').map(fmt), []);
  const noOwn = text.replace('num_generations: 4\n<<', '<<');
  const c4 = validateText(noOwn).find((d) => d.code === 'CC204');
  assert.ok(c4);
  assert.match(c4.message, /generations per prompt \(3\)/, 'the first source wins');
});

test('merge key: a merged value with a wrong type is reported once, where it is written', () => {
  const src = HEAD + 'env: &m\n  num_processes: two\nlaunch:\n  <<: *m\n';
  const ds = validateText(src).filter((d) => d.code === 'CC101');
  assert.equal(ds.length, 1, ds.map(fmt).join('\n'));
  assert.equal(ds[0]!.line + 1, 4);
  assert.equal(src.slice(ds[0]!.start, ds[0]!.end), 'two');
});

test('merge key: a value that is not a mapping is an error at the value (PyYAML rejects it)', () => {
  const d = validateText(HEAD + '<<: 3\n').find((x) => x.code === 'CC101');
  assert.ok(d);
  assert.match(d.message, /merge key/);
  assert.equal(d.line + 1, 3);
});

test('merge key: nested merges are bounded work (10 levels of 10 merged mappings)', () => {
  const lines = ['model_name_or_path: x', 'reward_funcs: [refusal]', 'env:'];
  lines.push('  l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}');
  for (let i = 1; i < 10; i++) lines.push(`  l${i}: &l${i} {<<: [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(', ')}], k${i}: ${i}}`);
  lines.push('launch:', '  <<: *l9');
  const t0 = performance.now();
  const ds = validateText(lines.join('\n') + '\n');
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.ok(ds.some((d) => d.code === 'CC100' && /in the launch: section/.test(d.message)), 'the merged keys are checked');
});

test('safety instructions: placeholders and braces as str.format(budget=, open_tag=, close_tag=) reads them (CC227)', () => {
  const cases: Array<[string, string | undefined]> = [
    ['{budget} tokens in {open_tag}...{close_tag}; {{literal}}', undefined],
    ['{budget:>4} {open_tag!r} {budget:{budget}d}', undefined],
    ['{nope}', "KeyError: 'nope'"],
    ['{budget', "ValueError: expected '}' before end of string"],
    ['}', "ValueError: Single '}' encountered in format string"],
    ['a {', "ValueError: Single '{' encountered in format string"],
    ['{}', 'IndexError: Replacement index 0 out of range for positional args tuple'],
    ['{budget!x}', 'ValueError: Unknown conversion specifier x'],
    ['{budget:s}', "ValueError: Unknown format code 's' for object of type 'int'"],
    ['{open_tag:d}', "ValueError: Unknown format code 'd' for object of type 'str'"],
  ];
  for (const [v, err] of cases) assert.equal(formatError(v), err, v);
  for (const key of ['budget_instruction', 'zero_budget_instruction']) {
    const text = `model_name_or_path: m\nreward_funcs: [refusal]\nper_device_train_batch_size: 4\nnum_generations: 4\nsafety:\n  ${key}: 'Use {budget} tokens }'\n`;
    const d = validateText(text).filter((x) => x.severity === 'error');
    assert.deepEqual(d.map((x) => x.code), ['CC227'], key);
    assert.equal(text.slice(d[0]!.start, d[0]!.end), "'Use {budget} tokens }'");
    assert.match(d[0]!.message, new RegExp(`^safety\\.${key}: ValueError: Single '\\}'`));
  }
});

test('a number or boolean for a key that takes a list or one string is an error (the runtime refuses it), not the warning a number for text is; null is an error only where the runtime cannot use it', () => {
  for (const [body, needle] of [
    ['reward_funcs: 5\n', /^reward_funcs expects a list or a string, got the number 5\. Quote it if it is meant as text: '5'\.$/],
    ['reward_funcs: true\n', /^reward_funcs expects a list or a string, got true /],
    ['reward_funcs: null\n', /^reward_funcs expects a list or a string, got null/],
    ['reward_funcs: [refusal]\nlora_target_modules: 5\n', /^lora_target_modules expects a list, a string or null, got the number 5\./],
    ['reward_funcs: [refusal]\ninclude_for_metrics: null\n', /^include_for_metrics expects a list, got null/],
  ] as const) {
    const ds = validateText('model_name_or_path: x\n' + body).filter((d) => d.code === 'CC101');
    assert.equal(ds.length, 1, body + ds.map(fmt).join('\n'));
    assert.equal(ds[0]!.severity, 'error', body);
    assert.match(ds[0]!.message, needle);
  }
  // a number for a plain text key stays a warning (it may be meant as text)
  assert.equal(validateText('model_name_or_path: x\nreward_funcs: [refusal]\nsystem_prompt: 5\n').find((d) => d.code === 'CC101')?.severity, 'warning');
  // transformers reads `debug: null` as no debug options; `lora_target_modules: null` is its default
  assert.deepEqual(validateText('model_name_or_path: x\nreward_funcs: [refusal]\ndebug: null\nlora_target_modules: null\n').map(fmt), []);
});

test('a single value for a list key: the quick fix wraps it, and the keys that take one string get no error', () => {
  const text = 'model_name_or_path: x\nreward_funcs: [refusal]\nlabel_names: "labels"\nreward_weights: 2.0\n';
  let fixed = text;
  for (const key of ['label_names', 'reward_weights']) {
    const d = validateText(fixed).find((x) => x.code === 'CC101' && fixed.slice(x.start, x.end) !== '' && fixed.lastIndexOf(key, x.start) === fixed.lastIndexOf('\n', x.start) + 1)!;
    assert.ok(d, key);
    assert.match(d.message, /expects a list or null, got .* Write it as a list: \[/);
    fixed = applyEdits(fixed, d.fixes![0]!.edits);
  }
  assert.match(fixed, /^label_names: \["labels"\]$/m);
  assert.deepEqual(validateText(fixed).map(fmt), []);
  assert.deepEqual(validateText('model_name_or_path: x\nreward_funcs: refusal\nlora_target_modules: all-linear\n').map(fmt), []);
  // an eval recipe's one arm is checked as an arm
  assert.deepEqual(validateText('kind: eval\nmodel_name_or_path: x\narms: fixed:16\n').map(fmt), []);
  const arm = validateText('kind: eval\nmodel_name_or_path: x\narms: lable\n').find((x) => x.code === 'CC500')!;
  assert.equal(arm.line + 1, 3);
  assert.equal(arm.fixes![0]!.title, "Change to 'label'");
});

test('a YAML 1.1 date where text is expected is CC101 with a fix that quotes it, after which the recipe is clean', () => {
  const text = HEAD + 'run_name: 2024-05-01\nsafety:\n  open_tag: 2024-05-01 10:00:00\n';
  const ds = validateText(text).filter((d) => d.code === 'CC101');
  assert.deepEqual(ds.map((d) => d.line + 1), [3, 5], ds.map(fmt).join('\n'));
  assert.match(ds[0]!.message, /run_name expects a string or null, got a date \(YAML 1\.1 reads `2024-05-01` as a date\)\. Quote it to keep the text: '2024-05-01'\./);
  let fixed = text;
  for (const d of [...ds].reverse()) fixed = applyEdits(fixed, d.fixes![0]!.edits);
  assert.equal(fixed, HEAD + "run_name: '2024-05-01'\nsafety:\n  open_tag: '2024-05-01 10:00:00'\n");
  assert.deepEqual(validateText(fixed).filter((d) => d.severity === 'error').map(fmt), []);
});
