// The dashboard webview: uPlot charts of a run's GRPO metrics (or several runs on the same
// axes, one colour per run, each run toggled from its chip), an EMA smoothing slider, x by
// step / relative / wall time, drag-to-zoom (asks the host for a finer window), a tooltip at
// the cursor with every series' value (the reward's std included), colours that follow theme
// changes live, a failed run's root cause, the samples table (ui/samples.ts), the compared
// runs' config diff and CSV/PNG export. Talks to the host only through
// core/protocol/dashboard, validating every message it receives. Never inserts a received
// string as HTML.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import '../ui/ui.css';
import './dashboard.css';
import {
  isViewState, parseToWebview, type ChartSpec, type ChartWindow, type RunMeta, type ToExtension,
  type ToWebview, type ViewState, type XAxis,
} from '../../../extension/src/core/protocol/dashboard';
import { badge, button, dropdown, registerUi, slider } from '../ui';
import { samplesTable } from '../ui/samples';
import { causeNote, emptyNote } from './notes';

/** Replaced at build time: true only in the test bundle the Chromium tests build (tests/webview/helpers.ts). */
declare const __TEST_HOOKS__: boolean;

const vscode = acquireVsCodeApi();
registerUi();

// ---------------------------------------------------------------- state
const savedState = vscode.getState() as { view?: unknown; runIds?: unknown } | undefined;
const saved = savedState?.view;
/** The runs shown, kept in state so the extension's serializer can reopen them after a reload. */
let runIds: string[] = Array.isArray(savedState?.runIds) ? (savedState.runIds as unknown[]).filter((x): x is string => typeof x === 'string') : [];
const view: ViewState = isViewState(saved) ? saved : { xAxis: 'step', range: null, smoothing: 0, width: 600, hidden: [] };
let viewId = 0;
let title = 'Dashboard';
let runs: RunMeta[] = [];
let charts: ChartSpec[] = [];
let lastWindow: Extract<ToWebview, { type: 'window' }> | null = null;
/** One per chart; the uPlot is created with the first window (so it is built once, with data). */
const plots = new Map<string, { u: uPlot | null; sig: string; section: HTMLElement; keys: string[] }>();
let reqId = 0;
/** What was drawn, and how long each window took to apply: read by the tests and the benchmark through their own bundle's hook. */
const debug = { windows: 0, renders: [] as number[], errors: [] as string[], lastApplyMs: 0, layoutMs: 0, sentViewId: 0, appliedViewId: -1, themes: 0 };
if (__TEST_HOOKS__) (window as unknown as { __dashboard: unknown }).__dashboard = { debug, plots, view };

function post(msg: ToExtension): void {
  vscode.postMessage(msg);
}
function saveState(): void {
  vscode.setState({ view, runIds });
}
function sendView(): void {
  saveState();
  post({ type: 'view', viewId: ++viewId, ...view });
  debug.sentViewId = viewId;
}

// ---------------------------------------------------------------- DOM
const $ = <T extends HTMLElement = HTMLElement>(tag: string, cls?: string, text?: string): T => {
  const e = document.createElement(tag) as T;
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const root = document.getElementById('root') ?? document.body.appendChild($('div'));
root.textContent = '';
const toolbar = $('header', 'toolbar');
const titleEl = $('h1', 'title', title);
const runsEl = $('div', 'runs');
runsEl.dataset.testid = 'runs';
const axisDd = dropdown(
  [{ value: 'step', label: 'Step' }, { value: 'relative', label: 'Relative time' }, { value: 'wall', label: 'Wall time' }],
  view.xAxis,
  (v) => { view.xAxis = v as XAxis; view.range = null; sendView(); },
  { testId: 'x-axis', title: 'X axis' },
);
const smoothVal = $('span', 'smooth-value', view.smoothing.toFixed(2));
/** A frame requested to send the slider's value: a drag sends at most one view per frame, the latest. */
let smoothFrame = 0;
const smooth = slider(0, 0.99, 0.01, view.smoothing, (v) => {
  view.smoothing = v;
  smoothVal.textContent = v.toFixed(2);
  saveState();
  if (!smoothFrame) smoothFrame = requestAnimationFrame(() => { smoothFrame = 0; sendView(); });
}, { testId: 'smoothing', title: 'EMA smoothing (TensorBoard-style, debiased)' });
const resetBtn = button('Reset zoom', () => { view.range = null; sendView(); }, { secondary: true, testId: 'reset-zoom' });
const csvBtn = button('Export CSV', () => post({ type: 'exportCsv', reqId: ++reqId }), { testId: 'export-csv', title: 'Every row of every series' });
const statusEl = $('span', 'status');
statusEl.dataset.testid = 'status';
const label = (t: string, el: HTMLElement) => { const l = $('label', 'ctl'); l.append($('span', 'ctl-label', t), el); return l; };
toolbar.append(titleEl, runsEl, $('span', 'spacer'), label('X axis', axisDd), label('Smoothing', smooth), smoothVal, resetBtn, csvBtn);
const errorEl = $('div', 'error');
errorEl.dataset.testid = 'error';
errorEl.hidden = true;
const grid = $('main', 'grid');
grid.dataset.testid = 'charts';
const empty = $('p', 'empty', 'Waiting for metrics…');
grid.append(empty);
/** Why a failed run failed (the trainer's error line), one line per failed run. */
const budgetsEl = $('div', 'budgets');
budgetsEl.dataset.testid = 'budgets';
budgetsEl.hidden = true;
const causeEl = $('div', 'cause');
causeEl.dataset.testid = 'cause';
causeEl.hidden = true;
const samples = samplesTable({
  title: 'Samples',
  query: (q) => post({ type: 'samplesQuery', ...q }),
  run: (id) => (compare() ? { label: runLabel(id), colour: runColour(id) } : undefined),
  fmt: fmtNum,
});
const configSec = $('section', 'config');
configSec.dataset.testid = 'config';
configSec.hidden = true;
// the samples table joins the page with its first page of rows, after the charts' first draw:
// laid out with the charts, its controls alone cost the first render a few milliseconds
root.append(toolbar, statusEl, errorEl, causeEl, budgetsEl, grid, configSec);

function showError(msg: string): void {
  debug.errors.push(msg);
  errorEl.hidden = false;
  errorEl.textContent = msg;
}

// ---------------------------------------------------------------- colours
// read from the theme's variables, and read again when VS Code switches the theme
let css = getComputedStyle(document.body);
const themeVar = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
let PALETTE: string[] = [];
let FG = '';
let GRID = '';
let BG = '';
let FONT = '';
function readTheme(): void {
  css = getComputedStyle(document.body);
  PALETTE = [
    themeVar('--vscode-charts-blue', '#3794ff'), themeVar('--vscode-charts-orange', '#d18616'),
    themeVar('--vscode-charts-green', '#89d185'), themeVar('--vscode-charts-purple', '#b180d7'),
    themeVar('--vscode-charts-red', '#f14c4c'), themeVar('--vscode-charts-yellow', '#cca700'),
    '#4ec9b0', '#ce9178', '#9cdcfe', '#c586c0',
  ];
  FG = themeVar('--vscode-foreground', '#cccccc');
  // the grid is the foreground, faint: visible on light and dark themes alike
  GRID = alpha(FG, 0.16);
  BG = themeVar('--vscode-editor-background', '#1e1e1e');
  FONT = `${themeVar('--vscode-font-size', '12px')} ${themeVar('--vscode-font-family', 'sans-serif')}`;
}
const alphaCache = new Map<string, string>();
const alpha = (c: string, a: number): string => {
  const key = `${c}/${a}`;
  let v = alphaCache.get(key);
  if (v === undefined) {
    const m = /^#([0-9a-f]{6})$/i.exec(c);
    const n = m ? parseInt(m[1], 16) : 0;
    const rgb = /^rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(c);
    v = m ? `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})` : rgb ? `rgba(${rgb[1]},${rgb[2]},${rgb[3]},${a})` : c;
    alphaCache.set(key, v);
  }
  return v;
};
readTheme();
/** A theme switch changes the variables on <html> and the theme class on <body>: rebuild every plot with the new colours. */
let themeSig = '';
const themeNow = () => `${document.body.className}|${document.documentElement.getAttribute('style') ?? ''}`;
themeSig = themeNow();
const themeWatch = new MutationObserver(() => {
  const sig = themeNow();
  if (sig === themeSig) return;
  themeSig = sig;
  readTheme();
  debug.themes++;
  for (const p of plots.values()) {
    p.u?.destroy();
    p.u = null;
    p.sig = '';
  }
  renderRuns();
  if (lastWindow) applyWindow(lastWindow);
});
themeWatch.observe(document.body, { attributes: true, attributeFilter: ['class', 'style'] });
themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ['class', 'style'] });

// ---------------------------------------------------------------- formatting
function fmtNum(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(+v.toPrecision(5));
}
function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(1);
  return String(+v.toPrecision(4));
}
function fmtDuration(s: number): string {
  const a = Math.abs(s);
  if (a < 120) return `${+s.toFixed(1)}s`;
  if (a < 7200) return `${+(s / 60).toFixed(1)}m`;
  return `${+(s / 3600).toFixed(2)}h`;
}
function fmtX(v: number): string {
  if (v == null || !Number.isFinite(v)) return '–';
  if (view.xAxis === 'step') return String(Math.round(v));
  if (view.xAxis === 'relative') return fmtDuration(v);
  return new Date(v * 1000).toLocaleString();
}

// ---------------------------------------------------------------- charts
interface Built {
  data: uPlot.AlignedData;
  series: uPlot.Series[];
  bands: uPlot.Band[];
  keys: string[];
  sig: string;
}

const compare = () => runs.length > 1;
const runLabel = (id: string) => runs.find((r) => r.id === id)?.label ?? id;
/** In a comparison every run has one colour (its series differ by dash); alone, each series has its own. */
const runColour = (id: string) => PALETTE[Math.max(0, runs.findIndex((r) => r.id === id)) % PALETTE.length];
const DASHES: (number[] | undefined)[] = [undefined, [6, 3], [2, 3], [8, 3, 2, 3], [1, 2]];
const runHidden = (id: string) => (view.hiddenRuns ?? []).includes(id);

/** Builds uPlot data and series for one chart from the extension's window (runs joined on x). */
function build(spec: ChartSpec, w: ChartWindow | undefined, smoothing: number): Built {
  const tables: uPlot.AlignedData[] = [];
  const series: uPlot.Series[] = [{ label: view.xAxis === 'step' ? 'step' : 'time', value: (_u, v) => fmtX(v) }];
  const bands: uPlot.Band[] = [];
  const keys: string[] = [];
  const toArr = (a: ArrayLike<number | null>): (number | null)[] => {
    const out = new Array<number | null>(a.length);
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      out[i] = v !== null && Number.isFinite(v) ? v : null;
    }
    return out;
  };
  let colour = 0;
  for (const rw of w?.runs ?? []) {
    if (compare() && runHidden(rw.runId)) continue;
    const cols: (number | null)[][] = [];
    const prefix = compare() ? `${runLabel(rw.runId)} · ` : '';
    let dash = 0;
    // the band (reward ± std): shaded for one run; in a comparison kept undrawn, for the tooltip's std
    if (spec.band && rw.y[spec.band.lo] && rw.y[spec.band.hi]) {
      const base = series.length;
      const c = compare() ? runColour(rw.runId) : PALETTE[0];
      series.push({ label: `${spec.band.label} (lo)`, stroke: alpha(c, 0.25), width: 0, value: (_u, v) => fmtNum(v), points: { show: false } });
      series.push({ label: `${spec.band.label} (hi)`, stroke: alpha(c, 0.25), width: 0, value: (_u, v) => fmtNum(v), points: { show: false } });
      cols.push(toArr(rw.y[spec.band.lo]), toArr(rw.y[spec.band.hi]));
      keys.push(`${rw.runId}/${spec.band.lo}`, `${rw.runId}/${spec.band.hi}`);
      if (!compare()) bands.push({ series: [base + 1, base], fill: alpha(c, 0.15) });
    }
    for (const s of spec.series) {
      const y = rw.y[s.key];
      if (!y) continue;
      const c = compare() ? runColour(rw.runId) : PALETTE[colour++ % PALETTE.length];
      const d = compare() ? DASHES[dash++ % DASHES.length] : undefined;
      if (smoothing > 0 && rw.raw?.[s.key]) {
        series.push({ label: `${prefix}${s.label} (raw)`, stroke: alpha(c, 0.3), width: 1, dash: d, value: (_u, v) => fmtNum(v), points: { show: false }, class: 'raw' } as uPlot.Series);
        cols.push(toArr(rw.raw[s.key]));
        keys.push(`${rw.runId}/${s.key}/raw`);
      }
      // markers where points are few (uPlot's default), and on a lone value between gaps, which no line reaches
      series.push({ label: `${prefix}${s.label}`, stroke: c, width: 1.5, dash: d, value: (_u, v) => fmtNum(v), points: { fill: c, filter: lonePoints } });
      cols.push(toArr(y));
      keys.push(`${rw.runId}/${s.key}`);
    }
    tables.push([Array.from(rw.x), ...cols] as uPlot.AlignedData);
  }
  let data: uPlot.AlignedData;
  if (tables.length === 0) data = [[]];
  else if (tables.length === 1) data = tables[0];
  else data = uPlot.join(tables);
  for (let i = 1; i < series.length; i++) {
    if (view.hidden.includes(`${spec.id}/${keys[i - 1]}`)) series[i].show = false;
  }
  const sig = JSON.stringify([view.xAxis, keys, spec.log ?? false, runs.map((r) => r.label)]);
  return { data, series, bands, keys, sig };
}

/**
 * The values of series `si` with no value to join on either side (a gap or the end): a line
 * draws nothing for them, so they get a marker. Alignment artifacts of joined runs
 * (undefined) are not gaps: the line runs across them.
 */
function lonePoints(u: uPlot, si: number, show: boolean): number[] | null {
  if (show) return null;
  const y = u.data[si] as ArrayLike<number | null | undefined>;
  const [i0, i1] = u.series[0].idxs ?? [0, y.length - 1];
  const out: number[] = [];
  let prev: number | null | undefined = null;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (v === undefined) continue;
    if (v !== null && prev === null && i >= i0 && i <= i1) {
      let next: number | null | undefined = null;
      for (let j = i + 1; j < y.length; j++) if ((next = y[j]) !== undefined) break;
      if (next === null || next === undefined) out.push(i);
    }
    prev = v;
  }
  return out.length ? out : null;
}

/**
 * Every chart has the same size (one grid track each), so it is measured once per pass:
 * reading a layout value between DOM writes would force a page layout per chart.
 */
let sizeCache: { width: number; height: number } | null = null;
/** The size measured when the layout last changed (ResizeObserver); live updates reuse it. */
let lastSize: { width: number; height: number } | null = null;
function plotSize(section: HTMLElement): { width: number; height: number } {
  if (sizeCache) return sizeCache;
  const width = Math.max(200, Math.floor(section.clientWidth - 16));
  return { width, height: 220 };
}

let zoomPending = false;
const Y_AXIS = 64;

function makePlot(spec: ChartSpec, section: HTMLElement, b: Built): uPlot {
  const host = section.querySelector<HTMLElement>('.plot')!;
  host.textContent = '';
  const axis: uPlot.Axis = { stroke: FG, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, font: FONT };
  const opts: uPlot.Options = {
    ...plotSize(section),
    series: b.series,
    bands: b.bands,
    scales: { x: { time: view.xAxis === 'wall' } },
    axes: [
      { ...axis, ...(view.xAxis === 'relative' ? { values: (_u, ticks) => ticks.map(fmtDuration) } : {}) },
      { ...axis, size: Y_AXIS, values: (_u, ticks) => ticks.map(fmtTick) },
    ],
    // values go in the tooltip at the cursor; the legend stays a compact list to toggle series
    legend: { live: false },
    cursor: { drag: { x: true, y: false, setScale: false }, sync: { key: 'conscience-dashboard' } },
    hooks: {
      setSelect: [(u) => {
        const sel = u.select;
        if (sel.width < 3) return;
        const lo = u.posToVal(sel.left, 'x');
        const hi = u.posToVal(sel.left + sel.width, 'x');
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        if (!(hi > lo)) return;
        // the cursor sync repeats the selection on every chart: act once per gesture
        if (zoomPending) return;
        zoomPending = true;
        queueMicrotask(() => {
          zoomPending = false;
          view.range = [lo, hi];
          for (const p of plots.values()) p.u?.setScale('x', { min: lo, max: hi });
          sendView();
        });
      }],
      setSeries: [(u, idx) => {
        if (idx == null) return;
        const key = `${spec.id}/${b.keys[idx - 1]}`;
        const shown = u.series[idx].show !== false;
        view.hidden = view.hidden.filter((h) => h !== key);
        if (!shown) view.hidden.push(key);
        saveState();
      }],
      draw: [() => { debug.renders.push(performance.now()); if (debug.renders.length > 1000) debug.renders.splice(0, 500); }],
      setCursor: [(u) => showTip(u, spec, b)],
    },
  };
  const u = new uPlot(opts, b.data, host);
  u.over.addEventListener('dblclick', () => { view.range = null; sendView(); });
  u.over.addEventListener('mouseleave', () => { tip.hidden = true; });
  // the raw (unsmoothed) shadows and band bounds are drawn, but not listed in the legend
  for (const row of Array.from(u.root.querySelectorAll<HTMLElement>('.u-legend .u-series'))) {
    const lbl = row.querySelector('.u-label')?.textContent ?? '';
    if (lbl.endsWith('(raw)') || lbl.endsWith('(lo)') || lbl.endsWith('(hi)')) row.classList.add('aux');
  }
  return u;
}

// ---------------------------------------------------------------- tooltip at the cursor
const tip = $('div', 'tip');
tip.dataset.testid = 'tooltip';
tip.hidden = true;
document.body.append(tip);

/** Every visible series' value at the cursor's x; a band (reward ± std) shows as the std beside its series. */
function showTip(u: uPlot, spec: ChartSpec, b: Built): void {
  const idx = u.cursor.idx;
  if (idx == null || u.cursor.left == null || u.cursor.left < 0) {
    tip.hidden = true;
    return;
  }
  tip.textContent = '';
  tip.append($('div', 'tip-x', `${view.xAxis === 'step' ? 'step ' : ''}${fmtX(u.data[0][idx] as number)}`));
  const rows: { label: string; colour: string; value: string }[] = [];
  for (let i = 1; i < u.series.length; i++) {
    const s = u.series[i]!;
    const label = String(s.label ?? '');
    if (s.show === false || label.endsWith('(raw)') || label.endsWith('(lo)') || label.endsWith('(hi)')) continue;
    const v = u.data[i]?.[idx];
    if (v == null) continue;
    let value = fmtNum(v as number);
    // std from the band: the keys are <run>/reward-std and <run>/reward+std around <run>/reward
    if (spec.band) {
      const key = b.keys[i - 1]!;
      const run = key.slice(0, key.lastIndexOf('/'));
      const lo = b.keys.indexOf(`${run}/${spec.band.lo}`);
      const hi = b.keys.indexOf(`${run}/${spec.band.hi}`);
      if (lo >= 0 && hi >= 0 && key === `${run}/${spec.series[0]?.key}`) {
        const l = u.data[lo + 1]?.[idx];
        const h = u.data[hi + 1]?.[idx];
        if (l != null && h != null) value += ` ± ${fmtNum(((h as number) - (l as number)) / 2)} std`;
      }
    }
    rows.push({ label, colour: String(typeof s.stroke === 'function' ? FG : s.stroke ?? FG), value });
  }
  for (const r of rows) {
    const row = $('div', 'tip-row');
    const sw = $('span', 'tip-swatch');
    sw.style.background = r.colour;
    row.append(sw, $('span', 'tip-label', r.label), $('span', 'tip-value', r.value));
    tip.append(row);
  }
  tip.hidden = rows.length === 0;
  const box = u.over.getBoundingClientRect();
  const x = box.left + window.scrollX + u.cursor.left + 14;
  const y = box.top + window.scrollY + (u.cursor.top ?? 0) + 14;
  const w = tip.offsetWidth;
  tip.style.left = `${x + w > window.scrollX + document.documentElement.clientWidth ? x - w - 28 : x}px`;
  tip.style.top = `${y}px`;
}

function applyWindow(w: Extract<ToWebview, { type: 'window' }>): void {
  const t0 = performance.now();
  lastWindow = w;
  const first = plots.values().next().value;
  sizeCache = lastSize;
  if (first && !sizeCache) sizeCache = lastSize = plotSize(first.section);
  debug.windows++;
  debug.appliedViewId = w.viewId;
  empty.hidden = charts.length > 0;
  for (const spec of charts) {
    const p = plots.get(spec.id);
    if (!p) continue;
    const b = build(spec, w.charts.find((c) => c.chartId === spec.id), w.smoothing);
    const points = b.data[0].length;
    p.section.dataset.points = String(points);
    setText(p.section.querySelector<HTMLElement>('.count')!, pointsLabel(w.charts.find((c) => c.chartId === spec.id)));
    if (!p.u || p.sig !== b.sig) {
      p.u?.destroy();
      p.u = makePlot(spec, p.section, b);
      p.sig = b.sig;
      p.keys = b.keys;
    } else {
      p.u.setData(b.data, true);
    }
    if (w.range) p.u.setScale('x', { min: w.range[0], max: w.range[1] });
  }
  resetBtn.hidden = !w.range;
  sizeCache = null;
  debug.lastApplyMs = performance.now() - t0;
}

/** One formatter for every count: `Number#toLocaleString` builds one per call (a quarter of a millisecond per append over seven charts). */
const counts = new Intl.NumberFormat();

function pointsLabel(c: ChartWindow | undefined): string {
  if (!c) return '';
  const total = c.runs.reduce((s, r) => s + r.total, 0);
  const drawn = c.runs.reduce((s, r) => s + r.x.length, 0);
  return drawn < total ? `${counts.format(drawn)} of ${counts.format(total)} points (min/max per pixel)` : `${counts.format(total)} points`;
}

/** Sets an element's text only when it changed: an unchanged write still invalidates its layout. */
function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

function layout(specs: ChartSpec[]): void {
  for (const p of plots.values()) p.u?.destroy();
  plots.clear();
  grid.textContent = '';
  grid.append(empty);
  charts = specs;
  lastSize = null;
  empty.hidden = specs.length > 0;
  for (const spec of specs) {
    const section = $('section', 'chart');
    section.dataset.chartId = spec.id;
    section.dataset.testid = `chart-${spec.id}`;
    const head = $('header', 'chart-head');
    const png = button('PNG', () => exportPng(spec.id), { icon: false, secondary: true, testId: `png-${spec.id}`, title: 'Save this chart as PNG' });
    head.append($('h2', '', spec.title), $('span', 'count'), png);
    section.append(head, $('div', 'plot'));
    grid.append(section);
    plots.set(spec.id, { u: null, sig: '', section, keys: [] });
  }
}

/** The plot area's width in CSS px: a chart's width less its y axis (what uPlot's bbox will be). */
function widthNow(): number {
  let section = plots.values().next().value?.section;
  let probe: HTMLElement | undefined;
  if (!section) {
    // before the first layout: measure a hidden chart-sized box in the grid
    probe = section = $('section', 'chart');
    probe.style.visibility = 'hidden';
    grid.append(probe);
  }
  const w = plotSize(section).width - Y_AXIS;
  probe?.remove();
  return Math.max(50, w);
}
/** Asks for a new window when the plots' width moved away from the one decimated for. */
function widthChanged(w: number): boolean {
  return w > view.width * 1.1 || w < view.width * 0.8;
}

// resize: re-lay the plots, and ask for a window decimated to the new width
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
let gridWidth = -1;
new ResizeObserver((entries) => {
  // the grid grows in height as charts fill in: only a change of width re-lays the plots
  const width = Math.round(entries[entries.length - 1].contentRect.width);
  if (width === gridWidth) return;
  gridWidth = width;
  const first = plots.values().next().value;
  sizeCache = null;
  const prev = lastSize;
  const size = (lastSize = first ? plotSize(first.section) : null);
  if (size && (!prev || prev.width !== size.width)) for (const p of plots.values()) p.u?.setSize(size);
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    const w = widthNow();
    if (widthChanged(w)) {
      view.width = w;
      sendView();
    }
  }, 150);
}).observe(grid);

function exportPng(chartId: string): void {
  const p = plots.get(chartId);
  if (!p) return;
  if (!p?.u) return;
  const src = p.u.ctx.canvas;
  const spec = charts.find((c) => c.id === chartId);
  const head = 28 * devicePixelRatio;
  const c = document.createElement('canvas');
  c.width = src.width;
  c.height = src.height + head;
  const ctx = c.getContext('2d')!;
  ctx.fillStyle = BG;
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.fillStyle = FG;
  ctx.font = `${14 * devicePixelRatio}px ${themeVar('--vscode-font-family', 'sans-serif')}`;
  ctx.fillText(`${title} — ${spec?.title ?? chartId}`, 8 * devicePixelRatio, 19 * devicePixelRatio);
  ctx.drawImage(src, 0, head);
  post({ type: 'exportPng', reqId: ++reqId, chartId, dataUrl: c.toDataURL('image/png') });
}

// ---------------------------------------------------------------- runs and samples
/** What the run chips were built from: while it holds, a new step or status only rewrites the badges' text. */
let runsSig = '';
let sideSig = '';

function renderRuns(): void {
  // each metrics batch brings a 'runs' message (the step moved): rebuilding the chips, the
  // budgets, the cause and the empty note every time cost every append a layout
  const sig = JSON.stringify([compare(), runs.map((r) => [r.id, r.label, runHidden(r.id), runColour(r.id)])]);
  if (sig === runsSig && runsEl.childElementCount === runs.length) {
    runs.forEach((r, i) => setText(runsEl.children[i]!.querySelector<HTMLElement>('.ui-badge')!, runStatus(r)));
  } else {
    runsSig = sig;
    buildRuns();
  }
  const side = JSON.stringify(runs.map((r) => [r.label, r.status, r.budgets ?? null, r.cause ?? null, r.keysDropped ?? 0]));
  if (side !== sideSig) {
    sideSig = side;
    renderRunNotes();
  }
}

const runStatus = (r: RunMeta) => `${r.status}${r.step == null ? '' : r.maxSteps ? ` · step ${r.step}/${r.maxSteps}` : ` · step ${r.step}`}`;

function buildRuns(): void {
  runsEl.textContent = '';
  for (const r of runs) {
    const el = $('span', 'run');
    el.dataset.runId = r.id;
    el.title = r.id;
    if (compare()) {
      // a chip per run in its colour: a click hides or shows the run on every chart
      const chip = $<HTMLButtonElement>('button', 'run-chip', r.label);
      chip.type = 'button';
      chip.dataset.testid = `run-toggle-${r.id}`;
      chip.style.setProperty('--run-colour', runColour(r.id));
      const hidden = runHidden(r.id);
      chip.classList.toggle('off', hidden);
      chip.setAttribute('aria-pressed', String(!hidden));
      chip.title = `${r.id}: click to ${hidden ? 'show' : 'hide'} this run`;
      chip.addEventListener('click', () => {
        const set = new Set(view.hiddenRuns ?? []);
        if (set.has(r.id)) set.delete(r.id);
        else set.add(r.id);
        view.hiddenRuns = [...set];
        renderRuns();
        if (lastWindow) applyWindow(lastWindow);
        saveState();
      });
      el.append(chip);
    } else if (r.label !== r.id) el.append($('span', 'run-label', r.label));
    el.append(badge(runStatus(r), { testId: `status-${r.id}` }));
    runsEl.append(el);
  }
}

/** Under the toolbar: where the safety budgets came from, why a failed run failed, and the empty grid's note. */
function renderRunNotes(): void {
  // where the safety budgets came from; a fallback to label defaults is a warning
  budgetsEl.textContent = '';
  for (const r of runs) {
    if (!r.budgets) continue;
    const line = $('div', r.budgets.fallback ? 'fallback' : '', `${compare() ? r.label + ': ' : ''}${r.budgets.text}`);
    budgetsEl.append(line);
  }
  // metric keys past the host's limit per run are not kept: say so, not silently chart less
  for (const r of runs) {
    if (!r.keysDropped) continue;
    const line = $('div', 'fallback', `${compare() ? r.label + ': ' : ''}${r.keysDropped.toLocaleString()} metric key(s) past the first 2,000 were not kept: not charted, not in the CSV export`);
    line.dataset.testid = `keys-dropped-${r.id}`;
    budgetsEl.append(line);
  }
  budgetsEl.hidden = !budgetsEl.childElementCount;
  // a failed run says why, in the trainer's words (a run SLURM ended: in SLURM's)
  causeEl.textContent = '';
  const failed = runs.filter((r) => r.cause);
  for (const r of failed) causeEl.append($('div', '', causeNote(r, compare())));
  causeEl.hidden = failed.length === 0;
  setText(empty, emptyNote(runs));
}

function renderConfig(msg: Extract<ToWebview, { type: 'config' }>): void {
  configSec.textContent = '';
  configSec.hidden = !compare();
  if (!compare()) return;
  configSec.append($('h2', '', 'Config diff'));
  if (msg.error) configSec.append($('p', 'empty', msg.error));
  if (!msg.rows.length) {
    if (!msg.error) configSec.append($('p', 'empty', `The runs' recipes agree on all ${msg.keys} keys.`));
    return;
  }
  const table = $('table', 'config-table');
  const hr = $('tr');
  hr.append($('th', '', 'key'));
  for (const r of runs) {
    const th = $('th', 'run-cell', r.label);
    th.title = r.id;
    th.style.setProperty('--run-colour', runColour(r.id));
    hr.append(th);
  }
  const thead = $('thead');
  thead.append(hr);
  const tbody = $('tbody');
  for (const row of msg.rows) {
    const tr = $('tr');
    tr.append($('td', 'key', row.key));
    for (const v of row.values) tr.append($('td', v === null ? 'unset' : '', v ?? '(unset)'));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  configSec.append(table, $('p', 'empty', `${msg.rows.length} of ${msg.keys} keys differ.`));
}

// ---------------------------------------------------------------- messages
window.addEventListener('message', (e: MessageEvent) => {
  const p = parseToWebview(e.data);
  if (!p.ok) {
    showError(`Ignored a malformed message from the extension: ${p.error}`);
    return;
  }
  const msg = p.value;
  switch (msg.type) {
    case 'layout': {
      const tl = performance.now();
      title = msg.title;
      titleEl.textContent = title;
      document.title = title;
      runs = msg.runs;
      runIds = runs.map((r) => r.id);
      saveState();
      renderRuns();
      layout(msg.charts);
      if (lastWindow) applyWindow(lastWindow);
      debug.layoutMs = performance.now() - tl;
      break;
    }
    case 'runs':
      runs = msg.runs;
      renderRuns();
      break;
    case 'window':
      if (msg.viewId < viewId) return; // an answer to a view we have already left
      applyWindow(msg);
      break;
    case 'samples':
      samples.render(msg);
      if (!samples.element.isConnected) root.append(samples.element);
      break;
    case 'config':
      renderConfig(msg);
      break;
    case 'exported':
      statusEl.textContent = msg.ok
        ? `Saved ${msg.kind.toUpperCase()}${msg.rows != null ? ` (${msg.rows.toLocaleString()} rows)` : ''} to ${msg.path}`
        : `Export failed: ${msg.error}`;
      statusEl.dataset.kind = msg.kind;
      statusEl.dataset.ok = String(msg.ok);
      break;
    case 'error':
      showError(msg.message);
      break;
  }
});

view.width = widthNow();
saveState();
post({ type: 'ready', view });
