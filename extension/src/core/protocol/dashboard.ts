// The dashboard webview's message protocol, declared once (core/protocol/validate.ts): the
// checks below validate every message on receipt, and the TypeScript types are inferred from
// them. Shared by the extension host (editor/dashboard.ts + core/dashboard/session.ts) and the
// webview bundle (webview/src/dashboard). Series travel as Float64Array (VS Code ≥1.57
// recreates typed arrays in the webview; a plain number[] with null for gaps is accepted too).
// See docs/dashboard.md.
import {
  arr, bool, f64, int, literal, nullable, num, obj, optional, protocol, record, refine, str, tuple, type Infer,
} from './validate';

export const X_AXES = ['step', 'relative', 'wall'] as const;
export type XAxis = (typeof X_AXES)[number];

/** Limits that keep one message bounded. */
export const LIMITS = {
  maxWidth: 8192,
  /** Sample rows in one page of the samples table. */
  maxSampleRows: 64,
  maxSampleText: 4000,
  maxPngDataUrl: 32 * 1024 * 1024,
  /** A metric key (and its series label) in a chart. */
  maxKeyLength: 512,
  /** Series in one chart. */
  maxSeries: 1000,
  /** A sample row's label, a reward name. */
  maxSampleLabel: 200,
  /** The dashboard's title ("Compare" and up to 8 run names). */
  maxTitle: 1000,
} as const;

const ID_LEN = 256;
const KEY_LEN = LIMITS.maxKeyLength;
const id = str(ID_LEN);
const range = nullable(tuple(num(), num()));
/** A zoomed range must be non-empty: min below max. */
const rangeOrder = (v: { range: [number, number] | null }, p: string) =>
  v.range && !(v.range[0] < v.range[1]) ? `${p}.range: min must be below max` : null;

/** What the webview is showing; sent on every change, kept in webview state for restore. */
const viewFields = {
  xAxis: literal(...X_AXES),
  /** x range zoomed into, or null for everything. */
  range,
  /** TensorBoard-style EMA weight in [0, 0.999]; 0 = raw. */
  smoothing: num(0, 0.999),
  /** Width in CSS pixels of one plot area: the decimation's column count. */
  width: int(1, LIMITS.maxWidth),
  /** Series hidden via the legend, as "chartId/runId/key" (a raw series: "chartId/runId/key/raw"). */
  hidden: arr(str(ID_LEN + 1 + ID_LEN + 1 + KEY_LEN + '/raw'.length), 10_000),
  /** Runs hidden in a comparison (every chart). */
  hiddenRuns: optional(arr(id, 100)),
};
const viewState = refine(obj(viewFields), rangeOrder);
export type ViewState = Infer<typeof viewState>;

const runMeta = obj({
  id,
  /** A short name (recipe + start time). */
  label: str(1000),
  status: str(64),
  step: nullable(num()),
  maxSteps: nullable(num()),
  /** Metric rows the host holds for this run (the full series, never truncated). */
  rows: int(0),
  /** Why a failed run failed: the trainer's error line. */
  cause: optional(str(4096)),
  /** Where the safety budgets came from (run_started.budgets), and whether the allocator failed. */
  budgets: optional(obj({ text: str(1000), fallback: bool })),
  /** Metric keys the host did not keep (past its limit per run): not charted, not in the CSV. */
  keysDropped: optional(int(0)),
});
export type RunMeta = Infer<typeof runMeta>;

const chartSpec = obj({
  id,
  title: str(200),
  series: arr(obj({ key: str(KEY_LEN), label: str(KEY_LEN) }), LIMITS.maxSeries),
  /** A shaded band between two keys (e.g. reward ± std), drawn behind `series`. */
  band: optional(obj({ lo: str(KEY_LEN), hi: str(KEY_LEN), label: str(KEY_LEN) })),
  /** Log-scale y (learning rate). */
  log: optional(bool),
});
export type ChartSpec = Infer<typeof chartSpec>;
export type ChartSeriesSpec = ChartSpec['series'][number];

const seriesWindow = obj({
  runId: id,
  /** x values (step, seconds since start, or Unix seconds), ascending (times where a clock stepped back are shifted forward: RunSeries.monoTime). */
  x: f64(),
  /** Per key: the values drawn (EMA-smoothed when smoothing > 0); NaN = gap. */
  y: record(f64(), 1000),
  /** Per key, only when smoothing > 0: the raw values at the same x (drawn faint). */
  raw: optional(record(f64(), 1000)),
  /** The chart's values in the window before decimation: rows holding one of its keys. */
  total: int(0),
});
export type SeriesWindow = Infer<typeof seriesWindow>;
const chartWindow = obj({ chartId: id, runs: arr(seriesWindow, 100) });
export type ChartWindow = Infer<typeof chartWindow>;

const text = str(LIMITS.maxSampleText + 16);
const sampleRow = obj({
  runId: id,
  step: num(),
  prompt: text,
  /** The whole completion as generated. */
  completion: text,
  /** The safety block (between the recipe's tags), or null when the completion has none. */
  safety: nullable(text),
  /** The completion without the safety block. */
  answer: text,
  /** Tokens of safety reasoning, against `budget`. */
  safetyTokens: nullable(num()),
  rewards: record(nullable(num()), 100),
  budget: nullable(num()),
  label: nullable(str(LIMITS.maxSampleLabel)),
});
export type SampleRowMsg = Infer<typeof sampleRow>;

/** Which samples the table shows: a page of rows, newest step first, filtered. */
const samplesQuery = {
  page: int(0),
  /** Only rows with this label (null: every label). */
  label: nullable(str(200)),
  /** Only rows whose reward `name` lies in [min, max] (null bounds: open). */
  reward: nullable(obj({ name: str(200), min: nullable(num()), max: nullable(num()) })),
};
export type SamplesQuery = Infer<ReturnType<typeof obj<typeof samplesQuery>>>;

/** One row per recipe key whose value differs between the compared runs. */
const configRow = obj({ key: str(500), values: arr(nullable(str(2000)), 100) });
export type ConfigRow = Infer<typeof configRow>;

export const dashboardProtocol = protocol({
  toWebview: {
    layout: { title: str(LIMITS.maxTitle), runs: arr(runMeta, 100), charts: arr(chartSpec, 100) },
    runs: { runs: arr(runMeta, 100) },
    window: {
      viewId: int(0),
      xAxis: literal(...X_AXES),
      range,
      /** x extent of all data for the axis (for resetting zoom). */
      extent: range,
      smoothing: num(0, 0.999),
      charts: arr(chartWindow, 100),
    },
    /** A page of the samples table (the answer to `samplesQuery`, or new samples arrived). */
    samples: {
      ...samplesQuery,
      pages: int(0),
      /** Rows matching the filter, over every page. */
      total: int(0),
      /** Steps with samples, and the labels and reward names seen (for the filters). */
      steps: int(0),
      labels: arr(str(LIMITS.maxSampleLabel), 1000),
      rewardNames: arr(str(LIMITS.maxSampleLabel), 100),
      rows: arr(sampleRow, LIMITS.maxSampleRows),
    },
    /** The recipes' differences between compared runs (runs in `layout` order). */
    config: { keys: int(0), rows: arr(configRow, 10_000), error: nullable(str(4096)) },
    exported: {
      reqId: int(0), kind: literal('csv', 'png'), ok: bool,
      path: nullable(str(4096)), rows: nullable(int(0)), error: nullable(str(4096)),
    },
    error: { message: str(4096) },
  },
  toExtension: {
    ready: { view: nullable(viewState) },
    view: refine(obj({ type: literal('view'), viewId: int(0), ...viewFields }), rangeOrder),
    samplesQuery,
    exportCsv: { reqId: int(0) },
    exportPng: {
      reqId: int(0),
      chartId: id,
      dataUrl: refine(str(LIMITS.maxPngDataUrl), (v, p) => (/^data:image\/png;base64,[A-Za-z0-9+/]*={0,2}$/.test(v) ? null : `${p}: not a PNG data URL`)),
    },
  },
});

export type ToWebview = Infer<typeof dashboardProtocol.toWebview>;
export type ToExtension = Infer<typeof dashboardProtocol.toExtension>;

/** Validates a message the webview received from the host. */
export const parseToWebview = dashboardProtocol.parseToWebview;
/** Validates a message the host received from the webview. */
export const parseToExtension = dashboardProtocol.parseToExtension;

export const isViewState = (v: unknown): v is ViewState => viewState(v, 'state') === null;
