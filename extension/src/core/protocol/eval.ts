// The eval report webview's message protocol, declared once (validate.ts): every message is
// validated on receipt. Shared by the extension host (editor/eval.ts) and the webview bundle
// (webview/src/eval). Results are checked by the same reader the CLI uses (core/eval/results).
import { parseResults, type EvalCompletion, type EvalResults } from '../eval/results';
import { arr, bool, clip, int, literal, nullable, numOrNull, obj, optional, protocol, str, type Check, type Infer } from './validate';

/** Limits of one report: the webview rejects a report past them, so the host bounds it first (`boundEvalView`). */
export const LIMITS = {
  name: 500,
  /** arm, label */
  short: 200,
  /** id, category, source, one completionErrors line */
  long: 2000,
  /** prompt, safety, answer */
  text: 200_000,
  completions: 200_000,
  completionErrors: 10_000,
} as const;

const results: Check<EvalResults> = (v, p) => {
  try {
    parseResults(JSON.stringify(v), p);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};

const completion = obj({
  id: str(LIMITS.long),
  arm: str(LIMITS.short),
  budget: numOrNull,
  label: str(LIMITS.short),
  category: str(LIMITS.long),
  source: str(LIMITS.long),
  prompt: str(LIMITS.text),
  safety: str(LIMITS.text),
  answer: str(LIMITS.text),
  safety_tokens: int(0),
  answer_tokens: int(0),
  format_ok: bool,
  /** null: no answer to judge */
  refused: nullable(bool),
  /** no answer after the safety block (cut inside it, or empty): neither refused nor complied */
  no_answer: optional(bool),
});
export type ReportCompletion = Infer<typeof completion>;

const evalView = obj({
  /** what the user sees as the eval's name (run name or folder) */
  name: str(LIMITS.name),
  results,
  completions: arr(completion, LIMITS.completions),
  /** completions.jsonl lines that could not be read (FILE:LINE: why) */
  completionErrors: arr(str(LIMITS.long), LIMITS.completionErrors),
});
export type EvalView = Infer<typeof evalView>;

/** A budget the protocol carries: a finite number, else none (JSON's 1e999 reads as Infinity). */
const budgetOf = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** A token count the protocol carries: an integer in [0, Number.MAX_SAFE_INTEGER]; what is no number is 0. */
const tokensOf = (v: unknown): number => {
  const n = Math.trunc(Number(v));
  return n > 0 ? Math.min(n, Number.MAX_SAFE_INTEGER) : 0;
};

/** A completions.jsonl record as the report shows it: every field of the type it must have. A
 *  record without `no_answer` (written before it was recorded) with no answer had none either. */
export function reportCompletion(c: EvalCompletion): ReportCompletion {
  const answer = String(c.answer ?? '');
  return {
    id: String(c.id), arm: String(c.arm), budget: budgetOf(c.budget), label: String(c.label ?? ''),
    category: String(c.category ?? ''), source: String(c.source ?? ''), prompt: String(c.prompt ?? ''), safety: String(c.safety ?? ''),
    answer, safety_tokens: tokensOf(c.safety_tokens),
    answer_tokens: tokensOf(c.answer_tokens), format_ok: c.format_ok === true,
    refused: c.refused === null ? null : c.refused === true,
    no_answer: typeof c.no_answer === 'boolean' ? c.no_answer : c.refused === null || !answer.trim(),
  };
}

/**
 * A report cut to what this protocol accepts, so that no one completion or unreadable line
 * keeps the whole report from showing: a string past its limit is cut and ends in "…", a budget
 * that is no finite number is none, a token count is an integer in [0, Number.MAX_SAFE_INTEGER],
 * and errors past the limit are replaced by one line saying how many were left out. `total`: how
 * many completions the file held, when the caller passes only the first LIMITS.completions of
 * them; the first warning line then says how many are not shown (the figures, from
 * results.json, count them all).
 */
export function boundEvalView(v: EvalView, total = v.completions.length): EvalView {
  const completions = v.completions.slice(0, LIMITS.completions).map((c) => ({
    ...c,
    id: clip(c.id, LIMITS.long), arm: clip(c.arm, LIMITS.short), label: clip(c.label, LIMITS.short),
    category: clip(c.category, LIMITS.long), source: clip(c.source, LIMITS.long),
    prompt: clip(c.prompt, LIMITS.text), safety: clip(c.safety, LIMITS.text), answer: clip(c.answer, LIMITS.text),
    budget: budgetOf(c.budget), safety_tokens: tokensOf(c.safety_tokens), answer_tokens: tokensOf(c.answer_tokens),
  }));
  let errors = v.completionErrors.map((e) => clip(e, LIMITS.long));
  const omitted = Math.max(total, v.completions.length) - completions.length;
  if (omitted > 0) {
    errors.unshift(`${omitted.toLocaleString('en-US')} completions after the first ${completions.length.toLocaleString('en-US')} are not shown in this report (its figures count them all)`);
  }
  if (errors.length > LIMITS.completionErrors) {
    const kept = LIMITS.completionErrors - 1;
    errors = [...errors.slice(0, kept), `${(errors.length - kept).toLocaleString('en-US')} more unreadable lines not listed`];
  }
  return { name: clip(v.name, LIMITS.name), results: v.results, completions, completionErrors: errors };
}

export const evalProtocol = protocol({
  toWebview: {
    show: { evals: arr(evalView, 2) },
    error: { message: str(10_000) },
  },
  toExtension: {
    ready: {},
    /** save the shown evals' results as CSV */
    exportCsv: {},
    /** pick another eval to show side by side (replaces the second one) */
    compare: {},
    /** drop one of two shown evals */
    close: { index: int(0, 1) },
    /** which panel the user is looking at, for tests and state */
    view: { tab: literal('table', 'pareto', 'category', 'completions') },
  },
});

export type ToWebview = Infer<typeof evalProtocol.toWebview>;
export type ToExtension = Infer<typeof evalProtocol.toExtension>;
export const parseToWebview = evalProtocol.parseToWebview;
export const parseToExtension = evalProtocol.parseToExtension;
