// The prompt-budget inspector (browser side). Shows what the allocator decided for one prompt:
// risk, ambiguity, categories, the tier thresholds with the prompt's place among them, the
// budget, and the words that drive the score (occlusion attribution). Every message from the
// host is validated; user text is only ever set through textContent.
import './style.css';
import { parseToWebview, type InspectorView, type ToExtension } from '../../../extension/src/core/protocol/inspector';
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

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const root = document.getElementById('root')!;

/** A 0..1 axis with threshold ticks and the prompt's marker. */
function axis(label: string, value: number, ticks: Array<{ at: number; name: string }>, testid: string): HTMLElement {
  const track = el('div', { class: 'track' });
  for (const t of ticks) {
    const tick = el('div', { class: 'tick', title: `${t.name} at ${t.at}` });
    tick.style.left = `${t.at * 100}%`;
    tick.append(el('span', { class: 'tick-label' }, `${t.name} ${t.at}`));
    track.append(tick);
  }
  const marker = el('div', { class: 'marker', 'data-testid': `${testid}-marker`, title: `${label} ${pct(value)}` });
  marker.style.left = `${value * 100}%`;
  track.append(marker);
  return el('div', { class: 'axis' }, el('div', { class: 'axis-label' }, `${label} `, el('strong', { 'data-testid': testid }, pct(value))), track);
}

function render(v: InspectorView): void {
  root.replaceChildren();
  // Headline: the decision.
  root.append(
    el('section', { class: 'headline' },
      el('div', { class: `tier tier-${v.tier}`, 'data-testid': 'tier' }, v.tier),
      el('div', { class: 'budget' }, el('span', { 'data-testid': 'budget' }, String(v.training?.budget ?? v.budget)), ' tokens of safety reasoning'),
      el('div', { class: 'reason', 'data-testid': 'reason' }, v.reason),
    ),
  );
  // the budget training would assign (one budget everywhere), the settings that produced it,
  // and the tier explained by both scores
  if (v.training) {
    root.append(
      el('section', { class: 'training', 'data-testid': 'training' },
        el('p', {}, `Training would assign ${v.training.budget} tokens (${v.training.from}${v.training.from === 'allocator' && v.training.budget !== v.budget ? `; the ${v.tier} tier's ${v.budget}` : ''}): ${v.training.why}.`),
        el('p', { 'data-testid': 'tier-why' }, `Tier ${v.tier}: ${v.training.tierWhy}.`),
      ),
    );
  }
  if (v.truncated) {
    root.append(el('p', { class: 'warn', 'data-testid': 'truncated' }, `The prompt is longer than the allocator reads (${v.maxTokens} tokens); only its beginning was scored.`));
  }
  if (v.unfamiliar) {
    root.append(el('p', { class: 'warn', 'data-testid': 'unfamiliar' }, 'The prompt is written mostly in a script the allocator did not learn both harmful and benign prompts in, so its risk is not to be trusted there: it gets at least the standard tier.'));
  }
  // Where the prompt sits among the thresholds.
  const t = v.thresholds;
  root.append(
    el('section', {},
      el('h2', {}, 'Risk and ambiguity against the tier thresholds'),
      axis('risk', v.risk, [{ at: t.risk_standard, name: 'standard' }, { at: t.risk_harmful, name: 'brief (harmful)' }], 'risk'),
      axis('ambiguity', v.ambiguity, [{ at: t.ambiguity_standard, name: 'standard' }, { at: t.ambiguity_deep, name: 'deep' }], 'ambiguity'),
    ),
  );
  // The decision table, the matched row highlighted.
  const table = el('table', { class: 'rules', 'data-testid': 'rules' }, el('tr', {}, el('th', {}, 'tier'), el('th', {}, 'rule (first match wins)'), el('th', {}, 'budget')));
  for (const r of v.rows) {
    table.append(el('tr', r.matched ? { class: 'matched' } : {}, el('td', {}, r.tier), el('td', {}, r.rule), el('td', { class: 'num' }, `${r.budget} tok`)));
  }
  root.append(el('section', {}, el('h2', {}, 'Budget policy'), table));
  // Categories.
  if (v.categories.length) {
    const list = el('div', { class: 'cats', 'data-testid': 'categories' });
    for (const c of v.categories) {
      const bar = el('div', { class: 'bar' });
      bar.style.width = `${c.p * 100}%`;
      list.append(el('div', { class: 'cat' }, el('span', { class: 'cat-name' }, c.name), el('div', { class: 'bar-track' }, bar), el('span', { class: 'num' }, pct(c.p))));
    }
    root.append(el('section', {}, el('h2', {}, 'Categories'), list));
  }
  // Words driving the score.
  // Ranked and shaded by log-odds: near risk 0 or 1 the probability barely moves for any word.
  const maxAbs = Math.max(1e-6, ...v.words.map((w) => Math.abs(w.logitDelta)));
  const signed = (x: number, digits: number) => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
  const text = el('div', { class: 'prompt-view', 'data-testid': 'attribution' });
  let pos = 0;
  for (const w of v.words) {
    if (w.start > pos) text.append(v.prompt.slice(pos, w.start));
    const span = el('span', { class: w.logitDelta >= 0 ? 'up' : 'down', title: `risk ${signed(w.delta * 100, 1)} points, log-odds ${signed(w.logitDelta, 2)} with this word` }, v.prompt.slice(w.start, w.end));
    span.style.setProperty('--w', String(Math.abs(w.logitDelta) / maxAbs));
    text.append(span);
    pos = w.end;
  }
  if (pos < v.prompt.length) text.append(el('span', { class: 'rest' }, v.prompt.slice(pos, pos + 5000)));
  const drivers = el('ol', { class: 'drivers', 'data-testid': 'drivers' });
  for (const w of [...v.words].sort((a, b) => Math.abs(b.logitDelta) - Math.abs(a.logitDelta)).slice(0, 8)) {
    drivers.append(el('li', {}, el('code', {}, w.word), ` ${w.logitDelta >= 0 ? 'raises' : 'lowers'} risk: log-odds ${signed(w.logitDelta, 2)} (${signed(w.delta * 100, 1)} points)`));
  }
  root.append(
    el('section', {},
      el('h2', {}, 'Words driving the score'),
      el('p', { class: 'note' }, `Each word dropped in turn and the prompt rescored${v.occludedAll ? '' : ' (first words only)'}; red raises risk, green lowers it.`),
      text, drivers,
    ),
  );
  // Edit and rescore.
  const area = el('textarea', { 'data-testid': 'prompt-input', rows: '4', 'aria-label': 'prompt' });
  area.value = v.prompt.length > 100_000 ? v.prompt.slice(0, 100_000) : v.prompt;
  const btn = button('Score again', () => post({ type: 'rescore', prompt: area.value }), { testId: 'rescore' });
  root.append(
    el('section', {}, el('h2', {}, 'Try a variant'), area, btn),
    el('footer', {}, `${v.tokens} tokens read · model ${v.modelVersion} · ${v.modelDir}`),
  );
  vscode.setState(v);
}

window.addEventListener('message', (ev: MessageEvent) => {
  const parsed = parseToWebview(ev.data);
  if (!parsed.ok) {
    root.replaceChildren(el('p', { class: 'error' }, `Ignored a malformed message: ${parsed.error}`));
    return;
  }
  const m = parsed.value;
  if (m.type === 'show') render(m.view);
  else if (m.type === 'loading') root.replaceChildren(el('p', { class: 'loading', 'data-testid': 'loading' }, 'Scoring the prompt…'));
  else root.replaceChildren(el('p', { class: 'error', 'data-testid': 'error' }, m.message));
});

const saved = vscode.getState();
if (saved) {
  const parsed = parseToWebview({ type: 'show', view: saved });
  if (parsed.ok && parsed.value.type === 'show') render(parsed.value.view);
}
post({ type: 'ready' });
