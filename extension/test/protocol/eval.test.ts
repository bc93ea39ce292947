// The eval report's protocol (core/protocol/eval.ts): what the host builds from an eval's files
// (editor/eval.ts loadEval → boundEvalView) is always a report the webview accepts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCompletions, parseResults } from '../../src/core/eval/results';
import { boundEvalView, parseToWebview, reportCompletion, type ReportCompletion } from '../../src/core/protocol/eval';

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

test('a report past its completion limit says how many completions it does not show', () => {
  const shown = Array.from({ length: 3 }, (_, i) => row({ id: String(i) }));
  // the host passes the first LIMITS.completions rows and the file's count (3 of 250,000 here)
  const view = boundEvalView({ name: 'e', results, completions: shown, completionErrors: ['completions.jsonl:9: invalid JSON'] }, 250_000);
  assert.equal(view.completions.length, 3);
  assert.equal(view.completionErrors[0], '249,997 completions after the first 3 are not shown in this report (its figures count them all)');
  assert.equal(view.completionErrors[1], 'completions.jsonl:9: invalid JSON');
  assert.ok(parseToWebview({ type: 'show', evals: [view] }).ok);
  // within the limit: no such line
  assert.deepEqual(boundEvalView({ name: 'e', results, completions: shown, completionErrors: [] }).completionErrors, []);
});

test('a completion with a budget or token count past what a number holds no longer hides the whole report', () => {
  // JSON's 1e999 reads as Infinity: the webview refused the whole `show` for that one line
  const { rows, errors } = parseCompletions([
    '{"id":"1","arm":"fixed:8","budget":1e999,"safety_tokens":1e999,"answer_tokens":-1e999,"answer":"a","refused":false}',
    '{"id":"2","arm":"fixed:8","budget":8,"safety_tokens":1e300,"answer_tokens":"many","answer":"b","refused":true}',
    '{"id":"3","arm":"none","budget":null,"safety_tokens":12.7,"answer_tokens":3,"answer":"c","refused":false}',
  ].join('\n'));
  assert.deepEqual(errors, []);
  const shown = rows.map(reportCompletion);
  assert.deepEqual(shown.map((c) => [c.budget, c.safety_tokens, c.answer_tokens]), [
    [null, Number.MAX_SAFE_INTEGER, 0],
    [8, Number.MAX_SAFE_INTEGER, 0],
    [null, 12, 3],
  ]);
  const p = parseToWebview({ type: 'show', evals: [boundEvalView({ name: 'e', results, completions: shown, completionErrors: [] })] });
  assert.ok(p.ok, !p.ok ? p.error : '');
  // a completion built some other way is bounded the same by boundEvalView
  const raw = row({ budget: Infinity, safety_tokens: Infinity, answer_tokens: NaN });
  const view = boundEvalView({ name: 'e', results, completions: [raw], completionErrors: [] });
  assert.deepEqual([view.completions[0]!.budget, view.completions[0]!.safety_tokens, view.completions[0]!.answer_tokens], [null, Number.MAX_SAFE_INTEGER, 0]);
  const q = parseToWebview({ type: 'show', evals: [view] });
  assert.ok(q.ok, !q.ok ? q.error : '');
});
