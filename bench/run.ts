// `npm run bench`: runs every bench/*.bench.ts (each default-exports an async function that
// returns named figures), merges them into bench/results.json (a flat object) and prints a
// table. `npm run bench -- recipes allocator` runs only the named benches. A bench that throws
// gets `NAME.error` in place of its figures and the command exits 1; the others' figures stay.
import { readdirSync, writeFileSync, existsSync, readFileSync, renameSync } from 'node:fs';
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
  /** Every pair's peer / ours, in the order measured (for a figure the other way round: ours / peer). */
  pairRatios: number[];
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
  return { ours: quantile(a, 0.5), peer: quantile(b, 0.5), ratio: quantile(r, 0.5), ratioP10: quantile(r, 0.1), ratioP90: quantile(r, 0.9), pairs: opts.pairs, pairRatios: r };
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

/** Figures a bench writes under a prefix other than its own name (`NAME.`). */
const EXTRA_PREFIXES: Record<string, string[]> = { launch: ['events.'] };

/** Whether figure `key` belongs to bench `name` (it is dropped before that bench runs again). */
export function ownedBy(key: string, name: string): boolean {
  return [`${name}.`, ...(EXTRA_PREFIXES[name] ?? [])].some((p) => key.startsWith(p));
}

/** Write `out` whole or not at all: a crash or Ctrl-C mid-write leaves the previous file. */
function writeResults(out: string, results: Figures): void {
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(results, null, 2) + '\n');
  renameSync(tmp, out);
}

export interface RunOptions {
  /** The folder of the *.bench.ts files. */
  dir: string;
  /** results.json: read first (figures of benches not run stay), rewritten after each bench. */
  out: string;
  /** Names of the benches to run; empty: all. */
  only: string[];
  log?: (line: string) => void;
}

/**
 * Run the benches in `dir` one after another. Before a bench runs, its figures from an earlier
 * run are dropped, so what the file holds for it afterwards is this run's figures or this run's
 * `NAME.error`, never an earlier run's figures beside a new error. The file is rewritten after
 * each bench, so a bench that crashes the process, or a Ctrl-C, keeps the figures of the benches
 * that ran before it. Throws, before running anything, on a name that is not a bench.
 */
export async function runBenches(opts: RunOptions): Promise<{ results: Figures; failed: string[] }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const names = readdirSync(opts.dir).filter((f) => f.endsWith('.bench.ts')).map((f) => f.replace(/\.bench\.ts$/, '')).sort();
  const unknown = opts.only.filter((n) => !names.includes(n));
  if (unknown.length) throw new Error(`no bench named ${unknown.join(', ')} in ${opts.dir} (benches: ${names.join(', ')})`);
  let results: Figures = {};
  if (existsSync(opts.out)) {
    try {
      results = JSON.parse(readFileSync(opts.out, 'utf8'));
    } catch (err) {
      // A full run replaces every figure anyway; a partial one would lose the others'.
      if (opts.only.length) throw new Error(`${opts.out} is not valid JSON (${(err as Error).message}): run every bench (npm run bench) or move it aside`);
    }
  }
  if (!opts.only.length) {
    // A full run: figures of benches that no longer exist go.
    for (const k of Object.keys(results)) if (!names.some((n) => ownedBy(k, n))) delete results[k];
  }
  const failed: string[] = [];
  for (const name of names) {
    if (opts.only.length && !opts.only.includes(name)) continue;
    log(`[bench] ${name}`);
    for (const k of Object.keys(results)) if (ownedBy(k, name)) delete results[k];
    try {
      const mod = await import(join(opts.dir, `${name}.bench.ts`));
      const figures: Figures = await (mod.default ?? mod.bench)();
      Object.assign(results, figures);
    } catch (err) {
      log(`[bench] ${name} failed: ${(err as Error).stack ?? err}`);
      results[`${name}.error`] = String((err as Error).message ?? err);
      failed.push(name);
    }
    writeResults(opts.out, results);
  }
  return { results, failed };
}

async function main(): Promise<void> {
  const { results, failed } = await runBenches({ dir: __dirname, out: join(__dirname, 'results.json'), only: process.argv.slice(2) });
  const width = Math.max(...Object.keys(results).map((k) => k.length), 6);
  console.log(`${'figure'.padEnd(width)}  value`);
  for (const [k, v] of Object.entries(results)) {
    console.log(`${k.padEnd(width)}  ${typeof v === 'number' ? +v.toPrecision(4) : v}`);
  }
  if (failed.length) {
    console.error(`[bench] failed: ${failed.join(', ')} (see ${failed.map((n) => `${n}.error`).join(', ')})`);
    process.exitCode = 1;
  }
}

// Run only as `npm run bench`; the benches import the harness above from this file.
if (require.main === module) {
  main().catch((err) => {
    // a misspelt name or an unreadable results.json: the message says which; no stack
    console.error(`[bench] ${(err as Error).message ?? err}`);
    process.exitCode = 1;
  });
}
