// Which charts the dashboard shows, from the metric keys the runs have logged (TRL's GRPO
// keys as GRPOTrainer logs them, listed in docs/dashboard.md, plus our safety/* keys). A chart appears once one
// of its keys has been logged by any run.
import { LIMITS, type ChartSpec } from '../protocol/dashboard';

const REWARD_FN = /^rewards\/(.+)\/mean$/;
/** eval/<arm>/<group>/<stat> (conscience.eval's metrics; docs/events.md). */
const EVAL_KEY = /^eval\/(.+)\/(all|harmful|borderline|benign)\/(refusal|format_ok|safety_tokens|budget_adherence|no_answer)$/;

/** The fixed keys a chart draws (chartSpecs below). */
const CHARTED = new Set(['reward', 'reward_std', 'safety/tokens_mean', 'safety/budget_mean', 'kl', 'loss',
  'completions/mean_length', 'completions/min_length', 'completions/max_length', 'completions/clipped_ratio',
  'learning_rate', 'grad_norm']);

/** Whether some chart draws `key` (the series store keeps these when it is full). */
export function isChartKey(key: string): boolean {
  return key.length <= LIMITS.maxKeyLength && (CHARTED.has(key) || REWARD_FN.test(key) || EVAL_KEY.test(key));
}

/**
 * The charts for `keys`. A key longer than the protocol takes (LIMITS.maxKeyLength), and the
 * series of a chart past LIMITS.maxSeries, are not charted: they go to `left`.
 */
export function chartSpecs(keys: Iterable<string>, left: string[] = []): ChartSpec[] {
  const have = new Set<string>();
  for (const k of keys) {
    if (k.length > LIMITS.maxKeyLength) left.push(k);
    else have.add(k);
  }
  const charts: ChartSpec[] = [];
  const add = (id: string, title: string, series: [string, string][], extra: Partial<ChartSpec> = {}) => {
    const present = series.filter(([k]) => have.has(k));
    for (const [k] of present.splice(LIMITS.maxSeries)) left.push(k);
    if (present.length) charts.push({ id, title, series: present.map(([key, label]) => ({ key, label })), ...extra });
  };
  add('reward', 'Reward (mean ± std)', [['reward', 'reward']],
    have.has('reward_std') ? { band: { lo: 'reward-std', hi: 'reward+std', label: '± std' } } : {});
  const fns = [...have].filter((k) => REWARD_FN.test(k)).sort();
  add('rewards', 'Reward functions (mean)', fns.map((k) => [k, REWARD_FN.exec(k)![1]]));
  add('safety', 'Safety reasoning tokens vs budget', [['safety/tokens_mean', 'tokens'], ['safety/budget_mean', 'budget']]);
  add('kl', 'KL', [['kl', 'kl']]);
  add('loss', 'Loss', [['loss', 'loss']]);
  add('length', 'Completion length', [
    ['completions/mean_length', 'mean'], ['completions/min_length', 'min'], ['completions/max_length', 'max'],
  ]);
  add('clipped', 'Clipped ratio', [['completions/clipped_ratio', 'clipped']]);
  add('lr', 'Learning rate', [['learning_rate', 'lr']]);
  add('grad', 'Grad norm', [['grad_norm', 'grad norm']]);
  // evaluation (an eval run, or evaluation during training: docs/eval.md), one series per arm
  const evalKeys = [...have].filter((k) => EVAL_KEY.test(k)).sort();
  const perArm = (group: string, stat: string): [string, string][] =>
    evalKeys.filter((k) => k.endsWith(`/${group}/${stat}`)).map((k) => [k, EVAL_KEY.exec(k)![1]!]);
  add('eval-harmful', 'Eval: harmful-prompt refusal', perArm('harmful', 'refusal'));
  add('eval-benign', 'Eval: benign over-refusal', perArm('benign', 'refusal'));
  add('eval-tokens', 'Eval: safety-block tokens', perArm('all', 'safety_tokens'));
  // completions cut before their answer (refusal is over answered ones): a budget too large for max_new_tokens shows here
  add('eval-no-answer', 'Eval: completions with no answer', perArm('all', 'no_answer'));
  return charts;
}

/** Every key a chart draws (band bounds included). */
export function chartKeys(c: ChartSpec): string[] {
  const keys = c.series.map((s) => s.key);
  if (c.band) keys.push(c.band.lo, c.band.hi);
  return keys;
}
