// The eval report (browser side): per arm x label table, a Pareto chart (harmful-prompt
// refusal against benign over-refusal, marker area = mean safety tokens), per-category refusal,
// a completions browser (safety block and answer apart; filter by arm, label, refused) and,
// for two evals, everything side by side. Every host message is validated; user text is set
// only through textContent.
import './style.css';
import { EVAL_LABELS, paretoPoints, tableRows, type EvalResults } from '../../../extension/src/core/eval/results';
import { parseToWebview, type EvalView, type ToExtension } from '../../../extension/src/core/protocol/eval';
import { button, registerUi } from '../ui';

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
const filter = { eval: 0, arm: '', label: '', refused: '' };

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
  t.append(el('tr', {}, ...['arm', 'label', 'n', 'refusal', 'format ok', 'safety tok', 'answer tok', 'in budget'].map((h) => el('th', {}, h))));
  for (const row of tableRows(r)) {
    const s = row.stats;
    t.append(el('tr', { class: row.label === 'all' ? 'total' : '', 'data-arm': row.arm, 'data-label': row.label },
      el('td', {}, row.arm), el('td', {}, row.label), el('td', { class: 'n' }, String(s.n)), el('td', { class: 'n', 'data-stat': 'refusal' }, pct(s.refusal)),
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
    return el('td', { class: 'n', title: s ? `n ${s.n}` : '' }, s ? `${pct(s.refusal)} (${s.n})` : '–');
  })));
  return t;
}

function select(options: string[], value: string, onChange: (v: string) => void, testid: string): HTMLSelectElement {
  const s = el('select', { 'data-testid': testid });
  for (const o of options) {
    const opt = el('option', { value: o }, o || 'all');
    if (o === value) opt.selected = true;
    s.append(opt);
  }
  s.addEventListener('change', () => onChange(s.value));
  return s;
}

function browser(): HTMLElement {
  const box = el('div', { class: 'browser' });
  const v = evals[Math.min(filter.eval, evals.length - 1)]!;
  const arms = ['', ...v.results.arms_order];
  const bar = el('div', { class: 'filters' });
  if (evals.length > 1) bar.append('eval ', select(evals.map((_, i) => String(i + 1)), String(filter.eval + 1), (x) => { filter.eval = Number(x) - 1; render(); }, 'filter-eval'), ' ');
  bar.append('arm ', select(arms, filter.arm, (x) => { filter.arm = x; render(); }, 'filter-arm'), ' label ',
    select(['', ...EVAL_LABELS], filter.label, (x) => { filter.label = x; render(); }, 'filter-label'), ' refused ',
    select(['', 'yes', 'no'], filter.refused, (x) => { filter.refused = x; render(); }, 'filter-refused'));
  const rows = v.completions.filter((c) => (!filter.arm || c.arm === filter.arm) && (!filter.label || c.label === filter.label)
    && (!filter.refused || c.refused === (filter.refused === 'yes')));
  bar.append(el('span', { 'data-testid': 'browser-count' }, ` ${rows.length} completion${rows.length === 1 ? '' : 's'}`));
  box.append(bar);
  const LIMIT = 200;
  for (const c of rows.slice(0, LIMIT)) {
    box.append(el('div', { class: `completion${c.refused ? ' refused' : ''}`, 'data-testid': 'completion', 'data-id': c.id, 'data-arm': c.arm },
      el('div', { class: 'meta' }, `${c.id} · ${c.arm} · ${c.label}${c.category ? ' / ' + c.category : ''} · budget ${c.budget ?? 'none'} · ${c.refused ? 'refused' : 'complied'}${c.format_ok ? '' : ' · format not ok'}`),
      el('div', { class: 'prompt' }, c.prompt),
      el('div', { class: 'label' }, `safety block (${c.safety_tokens} tokens)`),
      el('pre', { class: 'safety', 'data-testid': 'safety' }, c.safety),
      el('div', { class: 'label' }, `answer (${c.answer_tokens} tokens)`),
      el('pre', { class: 'answer', 'data-testid': 'answer' }, c.answer)));
  }
  if (rows.length > LIMIT) box.append(el('div', { class: 'warn' }, `showing the first ${LIMIT}; narrow the filters to see the rest`));
  return box;
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
  root.append(el('h3', {}, 'Completions'), browser());
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
