// Reading an eval's results (core/eval/results.ts) from what the runtime writes: the case
// file is produced by conscience.eval.build_results (runtime/tests/test_eval.py keeps it current).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatTable, paretoPoints, parseCompletions, parseResults, resultsCsv, tableRows } from '../../src/core/eval/results';

const CASE = join(import.meta.dirname, '..', '..', '..', 'runtime', 'tests', 'data', 'eval_results_case.json');
const c = JSON.parse(readFileSync(CASE, 'utf8')) as { completions: Record<string, unknown>[]; results: unknown };

describe('eval results', () => {
  const r = parseResults(JSON.stringify(c.results));

  it('table rows per arm x label agree with the completions', () => {
    for (const row of tableRows(r)) {
      const rows = c.completions.filter((x) => x.arm === row.arm && (row.label === 'all' || x.label === row.label));
      assert.equal(row.stats.n, rows.length);
      assert.equal(row.stats.refusal, rows.filter((x) => x.refused).length / rows.length);
    }
    assert.match(formatTable(r), /^ARM\s+LABEL\s+N\s+REFUSAL/m);
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

  it('rejects what is not a results file, naming it', () => {
    assert.throws(() => parseResults('{"x": 1}', 'a/results.json'), /a\/results\.json: not an eval results file/);
    assert.throws(() => parseResults('{', 'b.json'), /b\.json: not JSON/);
    const { rows, errors } = parseCompletions('{"id":"a","arm":"none"}\n{oops\n');
    assert.equal(rows.length, 1);
    assert.match(errors[0]!, /^completions\.jsonl:2: /);
  });
});
