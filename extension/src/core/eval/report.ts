// What the eval report shows of an eval's files (editor/eval.ts reads them through this, vscode
// free): results.json, checked, and the completions of completions.jsonl that its figures
// count, read line by line in 4 MiB pieces (a file of any size: one read as a single string
// stopped past 512 MiB, and the report then showed none, saying nothing).
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { boundEvalView, LIMITS, reportCompletion, type EvalView, type ReportCompletion } from '../protocol/eval';
import { parseCompletionLine, parseResults, type EvalCompletion, type EvalResults } from './results';

/** Bytes read at a time. */
const PIECE_BYTES = 4 * 1024 * 1024;
/** A completions.jsonl line longer than this is reported and skipped (its texts are shown cut to 200,000 characters anyway). */
export const MAX_COMPLETION_LINE_BYTES = 64 * 1024 * 1024;

/** Where an eval's files are: results.json and (if it has one) completions.jsonl. */
export interface EvalFilesAt {
  name: string;
  results: string;
  completions?: string;
}

/** The report of the eval whose files are `where`; throws when results.json cannot be read or is no eval results file. */
export async function loadEvalReport(where: EvalFilesAt): Promise<EvalView> {
  let text: string;
  try {
    text = await readFile(where.results, 'utf8');
  } catch (err) {
    throw new Error(`${where.results}: cannot read the eval results (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); an eval on a remote target keeps them on its host until \`conscience eval --wait\` copies them`);
  }
  const results = parseResults(text, where.results);
  if (!where.completions) return boundEvalView({ name: where.name, results, completions: [], completionErrors: [] });
  const c = await readReportCompletions(where.completions, results);
  return boundEvalView({ name: where.name, results, completions: c.rows, completionErrors: c.errors }, c.total);
}

/**
 * Calls `fn` with each line of the first `end` bytes of `file` (1-based numbers; a last line
 * without its newline too). A line longer than MAX_COMPLETION_LINE_BYTES is not decoded:
 * `tooLong` gets its number. Read errors throw.
 */
async function eachLine(file: string, end: number, fn: (line: string, n: number) => void, tooLong: (n: number) => void): Promise<void> {
  const fh = await open(file, 'r');
  try {
    let parts: Buffer[] = [];
    let held = 0;
    let skipping = false;
    let n = 0;
    const finish = (tail: Buffer): void => {
      n++;
      if (skipping || held + tail.length > MAX_COMPLETION_LINE_BYTES) tooLong(n);
      else fn((parts.length ? Buffer.concat([...parts, tail]) : tail).toString('utf8'), n);
      parts = [];
      held = 0;
      skipping = false;
    };
    for (let pos = 0; pos < end;) {
      const buf = Buffer.allocUnsafe(Math.min(PIECE_BYTES, end - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (!bytesRead) break; // the file shrank under the reader
      pos += bytesRead;
      const piece = buf.subarray(0, bytesRead);
      let from = 0;
      for (let nl = piece.indexOf(10, from); nl >= 0; nl = piece.indexOf(10, from)) {
        finish(piece.subarray(from, nl));
        from = nl + 1;
      }
      if (from < piece.length && !skipping) {
        const rest = piece.subarray(from);
        if (held + rest.length > MAX_COMPLETION_LINE_BYTES) {
          skipping = true;
          parts = [];
          held = 0;
        } else {
          parts.push(rest);
          held += rest.length;
        }
      }
    }
    if (held || skipping) finish(Buffer.alloc(0));
  } finally {
    await fh.close();
  }
}

/** What makes a completion the one of a prompt as the eval's prompt set has it: its prompt and label. */
const promptSig = (c: { prompt?: unknown; label?: unknown }): string =>
  createHash('sha1').update(JSON.stringify([c.prompt ?? null, c.label ?? null])).digest('base64');
const keyOf = (c: { id: string; arm: string }): string => `${c.id}\u0000${c.arm}`;
/** A line read again (pass 1 reported those it cannot read). */
const lineOf = (line: string): EvalCompletion | null => {
  if (!line.trim()) return null;
  try {
    return parseCompletionLine(line);
  } catch {
    return null;
  }
};

/**
 * The completions of `file` the figures of `results` count, as the runtime's resume counts them
 * (conscience/eval.py read_done): one per (id, arm), of the arms results.json has, the first
 * line of that pair written for the prompt set's prompt and label. The report does not have
 * the prompt set: it takes an id's prompt and label from the id's last line (the run that wrote
 * it had that set), or where none of a pair's lines has them, the pair's first line (read in
 * two more passes, only when a pair comes twice). Rows past
 * LIMITS.completions are counted (`total`), not kept. `errors`: a read error (`FILE: cannot
 * read: CODE`), a line saying how many lines were left out and why, then each unreadable line
 * (`FILE:LINE: why`).
 */
export async function readReportCompletions(file: string, results: Pick<EvalResults, 'arms_order'>): Promise<{ rows: ReportCompletion[]; errors: string[]; total: number }> {
  const arms = new Set(results.arms_order);
  const lineErrors: string[] = [];
  let unreadable = 0;
  // the errors a report takes, less the lines this adds (a read error, what was left out, how
  // many more unreadable lines, boundEvalView's count of rows not shown)
  const listed = LIMITS.completionErrors - 4;
  const lineError = (e: string): void => {
    if (++unreadable <= listed) lineErrors.push(e);
  };
  const rows: ReportCompletion[] = [];
  let total = 0;
  const left = { arm: 0, again: 0, prompt: 0 };
  let readError: string | null = null;
  try {
    const { size } = await stat(file);
    const tooLong = (n: number): void => lineError(`${file}:${n}: line longer than ${MAX_COMPLETION_LINE_BYTES / 1024 / 1024} MiB, skipped`);
    // pass 1: the lines of results.json's arms, kept while no (id, arm) comes twice (the
    // usual file: then they are what it counts)
    const pairs = new Set<string>();
    let twice = false;
    await eachLine(file, size, (line, n) => {
      if (!line.trim()) return;
      let c;
      try {
        c = parseCompletionLine(line);
      } catch (err) {
        lineError(`${file}:${n}: ${(err as Error).message}`);
        return;
      }
      if (!arms.has(c.arm)) return void left.arm++;
      if (twice) return;
      const k = keyOf(c);
      if (pairs.has(k)) {
        twice = true;
        rows.length = 0;
        return;
      }
      pairs.add(k);
      if (rows.length < LIMITS.completions) rows.push(reportCompletion(c));
    }, tooLong);
    total = pairs.size;
    pairs.clear();
    if (twice) {
      // pass 2: each id's last prompt and label, each (id, arm)'s prompts and labels
      const idSig = new Map<string, string>();
      const pairSigs = new Map<string, string[]>();
      await eachLine(file, size, (line) => {
        const c = lineOf(line);
        if (!c) return;
        const sig = promptSig(c);
        idSig.set(c.id, sig);
        if (!arms.has(c.arm)) return;
        const k = keyOf(c);
        const seen = pairSigs.get(k);
        if (!seen) pairSigs.set(k, [sig]);
        else if (!seen.includes(sig)) seen.push(sig);
      }, () => {});
      const want = new Map<string, { sig: string; shown: boolean }>();
      for (const [k, sigs] of pairSigs) {
        const sig = idSig.get(k.slice(0, k.lastIndexOf('\u0000')))!;
        want.set(k, { sig: sigs.includes(sig) ? sig : sigs[0]!, shown: false });
      }
      pairSigs.clear();
      idSig.clear();
      // pass 3: the first line of each pair with the prompt and label wanted, in file order
      total = 0;
      await eachLine(file, size, (line) => {
        const c = lineOf(line);
        if (!c) return;
        const w = want.get(keyOf(c));
        if (!w) return; // another arm's
        if (promptSig(c) !== w.sig) return void left.prompt++;
        if (w.shown) return void left.again++;
        w.shown = true;
        total++;
        if (rows.length < LIMITS.completions) rows.push(reportCompletion(c));
      }, () => {});
    }
  } catch (err) {
    readError = `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  const why: string[] = [];
  const count = (n: number, what: string) => n && why.push(`${n.toLocaleString('en-US')} ${what}`);
  count(left.arm, `of an arm results.json does not have (${[...arms].join(', ') || 'none'})`);
  count(left.again, 'of an (id, arm) already shown, written again');
  count(left.prompt, 'for another prompt or label under the same id');
  const leftOut = left.arm + left.again + left.prompt;
  const summary = leftOut
    ? [`${leftOut.toLocaleString('en-US')} line${leftOut === 1 ? '' : 's'} of ${file} not shown, as results.json does not count ${leftOut === 1 ? 'it' : 'them'} (one completion per prompt and arm): ${why.join('; ')}`]
    : [];
  const more = unreadable > listed ? [`${(unreadable - listed).toLocaleString('en-US')} more unreadable lines not listed`] : [];
  return { rows, errors: [...(readError ? [readError] : []), ...summary, ...lineErrors, ...more], total };
}
