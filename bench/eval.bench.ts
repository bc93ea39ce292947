// Eval benchmark: eval.prompts_per_s of the eval path (conscience.eval, transformers engine:
// batched generate, the template's shared prefix computed once, prompts sorted by length, then
// split/judge/write) with the tiny model on CPU, against the same prompts through plain
// transformers `generate` (same model object, batch size, greedy, max_new_tokens, file order,
// left padding) in the same process and run: scripts/gpu/eval_bench.py --tiny. 21 alternating
// pairs; the ratio is the median of the pairs' ratios (generate time / eval time), the
// prompts/s figures the best of each side. eval.ratio_vs_generate_64_tokens: the same with
// --max-new-tokens 64.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { quantile } from './run';

const ROOT = resolve(__dirname, '..');
const PY = join(ROOT, '.venv', 'bin', 'python');

function evalBench(extra: string[]): Promise<{ eval: { prompts_per_s: number; completion_tokens_per_s: number }; generate: { prompts_per_s: number; completion_tokens_per_s: number }; ratio: number; ratio_median_of_pairs: number; pair_ratios: number[]; model: string; device: string; prompts: number; max_new_tokens: number; batch_size: number }> {
  return new Promise((res, rej) => {
    const child = spawn(PY, [join(ROOT, 'scripts', 'gpu', 'eval_bench.py'), '--tiny', '--repeats', '21', ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    child.on('error', rej);
    child.on('exit', (c) => (c === 0 ? res(JSON.parse(out.slice(out.indexOf('{')))) : rej(new Error(`eval_bench.py exited ${c}: ${err}`))));
  });
}

/** Completions judged per second by the classifier (eval's default judge) and by the detector alone, on the 304 labelled completions. */
function judgeBench(): Promise<{ classifier_per_s: number; detector_per_s: number; n: number }> {
  const code = [
    'import json, sys, time',
    'from conscience.refusal import judge',
    'from conscience.rewards import is_refusal',
    "t = [json.loads(l)['completion'] for s in ('labelled', 'heldout', 'dev') for l in open(f'tests/data/refusal_{s}.jsonl') if l.strip()]",
    'judge(t[:8])',
    'def best(f, k):',
    '    out = []',
    '    for _ in range(k):',
    '        s = time.perf_counter(); f(); out.append(time.perf_counter() - s)',
    '    return len(t) / min(out)',
    "print(json.dumps({'classifier_per_s': best(lambda: judge(t), 3), 'detector_per_s': best(lambda: [is_refusal(x) for x in t], 20), 'n': len(t)}))",
  ].join('\n');
  return new Promise((res, rej) => {
    const child = spawn(PY, ['-c', code], { cwd: join(ROOT, 'runtime'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    child.on('error', rej);
    child.on('exit', (c) => (c === 0 ? res(JSON.parse(out.trim().split('\n').at(-1)!)) : rej(new Error(`judge bench exited ${c}: ${err}`))));
  });
}

export default async function bench(): Promise<Record<string, number | string>> {
  const j = await judgeBench();
  const r = await evalBench([]);
  // The same with 64 new tokens (a fixed:64 safety block's length): the eval's own work per
  // completion (split, judge, count, write) against a generation four times as long.
  const r64 = await evalBench(['--max-new-tokens', '64']);
  return {
    'eval.prompts_per_s': r.eval.prompts_per_s,
    'eval.peer_generate_prompts_per_s': r.generate.prompts_per_s,
    'eval.completion_tokens_per_s': r.eval.completion_tokens_per_s,
    'eval.peer_generate_completion_tokens_per_s': r.generate.completion_tokens_per_s,
    'eval.ratio_vs_generate': r.ratio_median_of_pairs,
    // the pairs' interquartile range: how far one run's ratio can be trusted
    'eval.ratio_vs_generate_spread': quantile(r.pair_ratios, 0.75) - quantile(r.pair_ratios, 0.25),
    'eval.ratio_vs_generate_64_tokens': r64.ratio_median_of_pairs,
    'eval.judge_classifier_per_s': Math.round(j.classifier_per_s),
    'eval.judge_detector_per_s': Math.round(j.detector_per_s),
    'eval.setup': `${r.model}, ${r.device}, ${r.prompts} prompts x ${r.max_new_tokens} new tokens (and x ${r64.max_new_tokens}), batch ${r.batch_size}`,
  };
}
