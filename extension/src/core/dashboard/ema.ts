// TensorBoard's scalar smoothing: an exponential moving average, debiased so the first points
// are not pulled toward zero (tensorboard/webapp/.../data_transformer_utils resampling: last =
// last*w + (1-w)*v; smoothed = last / (1 - w^n)). Non-finite values pass through as gaps and
// do not advance the average. A constant series stays constant.

export interface EmaState {
  last: number;
  n: number;
}

/**
 * Smooths `src[from..to)` into `dst` continuing from `state` (so appends extend a cached
 * result without recomputing it). Returns the state after the last point.
 */
export function emaInto(
  src: ArrayLike<number>,
  dst: Float64Array,
  weight: number,
  from = 0,
  to = src.length,
  state: EmaState = { last: 0, n: 0 },
): EmaState {
  let { last, n } = state;
  // weight^n, kept as a running product (Math.pow per point was most of a slider tick's time)
  let wn = Math.pow(weight, n);
  for (let i = from; i < to; i++) {
    const v = src[i];
    if (!Number.isFinite(v)) {
      dst[i] = NaN;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    wn *= weight;
    // past 1e-300, 1 - wn is 1 exactly: stop there, before wn turns subnormal (arithmetic on
    // subnormals made the whole loop ~8x slower: a smoothing tick over 8 compared runs of 100k
    // steps took a second)
    if (wn < 1e-300) wn = 0;
    const debias = weight === 1 ? 1 : 1 - wn;
    dst[i] = last / debias;
  }
  return { last, n };
}

export function ema(src: ArrayLike<number>, weight: number): Float64Array {
  const out = new Float64Array(src.length);
  emaInto(src, out, weight);
  return out;
}
