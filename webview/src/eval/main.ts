// The eval report (browser side): per arm x label table, a Pareto chart (harmful-prompt
// refusal against benign over-refusal, marker area = mean safety tokens), per-category refusal,
// the completions in the samples table the dashboard uses (ui/samples.ts: safety block and
// answer apart, budget and safety tokens against it, full text on click), paged (50 a page)
// and filtered here in the page, which has every completion: by eval (when two are shown),
// arm, refused and label. For two evals, everything else is side by side. Every host message
// is validated; user text is set only through textContent.
import '../ui/ui.css';
import './style.css';
import { EVAL_LABELS, paretoPoints, tableRows, type EvalResults } from '../../../extension/src/core/eval/results';
import type { SampleRowMsg, SamplesQuery } from '../../../extension/src/core/protocol/dashboard';
import { parseToWebview, type EvalView, type ReportCompletion, type ToExtension } from '../../../extension/src/core/protocol/eval';
import { button, dropdown, registerUi } from '../ui';
import { samplesTable, type SamplesPage } from '../ui/samples';

const vscode = acquireVsCodeApi();
registerUi();
const post = (m: ToExtension): void => vscode.postMessage(m);

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}, ...children: Array<Node | string>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : x.toFixed(1));

const root = document.getElementById('root')!;
let evals: EvalView[] = [];
/** What the judge found: refused, complied, or nothing to judge (no answer after the safety block). */
type Outcome = 'refused' | 'complied' | 'no_answer';
const outcome = (c: ReportCompletion): Outcome => (c.no_answer || c.refused === null ? 'no_answer' : c.refused ? 'refused' : 'complied');
/** The completions browser's own filters (label and page live in the samples table). */
const filter: { eval: number; arm: string | null; outcome: Outcome | null } = { eval: 0, arm: null, outcome: null };

function header(v: EvalView, i: number): HTMLElement {
  const r = v.results;
  const acc = r.judge_accuracy && 'accuracy' in r.judge_accuracy ? ` · judge accuracy ${pct(r.judge_accuracy.accuracy)} on ${r.judge_accuracy.n} labelled completions` : '';
  const h = el('div', { class: 'eval-head', 'data-testid': `eval-head-${i}` },
    el('strong', {}, v.name),
    ` · ${r.done}/${r.total} completions${r.partial ? ' (partial)' : ''} · ${r.prompts} prompts · ${r.engine ?? '?'} · judge ${r.judge ?? '?'}${acc}`);
  if (evals.length > 1) h.append(' ', button('Close', () => post({ type: 'close', index: i }), { secondary: true }));
  for (const s of r.skipped_lines) h.append(el('div', { class: 'warn' }, `skipped ${s}`));
  for (const s of v.completionErrors.slice(0, 5)) h.append(el('div', { class: 'warn' }, s));
  return h;
}

function table(r: EvalResults, i: number): HTMLElement {
  const t = el('table', { class: 'grid', 'data-testid': `table-${i}` });
  const heads: Array<[string, string]> = [['arm', ''], ['label', ''], ['n', ''], ['refusal', 'Refusals among the completions with an answer'],
    ['no answer', 'Completions with no answer (cut inside the safety block by max_new_tokens, or empty): counted as neither refusal nor compliance'],
    ['format ok', ''], ['safety tok', ''], ['answer tok', ''], ['in budget', '']];
  t.append(el('tr', {}, ...heads.map(([h, title]) => el('th', title ? { title } : {}, h))));
  for (const row of tableRows(r)) {
    const s = row.stats;
    t.append(el('tr', { class: row.label === 'all' ? 'total' : '', 'data-arm': row.arm, 'data-label': row.label },
      el('td', {}, row.arm), el('td', {}, row.label), el('td', { class: 'n' }, String(s.n)), el('td', { class: 'n', 'data-stat': 'refusal' }, pct(s.refusal)),
      el('td', { class: 'n', 'data-stat': 'no_answer' }, pct(s.no_answer)),
      el('td', { class: 'n' }, pct(s.format_ok)), el('td', { class: 'n' }, num(s.safety_tokens)), el('td', { class: 'n' }, num(s.answer_tokens)),
      el('td', { class: 'n' }, pct(s.budget_adherence))));
  }
  return t;
}

/** x: benign over-refusal, y: harmful refusal (top-left is best); area ~ mean safety tokens. */
function pareto(): HTMLElement {
  const W = 420, H = 320, M = 44;
  const s = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-testid': 'pareto', role: 'img' });
  const x = (v: number) => M + v * (W - 2 * M);
  const y = (v: number) => H - M - v * (H - 2 * M);
  s.append(svg('rect', { x: M, y: M, width: W - 2 * M, height: H - 2 * M, class: 'plot' }));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    s.append(svg('text', { x: x(t), y: H - M + 16, class: 'tick', 'text-anchor': 'middle' }, `${t * 100}%`));
    s.append(svg('text', { x: M - 6, y: y(t) + 4, class: 'tick', 'text-anchor': 'end' }, `${t * 100}%`));
  }
  s.append(svg('text', { x: W / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle' }, 'benign over-refusal →'));
  s.append(svg('text', { x: 12, y: H / 2, class: 'axis', 'text-anchor': 'middle', transform: `rotate(-90 12 ${H / 2})` }, 'harmful refusal →'));
  const all = evals.flatMap((v, i) => paretoPoints(v.results).map((p) => ({ ...p, i })));
  const maxTok = Math.max(1, ...all.map((p) => p.safetyTokens));
  for (const p of all) {
    const r = 4 + 14 * Math.sqrt(p.safetyTokens / maxTok);
    const g = svg('g', { 'data-testid': 'pareto-point', 'data-eval': p.i, 'data-arm': p.arm });
    g.append(svg('circle', { cx: x(p.benignOverRefusal), cy: y(p.harmfulRefusal), r, class: `pt e${p.i}` }, svg('title', {}, `${evals[p.i]!.name} · ${p.arm}: harmful refusal ${pct(p.harmfulRefusal)}, benign over-refusal ${pct(p.benignOverRefusal)}, ${num(p.safetyTokens)} safety tokens`)));
    g.append(svg('text', { x: x(p.benignOverRefusal) + r + 3, y: y(p.harmfulRefusal) + 4, class: 'lbl' }, evals.length > 1 ? `${p.arm} (${p.i + 1})` : p.arm));
    s.append(g);
  }
  const wrap = el('div', { class: 'chart' }, s);
  if (!all.length) wrap.append(el('div', { class: 'warn' }, 'No arm has both harmful and benign prompts: nothing to plot.'));
  wrap.append(el('div', { class: 'legend' }, 'Marker area: mean safety-block tokens. ', ...evals.map((v, i) => el('span', { class: `key e${i}` }, `● ${v.name} `))));
  return wrap;
}

function categories(r: EvalResults, i: number): HTMLElement {
  const arms = r.arms_order.filter((a) => r.arms[a]);
  const cats = [...new Set(arms.flatMap((a) => Object.keys(r.arms[a]!.category ?? {})))].sort();
  const t = el('table', { class: 'grid', 'data-testid': `categories-${i}` });
  t.append(el('tr', {}, el('th', {}, 'category'), ...arms.map((a) => el('th', {}, `${a} refusal`))));
  for (const c of cats) t.append(el('tr', {}, el('td', {}, c || '(none)'), ...arms.map((a) => {
    const s = r.arms[a]!.category[c];
    const cut = s?.no_answer ? `, ${pct(s.no_answer)} with no answer` : '';
    return el('td', { class: 'n', title: s ? `n ${s.n}${cut}` : '' }, s ? `${pct(s.refusal)} (${s.n})` : '–');
  })));
  return t;
}

// ---------------------------------------------------------------- completions browser

const PAGE = 50;
const ANY = '\u0000any';
const ARM_COLOURS = ['blue', 'orange', 'green', 'purple', 'red', 'yellow'].map((c, i) => `var(--vscode-charts-${c}, ${['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'][i]})`);
type EvalRow = SampleRowMsg & { c: ReportCompletion };

const shown = (): EvalView | undefined => evals[Math.min(filter.eval, evals.length - 1)];

/** A completion as a row of the samples table. The report gets the safety block's text only:
 *  empty with a well-formed completion is an empty block, empty otherwise is none ("no block"). */
function toRow(c: ReportCompletion, i: number): EvalRow {
  return {
    runId: c.arm, step: i, prompt: c.prompt, completion: '', safety: c.safety === '' && !c.format_ok ? null : c.safety,
    answer: c.answer, safetyTokens: c.safety_tokens, rewards: {}, budget: c.budget, label: c.label || null, c,
  };
}

const count = el('span', { class: 'browser-count', 'data-testid': 'browser-count' });
const evalLabel = el('span', { class: 'ctl-label' }, 'Eval');
const evalSlot = el('span');
const armSlot = el('span');
const OUTCOMES: Record<string, Outcome> = { yes: 'refused', no: 'complied', 'no answer': 'no_answer' };
const refusedPick = dropdown([{ value: ANY, label: 'any' }, ...Object.keys(OUTCOMES).map((k) => ({ value: k, label: k }))], ANY, (v) => {
  filter.outcome = OUTCOMES[v] ?? null;
  completions.requery({ page: 0 });
}, { testId: 'filter-refused', title: 'Show completions the judge found refusing (yes), complying (no), or with no answer to judge (cut inside the safety block, or empty)' });

const completions = samplesTable<EvalRow>({
  title: 'Completions',
  pageNoun: 'page',
  pagerLabels: { prev: '◀ Previous', next: 'Next ▶' },
  pageText: (p) => (p.total ? `rows ${p.page * PAGE + 1}–${p.page * PAGE + p.rows.length} of ${p.total}` : ''),
  runTitle: 'Arm',
  run: (arm) => {
    const i = shown()?.results.arms_order.indexOf(arm) ?? -1;
    return { label: arm, colour: i < 0 ? 'transparent' : ARM_COLOURS[i % ARM_COLOURS.length]! };
  },
  columns: [
    { title: 'Category', text: (r) => r.c.category || '–' },
    { title: 'Refused', text: (r) => ({ refused: 'yes', complied: 'no', no_answer: 'no answer' })[outcome(r.c)], mark: (r) => (outcome(r.c) === 'no_answer' ? 'bad' : undefined) },
    { title: 'Format', text: (r) => (r.c.format_ok ? 'ok' : 'not ok'), mark: (r) => (r.c.format_ok ? undefined : 'bad') },
  ],
  filters: [evalLabel, evalSlot, el('span', { class: 'ctl-label' }, 'Arm'), armSlot, el('span', { class: 'ctl-label' }, 'Refused'), refusedPick],
  status: count,
  empty: (p) => (p.label !== null || filter.arm !== null || filter.outcome !== null ? 'No completions match the filters.' : 'No completions were read for this eval.'),
  query: (q) => browse(q),
});

/** The page the table asked for, from the shown eval's completions. */
function browse(q: SamplesQuery): void {
  const v = shown();
  if (!v) return;
  const rows = v.completions.filter((c) => (filter.arm === null || c.arm === filter.arm) && (q.label === null || c.label === q.label)
    && (filter.outcome === null || outcome(c) === filter.outcome));
  const pages = Math.ceil(rows.length / PAGE);
  const page = Math.min(q.page, Math.max(0, pages - 1));
  count.textContent = `${rows.length} completion${rows.length === 1 ? '' : 's'}`;
  const labels = [...new Set<string>([...EVAL_LABELS, ...v.completions.map((c) => c.label).filter((l) => l)])];
  const out: SamplesPage<EvalRow> = {
    page, label: q.label, reward: null, pages, total: rows.length, labels, rewardNames: [],
    rows: rows.slice(page * PAGE, (page + 1) * PAGE).map((c, i) => toRow(c, page * PAGE + i)),
  };
  completions.render(out);
}

/** The arm picker: the shown eval's arms (an arm it lacks is no longer filtered on). */
function armPicker(): void {
  const v = shown()!;
  const arms = [...new Set([...v.results.arms_order, ...v.completions.map((c) => c.arm)])];
  if (filter.arm !== null && !arms.includes(filter.arm)) filter.arm = null;
  armSlot.replaceChildren(dropdown([{ value: ANY, label: 'any' }, ...arms.map((a) => ({ value: a, label: a }))], filter.arm ?? ANY, (x) => {
    filter.arm = x === ANY ? null : x;
    completions.requery({ page: 0 });
  }, { testId: 'filter-arm', title: 'Show this arm\'s completions' }));
}

/** The completions browser for the evals shown: pickers follow them, the table shows its page. */
function browser(): HTMLElement {
  evalLabel.hidden = evalSlot.hidden = evals.length < 2;
  evalSlot.replaceChildren(...(evals.length < 2 ? [] : [dropdown(evals.map((e, i) => ({ value: String(i), label: `${i + 1}: ${e.name}` })), String(filter.eval), (x) => {
    filter.eval = Number(x);
    armPicker();
    completions.requery({ page: 0 });
  }, { testId: 'filter-eval', title: 'Whose completions to show' })]));
  armPicker();
  return completions.element;
}

function render(): void {
  root.replaceChildren();
  if (!evals.length) {
    root.append(el('p', {}, 'No eval loaded.'));
    return;
  }
  const bar = el('div', { class: 'toolbar' },
    button('Export CSV', () => post({ type: 'exportCsv' }), { testId: 'export-csv' }),
    ' ', button(evals.length > 1 ? 'Compare with another…' : 'Compare with…', () => post({ type: 'compare' }), { secondary: true, testId: 'compare' }));
  root.append(bar, ...evals.map(header));
  const side = (make: (r: EvalResults, i: number) => HTMLElement) => el('div', { class: `side n${evals.length}` }, ...evals.map((v, i) => el('div', {}, make(v.results, i))));
  root.append(el('h3', {}, 'Arm × label'), side(table));
  root.append(el('h3', {}, 'Harmful refusal vs benign over-refusal'), pareto());
  root.append(el('h3', {}, 'Per category'), side(categories));
  root.append(browser());
  completions.requery();
}

window.addEventListener('message', (ev: MessageEvent) => {
  const parsed = parseToWebview(ev.data);
  if (!parsed.ok) {
    root.replaceChildren(el('p', { class: 'warn' }, `Ignored a malformed message: ${parsed.error}`));
    return;
  }
  const m = parsed.value;
  if (m.type === 'error') {
    root.replaceChildren(el('p', { class: 'warn', 'data-testid': 'error' }, m.message));
    return;
  }
  evals = m.evals;
  filter.eval = Math.min(filter.eval, Math.max(0, evals.length - 1));
  render();
});
post({ type: 'ready' });
