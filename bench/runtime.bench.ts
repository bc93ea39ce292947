// Runtime benchmark: seconds per GRPO training step of the demo recipe (recipes/demo/tiny-cpu.yaml)
// on CPU, measured from the metrics events' timestamps in events.jsonl (so model build and
// process start-up are not counted). Peer: the same recipe with one process instead of the
// recipe's two gloo DDP processes, in the same run; the ratio is reported. Also
// `runtime.sft_step_s` (see runSft).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const PY = join(ROOT, '.venv', 'bin', 'python');
const RECIPE = join(ROOT, 'recipes', 'demo', 'tiny-cpu.yaml');

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

interface Run {
  stepS: number;
  steps: number;
  firstMetricS: number;
  wallS: number;
}

async function runDemo(processes: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'conscience-bench-'));
  try {
    return await runDemoIn(dir, processes);
  } finally {
    // also when the run fails: its recipe and output (checkpoints) are not left in the temp folder
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runDemoIn(dir: string, processes: number): Promise<Run> {
  const out = join(dir, 'out');
  // The demo recipe as it is, except launch.num_processes (its paths are not relative).
  const text = readFileSync(RECIPE, 'utf8');
  const recipe = join(dir, 'recipe.yaml');
  const edited = text.replace(/^(\s+num_processes:\s*)\d+/m, `$1${processes}`);
  if (processes !== 2 && edited === text) throw new Error('could not set num_processes in the demo recipe');
  writeFileSync(recipe, edited);
  const port = await freePort();
  const args = [
    '-m', 'conscience.launch', '--config', recipe,
    `--accelerate-arg=--main_process_port=${port}`,
    '--', '--output_dir', out,
  ];
  const t0 = Date.now();
  await new Promise<void>((res, rej) => {
    const child = spawn(PY, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (b: Buffer) => { tail = (tail + b.toString()).slice(-4000); });
    child.on('error', rej);
    child.on('exit', (c) => (c === 0 ? res() : rej(new Error(`demo run exited ${c}: ${tail}`))));
  });
  const wallS = (Date.now() - t0) / 1000;
  const events = readFileSync(join(out, 'events.jsonl'), 'utf8')
    .split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; time: number; step?: number });
  const started = events.find((e) => e.type === 'run_started');
  const metrics = events.filter((e) => e.type === 'metrics');
  if (!started || metrics.length < 2) throw new Error('demo run produced too few metrics');
  const first = metrics[0];
  const last = metrics[metrics.length - 1];
  return {
    stepS: (last.time - first.time) / ((last.step ?? 0) - (first.step ?? 0)),
    steps: metrics.length,
    firstMetricS: first.time - started.time,
    wallS,
  };
}

// SFT: seconds per step of the tiny model through conscience.sft, against a plain TRL
// SFTTrainer script on the same rows and settings in the same process (scripts/gpu/sft_bench.py
// --tiny: runs A B B A, best of each). One torch thread, so the figure is not the busy
// machine's thread-pool spinning.
async function runSft(): Promise<{ ours: number; plain: number; ratio: number }> {
  const out: string = await new Promise((res, rej) => {
    const child = spawn(PY, [join(ROOT, 'scripts', 'gpu', 'sft_bench.py'), '--tiny', '--steps', '20', '--warmup', '3'], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    let stdout = '', tail = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { tail = (tail + b.toString()).slice(-4000); });
    child.on('error', rej);
    child.on('exit', (c) => (c === 0 ? res(stdout) : rej(new Error(`sft_bench exited ${c}: ${tail}`))));
  });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { conscience: { step_s: number }; plain: { step_s: number }; ratio: number };
  return { ours: r.conscience.step_s, plain: r.plain.step_s, ratio: r.ratio };
}

export default async function (): Promise<Record<string, number>> {
  const two = await runDemo(2);
  const one = await runDemo(1);
  const sft = await runSft();
  return {
    'runtime.sft_step_s': sft.ours,
    'runtime.sft_plain_step_s': sft.plain,
    'runtime.sft_steps_per_s_ratio_vs_plain': sft.ratio,
    'runtime.tiny_step_s': two.stepS,
    'runtime.tiny_steps': two.steps,
    'runtime.tiny_first_metric_s': two.firstMetricS,
    'runtime.tiny_wall_s': two.wallS,
    'runtime.tiny_step_s_1proc': one.stepS,
    'runtime.tiny_step_ratio_2proc_vs_1proc': two.stepS / one.stepS,
  };
}
