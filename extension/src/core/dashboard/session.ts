// The extension side of one dashboard panel, with no vscode import: it holds the runs' full series
// and every logged sample row (bounded), answers the webview's messages (validated on receipt)
// and pushes decimated windows when the view changes or new events arrive (coalesced to at most
// one push per `throttleMs`; views that arrive while one is pending share its push), and pages
// of the samples table (one logged step per page, or several when it has more rows than a page
// holds, filtered by label and reward). editor/dashboard.ts wires it to a WebviewPanel, the run
// monitor's parsed events (or the run store on disk) and save dialogs; the Chromium tests
// bundle it for the browser and play the host in the page.
import type { RunEvent, SampleRow } from '../runs/events';
import { budgetSummary } from '../runs/budgets';
import {
  LIMITS, parseToExtension, type ChartSpec, type ChartWindow, type ConfigRow, type RunMeta, type SampleRowMsg, type SamplesQuery,
  type SeriesWindow, type ToExtension, type ToWebview, type ViewState,
} from '../protocol/dashboard';
import { clip } from '../protocol/validate';
import { chartKeys, chartSpecs } from './charts';
import { toCsv } from './csv';
import { DecimationCache, gather, lowerBound, stableHi, upperBound, work } from './decimate';
import { emaInto, type EmaState } from './ema';
import { MAX_KEYS, RunSeries } from './series';

export interface SessionRun {
  id: string;
  label?: string;
  status?: string;
}

export interface DashboardSessionOptions {
  title: string;
  post(msg: ToWebview): void;
  /** Writes the CSV where the user chooses; resolves to the path, or null when cancelled. */
  saveCsv(suggestedName: string, text: string): Promise<string | null>;
  savePng(suggestedName: string, png: Uint8Array): Promise<string | null>;
  log?(message: string): void;
  /** Minimum time between two pushes of new data (ms); 0 pushes synchronously on ingest. */
  throttleMs?: number;
}

/** Sample rows kept per run (oldest dropped first): 1,000 logged steps of 4 rows. */
export const MAX_SAMPLE_ROWS_KEPT = 4000;
/** Kept sample rows looked at for superseded ones, and dropped from the front (tests count them). */
export const sampleWork = { scanned: 0, dropped: 0 };

interface RunData {
  meta: RunMeta;
  series: RunSeries;
  /** Every sample row logged (up to MAX_SAMPLE_ROWS_KEPT), in file order, but those a later attempt superseded. */
  samples: SampleRowMsg[];
  /** The attempt (count of `run_started` seen) that logged each of `samples`. */
  sampleAttempts: number[];
  /** The `seq` of the event that logged each of `samples` (NaN without one). */
  sampleSeqs: number[];
  /** Attempts seen (`run_started`). */
  attempt: number;
  /**
   * At least the largest step among the kept rows of earlier attempts, and the largest step and
   * seq among this attempt's: a samples event supersedes kept rows only where its step is at
   * most the first or its seq at most the last, so only then are the rows looked at.
   */
  earlierMaxStep: number;
  attemptMaxStep: number;
  attemptMaxSeq: number;
  /** Set once the run store reported a state: from then on it, not the events, names the status. */
  fromStore: boolean;
  ema: Map<string, { weight: number; generation: number; upTo: number; state: EmaState; out: Float64Array }>;
  /** Metric keys dropped (past MAX_KEYS) that the log has been told about. */
  droppedLogged: number;
}

/**
 * The rows of a run where one of a chart's keys has a value (or was logged as a gap), on one x
 * axis, extended on appends. While that is every row (`dense`) the chart decimates the run's own
 * arrays; once a row lacks the chart's keys, `x` and `ys` hold the chart's own compacted series
 * (its rows' x and values), which appends extend.
 */
interface RowsWith {
  generation: number;
  /** Rows of the run looked at so far. */
  upTo: number;
  n: number;
  dense: boolean;
  /** The rows (when not dense), and their x and values. */
  idx: Uint32Array;
  x: Float64Array;
  ys: Float64Array[];
  /** Positions (ascending) among the n of the rows logged only as gaps: no value to count. */
  gapOnly: number[];
  /** Whether the latest window used it (the others are dropped). */
  used: boolean;
}

export const DEFAULT_VIEW: ViewState = { xAxis: 'step', range: null, smoothing: 0, width: 600, hidden: [] };
const FIRST_PAGE: SamplesQuery = { page: 0, label: null, reward: null };

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export class DashboardSession {
  readonly runs = new Map<string, RunData>();
  private view: ViewState = { ...DEFAULT_VIEW };
  private viewId = 0;
  private ready = false;
  private charts: ChartSpec[] = [];
  private chartSig = '';
  private pending: ReturnType<typeof setTimeout> | undefined;
  private samplesDirty = false;
  private query: SamplesQuery = { ...FIRST_PAGE };
  /** The step the samples table shows (and which of its pages), so that it stays on it while newer steps arrive. */
  private shownStep: number | null = null;
  private shownPart = 0;
  private config: Extract<ToWebview, { type: 'config' }> | null = null;
  private disposed = false;
  private readonly decimation = new Map<string, DecimationCache>();
  /** Metric keys not charted (too long, or past a chart's series limit), as last logged. */
  private keysLeftOut = 0;
  private readonly rowsWith = new Map<string, RowsWith>();
  /** The push answering the latest view, while one is pending: views that arrive meanwhile share it. */
  private viewPush: Promise<void> | undefined;

  constructor(runs: SessionRun[], private readonly opts: DashboardSessionOptions) {
    for (const r of runs) {
      this.runs.set(r.id, {
        meta: { id: r.id, label: clip(r.label ?? r.id, 1000), status: clip(r.status ?? 'unknown', 64), step: null, maxSteps: null, rows: 0 },
        series: new RunSeries(r.id),
        samples: [],
        sampleAttempts: [],
        sampleSeqs: [],
        attempt: 0,
        earlierMaxStep: -Infinity,
        attemptMaxStep: -Infinity,
        attemptMaxSeq: -Infinity,
        fromStore: false,
        ema: new Map(),
        droppedLogged: 0,
      });
    }
  }

  get currentView(): ViewState {
    return this.view;
  }
  get runIds(): string[] {
    return [...this.runs.keys()];
  }

  /** Adds events of one run (any order of types; metrics in file order). */
  ingest(runId: string, events: RunEvent[]): void {
    const r = this.runs.get(runId);
    if (!r || this.disposed) return;
    for (const ev of events) {
      r.series.noteTime(ev.time);
      switch (ev.type) {
        case 'metrics':
          r.series.append(ev);
          r.meta.step = numOrNull(ev.step);
          break;
        case 'run_started': {
          r.series.newAttempt();
          r.attempt++;
          // every kept row is now an earlier attempt's
          r.earlierMaxStep = Math.max(r.earlierMaxStep, r.attemptMaxStep);
          r.attemptMaxStep = -Infinity;
          r.attemptMaxSeq = -Infinity;
          r.meta.maxSteps = numOrNull(ev.max_steps);
          const b = budgetSummary(ev.budgets);
          if (b) r.meta.budgets = { text: clip(b.text, 1000), fallback: b.fallback };
          if (!r.fromStore) r.meta.status = 'running';
          break;
        }
        case 'run_finished':
          if (!r.fromStore) r.meta.status = typeof ev.status === 'string' ? clip(ev.status, 64) : 'finished';
          break;
        case 'samples':
          if (Array.isArray(ev.rows)) {
            addSamples(r, runId, numOrNull(ev.step) ?? 0, numOrNull(ev.seq) ?? NaN, ev.rows);
            this.samplesDirty = true;
          }
          break;
        case 'heartbeat':
        case 'checkpoint':
          if (!r.fromStore && r.meta.status === 'unknown') r.meta.status = 'running';
          break;
      }
    }
    trimSamples(r, MAX_SAMPLE_ROWS_KEPT);
    r.meta.rows = r.series.totalRows;
    const dropped = r.series.droppedKeys;
    if (dropped > r.droppedLogged) {
      r.droppedLogged = dropped;
      r.meta.keysDropped = dropped;
      const names = r.series.droppedNames.map((k) => JSON.stringify(clip(k, 80))).join(', ');
      this.opts.log?.(`dashboard: run ${runId}: ${dropped} metric key(s) past the first ${MAX_KEYS} not kept (not charted, not in the CSV export): ${names}${dropped > r.series.droppedNames.length ? ', …' : ''}`);
    }
    this.schedule();
  }

  /**
   * Status from the run store (run.json), which knows states events cannot (queued, ...), and
   * for a failed run its root cause (the trainer's error line).
   */
  setStatus(runId: string, status: string, cause?: string): void {
    const r = this.runs.get(runId);
    if (!r) return;
    r.fromStore = true; // the run store knows states events cannot (queued, cancelling, ...): it wins
    const c = cause ? clip(cause, 4000) : undefined;
    status = clip(status, 64);
    if (r.meta.status === status && r.meta.cause === c) return;
    r.meta.status = status;
    if (c) r.meta.cause = c;
    else delete r.meta.cause;
    if (this.ready) this.opts.post({ type: 'runs', runs: this.metas() });
  }

  /** The compared runs' recipe differences (see config.ts), shown under the charts. */
  setConfig(rows: ConfigRow[], keys: number, error: string | null = null): void {
    this.config = { type: 'config', keys, rows, error: error === null ? null : clip(error, 4096) };
    if (this.ready) this.opts.post(this.config);
  }

  /** Handles one message from the webview; invalid ones are answered with an error. */
  async receive(raw: unknown): Promise<void> {
    const p = parseToExtension(raw);
    if (!p.ok) {
      this.opts.log?.(`dashboard: rejected message from webview: ${p.error}`);
      this.opts.post({ type: 'error', message: `rejected message: ${p.error}` });
      return;
    }
    const msg: ToExtension = p.value;
    switch (msg.type) {
      case 'ready':
        this.ready = true;
        this.viewId = 0; // a (re)loaded webview counts its views from 0 again
        if (msg.view) this.view = msg.view;
        this.chartSig = '';
        this.push(true);
        this.pushSamples();
        if (this.config) this.opts.post(this.config);
        return;
      case 'view': {
        // a slider drag sends a view per tick: computing each in turn would queue the host up
        // behind them, so the views that arrive before the push runs share one (the latest)
        const { type: _t, viewId, ...view } = msg;
        this.view = view;
        this.viewId = Math.max(this.viewId, viewId);
        this.viewPush ??= new Promise<void>((resolve) => setTimeout(() => {
          this.viewPush = undefined;
          if (this.ready) this.push(false);
          resolve();
        }, 0));
        return this.viewPush;
      }
      case 'samplesQuery': {
        const { type: _t, ...q } = msg;
        this.query = q;
        this.shownStep = null;
        this.pushSamples();
        return;
      }
      case 'exportCsv':
        return this.exportCsv(msg.reqId);
      case 'exportPng':
        return this.exportPng(msg.reqId, msg.chartId, msg.dataUrl);
    }
  }

  /** The full CSV of every run in this session. */
  csv(): { text: string; rows: number } {
    return toCsv([...this.runs.values()].map((r) => r.series));
  }

  /** Sends pending data now (tests and benchmarks; normal pushes are coalesced). */
  flush(): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
    if (this.ready) {
      this.push(false);
      if (this.samplesDirty) this.pushSamples();
    }
  }

  dispose(): void {
    this.disposed = true;
    if (this.pending) clearTimeout(this.pending);
  }

  private schedule(): void {
    if (!this.ready || this.disposed) return;
    const ms = this.opts.throttleMs ?? 100;
    if (ms <= 0) return this.flush();
    if (!this.pending) this.pending = setTimeout(() => this.flush(), ms);
  }

  private metas(): RunMeta[] {
    return [...this.runs.values()].map((r) => ({ ...r.meta }));
  }

  /**
   * The page of the samples table for the current query: one logged step per page, newest
   * first; a step with more rows than a page holds (runs compared, a large batch) spans pages.
   */
  samplesPage(): Extract<ToWebview, { type: 'samples' }> {
    const q = this.query;
    const labels = new Set<string>();
    const names = new Set<string>();
    const byStep = new Map<number, SampleRowMsg[]>();
    const allSteps = new Set<number>();
    for (const r of this.runs.values()) {
      for (const row of r.samples) {
        allSteps.add(row.step);
        if (row.label !== null) labels.add(row.label);
        for (const k of Object.keys(row.rewards)) names.add(k);
        if (q.label !== null && row.label !== q.label) continue;
        if (q.reward) {
          const v = row.rewards[q.reward.name];
          if (v === null || v === undefined) continue;
          if (q.reward.min !== null && v < q.reward.min) continue;
          if (q.reward.max !== null && v > q.reward.max) continue;
        }
        let list = byStep.get(row.step);
        if (!list) byStep.set(row.step, (list = []));
        list.push(row);
      }
    }
    const per = LIMITS.maxSampleRows;
    const pages: [step: number, part: number][] = [];
    for (const step of [...byStep.keys()].sort((a, b) => b - a)) {
      const n = Math.ceil(byStep.get(step)!.length / per);
      for (let part = 0; part < n; part++) pages.push([step, part]);
    }
    let page = Math.min(q.page, Math.max(0, pages.length - 1));
    // stay on the step shown while newer steps arrive in front of it
    if (this.shownStep !== null) {
      const at = pages.findIndex(([st, part]) => st === this.shownStep && part === this.shownPart);
      if (at >= 0) page = at;
    }
    this.shownStep = pages.length ? pages[page]![0] : null;
    this.shownPart = pages.length ? pages[page]![1] : 0;
    this.query = { ...q, page };
    let total = 0;
    for (const l of byStep.values()) total += l.length;
    const rows = this.shownStep === null ? [] : byStep.get(this.shownStep)!.slice(this.shownPart * per, (this.shownPart + 1) * per);
    return {
      type: 'samples', ...this.query, pages: pages.length, total, steps: allSteps.size,
      labels: [...labels].sort().slice(0, 1000), rewardNames: [...names].sort().slice(0, 100), rows,
    };
  }

  private pushSamples(): void {
    this.samplesDirty = false;
    this.opts.post(this.samplesPage());
  }

  private push(forceLayout: boolean): void {
    if (this.disposed) return;
    const keys = new Set<string>();
    for (const r of this.runs.values()) for (const k of r.series.keys()) keys.add(k);
    const left: string[] = [];
    const charts = chartSpecs(keys, left);
    if (left.length > this.keysLeftOut) {
      const shown = left.slice(0, 5).map((k) => JSON.stringify(clip(k, 80))).join(', ');
      this.opts.log?.(`dashboard: ${left.length} metric key(s) not charted (longer than ${LIMITS.maxKeyLength} characters, or past ${LIMITS.maxSeries} series in one chart): ${shown}${left.length > 5 ? ', …' : ''}`);
    }
    this.keysLeftOut = left.length;
    const sig = JSON.stringify(charts);
    if (forceLayout || sig !== this.chartSig) {
      this.charts = charts;
      this.chartSig = sig;
      this.opts.post({ type: 'layout', title: clip(this.opts.title, LIMITS.maxTitle), runs: this.metas(), charts });
    } else {
      this.opts.post({ type: 'runs', runs: this.metas() });
    }
    this.opts.post(this.window());
  }

  /** The decimated window of every chart for the current view. */
  window(): Extract<ToWebview, { type: 'window' }> {
    const { xAxis, range, smoothing, width } = this.view;
    let extent: [number, number] | null = null;
    const xs = new Map<string, { x: Float64Array; offset: number }>();
    for (const r of this.runs.values()) {
      const s = r.series;
      const offset = xAxis === 'relative' ? (s.t0 ?? 0) : 0;
      // the time axes draw the times made non-decreasing: an attempt whose clock is behind still draws
      const x = xAxis === 'step' ? s.step : s.monoTime;
      xs.set(s.runId, { x, offset });
      if (s.len) {
        const lo = x[0] - offset;
        const hi = x[s.len - 1] - offset;
        // (a relative time can still overflow: the protocol takes a finite extent only)
        if (Number.isFinite(lo) && Number.isFinite(hi)) extent = extent ? [Math.min(extent[0], lo), Math.max(extent[1], hi)] : [lo, hi];
      }
    }
    const usedCaches = new Set<string>();
    const charts: ChartWindow[] = this.charts.map((c) => {
      const keys = chartKeys(c);
      const runs: SeriesWindow[] = [];
      for (const r of this.runs.values()) {
        const s = r.series;
        const cols = keys.map((k) => s.col(k));
        if (!s.len || cols.every((k) => !k)) continue;
        const { x: fullX, offset } = xs.get(s.runId)!;
        const lo = range ? range[0] + offset : -Infinity;
        const hi = range ? range[1] + offset : Infinity;
        const fullPresent = cols.filter((v): v is Float64Array => !!v);
        // a chart decimates over the rows that logged one of its keys: an eval logged every N
        // steps joins into a line of its own instead of lone values between the training rows'
        // gaps (which no line reaches); a value logged as null (NaN) stays a gap
        const charted = keys.filter((_k, j) => cols[j]);
        const base = `${c.id}\u0000${s.runId}\u0000${xAxis}\u0000${charted.join('\u0001')}`;
        const rw = this.rowsWithValues(base, s, fullX, fullPresent, charted.map((k) => s.gapRows(k)));
        if (!rw.n) continue;
        const rows = rw.dense ? undefined : rw.idx.subarray(0, rw.n);
        const len = rw.n;
        const x = rows ? rw.x.subarray(0, len) : fullX;
        const present = rows ? rw.ys.map((v) => v.subarray(0, len)) : fullPresent;
        const wlo = Number.isFinite(lo) ? lo : x[0];
        const whi = Number.isFinite(hi) ? hi : x[len - 1];
        // the view of everything decimates on a grid that stays put while the run grows, so
        // each append only re-scans the last pixel column (DecimationCache)
        const gridHi = range ? whi : stableHi(wlo, whi);
        const ck = `${base}\u0000${rows ? 'rows' : 'all'}`;
        usedCaches.add(ck);
        let cache = this.decimation.get(ck);
        if (!cache) this.decimation.set(ck, (cache = new DecimationCache()));
        const idx = cache.indices(x, len, present, wlo, gridHi, width, s.generation);
        // positions among the chart's rows, made the run's rows
        if (rows) for (let i = 0; i < idx.length; i++) idx[i] = rows[idx[i]!]!;
        const y: Record<string, Float64Array> = {};
        const raw: Record<string, Float64Array> | undefined = smoothing > 0 ? {} : undefined;
        keys.forEach((k, j) => {
          const col = cols[j];
          if (!col) return;
          if (raw) {
            raw[k] = gather(col, idx);
            y[k] = gather(this.smoothed(r, k, col, smoothing), idx);
          } else {
            y[k] = gather(col, idx);
          }
        });
        runs.push({ runId: s.runId, x: gather(fullX, idx, offset), y, ...(raw ? { raw } : {}), total: countIn(x, len, wlo, whi) - gapsIn(x, len, rw.gapOnly, wlo, whi) });
      }
      return { chartId: c.id, runs };
    });
    // a chart or key set no longer drawn (new keys, another axis) leaves its caches behind
    for (const [k, v] of this.rowsWith) {
      if (v.used) v.used = false;
      else this.rowsWith.delete(k);
    }
    for (const k of this.decimation.keys()) if (!usedCaches.has(k)) this.decimation.delete(k);
    return { type: 'window', viewId: this.viewId, xAxis, range, extent, smoothing, charts };
  }

  /**
   * The rows of `s` where one of `cols` has a value or was logged as a gap (`gaps`), with their
   * x (`x`) and values: cached per chart, run and axis, extended on appends (only the new rows
   * are looked at) until the rows already seen change (`generation`).
   */
  private rowsWithValues(key: string, s: RunSeries, x: Float64Array, cols: Float64Array[], gaps: (ReadonlySet<number> | undefined)[]): RowsWith {
    let c = this.rowsWith.get(key);
    if (!c || c.generation !== s.generation || c.upTo > s.len) {
      c = { generation: s.generation, upTo: 0, n: 0, dense: true, idx: new Uint32Array(0), x: new Float64Array(0), ys: [], gapOnly: [], used: true };
      this.rowsWith.set(key, c);
    }
    c.used = true;
    if (c.upTo < s.len) {
      const logged = gaps.filter((g): g is ReadonlySet<number> => !!g && g.size > 0);
      work.scanned += s.len - c.upTo;
      for (let i = c.upTo; i < s.len; i++) {
        let has = false;
        for (const col of cols) if (col[i] === col[i]) { has = true; break; }
        const gapOnly = !has;
        if (!has) for (const g of logged) if (g.has(i)) { has = true; break; }
        if (!has) {
          // the first row without the chart's keys: from here on the chart keeps its own rows
          if (c.dense) this.compact(c, x, cols, s.len);
          continue;
        }
        if (gapOnly) c.gapOnly.push(c.n);
        if (!c.dense) {
          if (c.n === c.idx.length) this.growRows(c, Math.max(256, c.n * 2));
          c.idx[c.n] = i;
          c.x[c.n] = x[i]!;
          for (let j = 0; j < cols.length; j++) c.ys[j]![c.n] = cols[j]![i]!;
        }
        c.n++;
      }
      c.upTo = s.len;
    }
    return c;
  }

  /**
   * A dense row list turns into the chart's own rows: the n seen so far (all the run's first n),
   * with room for the `len` the run has and half as many more (no regrowing on a first load).
   */
  private compact(c: RowsWith, x: Float64Array, cols: Float64Array[], len: number): void {
    c.dense = false;
    c.ys = cols.map(() => new Float64Array(0));
    this.growRows(c, Math.max(256, len + (len >> 1)));
    for (let i = 0; i < c.n; i++) c.idx[i] = i;
    c.x.set(x.subarray(0, c.n));
    cols.forEach((col, j) => c.ys[j]!.set(col.subarray(0, c.n)));
    work.gathered += c.n * (1 + cols.length);
  }

  private growRows(c: RowsWith, cap: number): void {
    const idx = new Uint32Array(cap);
    idx.set(c.idx.subarray(0, c.n));
    c.idx = idx;
    const x = new Float64Array(cap);
    x.set(c.x.subarray(0, c.n));
    c.x = x;
    c.ys = c.ys.map((v) => {
      const w = new Float64Array(cap);
      w.set(v.subarray(0, c.n));
      return w;
    });
  }

  /** The EMA of a column over the whole run, cached and extended on appends. */
  private smoothed(r: RunData, key: string, col: Float64Array, weight: number): Float64Array {
    const s = r.series;
    const prev = r.ema.get(key);
    let c = prev;
    if (!prev || prev.weight !== weight || prev.generation !== s.generation || prev.out.length < s.len) {
      const fresh = !prev || prev.weight !== weight || prev.generation !== s.generation;
      // another weight (a slider tick) or changed rows recompute into the buffer there is, when it holds the run
      const out = prev && prev.out.length >= s.len ? prev.out : new Float64Array(Math.max(1024, s.len * 2));
      if (prev && !fresh) out.set(prev.out.subarray(0, prev.upTo));
      c = prev && !fresh ? { ...prev, out } : { weight, generation: s.generation, upTo: 0, state: { last: 0, n: 0 }, out };
      r.ema.set(key, c);
    }
    if (!c) throw new Error('unreachable');
    if (c.upTo < s.len) {
      c.state = emaInto(col, c.out, weight, c.upTo, s.len, c.state);
      c.upTo = s.len;
    }
    return c.out.subarray(0, s.len);
  }

  private async exportCsv(reqId: number): Promise<void> {
    try {
      const { text, rows } = this.csv();
      const name = `${this.runIds.join('+').slice(0, 120)}.csv`;
      const path = await this.opts.saveCsv(name, text);
      this.opts.post({ type: 'exported', reqId, kind: 'csv', ok: path !== null, path: path === null ? null : clip(path, 4096), rows, error: path === null ? 'cancelled' : null });
    } catch (err) {
      this.opts.post({ type: 'exported', reqId, kind: 'csv', ok: false, path: null, rows: null, error: errorText(err) });
    }
  }

  private async exportPng(reqId: number, chartId: string, dataUrl: string): Promise<void> {
    try {
      const b64 = dataUrl.slice(dataUrl.indexOf(',') + 1);
      const bin = atob(b64);
      const png = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) png[i] = bin.charCodeAt(i);
      if (png.length < 8 || png[0] !== 0x89 || png[1] !== 0x50 || png[2] !== 0x4e || png[3] !== 0x47) throw new Error('not a PNG image');
      const safe = chartId.replace(/[^A-Za-z0-9_-]/g, '_');
      const path = await this.opts.savePng(`${this.runIds.join('+').slice(0, 100)}-${safe}.png`, png);
      this.opts.post({ type: 'exported', reqId, kind: 'png', ok: path !== null, path: path === null ? null : clip(path, 4096), rows: null, error: path === null ? 'cancelled' : null });
    } catch (err) {
      this.opts.post({ type: 'exported', reqId, kind: 'png', ok: false, path: null, rows: null, error: errorText(err) });
    }
  }
}

/** How many of the rows at positions `gapOnly` (ascending) of `x` lie in [lo, hi]: rows logged only as gaps, with no value to count. */
function gapsIn(x: Float64Array, len: number, gapOnly: number[], lo: number, hi: number): number {
  if (!gapOnly.length) return 0;
  return lowerBound(gapOnly, gapOnly.length, upperBound(x, len, hi)) - lowerBound(gapOnly, gapOnly.length, lowerBound(x, len, lo));
}

/** An error as the protocol takes it (a failed save's message can quote a long path). */
const errorText = (err: unknown): string => clip(String((err as Error)?.message ?? err), 4096);

/** How many of the first `len` of `x` (ascending) lie in [lo, hi]: the values a chart has there. */
function countIn(x: Float64Array, len: number, lo: number, hi: number): number {
  return upperBound(x, len, hi) - lowerBound(x, len, lo);
}

/**
 * Adds one samples event's rows to a run's kept rows. A later attempt (a resume from a
 * checkpoint, a requeue) logging from `step` on supersedes the earlier attempts' rows of these
 * steps, as it does their metrics; and this attempt's rows from `seq` on are the file's lines
 * read again (the file was cut under the reader, which reads from the cut once more): the
 * file's, once. The rows are looked at only when one can be superseded (a run logs a samples
 * event at every logging step: scanning the 4,000 kept rows on each made opening a long run
 * O(events × 4,000)), and the front is dropped in batches, the kept rows cut to the limit
 * before a scan and at the end of each ingest (trimSamples), so what is kept is what dropping
 * at every event keeps.
 */
function addSamples(r: RunData, runId: string, step: number, seq: number, rows: SampleRow[]): void {
  if (r.earlierMaxStep >= step || r.attemptMaxSeq >= seq) {
    trimSamples(r, MAX_SAMPLE_ROWS_KEPT);
    const n = r.samples.length;
    sampleWork.scanned += n;
    let k = 0;
    let earlierMaxStep = -Infinity;
    let attemptMaxStep = -Infinity;
    let attemptMaxSeq = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = r.samples[i]!;
      const a = r.sampleAttempts[i]!;
      const q = r.sampleSeqs[i]!;
      const earlier = a < r.attempt;
      if (earlier ? x.step >= step : q >= seq) continue;
      if (earlier) earlierMaxStep = Math.max(earlierMaxStep, x.step);
      else {
        attemptMaxStep = Math.max(attemptMaxStep, x.step);
        if (q === q) attemptMaxSeq = Math.max(attemptMaxSeq, q);
      }
      r.samples[k] = x;
      r.sampleAttempts[k] = a;
      r.sampleSeqs[k] = q;
      k++;
    }
    r.samples.length = r.sampleAttempts.length = r.sampleSeqs.length = k;
    r.earlierMaxStep = earlierMaxStep;
    r.attemptMaxStep = attemptMaxStep;
    r.attemptMaxSeq = attemptMaxSeq;
  }
  const kept = rows.length > MAX_SAMPLE_ROWS_KEPT ? rows.slice(-MAX_SAMPLE_ROWS_KEPT) : rows;
  for (const row of kept) {
    r.samples.push(sampleRow(runId, step, row));
    r.sampleAttempts.push(r.attempt);
    r.sampleSeqs.push(seq);
  }
  if (kept.length) {
    r.attemptMaxStep = Math.max(r.attemptMaxStep, step);
    if (seq === seq) r.attemptMaxSeq = Math.max(r.attemptMaxSeq, seq);
  }
  if (r.samples.length > 2 * MAX_SAMPLE_ROWS_KEPT) trimSamples(r, MAX_SAMPLE_ROWS_KEPT);
}

/** Drops the oldest kept sample rows past `max` (the bounds of addSamples stay bounds). */
function trimSamples(r: RunData, max: number): void {
  const over = r.samples.length - max;
  if (over <= 0) return;
  sampleWork.dropped += over;
  r.samples.splice(0, over);
  r.sampleAttempts.splice(0, over);
  r.sampleSeqs.splice(0, over);
}

/** Splits a completion at its first safety block, as the runtime's rewards parse it (for rows logged before the runtime split them). */
export function splitSafety(text: string, open = '<safety>', close = '</safety>'): { safety: string | null; answer: string } {
  const start = text.indexOf(open);
  if (start < 0) return { safety: null, answer: text.trim() };
  const body = start + open.length;
  const end = text.indexOf(close, body);
  if (end < 0) return { safety: text.slice(body).trim(), answer: '' };
  return { safety: text.slice(body, end).trim(), answer: text.slice(end + close.length).trim() };
}

function sampleRow(runId: string, step: number, row: SampleRow): SampleRowMsg {
  const rewards: Record<string, number | null> = {};
  if (row && typeof row.rewards === 'object' && row.rewards) {
    for (const [k, v] of Object.entries(row.rewards).slice(0, 100)) rewards[clip(k, LIMITS.maxSampleLabel)] = numOrNull(v);
  }
  const completion = clip(row?.completion, LIMITS.maxSampleText);
  const split = typeof row?.answer === 'string' ? { safety: row.safety ?? null, answer: row.answer } : splitSafety(completion);
  return {
    runId,
    step,
    prompt: clip(row?.prompt, LIMITS.maxSampleText),
    completion,
    safety: split.safety === null || split.safety === undefined ? null : clip(split.safety, LIMITS.maxSampleText),
    answer: clip(split.answer, LIMITS.maxSampleText),
    safetyTokens: numOrNull(row?.safety_tokens),
    rewards,
    budget: numOrNull(row?.budget),
    label: row?.label == null ? null : clip(row.label, LIMITS.maxSampleLabel),
  };
}
