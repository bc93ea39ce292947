// Decimation for drawing: of the points whose x lies in [lo, hi], keep per pixel column the
// first, last, min and max of every series (M4), plus a gap marker when a column has one, and
// one point either side of the window so lines run to its edges. A line drawn through the kept
// points is pixel-identical to one drawn through all of them; the full series stays on the host.

/**
 * Work done so far, for tests that check an append costs O(new points), not O(run): rows
 * looked at (`scanned`: by M4, and by a chart's row list in session.ts) and values copied out
 * of a series (`gathered`: gather, and a row list's compaction). Growing arrays is not counted.
 */
export const work = { scanned: 0, gathered: 0 };

/** First index with x[i] >= v (x ascending). */
export function lowerBound(x: ArrayLike<number>, len: number, v: number): number {
  let lo = 0;
  let hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
/** First index with x[i] > v (x ascending). */
export function upperBound(x: ArrayLike<number>, len: number, v: number): number {
  let lo = 0;
  let hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index range [a, b) covering [lo, hi] plus one neighbour on each side. */
export function windowRange(x: ArrayLike<number>, len: number, lo: number, hi: number): [number, number] {
  const a = Math.max(0, lowerBound(x, len, lo) - 1);
  const b = Math.min(len, upperBound(x, len, hi) + 1);
  return [a, Math.max(a, b)];
}

/**
 * Indices (ascending, unique) to draw for series `ys` over `x` in [lo, hi] at `width` pixel
 * columns. Returns every index in the window when there are no more than 4 per column.
 */
export function minMaxIndices(
  x: ArrayLike<number>,
  len: number,
  ys: ArrayLike<number>[],
  lo: number,
  hi: number,
  width: number,
): Uint32Array {
  const [a, b] = windowRange(x, len, lo, hi);
  width = Math.max(1, Math.floor(width));
  if (b - a <= 4 * width || !(hi > lo)) return span(a, b);
  const out: number[] = [];
  m4(x, ys, a, b, lo, hi, width, out);
  return Uint32Array.from(out);
}

/** Every index in [a, b). */
export function span(a: number, b: number): Uint32Array {
  const all = new Uint32Array(Math.max(0, b - a));
  for (let i = 0; i < all.length; i++) all[i] = a + i;
  return all;
}

/**
 * The M4 pass over indices [a, b) on the column grid of [lo, hi] at `width` columns: pushes
 * the kept indices of every column onto `out` and returns the index where the LAST column
 * began (and its kept indices' position in `out`), so a caller can keep the finished columns
 * and resume there when points are appended.
 */
export function m4(
  x: ArrayLike<number>,
  ys: ArrayLike<number>[],
  a: number,
  b: number,
  lo: number,
  hi: number,
  width: number,
  out: number[],
): { lastColumnStart: number; lastColumnOut: number } {
  const k = ys.length;
  const scale = width / (hi - lo);
  const colOf = (xi: number): number => {
    const c = Math.floor((xi - lo) * scale);
    return c < 0 ? -1 : c >= width ? (xi <= hi ? width - 1 : width) : c;
  };
  work.scanned += Math.max(0, b - a);
  const cand: number[] = [];
  let lastColumnStart = a;
  let lastColumnOut = out.length;
  let start = a;
  while (start < b) {
    // the column of x[start] runs to the first index whose column is greater (x ascending)
    const col = colOf(x[start]);
    let l = start + 1;
    let r = b;
    while (l < r) {
      const m = (l + r) >>> 1;
      if (colOf(x[m]) > col) r = m;
      else l = m + 1;
    }
    const end = l;
    lastColumnStart = start;
    lastColumnOut = out.length;
    cand.length = 0;
    cand.push(start, end - 1);
    for (let j = 0; j < k; j++) {
      const y = ys[j];
      let mn = Infinity;
      let mx = -Infinity;
      let imn = -1;
      let imx = -1;
      let inan = -1;
      for (let i = start; i < end; i++) {
        const v = y[i];
        if (v < mn) { mn = v; imn = i; }
        if (v > mx) { mx = v; imx = i; }
        if (v !== v && inan < 0) inan = i;
      }
      if (imn >= 0) cand.push(imn);
      if (imx >= 0) cand.push(imx);
      if (inan >= 0) cand.push(inan);
    }
    cand.sort((p, q) => p - q);
    let prev = -1;
    for (const c of cand) {
      if (c !== prev) out.push(c);
      prev = c;
    }
    start = end;
  }
  return { lastColumnStart, lastColumnOut };
}

/**
 * The right edge of the decimation grid for a view of everything: the data's last x rounded
 * up to a step of 1/8 of the span's power of two, so the grid (and the finished columns a
 * cache holds) stays put while a live run appends points. At most 12.5% wider than the data.
 */
export function stableHi(lo: number, last: number): number {
  const spanX = last - lo;
  if (!(spanX > 0)) return last;
  const step = Math.pow(2, Math.floor(Math.log2(spanX))) / 8;
  return lo + Math.ceil(spanX / step) * step;
}

/**
 * Decimation that remembers its finished columns: as long as the grid (lo, hi, width) and the
 * rows already seen stay the same, an append only re-scans the last column and the new points.
 */
export class DecimationCache {
  private sig = '';
  private prefix: number[] = [];
  private resumeAt = 0;

  indices(x: ArrayLike<number>, len: number, ys: ArrayLike<number>[], lo: number, hi: number, width: number, generation: number): Uint32Array {
    width = Math.max(1, Math.floor(width));
    const [a, b] = windowRange(x, len, lo, hi);
    if (b - a <= 4 * width || !(hi > lo)) {
      this.sig = '';
      return span(a, b);
    }
    const sig = `${lo}|${hi}|${width}|${generation}|${ys.length}|${a}`;
    if (sig !== this.sig || this.resumeAt > b) {
      this.sig = sig;
      this.prefix = [];
      this.resumeAt = a;
    }
    const out = this.prefix;
    const keep = out.length;
    const r = m4(x, ys, this.resumeAt, b, lo, hi, width, out);
    const result = Uint32Array.from(out);
    // keep the finished columns; the last one may still grow
    out.length = Math.max(keep, r.lastColumnOut);
    this.resumeAt = r.lastColumnStart;
    return result;
  }
}

/** Picks `idx` out of `src` (optionally shifting by `-offset`). */
export function gather(src: ArrayLike<number>, idx: Uint32Array, offset = 0): Float64Array {
  const out = new Float64Array(idx.length);
  work.gathered += idx.length;
  for (let i = 0; i < idx.length; i++) out[i] = src[idx[i]] - offset;
  return out;
}
