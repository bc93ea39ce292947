// The samples table: a reusable webview component for completions about safety. It shows one
// page (a logged step) at a time with a pager, filters by label and by a reward's range, and
// per row: label, budget, safety tokens used against the budget, the prompt, the safety block
// (collapsible) and the answer split apart, and each reward. Text columns take the width;
// numbers stay narrow. A click on a text cell shows its full text. The dashboard uses it for
// training samples; other panels (eval completions) can use it with the same row shape
// (SampleRowMsg in core/protocol/dashboard.ts). Never inserts a received string as HTML.
import type { SampleRowMsg, SamplesQuery } from '../../../extension/src/core/protocol/dashboard';
import { button, dropdown, numberField, setDisabled } from '.';

export interface SamplesPage extends SamplesQuery {
  pages: number;
  total: number;
  labels: string[];
  rewardNames: string[];
  rows: SampleRowMsg[];
}

export interface SamplesTableOptions {
  /** Called when the user pages or filters: ask the host for that page. */
  query(q: SamplesQuery): void;
  /** A run's display name and colour (comparisons); omit for one run. */
  run?(runId: string): { label: string; colour: string } | undefined;
  /** Heading text. */
  title?: string;
  /** What to call a page ("step" for training samples). */
  pageNoun?: string;
  fmt?(v: number | null): string;
}

const ANY = '\u0000any';
const el = <T extends HTMLElement = HTMLElement>(tag: string, cls?: string, text?: string): T => {
  const e = document.createElement(tag) as T;
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const defaultFmt = (v: number | null): string => (v == null || !Number.isFinite(v) ? '–' : String(+v.toPrecision(4)));

export function samplesTable(o: SamplesTableOptions): { element: HTMLElement; render(p: SamplesPage): void } {
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
  let last: SamplesPage | null = null;
  const send = (next: Partial<SamplesQuery>) => {
    q = { ...q, ...next };
    o.query(q);
  };
  const newer = button('◀ Newer', () => send({ page: Math.max(0, q.page - 1) }), { secondary: true, testId: 'samples-newer', title: `The next ${noun}` });
  const older = button('Older ▶', () => send({ page: q.page + 1 }), { secondary: true, testId: 'samples-older', title: `The previous ${noun}` });
  pager.append(newer, pageText, older);
  const filters = el('span', 'samples-filters');
  let labelKey = '';
  let rewardKey = '';
  const labelSlot = el('span');
  const rewardSlot = el('span');
  const min = numberField(null, (v) => send({ page: 0, reward: q.reward ? { ...q.reward, min: v } : null }), { placeholder: 'min', testId: 'samples-reward-min', title: 'Lowest reward shown' });
  const max = numberField(null, (v) => send({ page: 0, reward: q.reward ? { ...q.reward, max: v } : null }), { placeholder: 'max', testId: 'samples-reward-max', title: 'Highest reward shown' });
  filters.append(el('span', 'ctl-label', 'Label'), labelSlot, el('span', 'ctl-label', 'Reward'), rewardSlot, min, max);
  head.append(h2, pager, filters);
  const body = el('div', 'samples-body');
  root.append(head, body);

  function filterControls(p: SamplesPage): void {
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

  function render(p: SamplesPage): void {
    last = p;
    q = { page: p.page, label: p.label, reward: p.reward };
    filterControls(p);
    pageText.textContent = p.pages ? `${noun} ${p.rows[0]?.step ?? '–'} · ${p.page + 1} of ${p.pages}` : '';
    setDisabled(newer, p.page <= 0);
    setDisabled(older, p.page >= p.pages - 1);
    body.textContent = '';
    if (!p.rows.length) {
      body.append(el('p', 'empty', p.label !== null || p.reward ? 'No samples match the filter.' : 'No samples logged yet.'));
      return;
    }
    const multi = new Set(p.rows.map((r) => r.runId)).size > 1 || p.rows.some((r) => o.run?.(r.runId));
    const table = el('table', 'samples-table');
    const hr = el('tr');
    const cols: [string, string][] = [
      ...(multi ? [['Run', 'narrow'] as [string, string]] : []),
      ['Label', 'narrow'], ['Budget', 'num'], ['Safety tokens', 'num'], ['Prompt', 'text'], ['Safety block', 'text'], ['Answer', 'text'],
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
      tr.append(el('td', 'narrow', r.label ?? '–'), el('td', 'num', fmt(r.budget)));
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

  return { element: root, render: (p) => render(p) };
}
