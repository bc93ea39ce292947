// A recipe is checked against the TRL line it is written for: `launch.trl`, else the TRL the
// target had at its last launch, else the default (0.18.2). Diagnostics, hover, completion and
// quick fixes follow that line and say which one they assume; a key the other line spells
// differently gets a quick fix to this line's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateText, chooseSchema, parseYaml, schemaForVersion } from '../../src/core/recipe';
import { completionsAt, hoverAt } from '../../src/core/recipe/assist';
import { applyEdits, fmt } from './helpers';

const BODY = `model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct
reward_funcs: [safety_format, refusal]
per_device_train_batch_size: 4
num_generations: 4
torch_dtype: bfloat16
max_prompt_length: 256
warmup_ratio: 0.1
`;
const V018 = BODY + 'launch:\n  num_processes: 2\n  trl: 0.18.2\n';
const V1 = BODY + 'launch:\n  num_processes: 2\n  trl: 1.16.0\n';

test('the same recipe is clean for TRL 0.18.2 and gets one error per renamed or removed key for TRL 1.16.0', () => {
  assert.deepEqual(validateText(V018).map(fmt), []);
  const ds = validateText(V1);
  assert.deepEqual(ds.map((d) => [d.code, d.line + 1]), [['CC104', 5], ['CC104', 6], ['CC104', 7]], ds.map(fmt).join('\n'));
  for (const d of ds) assert.match(d.message, /checked against TRL 1\.16\.0 \(launch\.trl\)/);
});

test('quick fixes rename to the 1.x names, and the fixed recipe is clean for 1.x', () => {
  let text = V1;
  for (const key of ['torch_dtype', 'warmup_ratio']) {
    const d = validateText(text).find((x) => x.code === 'CC104' && text.slice(x.start, x.end) === key)!;
    assert.ok(d, key);
    assert.match(d.fixes![0]!.title, /^Rename to '(dtype|warmup_steps)'$/);
    text = applyEdits(text, d.fixes![0]!.edits);
  }
  const mpl = validateText(text).find((x) => x.code === 'CC104')!;
  assert.equal(mpl.fixes![0]!.title, "Remove 'max_prompt_length'");
  text = applyEdits(text, mpl.fixes![0]!.edits);
  assert.deepEqual(validateText(text).map(fmt), []);
  assert.match(text, /^dtype: bfloat16$/m);
  assert.match(text, /^warmup_steps: 0\.1$/m);
  // ...and the 1.x names are errors for 0.18, with a fix back to its names.
  const back = text.replace('trl: 1.16.0', 'trl: 0.18.2');
  const d = validateText(back).find((x) => x.code === 'CC106')!;
  assert.ok(d);
  assert.equal(back.slice(d.start, d.end), 'dtype');
  assert.equal(d.fixes![0]!.title, "Rename to 'torch_dtype'");
});

test('without launch.trl: the host\'s recorded TRL is used, else the default, and the messages say which', () => {
  const text = BODY + 'launch:\n  num_processes: 2\n';
  const dflt = validateText(text);
  assert.deepEqual(dflt.map((d) => [d.code, d.severity]), [['CC105', 'info'], ['CC105', 'info'], ['CC105', 'info']]);
  assert.match(dflt[0]!.message, /TRL 0\.18\.2 \(the default: the recipe does not set launch\.trl\)/);
  const host = validateText(text, { trl: '1.16.0' });
  assert.equal(host.filter((d) => d.code === 'CC104').length, 3);
  assert.match(host[0]!.message, /TRL 1\.16\.0 \(the target's TRL: its stack or its last run\)/);
  // launch.trl wins over the host's TRL.
  assert.deepEqual(validateText(V018, { trl: '1.16.0' }).map(fmt), []);
});

test('versions pick a line: exact, major.minor, a 1.x release, and an unsupported one with a warning and fixes', () => {
  assert.equal(schemaForVersion('0.18').schema.trlVersion, '0.18.2');
  assert.equal(schemaForVersion('1.12.0').schema.trlVersion, '1.16.0');
  assert.equal(schemaForVersion('1').schema.trlVersion, '1.16.0');
  assert.equal(schemaForVersion('0.26.1').schema.trlVersion, '1.16.0');
  assert.equal(schemaForVersion('0.20.0').schema.trlVersion, '0.18.2');
  const c = chooseSchema(parseYaml('launch:\n  trl: "0.9.6"\n').root);
  assert.equal(c.approximate, true);
  const text = 'model_name_or_path: x\nreward_funcs: [refusal]\nlaunch:\n  trl: 0.9.6\n';
  const d = validateText(text).find((x) => x.code === 'CC107')!;
  assert.ok(d);
  assert.equal(d.severity, 'warning');
  assert.deepEqual(d.fixes!.map((f) => f.title), ['Set launch.trl to 0.18.2', 'Set launch.trl to 1.16.0']);
  assert.deepEqual(validateText(applyEdits(text, d.fixes![1]!.edits)).map(fmt), []);
});

test('TRL 1.x rules: C4 in 1.x words, loss types of 1.x, and checks 0.18 does not have', () => {
  const c4 = validateText('model_name_or_path: x\nreward_funcs: [refusal]\nper_device_train_batch_size: 4\nnum_generations: 3\nlaunch:\n  trl: 1.16.0\n').find((d) => d.code === 'CC204')!;
  assert.match(c4.message, /^generation_batch_size \(4\) must be divisible by num_generations \(3\)\./);
  const lt = 'model_name_or_path: x\nreward_funcs: [refusal]\nloss_type: dapo\nlaunch:\n  trl: ';
  assert.ok(validateText(lt + '0.18.2\n').some((d) => d.code === 'CC209'), 'dapo is not a 0.18 loss');
  assert.ok(!validateText(lt + '1.16.0\n').some((d) => d.code === 'CC209'), 'dapo is a 1.x loss');
  const auto = 'model_name_or_path: x\nreward_funcs: [refusal]\nauto_find_batch_size: true\nlaunch:\n  trl: ';
  assert.ok(!validateText(auto + '0.18.2\n').some((d) => d.code === 'CC224'));
  assert.ok(validateText(auto + '1.16.0\n').some((d) => d.code === 'CC224'));
});

test('hover and completion follow launch.trl and name the TRL version, even while the YAML does not parse', () => {
  const broken = V1 + 'oops: [\n';
  const h = hoverAt(broken, broken.indexOf('num_generations') + 2)!;
  assert.match(h.markdown, /TRL 1\.16\.0/);
  const h018 = hoverAt(V018, V018.indexOf('num_generations') + 2)!;
  assert.match(h018.markdown, /TRL 0\.18\.2/);
  // (a recipe without torch_dtype, since keys already present are not offered again)
  const bare = (v: string) => `model_name_or_path: x\nlaunch:\n  trl: ${v}\ndty`;
  const keys1 = completionsAt(bare('1.16.0'), bare('1.16.0').length).map((c) => c.label);
  const keys018 = completionsAt(bare('0.18.2'), bare('0.18.2').length).map((c) => c.label);
  assert.ok(keys1.includes('dtype') && !keys1.includes('torch_dtype'));
  assert.ok(keys018.includes('torch_dtype') && !keys018.includes('dtype'));
  assert.ok(completionsAt(V1 + 'x', V1.length + 1).every((c) => c.kind !== 'key' || /TRL 1\.16\.0/.test(c.detail ?? '')));
});

test('a kind: sft recipe is checked against the SFT schema of its TRL line: launch.trl, else the host, else 0.18.2', () => {
  const body = 'kind: sft\nmodel_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\ndtype: bfloat16\nmax_length: 512\n';
  const v1 = body + 'launch:\n  trl: 1.16.0\n';
  assert.deepEqual(validateText(v1).map(fmt), []);
  assert.deepEqual(validateText(body, { trl: '1.16.0' }).map(fmt), []);
  const d = validateText(body).find((x) => x.code === 'CC106')!;
  assert.ok(d, 'dtype is the 1.x name: an error for the default 0.18.2');
  assert.equal(d.fixes![0]!.title, "Rename to 'torch_dtype'");
  // the 0.18 names, checked as 1.x: renamed with a fix, in SFTConfig's words
  const old = 'kind: sft\nmodel_name_or_path: x\ntorch_dtype: bfloat16\nmax_seq_length: 512\nlaunch:\n  trl: 1.16.0\n';
  const ds = validateText(old);
  assert.deepEqual(ds.map((x) => [x.code, x.line + 1, x.fixes?.[0]?.title]), [['CC104', 3, "Rename to 'dtype'"], ['CC104', 4, "Rename to 'max_length'"]], ds.map(fmt).join('\n'));
  assert.match(ds[0]!.message, /checked against TRL 1\.16\.0 \(launch\.trl\)/);
  assert.match(validateText('kind: sft\nmodel_name_or_path: x\nnum_generations: 4\nlaunch:\n  trl: 1.16.0\n')[0]!.message, /TRL 1\.16\.0's SFTConfig\/ModelConfig/);
  assert.match(hoverAt(v1, v1.indexOf('max_length') + 2)!.markdown, /TRL 1\.16\.0/);
});
