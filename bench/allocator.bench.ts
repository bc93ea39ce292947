// Allocator inference speed in Node (onnxruntime-node) against its peer, Python's onnxruntime
// on the same model and the same prompts, in the same run (`python -m conscience.allocator
// bench`). Both sides: intra-op threads 2, one prompt per call for p50/p99 (tokenization
// included), batches of up to 32 prompts grouped by token count for throughput (what
// AllocatorModel.score and Allocator.run_texts do), the labelled set's prompts cycled to N.
// Python and Node alternate twice and each keeps its better run, so a noisy neighbour on the
// shared machine does not land on one side only.
//   npm run bench -- allocator          (ALLOCATOR_BENCH_N=1000 by default)
// The command-line peers on a file of the same prompts cycled to ALLOCATOR_BENCH_FILE_N (5,000),
// whole process included (start, model load, reading, writing): `conscience inspect FILE`
// (the bundle esbuild.mjs builds) against Python's `python -m conscience.allocator score FILE`,
// alternately twice, each keeping its better run.
//   allocator.inspect_per_s               prompts/s of `conscience inspect FILE`
//   allocator.python_score_per_s          prompts/s of `python -m conscience.allocator score FILE`
//   allocator.inspect_vs_python_ratio     Python's time / Node's (> 1: Node is faster)
// Quality on held-out sources (`python -m conscience.allocator evaluate --split test`): the
// project's own test split plus, where ../shared/data/prompt-risk exists (or
// $CONSCIENCE_PROMPT_RISK names another copy), the public sources the shipped model never saw.
//   allocator.heldout_f1                 F1 harmful vs not at risk >= 0.5 (target >= 0.92)
//   allocator.traffic_mix_budget_share   mean budget on 95% benign / 4% borderline / 1% harmful,
//                                        over the largest tier's budget (target <= 0.10)
//   allocator.heldout_harmful_budget0    share of harmful prompts given budget 0 (target <= 0.02)
//   allocator.heldout_ordinary_budget0   share of benign prompts given budget 0 (target >= 0.90)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AllocatorModel } from '../extension/src/core/allocator/model';

const REPO = resolve(__dirname, '..');
const MODEL = resolve(process.env.CONSCIENCE_ALLOCATOR_MODEL ?? join(REPO, 'models', 'allocator')); // Python's score runs from runtime/
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const DATA = join(REPO, 'runtime', 'conscience', 'data', 'allocator_prompts.jsonl');
const N = Number(process.env.ALLOCATOR_BENCH_N ?? 1000);
const FILE_N = Number(process.env.ALLOCATOR_BENCH_FILE_N ?? 5000);
const THREADS = 2;
const BATCH = 32;

interface Run { p50_ms: number; p99_ms: number; batch_per_s: number }

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo); // numpy's default (linear) percentile
};

function prompts(n = N): string[] {
  const all = readFileSync(DATA, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  return Array.from({ length: n }, (_, i) => all[i % all.length]!);
}

/** Prompts/s of one command scoring `file` (FILE_N prompts), whole process timed; its output must have one line per prompt. */
function cliRun(cmd: string, args: string[], cwd: string): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
  const dt = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`${[cmd, ...args].join(' ')} failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.split('\n').filter(Boolean).length;
  if (lines !== FILE_N) throw new Error(`${[cmd, ...args].join(' ')} printed ${lines} results for ${FILE_N} prompts`);
  return FILE_N / dt;
}

function cliPeers(): { node: number; python: number } {
  const dir = mkdtempSync(join(tmpdir(), 'allocator-bench-'));
  try {
    const file = join(dir, 'prompts.jsonl');
    writeFileSync(file, prompts(FILE_N).map((p, i) => JSON.stringify({ id: i, prompt: p })).join('\n') + '\n');
    const built = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: REPO, encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`node esbuild.mjs failed: ${built.stderr}`);
    const nodeCli = (): number => cliRun(process.execPath, [join(REPO, 'dist', 'cli.js'), 'inspect', file, '--model', MODEL], REPO);
    const pyCli = (): number => cliRun(PYTHON, ['-m', 'conscience.allocator', 'score', file, '--model', MODEL], join(REPO, 'runtime'));
    const py1 = pyCli();
    const node1 = nodeCli();
    const py2 = pyCli();
    const node2 = nodeCli();
    return { node: Math.max(node1, node2), python: Math.max(py1, py2) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function nodeRun(model: AllocatorModel, ps: string[]): Promise<Run> {
  for (const p of ps.slice(0, 20)) await model.score([p]); // warm-up
  const lat: number[] = [];
  for (const p of ps) {
    const t = performance.now();
    await model.score([p]);
    lat.push(performance.now() - t);
  }
  const t = performance.now();
  await model.score(ps); // consecutive batches of 32
  const dt = (performance.now() - t) / 1000;
  return { p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), batch_per_s: ps.length / dt };
}

function pythonRun(): Run & { batch_unsorted_per_s: number; model_mb: number } {
  const r = spawnSync(PYTHON, ['-m', 'conscience.allocator', 'bench', '--model', MODEL, '--n', String(N), '--batch', String(BATCH), '--threads', String(THREADS)], {
    cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`python -m conscience.allocator bench failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const POOL = process.env.CONSCIENCE_PROMPT_RISK ?? resolve(REPO, '..', 'shared', 'data', 'prompt-risk');

function heldout(): { f1: number; mix: number; rows: number; harmful0: number; ordinary0: number } {
  const data = [...(existsSync(POOL) ? [POOL] : []), DATA]; // the order docs/allocator.md's commands use
  const r = spawnSync(PYTHON, ['-m', 'conscience.allocator', 'evaluate', '--model', MODEL, '--split', 'test', '--format', 'json', '--data', ...data], {
    cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`python -m conscience.allocator evaluate failed: ${r.stderr}`);
  const pooled = (JSON.parse(r.stdout) as {
    pooled: { f1: number; traffic_mix_budget_share: number; n: number; harmful_budget0: number; ordinary_budget0: number };
  }).pooled;
  return { f1: pooled.f1, mix: pooled.traffic_mix_budget_share, rows: pooled.n, harmful0: pooled.harmful_budget0, ordinary0: pooled.ordinary_budget0 };
}

const best = (a: Run, b: Run): Run => ({
  p50_ms: Math.min(a.p50_ms, b.p50_ms),
  p99_ms: Math.min(a.p99_ms, b.p99_ms),
  batch_per_s: Math.max(a.batch_per_s, b.batch_per_s),
});

export default async function bench(): Promise<Record<string, number>> {
  const ps = prompts();
  const model = await AllocatorModel.load(MODEL, { threads: THREADS, maxBatch: BATCH });
  try {
    const py1 = pythonRun();
    const node1 = await nodeRun(model, ps);
    const py2 = pythonRun();
    const node2 = await nodeRun(model, ps);
    const node = best(node1, node2);
    const py = best(py1, py2);
    const cli = cliPeers();
    const quality = heldout();
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    return {
      'allocator.p50_ms': r3(node.p50_ms),
      'allocator.p99_ms': r3(node.p99_ms),
      'allocator.batch_per_s': Math.round(node.batch_per_s),
      // Python time / Node time on the batched pass (> 1: Node is faster).
      'allocator.node_vs_python_ratio': r3(node.batch_per_s / py.batch_per_s),
      // The same for one prompt per call (median latency).
      'allocator.node_vs_python_p50_ratio': r3(py.p50_ms / node.p50_ms),
      'allocator.python_p50_ms': r3(py.p50_ms),
      'allocator.python_batch_per_s': Math.round(py.batch_per_s),
      // Python's batches of 32 in input order, without grouping by length (what length
      // grouping adds on this set).
      'allocator.python_batch_unsorted_per_s': Math.round(Math.max(py1.batch_unsorted_per_s, py2.batch_unsorted_per_s)),
      'allocator.inspect_per_s': Math.round(cli.node),
      'allocator.python_score_per_s': Math.round(cli.python),
      'allocator.inspect_vs_python_ratio': r3(cli.node / cli.python),
      'allocator.model_mb': r3(statSync(join(MODEL, 'model.onnx')).size / 2 ** 20),
      'allocator.bench_prompts': N,
      'allocator.heldout_f1': quality.f1,
      'allocator.traffic_mix_budget_share': quality.mix,
      'allocator.heldout_harmful_budget0': quality.harmful0,
      'allocator.heldout_ordinary_budget0': quality.ordinary0,
      'allocator.heldout_rows': quality.rows,
    };
  } finally {
    await model.dispose();
  }
}
