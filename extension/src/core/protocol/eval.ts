// The eval report webview's message protocol, declared once (validate.ts): every message is
// validated on receipt. Shared by the extension host (editor/eval.ts) and the webview bundle
// (webview/src/eval). Results are checked by the same reader the CLI uses (core/eval/results).
import { parseResults, type EvalResults } from '../eval/results';
import { arr, bool, int, literal, numOrNull, obj, protocol, str, type Check, type Infer } from './validate';

const MAX_TEXT = 200_000;

const results: Check<EvalResults> = (v, p) => {
  try {
    parseResults(JSON.stringify(v), p);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};

const completion = obj({
  id: str(2000),
  arm: str(200),
  budget: numOrNull,
  label: str(200),
  category: str(2000),
  source: str(2000),
  prompt: str(MAX_TEXT),
  safety: str(MAX_TEXT),
  answer: str(MAX_TEXT),
  safety_tokens: int(0),
  answer_tokens: int(0),
  format_ok: bool,
  refused: bool,
});
export type ReportCompletion = Infer<typeof completion>;

const evalView = obj({
  /** what the user sees as the eval's name (run name or folder) */
  name: str(500),
  results,
  completions: arr(completion, 200_000),
  /** completions.jsonl lines that could not be read (FILE:LINE: why) */
  completionErrors: arr(str(2000), 10_000),
});
export type EvalView = Infer<typeof evalView>;

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
