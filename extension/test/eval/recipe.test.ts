// Eval recipe validation (core/eval/recipe.ts) through the one validator entry point
// (core/recipe validateText dispatches `kind: eval` to it): diagnostics at the key or value.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateText } from '../../src/core/recipe';
import { EVAL_CODES } from '../../src/core/eval/recipe';
import { RULES } from '../../src/core/recipe/rules';
import { nodeFiles } from '../../src/core/recipe/node-files';

const REPO = join(import.meta.dirname, '..', '..', '..');
const at = (text: string, needle: string) => {
  const i = text.indexOf(needle);
  const before = text.slice(0, i);
  return { line: before.split('\n').length - 1, column: i - before.lastIndexOf('\n') - 1 };
};

describe('eval recipe validation', () => {
  it('the shipped eval recipes have no findings', () => {
    for (const f of ['recipes/demo/eval-tiny.yaml', 'recipes/qwen2.5-1.5b-instruct/eval.yaml']) {
      const d = validateText(readFileSync(join(REPO, f), 'utf8'), { file: join(REPO, f) });
      assert.deepEqual(d.map((x) => `${x.code} ${x.message}`), [], f);
    }
  });

  it('an unknown arm is an error at the arm, with a did-you-mean fix', () => {
    const text = 'kind: eval\nmodel_name_or_path: m\narms: [allocator, lable, "fixed:12", fixed:x]\n';
    const d = validateText(text);
    assert.deepEqual(d.map((x) => x.code), ['CC500', 'CC500']);
    assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, 'lable'));
    assert.match(d[0]!.message, /Unknown arm 'lable'.*Did you mean 'label'\?/);
    assert.equal(d[0]!.fixes?.[0]?.edits[0]?.newText, 'label');
    assert.deepEqual({ line: d[1]!.line, column: d[1]!.column }, at(text, 'fixed:x'));
  });

  it('the same arm written twice is a warning at the second, fixed:064 being fixed:64 (the runtime runs it once)', () => {
    const text = 'kind: eval\nmodel_name_or_path: m\narms: ["fixed:64", "fixed:064", none, none, "fixed: 64"]\n';
    const d = validateText(text);
    assert.deepEqual(d.map((x) => `${x.severity} ${x.code} ${x.message}`), [
      "warning CC501 Arm 'fixed:064' is listed twice (as fixed:64); it runs once.",
      "warning CC501 Arm 'none' is listed twice; it runs once.",
      "error CC500 Unknown arm 'fixed: 64': use allocator, label, fixed:N (N >= 0 tokens) or none.",
    ]);
  });

  it('an unknown key (top level or in a section) is CC100 at the key, not a TRL error', () => {
    const text = 'kind: eval\nmodel_name_or_path: m\nbatchsize: 4\nreward_funcs: [refusal]\njudge:\n  knd: llm\n';
    const d = validateText(text);
    assert.deepEqual(d.map((x) => [x.code, x.line]), [['CC100', 2], ['CC100', 3], ['CC100', 5]]);
    assert.match(d[0]!.message, /Unknown key `batchsize` in an eval recipe\. Did you mean 'batch_size'\?/);
    assert.match(d[2]!.message, /`judge\.knd`.*Did you mean 'kind'\?/);
  });

  it('types, choices and the endpoint/judge rules', () => {
    const text = 'kind: eval\nengine: openai\nmax_new_tokens: lots\ntorch_dtype: fp16\njudge:\n  kind: llm\n';
    const d = validateText(text);
    const codes = d.map((x) => `${x.code}@${x.line}`);
    assert.deepEqual(codes, ['CC504@0', 'CC502@1', 'CC101@2', 'CC102@3', 'CC503@5']);
  });

  it('more than one process is CC506 at the value, as the runtime refuses it', () => {
    const text = 'kind: eval\nmodel_name_or_path: m\nlaunch:\n  num_processes: 2\n  cpu: true\n';
    const d = validateText(text);
    assert.deepEqual(d.map((x) => `${x.code}@${x.line}`), ['CC506@3']);
    assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, '2\n'));
    assert.deepEqual(validateText('kind: eval\nmodel_name_or_path: m\nlaunch:\n  num_processes: 1\n'), []);
  });

  it('ranges of EvalConfig, endpoint: and judge: are CC103 at the value, as __post_init__ refuses them', () => {
    const cases: Array<[string, string]> = [
      ['temperature: -1\n', '-1'], ['top_p: 0\n', '0'], ['batch_size: 0\n', '0'], ['max_prompts: 0\n', '0'],
      ['gpu_memory_utilization: 2\n', '2'], ['max_new_tokens: 0\n', '0'], ['tensor_parallel_size: 0\n', '0'],
      ['endpoint: {timeout_s: 0}\n', '0'], ['endpoint: {max_retries: -1}\n', '-1'], ['judge: {concurrency: 0}\n', '0'],
      ['temperature: .nan\n', '.nan'],
    ];
    for (const [line, value] of cases) {
      const text = `kind: eval\nmodel_name_or_path: m\n${line}`;
      const d = validateText(text);
      assert.deepEqual(d.map((x) => x.code), ['CC103'], line);
      assert.equal(text.slice(d[0]!.start, d[0]!.end), value, line);
    }
    // greedy (temperature 0, the default) is not GRPO's temperature > 0
    assert.deepEqual(validateText('kind: eval\nmodel_name_or_path: m\ntemperature: 0\ntop_p: 1\nmax_prompts: 1\n'), []);
  });

  it('safety: and allocator: are checked as in a training recipe (CC222, CC227, ranges, allocator keys not converted)', () => {
    const codes = (extra: string) => validateText(`kind: eval\nmodel_name_or_path: m\n${extra}`).map((x) => `${x.code}@${x.line}`);
    assert.deepEqual(codes('safety: {open_tag: x, close_tag: x}\n'), ['CC222@2']);
    assert.deepEqual(codes('safety: {budget_harmful: -1}\n'), ['CC103@2']);
    assert.deepEqual(codes('safety:\n  budget_instruction: "{nope} tokens"\n'), ['CC227@3']);
    assert.deepEqual(codes('allocator: {foo: 1}\n'), ['CC100@2']);
    assert.deepEqual(codes('allocator: {risk_harmful: 2}\n'), ['CC103@2']);
    assert.deepEqual(codes('allocator: {risk_harmful: "0.5"}\n'), ['CC101@2']);
    assert.deepEqual(codes('allocator: {risk_harmful: 0.5, budget_deep: 512}\nsafety: {budget_harmful: 16}\n'), []);
  });

  it('values are converted as the runtime converts them (true/false only, no + on integers)', () => {
    const codes = (extra: string) => validateText(`kind: eval\nmodel_name_or_path: m\n${extra}`).map((x) => `${x.code}@${x.line}`);
    assert.deepEqual(codes('launch: {cpu: "yes"}\n'), ['CC101@2']);
    assert.deepEqual(codes('batch_size: "+4"\n'), ['CC101@2']);
    assert.deepEqual(codes('launch: {cpu: "true"}\nbatch_size: "4"\n'), []);
  });

  it('engine transformers or vllm without model_name_or_path is CC504 at the engine, even with endpoint.base_url', () => {
    for (const engine of ['transformers', 'vllm']) {
      const text = `kind: eval\nengine: ${engine}\nendpoint: {base_url: "http://127.0.0.1:8000/v1"}\n`;
      const d = validateText(text);
      assert.deepEqual(d.map((x) => x.code), ['CC504'], engine);
      assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, engine));
    }
    assert.deepEqual(validateText('kind: eval\nengine: openai\nendpoint: {base_url: "http://127.0.0.1:8000/v1", model: m}\n'), []);
  });

  it('a policy_recipe or chat_template file that does not exist is reported at its value (CC507, CC304)', () => {
    const file = join(REPO, 'recipes/demo/eval-x.yaml');
    const text = 'kind: eval\nmodel_name_or_path: m\npolicy_recipe: ./nope.yaml\nchat_template: ./nope.jinja\n';
    const d = validateText(text, { file, files: nodeFiles });
    assert.deepEqual(d.map((x) => `${x.code}@${x.line}`), ['CC507@2', 'CC304@3']);
    assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, './nope.yaml'));
    assert.deepEqual(validateText('kind: eval\nmodel_name_or_path: m\npolicy_recipe: ./tiny-cpu.yaml\n', { file, files: nodeFiles }), []);
  });
});

it("the eval rules' codes are their own: none means something else in a training recipe's table", () => {
  // a user filtering or suppressing a code must not hit an unrelated rule (they were CC400-CC407,
  // which are accelerate-config checks for training recipes)
  const recipe = new Set(RULES.map((r) => r.code));
  for (const code of Object.keys(EVAL_CODES)) assert.ok(!recipe.has(code), `${code} is also a recipe rule`);
});
