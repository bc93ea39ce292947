// The dashboard webview's message protocol: one discriminated union each way, shared by the
// extension host (editor/dashboard.ts + core/dashboard/session.ts) and the webview bundle
// (webview/src/dashboard). Both sides validate every message on receipt with parseToHost /
// parseToWebview. Series travel as Float64Array (VS Code ≥1.57 recreates typed arrays in the
// webview; a plain number[] with null for gaps is accepted too). See docs/dashboard.md.
import {
  arr, bool, f64, int, literal, nullable, num, obj, optional, parseWith, record, str, tuple, union,
  type Check, type Parsed,
} from './validate';

export type XAxis = 'step' | 'relative' | 'wall';
export const X_AXES: readonly XAxis[] = ['step', 'relative', 'wall'];

/** What the webview is showing; sent on every change, kept in webview state for restore. */
export interface ViewState {
  xAxis: XAxis;
  /** x range zoomed into, or null for everything. */
  range: [number, number] | null;
  /** TensorBoard-style EMA weight in [0, 0.999]; 0 = raw. */
  smoothing: number;
  /** Width in CSS pixels of one plot area: the decimation's column count. */
  width: number;
  /** Series hidden via the legend, as "chartId/key". */
  hidden: string[];
}

export interface RunMeta {
  id: string;
  label: string;
  status: string;
  step: number | null;
  maxSteps: number | null;
  /** Metric rows the host holds for this run (the full series, never truncated). */
  rows: number;
}

export interface ChartSeriesSpec {
  key: string;
  label: string;
}
export interface ChartSpec {
  id: string;
  title: string;
  series: ChartSeriesSpec[];
  /** A shaded band between two keys (e.g. reward ± std), drawn behind `series`. */
  band?: { lo: string; hi: string; label: string };
  /** Log-scale y (learning rate). */
  log?: boolean;
}

export interface SeriesWindow {
  runId: string;
  /** x values (step, seconds since start, or Unix seconds), ascending. */
  x: Float64Array;
  /** Per key: the values drawn (EMA-smoothed when smoothing > 0); NaN = gap. */
  y: Record<string, Float64Array>;
  /** Per key, only when smoothing > 0: the raw values at the same x (drawn faint). */
  raw?: Record<string, Float64Array>;
  /** Points in the window before decimation. */
  total: number;
}

export interface ChartWindow {
  chartId: string;
  runs: SeriesWindow[];
}

export interface SampleRowMsg {
  prompt: string;
  completion: string;
  rewards: Record<string, number | null>;
  budget: number | null;
  label: string | null;
}

export type ToWebview =
  | { type: 'layout'; title: string; runs: RunMeta[]; charts: ChartSpec[] }
  | { type: 'runs'; runs: RunMeta[] }
  | {
      type: 'window';
      viewId: number;
      xAxis: XAxis;
      range: [number, number] | null;
      /** x extent of all data for the axis (for resetting zoom). */
      extent: [number, number] | null;
      smoothing: number;
      charts: ChartWindow[];
    }
  | { type: 'samples'; runId: string; step: number; rows: SampleRowMsg[] }
  | { type: 'exported'; reqId: number; kind: 'csv' | 'png'; ok: boolean; path: string | null; rows: number | null; error: string | null }
  | { type: 'error'; message: string };

export type ToHost =
  | { type: 'ready'; view: ViewState | null }
  | ({ type: 'view'; viewId: number } & ViewState)
  | { type: 'exportCsv'; reqId: number }
  | { type: 'exportPng'; reqId: number; chartId: string; dataUrl: string };

/** Limits that keep one message bounded. */
export const LIMITS = {
  maxWidth: 8192,
  maxSampleRows: 64,
  maxSampleText: 4000,
  maxPngDataUrl: 32 * 1024 * 1024,
} as const;

const id = str(256);
const viewFields = {
  xAxis: literal(...X_AXES),
  range: nullable(tuple(num(), num())),
  smoothing: num(0, 0.999),
  width: int(1, LIMITS.maxWidth),
  hidden: arr(str(512), 10_000),
};
const viewState = obj(viewFields);

const runMeta = obj({
  id, label: str(1000), status: str(64), step: nullable(num()), maxSteps: nullable(num()), rows: int(0),
});
const chartSpec = obj({
  id, title: str(200),
  series: arr(obj({ key: str(512), label: str(512) }), 1000),
  band: optional(obj({ lo: str(512), hi: str(512), label: str(512) })),
  log: optional(bool),
});
const seriesWindow = obj({
  runId: id, x: f64(), y: record(f64(), 1000), raw: optional(record(f64(), 1000)), total: int(0),
});
const reward = nullable(num());
const sampleRow = obj({
  prompt: str(LIMITS.maxSampleText + 16),
  completion: str(LIMITS.maxSampleText + 16),
  rewards: record(reward, 100),
  budget: nullable(num()),
  label: nullable(str(200)),
});

const toWebview: Check = union('type', {
  layout: obj({ type: literal('layout'), title: str(1000), runs: arr(runMeta, 100), charts: arr(chartSpec, 100) }),
  runs: obj({ type: literal('runs'), runs: arr(runMeta, 100) }),
  window: obj({
    type: literal('window'), viewId: int(0), xAxis: literal(...X_AXES),
    range: nullable(tuple(num(), num())), extent: nullable(tuple(num(), num())),
    smoothing: num(0, 0.999),
    charts: arr(obj({ chartId: id, runs: arr(seriesWindow, 100) }), 100),
  }),
  samples: obj({ type: literal('samples'), runId: id, step: num(), rows: arr(sampleRow, LIMITS.maxSampleRows) }),
  exported: obj({
    type: literal('exported'), reqId: int(0), kind: literal('csv', 'png'), ok: bool,
    path: nullable(str(4096)), rows: nullable(int(0)), error: nullable(str(4096)),
  }),
  error: obj({ type: literal('error'), message: str(4096) }),
});

const toHost: Check = union('type', {
  ready: obj({ type: literal('ready'), view: nullable(viewState) }),
  view: obj({ type: literal('view'), viewId: int(0), ...viewFields }),
  exportCsv: obj({ type: literal('exportCsv'), reqId: int(0) }),
  exportPng: obj({
    type: literal('exportPng'), reqId: int(0), chartId: id,
    dataUrl: (v, p) => {
      const e = str(LIMITS.maxPngDataUrl)(v, p);
      if (e) return e;
      return /^data:image\/png;base64,[A-Za-z0-9+/]*={0,2}$/.test(v as string) ? null : `${p}: not a PNG data URL`;
    },
  }),
});

/** Validates a message the webview received from the host. */
export function parseToWebview(msg: unknown): Parsed<ToWebview> {
  return parseWith<ToWebview>(toWebview, msg, 'message');
}

/** Validates a message the host received from the webview. */
export function parseToHost(msg: unknown): Parsed<ToHost> {
  const r = parseWith<ToHost>(toHost, msg, 'message');
  if (r.ok && r.value.type === 'view' && r.value.range && !(r.value.range[0] < r.value.range[1])) {
    return { ok: false, error: 'message.range: min must be below max' };
  }
  return r;
}

export const isViewState = (v: unknown): v is ViewState => viewState(v, 'state') === null;
