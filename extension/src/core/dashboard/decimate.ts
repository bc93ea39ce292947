// Decimation for drawing: of the points whose x lies in [lo, hi], keep per pixel column the
// first, last, min and max of every series (M4), plus a gap marker when a column has one, and
// one point either side of the window so lines run to its edges. A line drawn through the kept
// points is pixel-identical to one drawn through all of them; the full series stays on the host.

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
  const n = b - a;
  width = Math.max(1, Math.floor(width));
  if (n <= 4 * width || !(hi > lo)) {
    const all = new Uint32Array(n);
    for (let i = 0; i < n; i++) all[i] = a + i;
    return all;
  }
  const k = ys.length;
  const out = new Uint32Array(Math.min(n, (width + 2) * (2 + 3 * k)));
  let m = 0;
  const scale = width / (hi - lo);
  const cand: number[] = [];
  const imin = new Int32Array(k);
  const imax = new Int32Array(k);
  const inan = new Int32Array(k);
  let col = Number.NaN;
  let first = -1;
  let last = -1;
  const flush = () => {
    if (first < 0) return;
    cand.length = 0;
    cand.push(first, last);
    for (let j = 0; j < k; j++) {
      if (imin[j] >= 0) cand.push(imin[j], imax[j]);
      if (inan[j] >= 0) cand.push(inan[j]);
    }
    cand.sort((p, q) => p - q);
    let prev = -1;
    for (const c of cand) {
      if (c !== prev) out[m++] = c;
      prev = c;
    }
  };
  for (let i = a; i < b; i++) {
    const xi = x[i];
    let c = Math.floor((xi - lo) * scale);
    if (c < 0) c = -1;
    else if (c >= width) c = xi <= hi ? width - 1 : width;
    if (c !== col) {
      flush();
      col = c;
      first = i;
      imin.fill(-1);
      imax.fill(-1);
      inan.fill(-1);
    }
    last = i;
    for (let j = 0; j < k; j++) {
      const v = ys[j][i];
      if (v !== v) {
        if (inan[j] < 0) inan[j] = i;
        continue;
      }
      if (imin[j] < 0 || v < ys[j][imin[j]]) imin[j] = i;
      if (imax[j] < 0 || v > ys[j][imax[j]]) imax[j] = i;
    }
  }
  flush();
  return out.slice(0, m);
}

/** Picks `idx` out of `src` (optionally shifting by `-offset`). */
export function gather(src: ArrayLike<number>, idx: Uint32Array, offset = 0): Float64Array {
  const out = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = src[idx[i]] - offset;
  return out;
}
