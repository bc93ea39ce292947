// The eval report's protocol (core/protocol/eval.ts): what the host builds from an eval's files
// (editor/eval.ts loadEval → boundEvalView) is always a report the webview accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseResults } from '../../src/core/eval/results';
import { boundEvalView, parseToWebview, type ReportCompletion } from '../../src/core/protocol/eval';

const CASE = join(import.meta.dirname, '..', '..', '..', 'runtime', 'tests', 'data', 'eval_results_case.json');
const results = parseResults(JSON.stringify((JSON.parse(readFileSync(CASE, 'utf8')) as { results: unknown }).results));
const row = (over: Partial<ReportCompletion> = {}): ReportCompletion => ({
  id: 'a', arm: 'none', budget: null, label: 'benign', category: '', source: '', prompt: 'p', safety: '', answer: 'ok',
  safety_tokens: 0, answer_tokens: 1, format_ok: true, refused: false, ...over,
});

test('one over-long field or too many unreadable lines no longer keeps the whole eval report from showing', () => {
  const errors = Array.from({ length: 10_001 }, (_, i) => `completions.jsonl:${i + 2}: invalid JSON`);
  const view = boundEvalView({
    name: 'n'.repeat(600), results,
    completions: [row(), row({ id: 'b', label: 'x'.repeat(300), arm: 'y'.repeat(300), prompt: 'p'.repeat(300_000) })],
    completionErrors: [...errors.slice(0, 1), 'e'.repeat(5000), ...errors.slice(1)],
  });
  const p = parseToWebview({ type: 'show', evals: [view] });
  assert.ok(p.ok, !p.ok ? p.error : '');
  assert.deepEqual(view.completions[0], row(), 'a completion within the limits is unchanged');
  const b = view.completions[1]!;
  assert.equal(b.label, 'x'.repeat(199) + '…');
  assert.equal(b.arm.length, 200);
  assert.equal(b.prompt.length, 200_000);
  assert.equal(view.name.length, 500);
  // every error up to the limit is listed, the last line says how many more there were
  assert.equal(view.completionErrors.length, 10_000);
  assert.equal(view.completionErrors[0], errors[0]);
  assert.equal(view.completionErrors[1], 'e'.repeat(1999) + '…');
  assert.equal(view.completionErrors[9_998], errors[9_997]);
  assert.equal(view.completionErrors[9_999], '3 more unreadable lines not listed');
});
