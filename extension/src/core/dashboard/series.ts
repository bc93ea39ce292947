// The host-side series store of one run: every metrics row, in growable Float64Arrays, never
// truncated or downsampled (decimation happens per request in decimate.ts). Rows are kept
// sorted by step: a metrics event whose step is below the last one (a resume from an earlier
// checkpoint) supersedes the rows from that step on; superseded rows are kept aside so the
// CSV export still has every row ever logged. So does a new attempt (a resume, a SLURM requeue:
// a `run_started` after metrics) logging the step its predecessor logged last, and so does a
// line read again after the file was cut under the reader (its `seq` not after the row's): only
// logs of one attempt at one step, each after the one before, merge into a row.
import type { MetricsEvent } from '../runs/events';
import { isChartKey } from './charts';

/** Derived columns (not exported): the reward band. */
export const DERIVED: Record<string, { of: string; by: string; sign: 1 | -1 }> = {
  'reward+std': { of: 'reward', by: 'reward_std', sign: 1 },
  'reward-std': { of: 'reward', by: 'reward_std', sign: -1 },
};
/** An own key of DERIVED (`k in DERIVED` is true for `constructor`, `toString`, ...). */
export const isDerived = (k: string): boolean => Object.hasOwn(DERIVED, k);
/** Metric keys kept per run; keys a chart draws may go past it, up to CHARTED_RESERVE more. */
export const MAX_KEYS = 2000;
const CHARTED_RESERVE = 1000;

export interface ArchivedRow {
  seq: number;
  step: number;
  time: number;
  values: Map<string, number>;
}

class Growable {
  data: Float64Array;
  constructor(cap: number, fillLen = 0) {
    this.data = new Float64Array(cap);
    if (fillLen) this.data.fill(NaN, 0, fillLen);
  }
  ensure(cap: number): void {
    if (cap <= this.data.length) return;
    let n = this.data.length || 16;
    while (n < cap) n *= 2;
    const d = new Float64Array(n);
    d.set(this.data);
    this.data = d;
  }
}

const finite = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);

export class RunSeries {
  len = 0;
  private cap = 0;
  private readonly stepC = new Growable(0);
  private readonly timeC = new Growable(0);
  private readonly seqC = new Growable(0);
  /** The attempt (count of `run_started` seen) that logged each row. */
  private readonly attemptC = new Growable(0);
  /** `time` made non-decreasing (see monoTime): the x of the time axes. */
  private readonly monoC = new Growable(0);
  /** What monoC adds to `time` from each row on. */
  private readonly shiftC = new Growable(0);
  private attempt = 0;
  private readonly cols = new Map<string, Growable>();
  /** Per key, the rows where it was logged without a number (the runtime writes NaN as null): gaps, not absent values. */
  private readonly gaps = new Map<string, Set<number>>();
  /** Rows superseded by a resume (kept for the CSV export). */
  readonly archived: ArchivedRow[] = [];
  /** Time of the run's first event: the origin of the 'relative' x axis. */
  t0: number | null = null;
  /** Bumped whenever existing rows change (resume truncation, merge): invalidates caches. */
  generation = 0;
  /** Keys not kept (past MAX_KEYS): how many, and the first few names. */
  droppedKeys = 0;
  readonly droppedNames: string[] = [];

  constructor(readonly runId: string) {}

  get step(): Float64Array { return this.stepC.data.subarray(0, this.len); }
  get time(): Float64Array { return this.timeC.data.subarray(0, this.len); }
  get seq(): Float64Array { return this.seqC.data.subarray(0, this.len); }
  /**
   * The rows' times made non-decreasing: where the clock steps back (an attempt requeued on a
   * node whose clock is behind, an NTP step), that row and the ones after it are shifted
   * forward by the step back, so they start where the row before ended and keep their
   * spacing; a missing time repeats the row before, and so does one whose shifted value is
   * past what a number holds. The time axes draw this
   * (decimation needs ascending x); the CSV keeps the times as logged.
   */
  get monoTime(): Float64Array { return this.monoC.data.subarray(0, this.len); }

  /** A new attempt of the run began (a `run_started`): its first log supersedes, never merges. */
  newAttempt(): void {
    this.attempt++;
  }

  /** Metric keys as logged (derived band columns excluded), in first-seen order. */
  keys(): string[] {
    return [...this.cols.keys()].filter((k) => !isDerived(k));
  }
  has(key: string): boolean {
    return this.cols.has(key);
  }
  /** The full column for `key` (NaN where a row lacks it), or undefined if never logged. */
  col(key: string): Float64Array | undefined {
    return this.cols.get(key)?.data.subarray(0, this.len);
  }

  /** The rows where `key` was logged without a finite value (a gap in its line), if any. */
  gapRows(key: string): ReadonlySet<number> | undefined {
    return this.gaps.get(key);
  }

  noteTime(t: unknown): void {
    if (this.t0 === null && typeof t === 'number' && Number.isFinite(t)) this.t0 = t;
  }

  /** Adds one metrics event. Malformed values become gaps (NaN), never errors. */
  append(ev: MetricsEvent): void {
    const step = finite(ev.step);
    if (Number.isNaN(step)) return;
    const time = finite(ev.time);
    this.noteTime(ev.time);
    const values = ev.values && typeof ev.values === 'object' ? ev.values : {};
    let row: number;
    const last = this.len ? this.stepC.data[this.len - 1] : -Infinity;
    const seq = finite(ev.seq);
    // a second log call of this attempt at the same step (e.g. eval), after the row's: merge; a
    // line at or before the row's seq is the file read again from a cut, and supersedes the row
    if (this.len && step === last && this.attemptC.data[this.len - 1] === this.attempt && !(seq <= this.seqC.data[this.len - 1])) {
      row = this.len - 1;
      this.generation++;
    } else {
      if (step <= last) this.supersedeFrom(step);
      row = this.len;
      this.grow(row + 1);
      this.len = row + 1;
      this.stepC.data[row] = step;
      this.timeC.data[row] = time;
      this.seqC.data[row] = seq;
      this.attemptC.data[row] = this.attempt;
      const prev = row ? this.monoC.data[row - 1] : NaN;
      const shifted = row ? this.shiftC.data[row - 1] : 0;
      let shift = shifted;
      if (row && time + shift < prev) shift = prev - time;
      let mono = time + shift;
      // a time so far off that the shift or the shifted time is past what a number holds
      // (1.7e308 then -1.7e308): a missing time, as NaN is (an infinite x is no axis)
      if (!Number.isFinite(mono)) {
        mono = NaN;
        shift = shifted;
      }
      this.shiftC.data[row] = shift;
      this.monoC.data[row] = Number.isNaN(mono) ? (row ? prev : (this.t0 ?? 0)) : mono;
      for (const c of this.cols.values()) c.data[row] = NaN;
    }
    for (const [k, v] of Object.entries(values)) {
      if (isDerived(k)) continue;
      const c = this.column(k);
      if (!c) continue;
      const x = finite(v);
      c.data[row] = x;
      if (x !== x) {
        let g = this.gaps.get(k);
        if (!g) this.gaps.set(k, (g = new Set()));
        g.add(row);
      } else this.gaps.get(k)?.delete(row);
    }
    for (const [k, d] of Object.entries(DERIVED)) {
      const of = this.cols.get(d.of);
      const by = this.cols.get(d.by);
      if (!of || !by) continue;
      const c = this.column(k);
      if (c) c.data[row] = of.data[row] + d.sign * by.data[row];
    }
  }

  private column(k: string): Growable | undefined {
    let c = this.cols.get(k);
    if (!c) {
      // a full store keeps taking the keys the dashboard charts (eval/*, safety/*, ...)
      if (this.cols.size >= MAX_KEYS && (!isChartKey(k) || this.cols.size >= MAX_KEYS + CHARTED_RESERVE)) {
        this.droppedKeys++;
        if (this.droppedNames.length < 5) this.droppedNames.push(k);
        return undefined;
      }
      c = new Growable(this.cap, this.cap);
      this.cols.set(k, c);
    }
    return c;
  }

  private grow(n: number): void {
    if (n <= this.cap) return;
    let cap = this.cap || 256;
    while (cap < n) cap *= 2;
    for (const g of [this.stepC, this.timeC, this.seqC, this.attemptC, this.monoC, this.shiftC, ...this.cols.values()]) {
      const old = g.data.length;
      g.ensure(cap);
      if (g.data.length > old) g.data.fill(NaN, old);
    }
    this.cap = cap;
  }

  /** A resume from an earlier checkpoint: rows with step >= `step` move to the archive. */
  private supersedeFrom(step: number): void {
    const s = this.stepC.data;
    let lo = 0;
    let hi = this.len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (s[mid] < step) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.len; i++) {
      const values = new Map<string, number>();
      for (const [k, c] of this.cols) if (!isDerived(k)) values.set(k, c.data[i]);
      this.archived.push({ seq: this.seqC.data[i], step: s[i], time: this.timeC.data[i], values });
    }
    for (const g of this.gaps.values()) for (const i of g) if (i >= lo) g.delete(i);
    this.len = lo;
    this.generation++;
  }

  /** Rows held in total (live + superseded): what the CSV export writes. */
  get totalRows(): number {
    return this.len + this.archived.length;
  }
}
