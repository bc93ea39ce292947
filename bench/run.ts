// `npm run bench`: runs every bench/*.bench.ts (each default-exports an async function that
// returns named figures), merges them into bench/results.json (a flat object) and prints a
// table. `npm run bench -- recipes allocator` runs only the named benches.
import { readdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

type Figures = Record<string, number | string | null>;

// ---------------------------------------------------------------------------------------
// The harness for "ours against a peer": the two are measured interleaved (A B A B ...), after a
// warm-up of both, and the figure is the median of the per-pair ratios, with its spread. A ratio
// of two medians taken minutes apart moves with whatever else the machine did in between (2x on
// the shared 2-core machine); pairs taken back to back see the same machine.

export interface Interleaved {
  /** Median over pairs of ours' time per sample (ms, or whatever unit the samples return). */
  ours: number;
  /** Median over pairs of the peer's time per sample. */
  peer: number;
  /** Median over pairs of peer / ours (higher is better for us when the samples are times). */
  ratio: number;
  /** The 10th and 90th percentile of the per-pair ratios. */
  ratioP10: number;
  ratioP90: number;
  pairs: number;
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q;
  const lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo]! + (s[hi]! - s[lo]!) * (i - lo);
}

/**
 * Measure `ours` and `peer` interleaved: `warmup` pairs discarded, then `pairs` pairs, the order
 * within a pair alternating (A B, B A, ...) so neither always runs right after the other. Each
 * call returns one sample (for example a quantile of the call times of a batch sized to ~50 ms).
 */
export async function interleaved(ours: () => Promise<number> | number, peer: () => Promise<number> | number, opts: { pairs: number; warmup?: number }): Promise<Interleaved> {
  const A = async () => ours();
  const B = async () => peer();
  for (let i = 0; i < (opts.warmup ?? 2); i++) { await A(); await B(); }
  const a: number[] = [], b: number[] = [], r: number[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    let x: number, y: number;
    if (i % 2 === 0) { x = await A(); y = await B(); } else { y = await B(); x = await A(); }
    a.push(x); b.push(y); r.push(y / x);
  }
  return { ours: quantile(a, 0.5), peer: quantile(b, 0.5), ratio: quantile(r, 0.5), ratioP10: quantile(r, 0.1), ratioP90: quantile(r, 0.9), pairs: opts.pairs };
}

/** How many calls of `fn` fill about `targetMs` (at least 1), measured after a warm-up call. */
export function batchSize(fn: () => unknown, targetMs = 50): number {
  fn();
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    const ms = performance.now() - t0;
    if (ms >= targetMs / 4 || n >= 1 << 20) return Math.max(1, Math.round((n * targetMs) / Math.max(ms, 1e-3)));
    n *= 2;
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const dir = __dirname;
  const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();
  const out = join(dir, 'results.json');
  // Keep figures of benches not run this time, so a partial run does not erase the others.
  const results: Figures = only.length && existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {};
  for (const f of files) {
    const name = f.replace(/\.bench\.ts$/, '');
    if (only.length && !only.includes(name)) continue;
    process.stderr.write(`[bench] ${name}\n`);
    delete results[`${name}.error`]; // an error from an earlier run is not this run's
    try {
      const mod = await import(join(dir, f));
      const figures: Figures = await (mod.default ?? mod.bench)();
      Object.assign(results, figures);
    } catch (err) {
      process.stderr.write(`[bench] ${name} failed: ${(err as Error).stack ?? err}\n`);
      results[`${name}.error`] = String((err as Error).message ?? err);
    }
  }
  writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  const width = Math.max(...Object.keys(results).map((k) => k.length), 6);
  console.log(`${'figure'.padEnd(width)}  value`);
  for (const [k, v] of Object.entries(results)) {
    console.log(`${k.padEnd(width)}  ${typeof v === 'number' ? +v.toPrecision(4) : v}`);
  }
}

// Run only as `npm run bench`; the benches import the harness above from this file.
if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
