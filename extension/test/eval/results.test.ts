// Reading an eval's results (core/eval/results.ts) from what the runtime writes: the case
// file is produced by conscience.eval.build_results (runtime/tests/test_eval.py keeps it current).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatTable, paretoPoints, parseCompletions, parseResults, resultsCsv, tableRows, type EvalCompletion } from '../../src/core/eval/results';
import { parseToWebview, reportCompletion } from '../../src/core/protocol/eval';

const CASE = join(import.meta.dirname, '..', '..', '..', 'runtime', 'tests', 'data', 'eval_results_case.json');
const c = JSON.parse(readFileSync(CASE, 'utf8')) as { completions: Record<string, unknown>[]; results: unknown };

describe('eval results', () => {
  const r = parseResults(JSON.stringify(c.results));

  it('table rows per arm x label agree with the completions', () => {
    for (const row of tableRows(r)) {
      const rows = c.completions.filter((x) => x.arm === row.arm && (row.label === 'all' || x.label === row.label));
      const answered = rows.filter((x) => !x.no_answer);
      assert.equal(row.stats.n, rows.length);
      // refusal is of the completions with an answer; those without one are their own share
      assert.equal(row.stats.refusal, answered.length ? answered.filter((x) => x.refused).length / answered.length : null);
      assert.equal(row.stats.no_answer, (rows.length - answered.length) / rows.length);
    }
    assert.match(formatTable(r), /^ARM\s+LABEL\s+N\s+REFUSAL\s+NO ANSWER/m);
  });

  it('a completion with no answer is neither a refusal nor compliance, and the table and CSV show its share', () => {
    // the case: under fixed:8 the one borderline completion was cut inside its safety block
    const cut = c.completions.filter((x) => x.no_answer);
    assert.deepEqual(cut.map((x) => [x.arm, x.label, x.refused, x.answer]), [['fixed:8', 'borderline', null, '']]);
    const fixed = r.arms['fixed:8']!;
    assert.deepEqual([fixed.label.borderline!.refusal, fixed.label.borderline!.compliance, fixed.label.borderline!.no_answer], [null, null, 1]);
    assert.equal(fixed.overall.no_answer, 0.2);
    assert.equal(fixed.overall.refusal! + fixed.overall.compliance!, 1);
    const table = formatTable(r);
    assert.match(table, /^fixed:8\s+borderline\s+1\s+-\s+100\.0%/m);
    assert.match(table, /^fixed:8\s+all\s+5\s+\d+\.\d%\s+20\.0%/m);
    assert.match(table, /NO ANSWER: cut inside the safety block/);
    const csv = resultsCsv(r).trim().split('\n');
    assert.deepEqual(csv[0]!.split(',').slice(5, 8), ['refusal', 'compliance', 'no_answer']);
    const row = csv.find((l) => l.startsWith(',fixed:8,label,borderline,'))!.split(',');
    assert.deepEqual(row.slice(4, 8), ['1', '', '', '1']);
    // results written before no_answer was reported still read (the figure shows as '-')
    const old = structuredClone(c.results) as { arms: Record<string, { overall: Record<string, unknown> }> };
    delete old.arms.label!.overall.no_answer;
    assert.match(formatTable(parseResults(JSON.stringify(old))), /^label\s+all\s+5\s+\d+\.\d%\s+-\s/m);
  });

  it('a share outside [0, 1] is refused, naming the file and the figure', () => {
    const bad = structuredClone(c.results) as { arms: Record<string, { label: Record<string, Record<string, unknown>> }> };
    bad.arms.label!.label.harmful!.no_answer = 'half';
    assert.throws(() => parseResults(JSON.stringify(bad), 'r.json'), /^Error: r\.json: arms\.label\.label\.harmful\.no_answer must be a share in \[0, 1\] or null, got "half"$/);
  });

  it('the report shows a completion with no answer as such, from this runtime\'s records and older ones', () => {
    const cut = reportCompletion(c.completions.find((x) => x.no_answer) as unknown as EvalCompletion);
    assert.equal(cut.refused, null);
    assert.equal(cut.no_answer, true);
    const answered = reportCompletion(c.completions.find((x) => x.refused === true) as unknown as EvalCompletion);
    assert.deepEqual([answered.refused, answered.no_answer], [true, false]);
    // a record from before `no_answer` was written: an empty answer judged "not refused"
    const older = reportCompletion({ id: 'a', arm: 'none', label: 'harmful', answer: '', refused: false } as unknown as EvalCompletion);
    assert.deepEqual([older.refused, older.no_answer], [false, true]);
    const view = { name: 'e', results: r, completions: [cut, answered, older], completionErrors: [] };
    const p = parseToWebview({ type: 'show', evals: [view] });
    assert.ok(p.ok, !p.ok ? p.error : '');
  });

  it('a Pareto point per arm: harmful refusal, benign over-refusal, safety tokens', () => {
    const p = paretoPoints(r);
    assert.deepEqual(p.map((x) => x.arm), r.arms_order);
    const lab = p.find((x) => x.arm === 'label')!;
    assert.equal(lab.harmfulRefusal, 1);
    assert.equal(lab.benignOverRefusal, 0.5);
    assert.equal(lab.safetyTokens, r.arms.label!.overall.safety_tokens);
  });

  it('CSV has a line per arm x group and neutralises formulas', () => {
    const csv = resultsCsv(r, '=evil');
    const lines = csv.trim().split('\n');
    const groups = r.arms_order.reduce((n, a) => n + 1 + ['label', 'source', 'category'].reduce((m, g) => m + Object.keys((r.arms[a] as never)[g]).length, 0), 0);
    assert.equal(lines.length, 1 + groups);
    assert.ok(lines[1]!.startsWith("'=evil,"));
    // a formula that starts like a negative number is neutralised too; real numbers stay numbers
    const sneaky = resultsCsv(r, "-1+cmd|' /C calc'!A0");
    assert.ok(sneaky.split('\n')[1]!.startsWith("'-1+cmd|"), sneaky.split('\n')[1]);
    assert.ok(resultsCsv(r, '-0.25').split('\n')[1]!.startsWith('-0.25,'));
  });

  it('a figure, judge accuracy or arm order the table cannot show is refused, naming the file and the field; the CLI table, the CSV and the report read the rest', () => {
    /** results.json as read: arm → group → (stats, or name → stats) */
    type Raw = { arms: Record<string, Record<string, Record<string, unknown>>>; [k: string]: unknown };
    const bad = (mutate: (r: Raw) => void): string => {
      const r = structuredClone(c.results) as Raw;
      mutate(r);
      return JSON.stringify(r);
    };
    // each passed before and then threw in the table (formatTable, the report's tableRows and
    // header): toFixed of a string, `'accuracy' in` a string, Object.prototype.toString as an arm
    const cases: Array<[string, (r: Raw) => void, RegExp]> = [
      ['a string of tokens', (r) => { r.arms.label!.overall!.safety_tokens = '12'; }, /^Error: r\.json: arms\.label\.overall\.safety_tokens must be a number or null, got "12"$/],
      ['a string of tokens in a category', (r) => { r.arms.none!.category!.x = { n: 1, answer_tokens: '3' }; }, /^Error: r\.json: arms\.none\.category\.x\.answer_tokens must be a number or null, got "3"$/],
      ['an n that is no number', (r) => { (r.arms.none!.label!.harmful as Record<string, unknown>).n = [2]; }, /^Error: r\.json: arms\.none\.label\.harmful\.n must be a number or null, got \[2\]$/],
      ['judge accuracy as text', (r) => { r.judge_accuracy = 'n/a'; }, /^Error: r\.json: judge_accuracy must be an object or null, got "n\/a"$/],
      ['judge accuracy past 1', (r) => { r.judge_accuracy = { judge: 'j', n: 4, accuracy: 3, precision: null, recall: null }; }, /^Error: r\.json: judge_accuracy\.accuracy must be a share in \[0, 1\], got 3$/],
      ['an arm named after an Object method', (r) => { r.arms_order = [...(r.arms_order as string[]), 'toString']; }, /^Error: r\.json: arms_order\[\d+\] must name an arm in "arms", got "toString"$/],
      ['an arm that is not in arms', (r) => { r.arms_order = ['nope']; }, /^Error: r\.json: arms_order\[0\] must name an arm in "arms", got "nope"$/],
      ['an arm order that is no list', (r) => { r.arms_order = 'none'; }, /^Error: r\.json: arms_order must be a list of arm names, got "none"$/],
      ['a category that is no object', (r) => { r.arms.none!.category = 'x' as never; }, /^Error: r\.json: arms\.none\.category must be an object of statistics, got "x"$/],
    ];
    for (const [what, mutate, want] of cases) {
      assert.throws(() => parseResults(bad(mutate), 'r.json'), want, what);
      // the report's protocol refuses it the same way, so the page shows why instead of going blank
      const view = { name: 'e', results: JSON.parse(bad(mutate)), completions: [], completionErrors: [] };
      const p = parseToWebview({ type: 'show', evals: [view] });
      assert.ok(!p.ok && p.error.includes('must'), `${what}: ${p.ok ? 'accepted' : p.error}`);
    }
    // what a runtime writes still reads: null figures, a judge accuracy with an error, no arm
    // order (every arm), an arm without source or category (shown with none)
    const ok = parseResults(bad((r) => {
      r.arms.none!.overall!.safety_tokens = null;
      r.judge_accuracy = { judge: 'j', error: 'unreachable' };
      delete r.arms_order;
      delete r.arms.label!.category;
    }), 'r.json');
    assert.deepEqual(ok.arms_order, Object.keys(ok.arms));
    assert.deepEqual(ok.arms.label!.category, {});
    assert.match(formatTable(ok), /^none\s+all\s+5\s+.*\s-\s/m);
    assert.ok(resultsCsv(ok).includes(',none,all,'));
    const acc = parseResults(bad((r) => { r.judge_accuracy = { judge: 'j', n: 4, accuracy: 0.75, precision: 1, recall: 0.5 }; }));
    assert.match(formatTable(acc), /judge accuracy on 4 labelled completions: 75\.0%/);
    // an arm named "__proto__" is an arm like any other
    const proto = parseResults(bad((r) => {
      r.arms = JSON.parse(`{"__proto__": ${JSON.stringify(r.arms.none)}}`);
      r.arms_order = ['__proto__'];
    }));
    assert.deepEqual(tableRows(proto).map((t) => t.arm), ['__proto__', '__proto__', '__proto__', '__proto__']);
  });

  it('rejects what is not a results file, naming it', () => {
    assert.throws(() => parseResults('{"x": 1}', 'a/results.json'), /a\/results\.json: not an eval results file/);
    assert.throws(() => parseResults('{', 'b.json'), /b\.json: not JSON/);
    const { rows, errors } = parseCompletions('{"id":"a","arm":"none"}\n{oops\n');
    assert.equal(rows.length, 1);
    assert.match(errors[0]!, /^completions\.jsonl:2: /);
  });
});
