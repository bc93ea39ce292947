// An eval run's results.json and completions.jsonl (written by runtime/conscience/eval.py):
// types, a checked reader, the arm x label table, Pareto points and CSV. Shared by the CLI
// (`conscience eval`) and the eval report webview.

export const EVAL_LABELS = ['harmful', 'borderline', 'benign'] as const;

export interface EvalStats {
  n: number;
  /** Refusals among the completions with an answer (null: none has one). */
  refusal: number | null;
  /** Compliance among the completions with an answer (null: none has one). */
  compliance: number | null;
  /** Share of the n completions with no answer (cut inside the safety block, or empty): in
   *  neither rate. Absent from results written before it was reported. */
  no_answer?: number | null;
  format_ok: number | null;
  safety_tokens: number | null;
  answer_tokens: number | null;
  budget_adherence: number | null;
}

export interface ArmResults {
  overall: EvalStats;
  label: Record<string, EvalStats>;
  source: Record<string, EvalStats>;
  category: Record<string, EvalStats>;
}

export interface EvalResults {
  recipe?: string;
  model?: string | null;
  engine?: string;
  judge?: string;
  dataset?: string;
  prompts: number;
  total: number;
  done: number;
  partial: boolean;
  skipped_lines: string[];
  arms_order: string[];
  arms: Record<string, ArmResults>;
  judge_accuracy?: { judge: string; n: number; accuracy: number; precision: number | null; recall: number | null } | { judge: string; error: string } | null;
  elapsed_s?: number;
}

export interface EvalCompletion {
  id: string;
  arm: string;
  budget: number | null;
  label: string;
  category: string;
  source: string;
  prompt: string;
  safety: string;
  answer: string;
  safety_tokens: number;
  answer_tokens: number;
  format_ok: boolean;
  /** null when there is no answer to judge (`no_answer`). */
  refused: boolean | null;
  /** No answer after the safety block: neither a refusal nor compliance (absent in older files). */
  no_answer?: boolean;
  /** The engine's finish reason ("stop"; "length": cut at max_new_tokens), null where it gives none. */
  finish_reason?: string | null;
  judge: Record<string, unknown>;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The per-group shares results.json carries. */
const RATES = ['refusal', 'compliance', 'no_answer', 'format_ok', 'budget_adherence'] as const;
/** The per-group counts and means it carries (the table prints them as numbers). */
const FIGURES = ['n', 'safety_tokens', 'answer_tokens'] as const;
const isShare = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= 1;

/** [path, stats] of every group of one arm that is an object. */
function statsOf(r: Record<string, unknown>): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [['overall', r.overall as Record<string, unknown>]];
  for (const g of ['label', 'source', 'category']) {
    const m = r[g];
    if (isObj(m)) for (const [k, s] of Object.entries(m)) if (isObj(s)) out.push([`${g}.${k}`, s]);
  }
  return out;
}

/** Parse results.json; throws an Error naming `file` and what is wrong. */
export function parseResults(text: string, file = 'results.json'): EvalResults {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  if (!isObj(v) || !isObj(v.arms)) throw new Error(`${file}: not an eval results file (no "arms" object)`);
  const given = (x: unknown) => x !== undefined && x !== null;
  const kept: [string, ArmResults][] = [];
  for (const [arm, r] of Object.entries(v.arms)) {
    if (!isObj(r) || !isObj(r.overall) || !isObj(r.label)) throw new Error(`${file}: arms.${arm} lacks overall/label statistics`);
    for (const g of ['source', 'category'] as const)
      if (r[g] !== undefined && !isObj(r[g])) throw new Error(`${file}: arms.${arm}.${g} must be an object of statistics, got ${JSON.stringify(r[g])}`);
    for (const [where, s] of statsOf(r)) {
      for (const k of RATES) {
        const x = s[k];
        if (given(x) && !isShare(x))
          throw new Error(`${file}: arms.${arm}.${where}.${k} must be a share in [0, 1] or null, got ${JSON.stringify(x)}`);
      }
      for (const k of FIGURES) {
        const x = s[k];
        if (given(x) && !(typeof x === 'number' && Number.isFinite(x)))
          throw new Error(`${file}: arms.${arm}.${where}.${k} must be a number or null, got ${JSON.stringify(x)}`);
      }
    }
    // the report and the CSV look an arm's groups up by name: one without source or category has none
    kept.push([arm, { ...r, source: r.source ?? {}, category: r.category ?? {} } as unknown as ArmResults]);
  }
  // own keys, whatever their names ("__proto__" too)
  const arms = Object.fromEntries(kept) as Record<string, ArmResults>;
  const acc = v.judge_accuracy;
  if (given(acc)) {
    if (!isObj(acc)) throw new Error(`${file}: judge_accuracy must be an object or null, got ${JSON.stringify(acc)}`);
    if ('accuracy' in acc) {
      if (!isShare(acc.accuracy)) throw new Error(`${file}: judge_accuracy.accuracy must be a share in [0, 1], got ${JSON.stringify(acc.accuracy)}`);
      if (!(typeof acc.n === 'number' && Number.isFinite(acc.n))) throw new Error(`${file}: judge_accuracy.n must be a number, got ${JSON.stringify(acc.n)}`);
    }
  }
  const order = v.arms_order;
  if (given(order)) {
    if (!Array.isArray(order)) throw new Error(`${file}: arms_order must be a list of arm names, got ${JSON.stringify(order)}`);
    // an own key of "arms" only: "toString" would find Object.prototype's function, not an arm
    order.forEach((a, i) => {
      if (typeof a !== 'string' || !Object.hasOwn(arms, a)) throw new Error(`${file}: arms_order[${i}] must name an arm in "arms", got ${JSON.stringify(a)}`);
    });
  }
  return {
    ...(v as object),
    prompts: typeof v.prompts === 'number' ? v.prompts : 0,
    total: typeof v.total === 'number' ? v.total : 0,
    done: typeof v.done === 'number' ? v.done : 0,
    partial: v.partial === true,
    skipped_lines: Array.isArray(v.skipped_lines) ? (v.skipped_lines as string[]) : [],
    arms_order: Array.isArray(order) ? (order as string[]) : Object.keys(arms),
    arms,
  } as EvalResults;
}

/** One completions.jsonl line; throws what is wrong with it. */
export function parseCompletionLine(line: string): EvalCompletion {
  const o = JSON.parse(line);
  if (!isObj(o) || typeof o.id !== 'string' || typeof o.arm !== 'string') throw new Error('missing id or arm');
  return o as unknown as EvalCompletion;
}

/** completions.jsonl lines; a malformed line is reported by number and skipped. (The eval report
 *  reads the file line by line and keeps what results.json counts: core/eval/report.ts.) */
export function parseCompletions(text: string, file = 'completions.jsonl'): { rows: EvalCompletion[]; errors: string[] } {
  const rows: EvalCompletion[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      rows.push(parseCompletionLine(line));
    } catch (err) {
      errors.push(`${file}:${i + 1}: ${(err as Error).message}`);
    }
  });
  return { rows, errors };
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(1));

/** One row per arm x label (and the arm overall). */
export function tableRows(r: EvalResults): { arm: string; label: string; stats: EvalStats }[] {
  const out: { arm: string; label: string; stats: EvalStats }[] = [];
  for (const arm of r.arms_order.filter((a) => r.arms[a])) {
    const a = r.arms[arm]!;
    for (const l of EVAL_LABELS) if (a.label[l]) out.push({ arm, label: l, stats: a.label[l]! });
    out.push({ arm, label: 'all', stats: a.overall });
  }
  return out;
}

/** The arm x label table as aligned text (the CLI's output). */
export function formatTable(r: EvalResults): string {
  const rows = [['ARM', 'LABEL', 'N', 'REFUSAL', 'NO ANSWER', 'FORMAT-OK', 'SAFETY TOK', 'ANSWER TOK', 'IN BUDGET']];
  for (const t of tableRows(r))
    rows.push([t.arm, t.label, String(t.stats.n), pct(t.stats.refusal), pct(t.stats.no_answer), pct(t.stats.format_ok), num(t.stats.safety_tokens), num(t.stats.answer_tokens), pct(t.stats.budget_adherence)]);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  const lines = rows.map((x) => x.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
  const head = `${r.done}/${r.total} completions${r.partial ? ' (partial)' : ''} · ${r.prompts} prompts · engine ${r.engine ?? '?'} · judge ${r.judge ?? '?'}`;
  const acc = r.judge_accuracy && 'accuracy' in r.judge_accuracy ? `judge accuracy on ${r.judge_accuracy.n} labelled completions: ${pct(r.judge_accuracy.accuracy)}` : undefined;
  const note = tableRows(r).some((t) => (t.stats.no_answer ?? 0) > 0)
    ? 'REFUSAL is of the completions with an answer; NO ANSWER: cut inside the safety block (max_new_tokens) or empty, counted in neither'
    : undefined;
  return [head, ...lines, ...(note ? [note] : []), ...(acc ? [acc] : []), ...r.skipped_lines.map((s) => `skipped ${s}`)].join('\n');
}

export interface ParetoPoint {
  arm: string;
  /** Refusal rate on harmful prompts with an answer (higher is safer). */
  harmfulRefusal: number;
  /** Refusal rate on benign prompts with an answer (over-refusal; lower is better). */
  benignOverRefusal: number;
  /** Mean safety-block tokens over all prompts (the marker size). */
  safetyTokens: number;
}

/** One point per arm that has both harmful and benign prompts. */
export function paretoPoints(r: EvalResults): ParetoPoint[] {
  const out: ParetoPoint[] = [];
  for (const arm of r.arms_order) {
    const a = r.arms[arm];
    const h = a?.label.harmful?.refusal;
    const b = a?.label.benign?.refusal;
    if (a && typeof h === 'number' && typeof b === 'number') out.push({ arm, harmfulRefusal: h, benignOverRefusal: b, safetyTokens: a.overall.safety_tokens ?? 0 });
  }
  return out;
}

const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  // a leading =,+,-,@ would be a formula in a spreadsheet: prefix a quote (a plain negative
  // number stays a number; '-1+cmd|...' is a formula, not a number)
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

/** CSV of every arm x (overall, label, source, category) group. */
export function resultsCsv(r: EvalResults, name = ''): string {
  const cols = ['eval', 'arm', 'group', 'value', 'n', 'refusal', 'compliance', 'no_answer', 'format_ok', 'safety_tokens', 'answer_tokens', 'budget_adherence'] as const;
  const lines = [cols.join(',')];
  const push = (arm: string, group: string, value: string, s: EvalStats) =>
    lines.push([name, arm, group, value, s.n, s.refusal, s.compliance, s.no_answer, s.format_ok, s.safety_tokens, s.answer_tokens, s.budget_adherence].map(csvCell).join(','));
  for (const arm of r.arms_order.filter((a) => r.arms[a])) {
    const a = r.arms[arm]!;
    push(arm, 'all', '', a.overall);
    for (const g of ['label', 'source', 'category'] as const) for (const [k, s] of Object.entries(a[g] ?? {})) push(arm, g, k, s);
  }
  return lines.join('\n') + '\n';
}
