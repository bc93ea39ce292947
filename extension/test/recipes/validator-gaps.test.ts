// Gaps between the validator and the runtime's load check (review of the recipe checks): list
// items and mapping values that argparse does not convert, `deepspeed:` and
// `safety.eval_recipe` files, files over 2 MB, the accelerate config reader's rough edges, the
// second `---`, did-you-mean for a key whose type does not take the value, and a folder with no
// recipe in it. Real files in a temporary folder; the CLI where the exit code matters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { decodeBytes, validateText, type Diagnostic } from '../../src/core/recipe';
import { nodeFiles } from '../../src/core/recipe/node-files';
import { REPO, applyEdits, fmt } from './helpers';

const HEAD = 'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nper_device_train_batch_size: 4\nnum_generations: 4\n';
const LAUNCH = 'launch:\n  num_processes: 2\n';
const FOUR = 'reward_funcs: [safety_format, safety_budget, refusal, repetition_penalty]\n';

function problems(ds: Diagnostic[]): Diagnostic[] { return ds.filter((d) => d.severity !== 'info'); }

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'conscience-gaps-'));
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

/** Validate `text` as the file `name` in `dir` (relative paths resolve there). */
function inDir(dir: string, text: string, name = 'recipe.yaml'): Diagnostic[] {
  const f = join(dir, name);
  writeFileSync(f, text);
  return validateText(text, { file: f, files: nodeFiles });
}

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'validate', ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// ---------------------------------------------------------------------------------------
// 1, 2: list items and mapping values are not converted by argparse

test('a list item written as text is an error at the item: 2e-1 (a string in YAML 1.1) and "1.0" in reward_weights', () => {
  const text = HEAD + FOUR + 'reward_weights: [1.0, 0.5, 1.0, 2e-1]\n' + LAUNCH;
  const ds = problems(validateText(text));
  assert.equal(ds.length, 1, ds.map(fmt).join('\n'));
  const d = ds[0]!;
  assert.equal(d.code, 'CC101');
  assert.equal(d.severity, 'error');
  assert.equal(text.slice(d.start, d.end), '2e-1');
  assert.match(d.message, /reward_weights\[3\] expects a number, got the string "2e-1".*argparse converts only a top-level value/);
  // the quick fix writes a YAML 1.1 number, which then passes
  assert.deepEqual(problems(validateText(applyEdits(text, d.fixes![0]!.edits))).map(fmt), []);

  const quoted = HEAD + FOUR + 'reward_weights: [1.0, 0.5, "1.0", 0.2]\n' + LAUNCH;
  const q = problems(validateText(quoted));
  assert.deepEqual(q.map((x) => [x.code, x.severity, quoted.slice(x.start, x.end)]), [['CC101', 'error', '"1.0"']]);
  // a top-level string is still converted by argparse: fine
  assert.deepEqual(problems(validateText(HEAD + FOUR + 'learning_rate: 1e-6\n' + LAUNCH)).map(fmt), []);
});

test('.nan and .inf in reward_weights are CC103 at the item', () => {
  for (const bad of ['.nan', '.inf', '-.inf']) {
    const text = HEAD + FOUR + `reward_weights: [1.0, 0.5, 1.0, ${bad}]\n` + LAUNCH;
    const ds = problems(validateText(text));
    assert.deepEqual(ds.map((x) => [x.code, x.severity, text.slice(x.start, x.end)]), [['CC103', 'error', bad]], ds.map(fmt).join('\n'));
    assert.match(ds[0]!.message, /not a finite number/);
  }
});

test('a number written as text inside lr_scheduler_kwargs is CC101 at the value; its fix passes', () => {
  const text = HEAD + 'reward_funcs: [refusal]\nlr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1e-6}\n' + LAUNCH;
  const ds = problems(validateText(text));
  assert.equal(ds.length, 1, ds.map(fmt).join('\n'));
  assert.equal(ds[0]!.code, 'CC101');
  assert.equal(text.slice(ds[0]!.start, ds[0]!.end), '1e-6');
  assert.equal(ds[0]!.message, 'lr_scheduler_kwargs.min_lr expects a number, got the string "1e-6". YAML 1.1 (PyYAML) reads 1e-6 as text; write it as 1.0e-6.');
  const fixed = applyEdits(text, ds[0]!.fixes![0]!.edits);
  assert.match(fixed, /min_lr: 1\.0e-6\}/);
  assert.deepEqual(problems(validateText(fixed)).map(fmt), []);
  // a real number, or quoted text the user means as text elsewhere, is left alone
  assert.deepEqual(problems(validateText(HEAD + 'reward_funcs: [refusal]\nlr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs: {min_lr: 1.0e-6}\n' + LAUNCH)).map(fmt), []);
});

test('a number PyYAML reads as text anywhere in a flat key\'s mapping or its lists is CC101 at the item, with advice PyYAML reads as a number', () => {
  // the runtime (conscience.recipe._check_text_numbers) refuses every one of these at launch
  const cases: Array<[string, string, string, string]> = [
    ['deepspeed:\n  zero_optimization: {stage: 2, reduce_bucket_size: 5e8}\n', '5e8', 'deepspeed.zero_optimization.reduce_bucket_size', '5.0e+8'],
    ['fsdp_config: {min_num_params: 1e8}\n', '1e8', 'fsdp_config.min_num_params', '1.0e+8'],
    ['fsdp_config: {min_num_params: 1.0e8}\n', '1.0e8', 'fsdp_config.min_num_params', '1.0e+8'],
    ['lr_scheduler_type: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr_rate:\n    - 1e-1\n', '1e-1', 'lr_scheduler_kwargs.min_lr_rate[0]', '1.0e-1'],
    ['model_init_kwargs: {attn_temperature: 1e-1}\n', '1e-1', 'model_init_kwargs.attn_temperature', '1.0e-1'],
    ['model_init_kwargs: {scales: [{a: -.5}]}\n', '-.5', 'model_init_kwargs.scales[0].a', '-0.5'],
  ];
  for (const [body, bad, at, num] of cases) {
    const text = HEAD + 'reward_funcs: [refusal]\n' + body + LAUNCH;
    const ds = validateText(text).filter((x) => x.severity === 'error');
    assert.deepEqual(ds.map((x) => [x.code, x.severity, text.slice(x.start, x.end)]), [['CC101', 'error', bad]], ds.map(fmt).join('\n'));
    assert.equal(ds[0]!.message, `${at} expects a number, got the string "${bad}". YAML 1.1 (PyYAML) reads ${bad} as text; write it as ${num}.`);
    const fixed = applyEdits(text, ds[0]!.fixes![0]!.edits);
    assert.deepEqual(validateText(fixed).filter((x) => x.severity === 'error').map(fmt), [], fixed);
  }
  // numbers PyYAML reads as numbers, and quoted text, are left alone
  assert.deepEqual(validateText(HEAD + 'reward_funcs: [refusal]\nfsdp_config: {min_num_params: 1.0e+8, note: \'1e8\'}\nmodel_init_kwargs: {a: [0.5, .5, 1., 100000000.0]}\n' + LAUNCH).filter((x) => x.severity === 'error').map(fmt), []);
});

test('reward_funcs: [refusal, 5] is an error (the runtime refuses it), and the CLI exits 1', () => {
  const text = HEAD + 'reward_funcs: [refusal, 5]\nreward_weights: [1.0, 1.0]\n' + LAUNCH;
  const ds = problems(validateText(text));
  assert.deepEqual(ds.map((x) => [x.code, x.severity, text.slice(x.start, x.end)]), [['CC101', 'error', '5']], ds.map(fmt).join('\n'));
  withDir((dir) => {
    const f = join(dir, 'r.yaml');
    writeFileSync(f, text);
    const r = cli(f);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /:4:25: error CC101: reward_funcs\[1\]/);
  });
});

// ---------------------------------------------------------------------------------------
// 6: deepspeed: a DeepSpeed JSON next to the recipe

test('deepspeed: a missing file, a folder or broken JSON is CC306 at the value; a good file passes', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'ds'));
    writeFileSync(join(dir, 'ds', 'ok.json'), '{"zero_optimization": {"stage": 2}}\n');
    writeFileSync(join(dir, 'ds', 'bad.json'), '{"zero_optimization": {"stage": 2,},}\n');
    const base = HEAD + 'reward_funcs: [refusal]\n' + LAUNCH;
    const at = (v: string) => {
      const text = base + `deepspeed: ${v}\n`;
      const ds = problems(inDir(dir, text));
      return { ds, text };
    };
    for (const [v, re] of [['ds/missing.json', /not found \(looked for .*ds\/missing\.json \(the recipe's folder\) and .*ds\/missing\.json \(the working folder\)\)/], ['ds', /is a folder/], ['ds/bad.json', /not valid JSON at line 1, column 35/]] as const) {
      const { ds, text } = at(v);
      assert.deepEqual(ds.map((x) => [x.code, x.severity, text.slice(x.start, x.end)]), [['CC306', 'error', v]], ds.map(fmt).join('\n'));
      assert.match(ds[0]!.message, re);
    }
    assert.deepEqual(at('ds/ok.json').ds.map(fmt), []);
    assert.deepEqual(at(join(dir, 'ds', 'ok.json')).ds.map(fmt), []);
  });
});

// ---------------------------------------------------------------------------------------
// 9: files over 2 MB

test('a file over 2 MB is reported with its real size, never as bad UTF-8 where the read stopped', () => {
  withDir((dir) => {
    const f = join(dir, 'big.yaml');
    // a 3-byte character across the 2 MiB + 1 byte the reader takes
    const head = 'model_name_or_path: x\nsystem_prompt: "';
    const pad = 'a'.repeat(2 * 1024 * 1024 - 1 - Buffer.byteLength(head));
    const body = head + pad + '€'.repeat(400_000) + '"\n';
    writeFileSync(f, body);
    const size = Buffer.byteLength(body);
    assert.ok(size > 3 * 1024 * 1024);
    // the head the reader returns decodes (no cut character)
    const bytes = nodeFiles.readBytes(f)!;
    assert.ok(!('diagnostic' in decodeBytes(bytes)), 'the head is valid UTF-8');
    const r = cli(f);
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`error CC007: File is ${(size / 1048576).toFixed(1)} MB`));
    assert.doesNotMatch(r.out, /CC006|UTF-8/);
  });
});

// ---------------------------------------------------------------------------------------
// 10: safety.eval_recipe

test('safety.eval_recipe missing, a folder, or not `kind: eval` is CC307 at its value; an eval recipe passes', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'evals'));
    writeFileSync(join(dir, 'evals', 'ok.yaml'), 'kind: eval\nmodel_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\narms: [label]\n');
    writeFileSync(join(dir, 'evals', 'train.yaml'), HEAD + 'reward_funcs: [refusal]\n');
    const with_ = (v: string) => HEAD + 'reward_funcs: [refusal]\n' + LAUNCH + `safety:\n  eval_recipe: ${v}\n  eval_steps: 4\n`;
    for (const [v, re] of [['evals/missing.yaml', /not found/], ['evals', /is a folder/], ['evals/train.yaml', /has no `kind: eval`/]] as const) {
      const text = with_(v);
      const ds = problems(inDir(dir, text));
      assert.deepEqual(ds.map((x) => [x.code, x.severity, x.line + 1, text.slice(x.start, x.end)]), [['CC307', 'error', 8, v]], ds.map(fmt).join('\n'));
      assert.match(ds[0]!.message, re);
    }
    assert.deepEqual(problems(inDir(dir, with_('evals/ok.yaml'))).map(fmt), []);
  });
});

// ---------------------------------------------------------------------------------------
test('deepspeed: a path relative to the workspace root, where runs start, passes; in neither place is CC306 naming both', () => {
  withDir((dir) => {
    mkdirSync(join(dir, '.conscience'));
    mkdirSync(join(dir, 'configs'));
    mkdirSync(join(dir, 'recipes', 'exp'), { recursive: true });
    writeFileSync(join(dir, 'configs', 'z3.json'), '{"zero_optimization": {"stage": 3}}\n');
    const base = HEAD + 'reward_funcs: [refusal]\n' + LAUNCH;
    const sub = join(dir, 'recipes', 'exp');
    assert.deepEqual(problems(inDir(sub, base + 'deepspeed: configs/z3.json\n')).map(fmt), []);
    const ds = problems(inDir(sub, base + 'deepspeed: configs/z2.json\n'));
    assert.deepEqual(ds.map((x) => x.code), ['CC306'], ds.map(fmt).join('\n'));
    assert.ok(ds[0]!.message.includes(`looked for ${join(sub, 'configs', 'z2.json')} (the recipe's folder) and ${join(dir, 'configs', 'z2.json')} (the working folder)`), ds[0]!.message);
    // next to the recipe comes first: a broken file there is reported, not the good one at the root
    mkdirSync(join(sub, 'configs'));
    writeFileSync(join(sub, 'configs', 'z3.json'), '{"zero_optimization": }\n');
    const near = problems(inDir(sub, base + 'deepspeed: configs/z3.json\n'));
    assert.ok(near.length === 1 && near[0]!.message.includes(`(${join(sub, 'configs', 'z3.json')}) is not valid JSON`), near.map(fmt).join('\n'));
  });
});

test('conscience validate: deepspeed: and deepspeed_config_file relative to the folder the CLI runs in pass; from elsewhere they are errors', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'configs'));
    mkdirSync(join(dir, 'recipes', 'exp'), { recursive: true });
    mkdirSync(join(dir, 'recipes', 'accelerate'));
    writeFileSync(join(dir, 'configs', 'z3.json'), '{"zero_optimization": {"stage": 3}}\n');
    writeFileSync(join(dir, 'recipes', 'accelerate', 'ds.yaml'), 'distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: configs/z3.json\nmixed_precision: bf16\nnum_processes: 2\n');
    writeFileSync(join(dir, 'recipes', 'exp', 'ds.yaml'), HEAD + 'reward_funcs: [refusal]\n' + LAUNCH + 'deepspeed: configs/z3.json\n');
    writeFileSync(join(dir, 'recipes', 'exp', 'acc.yaml'), HEAD + 'reward_funcs: [refusal]\nbf16: true\nlaunch:\n  num_processes: 2\n  accelerate_config: ../accelerate/ds.yaml\n');
    const run = (cwd: string) => spawnSync(process.execPath, ['--import', pathToFileURL(join(REPO, 'node_modules/tsx/dist/loader.mjs')).href, join(REPO, 'extension/src/cli/main.ts'), 'validate', join(dir, 'recipes', 'exp')], { cwd, encoding: 'utf8', timeout: 60_000 });
    const ok = run(dir);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.doesNotMatch(ok.stdout, /CC306|CC404/);
    const elsewhere = run(join(dir, 'recipes'));
    assert.equal(elsewhere.status, 1, elsewhere.stdout + elsewhere.stderr);
    assert.match(elsewhere.stdout, /error CC306: DeepSpeed config 'configs\/z3\.json' not found/);
    assert.match(elsewhere.stdout, /error CC404: deepspeed_config_file 'configs\/z3\.json' not found \(looked for .*accelerate\/configs\/z3\.json and .*recipes\/configs\/z3\.json;/);
    // the accelerate config validated on its own reports its missing file too (the editor shows
    // a referenced config's problems in that file, so it must find them there)
    const own = (cwd: string) => spawnSync(process.execPath, ['--import', pathToFileURL(join(REPO, 'node_modules/tsx/dist/loader.mjs')).href, join(REPO, 'extension/src/cli/main.ts'), 'validate', join(dir, 'recipes', 'accelerate', 'ds.yaml')], { cwd, encoding: 'utf8', timeout: 60_000 });
    assert.equal(own(dir).status, 0, own(dir).stdout);
    const ownElsewhere = own(join(dir, 'recipes'));
    assert.equal(ownElsewhere.status, 1, ownElsewhere.stdout + ownElsewhere.stderr);
    assert.match(ownElsewhere.stdout, /ds\.yaml:3:\d+: error CC404: deepspeed_config_file 'configs\/z3\.json' not found/);
  });
});

test('accelerate config: deepspeed_config_file relative to the workspace root passes though the process runs elsewhere (the extension host)', () => {
  withDir((dir) => {
    mkdirSync(join(dir, '.git'));
    mkdirSync(join(dir, 'configs'));
    mkdirSync(join(dir, 'recipes', 'accelerate'), { recursive: true });
    mkdirSync(join(dir, 'recipes', 'exp'));
    writeFileSync(join(dir, 'configs', 'z3.json'), '{"zero_optimization": {"stage": 3}}\n');
    writeFileSync(join(dir, 'recipes', 'accelerate', 'ds.yaml'), 'distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: configs/z3.json\nmixed_precision: bf16\nnum_processes: 2\n');
    assert.notEqual(process.cwd(), dir);
    const text = HEAD + 'reward_funcs: [refusal]\nbf16: true\nlaunch:\n  num_processes: 2\n  accelerate_config: ../accelerate/ds.yaml\n';
    assert.deepEqual(problems(inDir(join(dir, 'recipes', 'exp'), text)).map(fmt), []);
    rmSync(join(dir, 'configs', 'z3.json'));
    const ds = problems(inDir(join(dir, 'recipes', 'exp'), text)).filter((d) => d.code === 'CC404');
    assert.equal(ds.length, 1, ds.map(fmt).join('\n'));
    assert.ok(ds[0]!.message.includes(`looked for ${join(dir, 'recipes', 'accelerate', 'configs', 'z3.json')} and ${join(dir, 'configs', 'z3.json')};`), ds[0]!.message);
  });
});

test('true/false for the text keys TRL and transformers read as booleans is no error; for other text keys it still is', () => {
  const trl1 = 'launch:\n  trl: 1.16.0\n';
  for (const [text, kind] of [
    [HEAD + FOUR + 'scale_rewards: false\n' + trl1, undefined],
    [HEAD + FOUR + 'scale_rewards: true\n' + trl1, undefined],
    [HEAD + FOUR + 'trackio_static_space_id: false\n' + trl1, undefined],
    [HEAD + FOUR + 'trackio_static_space_id: me/space\n' + trl1, undefined],
    ['kind: sft\nmodel_name_or_path: x\ntrackio_static_space_id: false\n' + trl1, 'sft'],
    [HEAD + FOUR + LAUNCH + 'resume_from_checkpoint: true\n', undefined],
    [HEAD + FOUR + LAUNCH + 'resume_from_checkpoint: false\n', undefined],
    [HEAD + FOUR + LAUNCH + 'fsdp: false\n', undefined],
  ] as const) {
    const ds = validateText(text).filter((d) => d.severity === 'error' || d.code.startsWith('CC10'));
    assert.deepEqual(ds.filter((d) => d.code !== 'CC105').map(fmt), [], `${kind ?? 'grpo'}: ${text}`);
  }
  const no = validateText(HEAD + FOUR + LAUNCH + 'hub_model_id: no\n').filter((d) => d.code === 'CC101');
  assert.equal(no.length, 1);
  assert.match(no[0]!.message, /hub_model_id expects a string or null, got false/);
  // TRL 0.18's scale_rewards is a boolean: text is still refused there
  assert.ok(validateText(HEAD + FOUR + LAUNCH + 'scale_rewards: group\n').some((d) => d.code === 'CC101' && d.severity === 'error'));
});

// 11: the accelerate config reader

test('accelerate config: deepspeed_config_file that does not exist is an error in that file', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'acc.yaml'), 'distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: ds_missing.json\nmixed_precision: bf16\nnum_processes: 2\n');
    const ds = problems(inDir(dir, HEAD + 'reward_funcs: [refusal]\nlaunch:\n  num_processes: 2\n  accelerate_config: acc.yaml\n'));
    const inFile = ds.filter((d) => d.file === join(dir, 'acc.yaml'));
    assert.deepEqual(inFile.map((d) => [d.code, d.severity, d.line + 1]), [['CC404', 'error', 3]], ds.map(fmt).join('\n'));
    assert.match(inFile[0]!.message, /deepspeed_config_file 'ds_missing\.json' not found/);
    assert.ok(ds.some((d) => d.code === 'CC400' && !d.file), 'the recipe says its accelerate config has errors');
    writeFileSync(join(dir, 'ds_missing.json'), '{"zero_optimization": {"stage": 2}}');
    assert.deepEqual(problems(inDir(dir, HEAD + 'reward_funcs: [refusal]\nlaunch:\n  num_processes: 2\n  accelerate_config: acc.yaml\n')).map(fmt), []);
  });
});

test('accelerate_config: a number is the path the runtime uses (checked), an empty value is no config, a folder is said to be one', () => {
  withDir((dir) => {
    const rec = (v: string) => HEAD + 'reward_funcs: [refusal]\nlaunch:\n  num_processes: 2\n' + `  accelerate_config: ${v}\n`;
    const num = problems(inDir(dir, rec('5')));
    assert.ok(num.some((d) => d.code === 'CC302' && d.severity === 'error' && /'5' not found/.test(d.message)), num.map(fmt).join('\n'));
    assert.deepEqual(problems(inDir(dir, rec('""'))).map(fmt), []);
    mkdirSync(join(dir, 'accelerate'));
    const folder = problems(inDir(dir, rec('accelerate')));
    assert.deepEqual(folder.map((d) => d.code), ['CC302']);
    assert.match(folder[0]!.message, /is a folder/);
    assert.doesNotMatch(folder[0]!.message, /not found/);
  });
});

test('accelerate_config: a binary file, broken JSON in a .json file, a recipe instead of a config: one clear error each', () => {
  withDir((dir) => {
    const rec = (v: string) => HEAD + 'reward_funcs: [refusal]\nlaunch:\n  num_processes: 2\n' + `  accelerate_config: ${v}\n`;
    writeFileSync(join(dir, 'bin.yaml'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
    const bin = problems(inDir(dir, rec('bin.yaml')));
    assert.deepEqual(bin.map((d) => d.code), ['CC400'], bin.map(fmt).join('\n'));
    assert.match(bin[0]!.message, /binary file/);
    assert.doesNotMatch(bin[0]!.message, /\.yaml recipe/);

    // json.load refuses trailing commas; YAML would read it as a flow mapping
    writeFileSync(join(dir, 'acc.json'), '{"distributed_type": "MULTI_GPU", "num_processes": 2,}\n');
    const json = problems(inDir(dir, rec('acc.json')));
    assert.ok(json.length >= 1 && json.every((d) => d.code === 'CC400'), json.map(fmt).join('\n'));
    assert.match(json.find((d) => !d.file)!.message, /not valid JSON/);
    writeFileSync(join(dir, 'acc.json'), '{"distributed_type": "MULTI_GPU", "num_processes": 2}\n');
    assert.deepEqual(problems(inDir(dir, rec('acc.json'))).map(fmt), []);

    writeFileSync(join(dir, 'other.yaml'), HEAD + 'reward_funcs: [refusal]\nlearning_rate: 1.0e-5\nbeta: 0.04\n' + LAUNCH);
    const recipe = problems(inDir(dir, rec('other.yaml')));
    assert.deepEqual(recipe.map((d) => d.code), ['CC400'], recipe.map(fmt).join('\n'));
    assert.match(recipe[0]!.message, /is a recipe .*not an accelerate config/);
  });
});

// ---------------------------------------------------------------------------------------
// 13, 14

test('several documents: CC009 at the second `---`, where yaml.safe_load points', () => {
  const text = HEAD + 'reward_funcs: [refusal]\n' + LAUNCH + '--- # second\nbeta: 0.1\n';
  const d = validateText(text).find((x) => x.code === 'CC009');
  assert.ok(d);
  assert.equal(d.line + 1, 7);
  assert.equal(d.column, 0);
  assert.ok(text.slice(d.start).startsWith('---'));
  // an empty second document is refused by safe_load too
  const empty = validateText(HEAD + 'reward_funcs: [refusal]\n' + LAUNCH + '---\n').find((x) => x.code === 'CC009');
  assert.ok(empty);
  assert.equal(empty.line + 1, 7);
});

test("did-you-mean for an unknown key whose suggestion does not take the value: a question, no quick fix", () => {
  const text = HEAD + 'reward_funcs: [refusal]\nk16: 16\nnum_generation: 4\n' + LAUNCH;
  const ds = validateText(text).filter((d) => d.code === 'CC100');
  const k16 = ds.find((d) => text.slice(d.start, d.end) === 'k16')!;
  assert.match(k16.message, /Did you mean 'bf16'\? It takes true or false, not the number 16/);
  assert.equal(k16.fixes?.length ?? 0, 0);
  // a suggestion that takes the value keeps its quick fix
  const ng = ds.find((d) => text.slice(d.start, d.end) === 'num_generation')!;
  assert.ok(ng.fixes && ng.fixes.length === 1);
  // in a section too
  const sec = HEAD + 'reward_funcs: [refusal]\nlaunch:\n  num_processes: 2\n  cpus: [a]\n';
  const c = validateText(sec).find((d) => d.code === 'CC100');
  assert.ok(c && /Did you mean 'cpu'\? It takes/.test(c.message) && !(c.fixes?.length), c && fmt(c));
});

// ---------------------------------------------------------------------------------------
// an empty folder

test('conscience validate FOLDER with no recipe in it is an error (exit 1), not "0 error(s)"', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'empty'));
    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, 'other', 'x.yaml'), 'a: 1\n');
    const r = cli(join(dir, 'empty'), join(dir, 'other'));
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /error CC010: No recipe found in folder '.*empty'/);
    assert.match(r.out, /error CC010: No recipe found in folder '.*other'/);
    // a folder with a recipe is not reported
    writeFileSync(join(dir, 'other', 'r.yaml'), HEAD + 'reward_funcs: [refusal]\n' + LAUNCH);
    const ok = cli(join(dir, 'other'));
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.doesNotMatch(ok.out, /No recipe found/);
  });
});

test('CC308: evaluation during training under ZeRO-3 from the accelerate config, its deepspeed_config_file or the recipe\'s deepspeed:; ZeRO-2 passes', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'ev.yaml'), 'kind: eval\nmodel_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\narms: [label]\n');
    writeFileSync(join(dir, 'ds3.json'), '{"zero_optimization": {"stage": 3}}\n');
    writeFileSync(join(dir, 'ds2.json'), '{"zero_optimization": {"stage": 2}}\n');
    for (const n of [2, 3]) {
      writeFileSync(join(dir, `acc-file${n}.yaml`), `distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: ds${n}.json\nnum_processes: 2\n`);
      writeFileSync(join(dir, `acc${n}.yaml`), `distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: ${n}\nnum_processes: 2\n`);
    }
    const EVAL = 'safety:\n  eval_recipe: ev.yaml\n  eval_steps: 2\n';
    const codes = (extra: string) => inDir(dir, HEAD + 'reward_funcs: [refusal]\n' + extra + EVAL).filter((d) => d.code === 'CC308');
    const acc = (f: string) => `launch:\n  num_processes: 2\n  accelerate_config: ${f}\n`;
    for (const [extra, why] of [
      [acc('acc3.yaml'), /the accelerate config trains with ZeRO stage 3/],
      [acc('acc-file3.yaml'), /the accelerate config trains with ZeRO stage 3/],
      [LAUNCH + 'deepspeed: ds3.json\n', /deepspeed: has zero_optimization\.stage 3/],
      [LAUNCH + 'deepspeed: {zero_optimization: {stage: 3}}\n', /deepspeed: has zero_optimization\.stage 3/],
    ] as const) {
      const ds = codes(extra);
      assert.equal(ds.length, 1, `${extra}: ${ds.map(fmt).join('\n')}`);
      assert.match(ds[0]!.message, why);
    }
    // base64 of the JSON, which TrainingArguments takes as the config itself
    const b64 = Buffer.from('{"zero_optimization": {"stage": 3}}').toString('base64');
    assert.equal(codes(LAUNCH + `deepspeed: ${b64}\n`).length, 1);
    // accelerate reads deepspeed_config only under DEEPSPEED: a MULTI_GPU config with one is not ZeRO-3
    writeFileSync(join(dir, 'ddp.yaml'), 'distributed_type: MULTI_GPU\ndeepspeed_config:\n  zero_stage: 3\nnum_processes: 2\n');
    // zero_stage 2 beside a file of stage 3: the runtime refuses it, so does the validator
    writeFileSync(join(dir, 'both.yaml'), 'distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n  deepspeed_config_file: ds3.json\nnum_processes: 2\n');
    assert.equal(codes(acc('both.yaml')).length, 1);
    for (const extra of [acc('acc2.yaml'), acc('acc-file2.yaml'), acc('ddp.yaml'), LAUNCH + 'deepspeed: ds2.json\n']) assert.deepEqual(codes(extra).map(fmt), [], extra);
    // CC221 sees a deepspeed_config_file's stage 3 too
    const vllm = inDir(dir, HEAD + 'reward_funcs: [refusal]\nuse_vllm: true\nvllm_mode: colocate\nds3_gather_for_generation: false\n' + acc('acc-file3.yaml'));
    assert.ok(vllm.some((d) => d.code === 'CC221'), vllm.map(fmt).join('\n'));
  });
});
