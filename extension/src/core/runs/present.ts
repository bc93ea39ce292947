// How a run reads to a person, shared by the Runs view, the status bar, the dashboard and the
// CLI: a short name (recipe + start time) instead of the timestamp id, `step n/N · x%` with an
// ETA, and the root cause of a failure (the trainer's own error line, not "exited with code 1").
import { SLURM_END_STATES } from './state';
import { TERMINAL_STATES, type RunRecord } from './store';

/** "tiny-cpu · 10:42" (today) or "tiny-cpu · Nov 25 10:42": the recipe's stem and the local start time. */
export function runName(r: Pick<RunRecord, 'recipe' | 'createdAt' | 'id'>, now = new Date()): string {
  const stem = (r.recipe || r.id).split(/[\\/]/).pop()!.replace(/\.(ya?ml)$/i, '') || r.id;
  const d = new Date(r.createdAt * 1000);
  if (!Number.isFinite(d.getTime())) return stem;
  const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? `${stem} · ${hm}` : `${stem} · ${d.toLocaleString('en-US', { month: 'short', day: 'numeric' })} ${hm}`;
}

/** "1m05s", "2h03m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export interface Progress {
  step: number;
  maxSteps?: number;
  /** 0..100, when maxSteps is known. */
  percent?: number;
  /** Seconds left, extrapolated from the steps done since this attempt started (local clock); undefined until a step is done. */
  etaS?: number;
  /** "step 12/40 · 30%". */
  text: string;
}

/** Progress of a run that has reported a step; undefined before its first step. */
export function runProgress(r: RunRecord): Progress | undefined {
  if (typeof r.step !== 'number') return undefined;
  const max = typeof r.maxSteps === 'number' && r.maxSteps > 0 ? r.maxSteps : undefined;
  const percent = max ? Math.min(100, (100 * r.step) / max) : undefined;
  let etaS: number | undefined;
  const seen = r.lastActivityAt;
  // the pace of this attempt: steps since the step it started from, over the time since it started
  const done = r.step - (typeof r.startStep === 'number' ? r.startStep : 0);
  const from = r.attemptSeenAt ?? r.startedAt;
  if (max && done > 0 && from && seen && seen > from && r.step < max && !r.finishedAt) {
    etaS = ((seen - from) / done) * (max - r.step);
  }
  const text = `step ${r.step}${max ? `/${max} · ${Math.floor(percent!)}%` : ''}`;
  return { step: r.step, maxSteps: max, percent, etaS, text };
}

/**
 * When a run's wall time stops counting: its finishedAt; for a run that ended but is not
 * settled yet (its process or job still going away), its run_finished's time, else its last
 * update; else now.
 */
export function runEnd(r: RunRecord, now = Date.now() / 1000): number {
  if (r.finishedAt) return r.finishedAt;
  if (!TERMINAL_STATES.has(r.state)) return now;
  const said = r.finished?.time ?? r.lastEventTime;
  return Math.min(now, typeof said === 'number' && Number.isFinite(said) ? said : r.updatedAt);
}

/** Elapsed wall time of a run ("" before it started). */
export function runElapsed(r: RunRecord, now = Date.now() / 1000): string {
  if (!r.startedAt) return '';
  return formatDuration(runEnd(r, now) - r.startedAt);
}

/** The Runs view's one-line description: state, progress, ETA, reward, elapsed. */
export function runDescription(r: RunRecord, now = Date.now() / 1000): string {
  const parts = [r.state + (r.exitCode ? ` (${r.exitCode})` : '')];
  const p = runProgress(r);
  if (p) parts.push(p.text);
  if (p?.etaS !== undefined && !TERMINAL_STATES.has(r.state)) parts.push(`ETA ${formatDuration(p.etaS)}`);
  if (r.reward !== undefined && r.reward !== null) parts.push(`reward ${r.reward.toFixed(3)}`);
  const el = runElapsed(r, now);
  if (el) parts.push(el);
  return parts.join(' · ');
}

/** Actions that apply to a run in its state: resume only after a cancel or a failure. */
export function runActions(r: Pick<RunRecord, 'state'>): { cancel: boolean; resume: boolean } {
  return {
    cancel: !TERMINAL_STATES.has(r.state),
    // every ending but completed: failed, cancelled and SLURM's own (preempted, timed_out, ...)
    resume: TERMINAL_STATES.has(r.state) && r.state !== 'completed',
  };
}

export interface RootCause {
  /** The error line, as the trainer printed it. */
  message: string;
  /** 0-based line in stderr.log, when it came from there. */
  line?: number;
  source: 'stderr' | 'run_finished' | 'monitor';
}

// "conscience.train: recipe.yaml:3: ...", "conscience.xxx: ..." (the runtime's own one-line errors)
const OWN = /^conscience(\.[a-z_]+)*: \S/;
// the last line of a Python traceback: "ValueError: ...", "torch.OutOfMemoryError: ...", "KeyError: 'x'"
const EXC = /^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)|[A-Za-z_][\w.]*\.[A-Z]\w*)(: .*)?$/;
const NOISE = /^(Traceback|  |\s*\^|\s*$|During handling|The above exception|W\d{4}|E\d{4}|\[rank\d+\])/;

/**
 * The root cause of a failed run: run_finished's error when the trainer wrote one (pointing at
 * the stderr line that carries it), else the runtime's own error line in stderr (the first),
 * else the exception line that ends the first Python traceback, else what the monitor
 * recorded. `stderr` is the run's stderr.log (may be empty).
 */
export function rootCause(stderr: string, finishedError?: string | null, recordError?: string | null): RootCause | undefined {
  const lines = stderr.split(/\r?\n/);
  if (finishedError) {
    const first = finishedError.split('\n')[0]!.trim();
    const at = lines.findIndex((l) => l.includes(first));
    return { message: first, line: at >= 0 ? at : undefined, source: 'run_finished' };
  }
  for (let i = 0; i < lines.length; i++) {
    if (OWN.test(lines[i]!)) return { message: lines[i]!.trim(), line: i, source: 'stderr' };
  }
  let inTrace = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('Traceback (most recent call last)')) {
      inTrace = true;
      continue;
    }
    // chained tracebacks ("During handling ... another exception"): the first one is the cause
    if (inTrace && !NOISE.test(l) && EXC.test(l.trim())) return { message: l.trim(), line: i, source: 'stderr' };
  }
  if (recordError) return { message: recordError, source: 'monitor' };
  return undefined;
}

/** Ends that have a cause to show: failed, and SLURM's own (preempted, node_failed, timed_out, out_of_memory). */
export const FAILED_STATES: ReadonlySet<string> = new Set<string>(['failed', ...Object.values(SLURM_END_STATES).map((x) => x.state)]);

/**
 * Why a run ended the way it did, when that is worth showing: a failed run's root cause
 * (rootCause, from its stderr.log), or for a run SLURM ended the job's reason as the monitor
 * recorded it (the trainer only saw a signal). Undefined for a run going, completed or cancelled.
 */
export function runFailure(r: Pick<RunRecord, 'state' | 'error' | 'finished'> & Partial<Pick<RunRecord, 'projectDir' | 'id' | 'recipe'>>, stderr: string): RootCause | undefined {
  if (!FAILED_STATES.has(r.state)) return undefined;
  const c = r.state !== 'failed' ? (r.error ? { message: r.error, source: 'monitor' as const } : rootCause(stderr, r.finished?.error, null)) : rootCause(stderr, r.finished?.error, r.error);
  if (!c) return c;
  const message = r.id && r.recipe ? ownRecipe(c.message, r.id, r.recipe) : c.message;
  return { ...c, message: r.projectDir ? inWorkspace(message, r.projectDir) : message };
}

/**
 * A message about the trainer's own copy of the recipe (`recipes/.conscience-<run>.attempt-2.yaml:12:
 * …`, core/launch/launcher.ts recipeCopyOnHost: byte for byte the recipe, beside it) naming the
 * recipe itself (`recipes/sweep.yaml:12: …`), the file the person edits; the line is the same.
 */
export function ownRecipe(message: string, runId: string, recipe: string): string {
  const copy = new RegExp(`\\.conscience-${runId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.attempt-\\d+\\.yaml`, 'g');
  const name = recipe.split('/').pop()!;
  return message.replace(copy, () => name);
}

/**
 * A message about the run's project copy on its host (`/…/.conscience/host/projects/p-1a2b/
 * recipes/demo/bad.jsonl:2: invalid JSON`) naming the workspace's own file instead
 * (`recipes/demo/bad.jsonl:2: …`): the copy mirrors the workspace, and the file to edit is the
 * user's, not the copy a later launch overwrites.
 */
export function inWorkspace(message: string, projectDir: string): string {
  const dir = projectDir.replace(/\/+$/, '');
  if (!dir) return message;
  // the runs' own folders (outputs, checkpoints) are on the host only: their full path stays
  return message.split(`${dir}/`).map((part, i) => (i > 0 && part.startsWith('.conscience-runs/') ? `${dir}/${part}` : part)).join('');
}

export { budgetSummary } from './budgets';

/**
 * The stack a run used, from run_started.versions: "TRL 1.16.0 · transformers 5.24.0 · torch 2.13.0"
 * (which of the two supported TRL lines, and what it ran on). Undefined before run_started.
 */
export function runStack(r: Pick<RunRecord, 'versions'>): string | undefined {
  const v = r.versions;
  if (!v) return undefined;
  const parts = [['TRL', v.trl], ['transformers', v.transformers], ['torch', v.torch]].filter(([, x]) => x && x !== 'missing').map(([k, x]) => `${k} ${x}`);
  return parts.length ? parts.join(' · ') : undefined;
}

/**
 * The fields of a run record that `conscience runs|launch|resume|eval --format json` print: what
 * the run is, where it runs, how far it got and how it ended. The store's bookkeeping (byte offsets
 * of the copied logs, the launcher's identity, the per-start cancel token, the submit marker, the
 * attempt's pacing) is left out: it is not the run's, and it changes as the store does.
 */
export const PUBLIC_RUN_FIELDS = [
  'id', 'recipe', 'target', 'targetKind', 'host', 'state', 'exitCode', 'error', 'step', 'maxSteps', 'reward',
  'attempts', 'createdAt', 'startedAt', 'finishedAt', 'updatedAt', 'lastEventTime', 'cancelRequested',
  'command', 'projectDir', 'remoteDir', 'outputDir', 'python', 'pid', 'jobId', 'budgets', 'versions',
] as const satisfies readonly (keyof RunRecord)[];

export type PublicRun = Pick<RunRecord, (typeof PUBLIC_RUN_FIELDS)[number]> & { cause?: string };

/** A run as `--format json` prints it (PUBLIC_RUN_FIELDS, in that order; absent ones left out), with its failure's cause. */
export function publicRun(r: RunRecord, cause?: string): PublicRun {
  const out: Record<string, unknown> = {};
  for (const k of PUBLIC_RUN_FIELDS) if (r[k] !== undefined) out[k] = r[k];
  if (cause) out.cause = cause;
  return out as PublicRun;
}
