// What the eval report shows of an eval's files on disk (core/eval/report.ts, which
// editor/eval.ts loadEval calls): completions.jsonl read line by line whatever its size, a
// file it cannot read said so, and only the completions results.json's figures count.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadEvalReport } from '../../src/core/eval/report';
import { parseToWebview } from '../../src/core/protocol/eval';

const CASE = join(import.meta.dirname, '..', '..', '..', 'runtime', 'tests', 'data', 'eval_results_case.json');
const c = JSON.parse(readFileSync(CASE, 'utf8')) as { completions: Record<string, unknown>[]; results: Record<string, unknown> & { arms: Record<string, unknown>; arms_order: string[] } };
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('eval report', () => {
  const root = mkdtempSync(join(tmpdir(), 'eval-report-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const evalDir = (results: unknown, completions?: string) => {
    const dir = join(root, `e${n++}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'results.json'), JSON.stringify(results));
    if (completions !== undefined) writeFileSync(join(dir, 'completions.jsonl'), completions);
    return { name: 'e', results: join(dir, 'results.json'), completions: join(dir, 'completions.jsonl') };
  };
  const accepted = (v: unknown) => {
    const p = parseToWebview({ type: 'show', evals: [v] });
    assert.ok(p.ok, !p.ok ? p.error : '');
  };

  it('shows every completion the runtime wrote, as before', async () => {
    const v = await loadEvalReport(evalDir(c.results, jsonl(c.completions)));
    assert.equal(v.completions.length, 15);
    assert.deepEqual(v.completionErrors, []);
    accepted(v);
  });

  it('a completions.jsonl past what one string holds (512 MiB) is still read: every line around an over-long one shows', async () => {
    // the file: the case's first 10 lines, 600 MB without a newline (a hole: no disk), the last 5
    const where = evalDir(c.results, jsonl(c.completions.slice(0, 10)));
    const file = where.completions;
    truncateSync(file, 600_000_000);
    appendFileSync(file, '\n' + jsonl(c.completions.slice(10)));
    assert.ok(statSync(file).size > 0x1fffffe8, 'past the longest string V8 builds');
    const v = await loadEvalReport(where);
    // before: readFile(...).catch(() => '') read none, said nothing, and the report said "No completions were read"
    assert.equal(v.completions.length, 15);
    assert.deepEqual(v.completions.map((x) => x.id), c.completions.map((x) => x.id));
    assert.deepEqual(v.completionErrors, [`${file}:11: line longer than 64 MiB, skipped`]);
    accepted(v);
  });

  it('past 200,000 completions the first 200,000 show and a warning says how many more there are', async () => {
    const arms = { ...c.results, arms_order: ['none'], arms: { none: c.results.arms.none } };
    const line = (i: number) => JSON.stringify({ ...c.completions[10], id: `p${i}`, arm: 'none' });
    const where = evalDir(arms, Array.from({ length: 200_003 }, (_, i) => line(i)).join('\n') + '\n');
    const v = await loadEvalReport(where);
    assert.equal(v.completions.length, 200_000);
    assert.equal(v.completions.at(-1)!.id, 'p199999');
    assert.deepEqual(v.completionErrors, ['3 completions after the first 200,000 are not shown in this report (its figures count them all)']);
  });

  it('a completions.jsonl it cannot read is said, not shown as an eval without completions', async () => {
    const where = evalDir(c.results);
    mkdirSync(where.completions); // EISDIR (EACCES the same; root reads any file)
    const v = await loadEvalReport(where);
    assert.deepEqual(v.completions, []);
    assert.deepEqual(v.completionErrors, [`${where.completions}: cannot read: EISDIR`]);
    accepted(v);
    // none at all: the same
    const gone = evalDir(c.results);
    assert.deepEqual((await loadEvalReport(gone)).completionErrors, [`${gone.completions}: cannot read: ENOENT`]);
  });

  it('shows the completions results.json counts: one per prompt and arm, of its arms, for the prompt set\'s prompt', async () => {
    // resumed with arm fixed:8 dropped (results.json: label and none), a line repeated, and
    // p3's prompt edited: its earlier completions stay in the file, the new ones are appended
    const { 'fixed:8': _dropped, ...arms } = c.results.arms;
    const results = { ...c.results, arms, arms_order: ['label', 'none'] };
    const edited = c.completions.filter((x) => x.id === 'p3' && x.arm !== 'fixed:8').map((x) => ({ ...x, prompt: 'prompt 3, edited', answer: 'new' }));
    const lines = [...c.completions, c.completions[0], ...edited];
    const v = await loadEvalReport(evalDir(results, jsonl(lines)));
    // before: all 18 lines, fixed:8's included, p0/label twice and p3 with both prompts
    assert.equal(v.completions.length, 10);
    for (const arm of ['label', 'none']) assert.equal(v.completions.filter((x) => x.arm === arm).length, 5, `${arm}: results.json's n`);
    assert.deepEqual(v.completions.filter((x) => x.id === 'p3').map((x) => [x.arm, x.prompt, x.answer]), [['label', 'prompt 3, edited', 'new'], ['none', 'prompt 3, edited', 'new']]);
    assert.deepEqual(new Set(v.completions.map((x) => `${x.id}/${x.arm}`)).size, 10);
    assert.deepEqual(v.completionErrors, [
      `8 lines of ${join(root, `e${n - 1}`, 'completions.jsonl')} not shown, as results.json does not count them (one completion per prompt and arm): `
      + '5 of an arm results.json does not have (label, none); 1 of an (id, arm) already shown, written again; 2 for another prompt or label under the same id',
    ]);
    accepted(v);
  });

  it('an unreadable line is still reported by number, after what was left out', async () => {
    const where = evalDir(c.results, jsonl(c.completions.slice(0, 2)) + '{oops\n' + jsonl([c.completions[0]]));
    const v = await loadEvalReport(where);
    assert.equal(v.completions.length, 2);
    assert.equal(v.completionErrors.length, 2);
    assert.equal(v.completionErrors[0], `1 line of ${where.completions} not shown, as results.json does not count it (one completion per prompt and arm): 1 of an (id, arm) already shown, written again`);
    assert.ok(v.completionErrors[1]!.startsWith(`${where.completions}:3: Expected property name`), v.completionErrors[1]);
  });
});
