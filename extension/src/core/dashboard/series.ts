// The host-side series store of one run: every metrics row, in growable Float64Arrays, never
// truncated or downsampled (decimation happens per request in decimate.ts). Rows are kept
// sorted by step: a metrics event whose step is below the last one (a resume from an earlier
// checkpoint) supersedes the rows from that step on; superseded rows are kept aside so the
// CSV export still has every row ever logged.
import type { MetricsEvent } from '../runs/events';

/** Derived columns (not exported): the reward band. */
export const DERIVED: Record<string, { of: string; by: string; sign: 1 | -1 }> = {
  'reward+std': { of: 'reward', by: 'reward_std', sign: 1 },
  'reward-std': { of: 'reward', by: 'reward_std', sign: -1 },
};
const MAX_KEYS = 2000;

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
  private readonly cols = new Map<string, Growable>();
  /** Rows superseded by a resume (kept for the CSV export). */
  readonly archived: ArchivedRow[] = [];
  /** Time of the run's first event: the origin of the 'relative' x axis. */
  t0: number | null = null;
  /** Bumped whenever existing rows change (resume truncation, merge): invalidates caches. */
  generation = 0;
  droppedKeys = 0;

  constructor(readonly runId: string) {}

  get step(): Float64Array { return this.stepC.data.subarray(0, this.len); }
  get time(): Float64Array { return this.timeC.data.subarray(0, this.len); }
  get seq(): Float64Array { return this.seqC.data.subarray(0, this.len); }

  /** Metric keys as logged (derived band columns excluded), in first-seen order. */
  keys(): string[] {
    return [...this.cols.keys()].filter((k) => !(k in DERIVED));
  }
  has(key: string): boolean {
    return this.cols.has(key);
  }
  /** The full column for `key` (NaN where a row lacks it), or undefined if never logged. */
  col(key: string): Float64Array | undefined {
    return this.cols.get(key)?.data.subarray(0, this.len);
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
    if (this.len && step === last) {
      row = this.len - 1; // a second log call at the same step (e.g. eval): merge
      this.generation++;
    } else {
      if (step < last) this.supersedeFrom(step);
      row = this.len;
      this.grow(row + 1);
      this.len = row + 1;
      this.stepC.data[row] = step;
      this.timeC.data[row] = time;
      this.seqC.data[row] = finite(ev.seq);
      for (const c of this.cols.values()) c.data[row] = NaN;
    }
    for (const [k, v] of Object.entries(values)) {
      if (k in DERIVED) continue;
      const c = this.column(k);
      if (c) c.data[row] = finite(v);
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
      if (this.cols.size >= MAX_KEYS) {
        this.droppedKeys++;
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
    for (const g of [this.stepC, this.timeC, this.seqC, ...this.cols.values()]) {
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
      for (const [k, c] of this.cols) if (!(k in DERIVED)) values.set(k, c.data[i]);
      this.archived.push({ seq: this.seqC.data[i], step: s[i], time: this.timeC.data[i], values });
    }
    this.len = lo;
    this.generation++;
  }

  /** Rows held in total (live + superseded): what the CSV export writes. */
  get totalRows(): number {
    return this.len + this.archived.length;
  }
}
