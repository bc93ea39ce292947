// The streamed-answer splitter must end with exactly the split the rewards (and
// splitCompletion) give for the whole text, however the stream is cut into deltas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetySplitter, safetyTokens } from '../../src/core/serve/split';
import { splitCompletion, DEFAULT_TEMPLATE } from '../../src/core/template';
import { rng } from '../rng';

const cases = JSON.parse(readFileSync(join(__dirname, '../../../runtime/tests/data/template_cases.json'), 'utf8')) as {
  templates: Record<string, { open_tag: string; close_tag: string }>;
  split: Array<{ template: string; completion: string; safety: string; answer: string }>;
};

function feedInPieces(t: { openTag: string; closeTag: string }, text: string, cuts: number[], keep?: number): ReturnType<SafetySplitter['end']> {
  const s = new SafetySplitter(t, keep);
  let at = 0;
  for (const c of [...cuts, text.length]) { s.feed(text.slice(at, c)); at = c; }
  return s.end();
}

test('every shared split case, cut every possible way into two and at random into many, splits as Python does', () => {
  const next = rng(7);
  for (const c of cases.split) {
    const tt = cases.templates[c.template]!;
    const t = { openTag: tt.open_tag, closeTag: tt.close_tag };
    const cutsList: number[][] = [[]];
    for (let i = 0; i <= c.completion.length; i++) cutsList.push([i]);
    for (let k = 0; k < 30; k++) {
      const n = 1 + Math.floor(next() * 8);
      cutsList.push(Array.from({ length: n }, () => Math.floor(next() * (c.completion.length + 1))).sort((a, b) => a - b));
    }
    for (const cuts of cutsList) {
      const got = feedInPieces(t, c.completion, cuts);
      assert.equal(got.safety, c.safety, `${JSON.stringify(c.completion)} cut at ${cuts}`);
      assert.equal(got.answer, c.answer, `${JSON.stringify(c.completion)} cut at ${cuts}`);
      const whole = splitCompletion(t, c.completion);
      assert.equal(got.closed, whole.closed);
      assert.equal(got.hasBlock, whole.hasBlock);
    }
  }
});

test('one character per delta over random texts made of tags, spaces and words', () => {
  const next = rng(11);
  const atoms = ['<safety>', '</safety>', '<saf', 'ety>', '</', ' ', '\n', '\u3000', 'word', 'x', '<', '>'];
  for (let k = 0; k < 300; k++) {
    const text = Array.from({ length: Math.floor(next() * 20) }, () => atoms[Math.floor(next() * atoms.length)]).join('');
    const got = feedInPieces(DEFAULT_TEMPLATE, text, Array.from({ length: text.length }, (_, i) => i));
    const want = splitCompletion(DEFAULT_TEMPLATE, text);
    assert.deepEqual({ s: got.safety, a: got.answer, c: got.closed, h: got.hasBlock }, { s: want.safety, a: want.answer, c: want.closed, h: want.hasBlock }, JSON.stringify(text));
    assert.equal(got.safetyChars, want.safety.length);
    assert.equal(got.answerChars, want.answer.length);
  }
});

test('a long stream is held in bounded memory and still counted exactly', () => {
  const s = new SafetySplitter(DEFAULT_TEMPLATE, 1000);
  s.feed('<safety>');
  for (let i = 0; i < 10_000; i++) s.feed('think ');
  s.feed('</safety>');
  for (let i = 0; i < 10_000; i++) s.feed('answer   ');
  const r = s.end();
  assert.equal(r.safety.length, 1000);
  assert.ok(r.clipped);
  assert.equal(r.safetyChars, 'think '.repeat(10_000).trim().length);
  assert.equal(r.answerChars, 'answer   '.repeat(10_000).trim().length);
});

test('safety tokens share the completion tokens by characters', () => {
  assert.equal(safetyTokens({ safetyChars: 30, answerChars: 10 }, 8), 6);
  assert.equal(safetyTokens({ safetyChars: 0, answerChars: 10 }, 8), 0);
  assert.equal(safetyTokens({ safetyChars: 0, answerChars: 0 }, 8), 0);
});
