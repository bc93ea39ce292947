// Eval recipe validation (core/eval/recipe.ts) through the one validator entry point
// (core/recipe validateText dispatches `kind: eval` to it): diagnostics at the key or value.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateText } from '../../src/core/recipe';

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
    assert.deepEqual(d.map((x) => x.code), ['CC400', 'CC400']);
    assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, 'lable'));
    assert.match(d[0]!.message, /Unknown arm 'lable'.*Did you mean 'label'\?/);
    assert.equal(d[0]!.fixes?.[0]?.edits[0]?.newText, 'label');
    assert.deepEqual({ line: d[1]!.line, column: d[1]!.column }, at(text, 'fixed:x'));
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
    assert.deepEqual(codes, ['CC404@0', 'CC402@1', 'CC101@2', 'CC102@3', 'CC403@5']);
  });

  it('more than one process is CC406 at the value, as the runtime refuses it', () => {
    const text = 'kind: eval\nmodel_name_or_path: m\nlaunch:\n  num_processes: 2\n  cpu: true\n';
    const d = validateText(text);
    assert.deepEqual(d.map((x) => `${x.code}@${x.line}`), ['CC406@3']);
    assert.deepEqual({ line: d[0]!.line, column: d[0]!.column }, at(text, '2\n'));
    assert.deepEqual(validateText('kind: eval\nmodel_name_or_path: m\nlaunch:\n  num_processes: 1\n'), []);
  });
});
