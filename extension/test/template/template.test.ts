// The TypeScript twin of the prompt template renders and splits exactly what the Python
// runtime does (cases written by `python -m conscience.template --write-cases`, whose
// freshness runtime/tests/test_template.py checks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_TEMPLATE, renderMessages, splitCompletion, unsupportedField, type PromptTemplateSpec } from '../../src/core/template';

interface PyTemplate { open_tag: string; close_tag: string; budget_instruction: string; zero_budget_instruction: string; system_prompt: string | null }
const cases = JSON.parse(readFileSync(new URL('../../../runtime/tests/data/template_cases.json', import.meta.url), 'utf8')) as {
  templates: Record<string, PyTemplate>;
  render: { template: string; prompt: string; budget: number; messages: { role: string; content: string }[] }[];
  split: { template: string; completion: string; safety: string; answer: string }[];
};
const spec = (t: PyTemplate): PromptTemplateSpec => ({
  openTag: t.open_tag, closeTag: t.close_tag, budgetInstruction: t.budget_instruction,
  zeroBudgetInstruction: t.zero_budget_instruction, systemPrompt: t.system_prompt,
});

test('the default template is the runtime default', () => {
  assert.deepEqual(spec(cases.templates.default), DEFAULT_TEMPLATE);
});

test('renders every case exactly as the Python runtime does', () => {
  assert.ok(cases.render.length >= 30);
  for (const c of cases.render) {
    assert.deepEqual(renderMessages(spec(cases.templates[c.template]), c.prompt, c.budget), c.messages, `${c.template} budget ${c.budget}`);
  }
});

test('splits every completion exactly as the Python runtime does', () => {
  for (const c of cases.split) {
    const got = splitCompletion(spec(cases.templates[c.template]), c.completion);
    assert.deepEqual({ safety: got.safety, answer: got.answer }, { safety: c.safety, answer: c.answer }, JSON.stringify(c.completion));
  }
});

test('a wording with an unknown placeholder is an error, not a silent literal', () => {
  assert.throws(() => renderMessages({ ...DEFAULT_TEMPLATE, budgetInstruction: 'use {tokens}' }, 'q', 3), /unknown placeholder \{tokens\}/);
});

test('a wording with a format spec, conversion or index is an error, not a silent literal (Python renders it)', () => {
  // the runtime refuses such a recipe (SafetyConfig), the validator reports it (CC227); here the
  // gateway would otherwise have served "{budget:d}" verbatim where training said "48"
  for (const w of ['at most {budget:d} tokens', 'about {budget!s} tokens', 'inside {open_tag[0]}', 'pad {budget:>4}', 'nested {budget:{open_tag}}']) {
    assert.throws(() => renderMessages({ ...DEFAULT_TEMPLATE, budgetInstruction: w }, 'q', 48), /has a format spec, conversion or index/, w);
  }
  assert.throws(() => renderMessages({ ...DEFAULT_TEMPLATE, budgetInstruction: 'a lone } brace {budget}' }, 'q', 48), /single '\}'/);
  assert.equal(renderMessages({ ...DEFAULT_TEMPLATE, budgetInstruction: '{{budget:d}} {{{budget}}} {budget}' }, 'q', 48)[0]!.content, '{budget:d} {48} 48');
  assert.equal(unsupportedField('{budget:d}'), '{budget:d}');
  assert.equal(unsupportedField('{{budget:d}} {budget} {open_tag}{close_tag}'), undefined);
});
