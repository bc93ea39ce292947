import { test } from 'node:test';
import assert from 'node:assert/strict';
import { minMaxIndices, windowRange } from '../../src/core/dashboard/decimate';
import { ema } from '../../src/core/dashboard/ema';
import { rng } from './fixtures/grpo';

function series(n: number, seed = 3): { x: Float64Array; y: Float64Array } {
  const r = rng(seed);
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  let w = 0;
  for (let i = 0; i < n; i++) {
    x[i] = i + 1;
    w += r() - 0.5;
    y[i] = w + (r() < 0.001 ? 50 : 0); // rare spikes that naive sampling would lose
  }
  return { x, y };
}

test('small windows are sent whole', () => {
  const { x, y } = series(100);
  assert.deepEqual([...minMaxIndices(x, 100, [y], 1, 100, 800)], [...Array(100).keys()]);
});

test('min/max per pixel column keeps every column extreme and both ends, and bounds the output', () => {
  const n = 200_000;
  const width = 500;
  const { x, y } = series(n);
  const idx = minMaxIndices(x, n, [y], x[0], x[n - 1], width);
  assert.ok(idx.length <= width * 4 + 4, `kept ${idx.length}`);
  assert.ok(idx.length >= width, `kept only ${idx.length}`);
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1], 'indices ascending and unique');
  assert.equal(idx[0], 0);
  assert.equal(idx[idx.length - 1], n - 1);
  // every pixel column's min and max value survive
  const kept = new Set(idx);
  const scale = width / (x[n - 1] - x[0]);
  const colMin = new Map<number, number>();
  const colMax = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const c = Math.min(width - 1, Math.floor((x[i] - x[0]) * scale));
    if (!colMin.has(c) || y[i] < colMin.get(c)!) colMin.set(c, y[i]);
    if (!colMax.has(c) || y[i] > colMax.get(c)!) colMax.set(c, y[i]);
  }
  const keptMin = new Map<number, number>();
  const keptMax = new Map<number, number>();
  for (const i of kept) {
    const c = Math.min(width - 1, Math.floor((x[i] - x[0]) * scale));
    keptMin.set(c, Math.min(keptMin.get(c) ?? Infinity, y[i]));
    keptMax.set(c, Math.max(keptMax.get(c) ?? -Infinity, y[i]));
  }
  for (const [c, v] of colMin) assert.equal(keptMin.get(c), v, `column ${c} min`);
  for (const [c, v] of colMax) assert.equal(keptMax.get(c), v, `column ${c} max`);
  // the global spike is there
  let spike = 0;
  for (let i = 1; i < n; i++) if (y[i] > y[spike]) spike = i;
  assert.ok(kept.has(spike));
});

test('a zoomed window is finer: more of its points survive, plus one neighbour each side', () => {
  const n = 100_000;
  const { x, y } = series(n);
  const full = minMaxIndices(x, n, [y], 1, n, 400);
  const zoom = minMaxIndices(x, n, [y], 50_000, 50_999, 400);
  const inZoomFull = [...full].filter((i) => x[i] >= 50_000 && x[i] <= 50_999).length;
  const inZoom = [...zoom].filter((i) => x[i] >= 50_000 && x[i] <= 50_999).length;
  assert.ok(inZoom > inZoomFull * 5, `zoomed ${inZoom} vs full ${inZoomFull}`);
  assert.equal(x[zoom[0]], 49_999);
  assert.equal(x[zoom[zoom.length - 1]], 51_000);
  assert.deepEqual(windowRange(x, n, 50_000, 50_999), [49_998, 51_000]);
});

test('gaps (NaN) survive decimation so lines break where data is missing', () => {
  const n = 10_000;
  const { x, y } = series(n);
  for (let i = 5000; i < 5100; i++) y[i] = NaN;
  const idx = minMaxIndices(x, n, [y], 1, n, 100);
  assert.ok([...idx].some((i) => Number.isNaN(y[i])));
});

test('several series share one index set that holds each one\'s extremes', () => {
  const n = 50_000;
  const a = series(n, 1);
  const b = series(n, 2);
  const idx = new Set(minMaxIndices(a.x, n, [a.y, b.y], 1, n, 200));
  let amax = 0;
  let bmin = 0;
  for (let i = 0; i < n; i++) {
    if (a.y[i] > a.y[amax]) amax = i;
    if (b.y[i] < b.y[bmin]) bmin = i;
  }
  assert.ok(idx.has(amax) && idx.has(bmin));
});

test('EMA is TensorBoard\'s debiased average', () => {
  // hand-computed: w=0.5 on [1, 3]: last=0.5 → 0.5/(1-0.5)=1; last=0.25+1.5=1.75 → 1.75/(1-0.25)=2.333…
  const s = ema([1, 3], 0.5);
  assert.equal(s[0], 1);
  assert.ok(Math.abs(s[1] - 7 / 3) < 1e-12);
  // a constant series stays constant (no pull toward 0), gaps pass through
  const c = ema([2, 2, NaN, 2, 2], 0.9);
  assert.deepEqual([...c].map((v) => (Number.isNaN(v) ? 'gap' : +v.toFixed(12))), [2, 2, 'gap', 2, 2]);
  // weight 0 is the raw series
  assert.deepEqual([...ema([1, 5, 2], 0)], [1, 5, 2]);
});

test('the cached decimation of a growing run equals a fresh one after every append', async () => {
  const { DecimationCache, minMaxIndices, stableHi } = await import('../../src/core/dashboard/decimate');
  const n = 60_000;
  const { x, y } = series(n, 5);
  const z = series(n, 6).y;
  const cache = new DecimationCache();
  let len = 20_000;
  for (; len <= n; ) {
    const hi = stableHi(x[0], x[len - 1]);
    assert.ok(hi >= x[len - 1] && hi - x[0] <= (x[len - 1] - x[0]) * 1.125 + 1e-9);
    const got = cache.indices(x, len, [y, z], x[0], hi, 300, 0);
    const want = minMaxIndices(x, len, [y, z], x[0], hi, 300);
    assert.deepEqual([...got], [...want], `at ${len} points`);
    len += len < 21_000 ? 1 : 3917;
  }
});
