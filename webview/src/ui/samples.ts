// The samples table: the one webview component that shows completions about safety. It shows
// one page at a time with a pager, filters by label and by a reward's range, and per row:
// label, budget, safety tokens used against the budget, the prompt, the safety block
// (collapsible) and the answer split apart, and each reward. Text columns take the width;
// numbers stay narrow. A click on a text cell shows its full text. The dashboard uses it for
// training samples (a page is a logged step, asked of the host); the eval report uses it for
// its completions (pages of 50, filtered in the page) with its own filters (eval, arm, refused),
// its page text, an "Arm" column through `run` and its own columns (refused, format).
// Rows have one shape (SampleRowMsg in core/protocol/dashboard.ts), extended by a caller for
// its own columns. Never inserts a received string as HTML. Styles: samples.css.
import type { SampleRowMsg, SamplesQuery } from '../../../extension/src/core/protocol/dashboard';
import { button, dropdown, numberField, setDisabled } from '.';
import './samples.css';

export interface SamplesPage<R extends SampleRowMsg = SampleRowMsg> extends SamplesQuery {
  pages: number;
  total: number;
  labels: string[];
  /** The reward columns (and the reward filter, hidden when there are none). */
  rewardNames: string[];
  rows: R[];
}

/** A caller's own column, shown after the label: short text, kept narrow. */
export interface SamplesColumn<R> {
  title: string;
  text(row: R): string;
  /** 'num' aligns right; default 'narrow'. */
  cls?: 'num' | 'narrow';
  /** An extra class for a row's cell (e.g. to mark a value), or undefined. */
  mark?(row: R): string | undefined;
}

export interface SamplesTableOptions<R extends SampleRowMsg = SampleRowMsg> {
  /** Called when the user pages or filters: fetch (or compute) that page and render it. */
  query(q: SamplesQuery): void;
  /** A run's display name and colour (comparisons); omit for one run. */
  run?(runId: string): { label: string; colour: string } | undefined;
  /** The heading of the run column (default "Run"). */
  runTitle?: string;
  /** Heading text. */
  title?: string;
  /** What to call a page ("step" for training samples). */
  pageNoun?: string;
  /** The pager's text (default "<pageNoun> <step of the first row> · <page> of <pages>"). */
  pageText?(p: SamplesPage<R>): string;
  /** The pager buttons' labels (default "◀ Newer" / "Older ▶", newest page first). */
  pagerLabels?: { prev: string; next: string };
  /** The caller's own filter controls, shown before the label filter. The caller keeps their
   *  state and calls requery({ page: 0 }) when one changes. */
  filters?: HTMLElement[];
  /** An element shown at the end of the header (e.g. a count of the filtered rows). */
  status?: HTMLElement;
  /** The caller's own columns, after the label. */
  columns?: SamplesColumn<R>[];
  /** The text when a page has no rows (default: "No samples match the filter." or "No samples logged yet."). */
  empty?(p: SamplesPage<R>): string;
  fmt?(v: number | null): string;
}

export interface SamplesTable<R extends SampleRowMsg = SampleRowMsg> {
  element: HTMLElement;
  render(p: SamplesPage<R>): void;
  /** Query again with the current page and filters, changed by `next` (e.g. { page: 0 }). */
  requery(next?: Partial<SamplesQuery>): void;
}

const ANY = '\u0000any';
const el = <T extends HTMLElement = HTMLElement>(tag: string, cls?: string, text?: string): T => {
  const e = document.createElement(tag) as T;
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const defaultFmt = (v: number | null): string => (v == null || !Number.isFinite(v) ? '–' : String(+v.toPrecision(4)));

export function samplesTable<R extends SampleRowMsg = SampleRowMsg>(o: SamplesTableOptions<R>): SamplesTable<R> {
  const fmt = o.fmt ?? defaultFmt;
  const noun = o.pageNoun ?? 'step';
  const root = el('section', 'samples');
  root.dataset.testid = 'samples';
  const head = el('header', 'samples-head');
  const h2 = el('h2', '', o.title ?? 'Samples');
  const pager = el('span', 'samples-pager');
  const pageText = el('span', 'samples-page');
  pageText.dataset.testid = 'samples-page';
  let q: SamplesQuery = { page: 0, label: null, reward: null };
  const send = (next: Partial<SamplesQuery>) => {
    q = { ...q, ...next };
    o.query(q);
  };
  const pl = o.pagerLabels;
  const newer = button(pl?.prev ?? '◀ Newer', () => send({ page: Math.max(0, q.page - 1) }), { secondary: true, testId: 'samples-newer', title: pl ? `The previous ${noun}` : `The next ${noun}` });
  const older = button(pl?.next ?? 'Older ▶', () => send({ page: q.page + 1 }), { secondary: true, testId: 'samples-older', title: pl ? `The next ${noun}` : `The previous ${noun}` });
  pager.append(newer, pageText, older);
  const filters = el('span', 'samples-filters');
  let labelKey = '';
  let rewardKey = '';
  const labelSlot = el('span');
  const rewardSlot = el('span');
  const min = numberField(null, (v) => send({ page: 0, reward: q.reward ? { ...q.reward, min: v } : null }), { placeholder: 'min', testId: 'samples-reward-min', title: 'Lowest reward shown' });
  const max = numberField(null, (v) => send({ page: 0, reward: q.reward ? { ...q.reward, max: v } : null }), { placeholder: 'max', testId: 'samples-reward-max', title: 'Highest reward shown' });
  const rewardBox = el('span', 'samples-reward-filter');
  rewardBox.append(el('span', 'ctl-label', 'Reward'), rewardSlot, min, max);
  filters.append(...(o.filters ?? []), el('span', 'ctl-label', 'Label'), labelSlot, rewardBox);
  head.append(h2, pager, filters);
  if (o.status) head.append(o.status);
  const body = el('div', 'samples-body');
  root.append(head, body);

  function filterControls(p: SamplesPage<R>): void {
    const lk = JSON.stringify(p.labels);
    if (lk !== labelKey) {
      labelKey = lk;
      labelSlot.textContent = '';
      labelSlot.append(dropdown([{ value: ANY, label: 'any' }, ...p.labels.map((l) => ({ value: l, label: l }))], q.label ?? ANY,
        (v) => send({ page: 0, label: v === ANY ? null : v }), { testId: 'samples-label', title: 'Show rows with this label' }));
    }
    const rk = JSON.stringify(p.rewardNames);
    if (rk !== rewardKey) {
      rewardKey = rk;
      rewardSlot.textContent = '';
      rewardSlot.append(dropdown([{ value: ANY, label: 'any' }, ...p.rewardNames.map((n) => ({ value: n, label: n }))], q.reward?.name ?? ANY,
        (v) => send({ page: 0, reward: v === ANY ? null : { name: v, min: min.value === '' ? null : Number(min.value), max: max.value === '' ? null : Number(max.value) } }),
        { testId: 'samples-reward', title: 'Filter by this reward\'s value (min / max)' }));
    }
    setDisabled(min, !q.reward);
    setDisabled(max, !q.reward);
    rewardBox.hidden = !p.rewardNames.length && !q.reward;
  }

  /** A text cell: clamped to a few lines; a click shows (and hides) the full text. */
  function textCell(tr: HTMLElement, text: string, cls: string): HTMLElement {
    const td = el('td', `text ${cls}`);
    const div = el('div', 'clamp', text);
    div.title = 'Click to show the full text';
    td.append(div);
    td.addEventListener('click', () => td.classList.toggle('full'));
    tr.append(td);
    return td;
  }

  function render(p: SamplesPage<R>): void {
    q = { page: p.page, label: p.label, reward: p.reward };
    filterControls(p);
    pageText.textContent = o.pageText ? o.pageText(p) : p.pages ? `${noun} ${p.rows[0]?.step ?? '–'} · ${p.page + 1} of ${p.pages}` : '';
    setDisabled(newer, p.page <= 0);
    setDisabled(older, p.page >= p.pages - 1);
    body.textContent = '';
    if (!p.rows.length) {
      body.append(el('p', 'empty', o.empty ? o.empty(p) : p.label !== null || p.reward ? 'No samples match the filter.' : 'No samples logged yet.'));
      return;
    }
    const multi = new Set(p.rows.map((r) => r.runId)).size > 1 || p.rows.some((r) => o.run?.(r.runId));
    const extra = o.columns ?? [];
    const table = el('table', 'samples-table');
    const hr = el('tr');
    const cols: [string, string][] = [
      ...(multi ? [[o.runTitle ?? 'Run', 'narrow'] as [string, string]] : []),
      ['Label', 'narrow'], ...extra.map((c) => [c.title, c.cls ?? 'narrow'] as [string, string]), ['Budget', 'num'], ['Safety tokens', 'num'], ['Prompt', 'text'], ['Safety block', 'text'], ['Answer', 'text'],
      ...p.rewardNames.map((n) => [n.replace(/_reward$/, ''), 'num'] as [string, string]),
    ];
    for (const [c, cls] of cols) hr.append(el('th', cls, c));
    const thead = el('thead');
    thead.append(hr);
    const tbody = el('tbody');
    for (const r of p.rows) {
      const tr = el('tr');
      if (multi) {
        const info = o.run?.(r.runId);
        const td = el('td', 'narrow', info?.label ?? r.runId);
        if (info) td.style.setProperty('--run-colour', info.colour);
        td.classList.add('run-cell');
        tr.append(td);
      }
      tr.append(el('td', 'narrow', r.label ?? '–'));
      for (const c of extra) {
        const td = el('td', c.cls ?? 'narrow', c.text(r));
        const mark = c.mark?.(r);
        if (mark) td.classList.add(mark);
        tr.append(td);
      }
      tr.append(el('td', 'num', fmt(r.budget)));
      const used = el('td', 'num', r.safetyTokens === null ? '–' : r.budget !== null ? `${fmt(r.safetyTokens)} / ${fmt(r.budget)}` : fmt(r.safetyTokens));
      if (r.safetyTokens !== null && r.budget !== null && r.safetyTokens > r.budget) used.classList.add('over');
      tr.append(used);
      textCell(tr, r.prompt, 'prompt');
      // the safety block, collapsible (shown open); "no block" when the completion opens none
      const st = el('td', 'text safety');
      if (r.safety === null) st.append(el('span', 'none', 'no block'));
      else {
        const d = el<HTMLDetailsElement>('details');
        d.open = true;
        const sum = el('summary', '', `${r.safety.length} chars`);
        const div = el('div', 'clamp', r.safety);
        div.addEventListener('click', () => st.classList.toggle('full'));
        d.append(sum, div);
        st.append(d);
      }
      tr.append(st);
      textCell(tr, r.answer, 'answer');
      for (const n of p.rewardNames) tr.append(el('td', 'num', fmt(r.rewards[n] ?? null)));
      tbody.append(tr);
    }
    table.append(thead, tbody);
    body.append(table);
  }

  return { element: root, render: (p) => render(p), requery: (next = {}) => send(next) };
}
