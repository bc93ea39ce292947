// Eval benchmark: eval.prompts_per_s of the eval path (conscience.eval, transformers engine:
// batched generate, left padding, prompts sorted by length, then split/judge/write) with the
// tiny model on CPU, against the same prompts through plain transformers `generate` (same
// model object, batch size, greedy, max_new_tokens, file order) in the same process and run:
// scripts/gpu/eval_bench.py --tiny. Best of 3 alternating repeats each; ratio = eval / generate.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const PY = join(ROOT, '.venv', 'bin', 'python');

export default async function bench(): Promise<Record<string, number | string>> {
  const stdout: string = await new Promise((res, rej) => {
    const child = spawn(PY, [join(ROOT, 'scripts', 'gpu', 'eval_bench.py'), '--tiny', '--repeats', '3'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    child.on('error', rej);
    child.on('exit', (c) => (c === 0 ? res(out) : rej(new Error(`eval_bench.py exited ${c}: ${err}`))));
  });
  const r = JSON.parse(stdout.slice(stdout.indexOf('{')));
  return {
    'eval.prompts_per_s': r.eval.prompts_per_s,
    'eval.peer_generate_prompts_per_s': r.generate.prompts_per_s,
    'eval.completion_tokens_per_s': r.eval.completion_tokens_per_s,
    'eval.peer_generate_completion_tokens_per_s': r.generate.completion_tokens_per_s,
    'eval.ratio_vs_generate': r.ratio,
    'eval.setup': `${r.model}, ${r.device}, ${r.prompts} prompts x ${r.max_new_tokens} new tokens, batch ${r.batch_size}`,
  };
}
