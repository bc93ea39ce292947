// The run state machine: a run's state follows from what its events say and what the host
// says about the process (or SLURM job). Pure: the monitor gathers observations and calls
// deriveState; the result is recorded in run.json.
import type { RunState } from './store';

export interface StateInput {
  previous: RunState;
  /** run_started seen in this attempt. */
  started: boolean;
  /** run_finished of this attempt, if seen. */
  finished?: { status: 'completed' | 'failed' | 'cancelled'; exit_code: number; error?: string | null };
  cancelRequested?: boolean;
  /** Local clock, seconds. */
  now: number;
  /** Local time (seconds) new event bytes last arrived, or the start time. */
  lastActivity: number;
  heartbeatTimeout: number;
  /** Process runs: alive + exit code from the wrapper's exit_code file. */
  process?: { alive: boolean; exitCode?: number | null };
  /** SLURM runs: the job's state and exit code. */
  job?: { state: string; outcome?: 'completed' | 'failed' | 'cancelled'; exitCode?: number; reason?: string; gone?: boolean };
  /** The wrapper's/batch script's exit_code file (SLURM after the job left the queue). */
  exitFile?: number | null;
}

export interface StateOutput {
  state: RunState;
  exitCode?: number | null;
  error?: string | null;
  terminal: boolean;
  /** Terminal and the process/job is gone too, so the exit code is final. */
  settled?: boolean;
}

const PENDING = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD', 'SUSPENDED']);

/**
 * SLURM job states that end a run for a reason of SLURM's own, and the run state each shows
 * as (not a plain "failed"): the trainer only sees a SIGTERM/SIGKILL in each of these.
 */
export const SLURM_END_STATES: Readonly<Record<string, { state: RunState; why: string }>> = {
  PREEMPTED: { state: 'preempted', why: 'preempted by a higher-priority job' },
  NODE_FAIL: { state: 'node_failed', why: 'a node of the job failed' },
  TIMEOUT: { state: 'timed_out', why: 'the job reached its time limit' },
  OUT_OF_MEMORY: { state: 'out_of_memory', why: 'the job ran out of memory' },
};

/** The states a run ends in: the trainer's own ends and SLURM's. */
export const TERMINAL_STATES: ReadonlySet<RunState> = new Set<RunState>([
  'completed', 'failed', 'cancelled', ...Object.values(SLURM_END_STATES).map((x) => x.state),
]);

/** The run states deriveState can give (every RunState but `preparing`, which only the launcher sets). */
export const DERIVED_STATES: readonly RunState[] = [
  'queued', 'starting', 'running', 'unresponsive', 'cancelling', 'requeued', 'completed', 'failed', 'cancelled',
  ...Object.values(SLURM_END_STATES).map((x) => x.state),
];

function slurmEnd(i: StateInput): StateOutput | undefined {
  const end = i.job && (i.job.outcome || i.job.gone) ? SLURM_END_STATES[i.job.state] : undefined;
  if (!end || i.cancelRequested) return undefined;
  const code = i.job!.exitCode ?? i.exitFile ?? null;
  return { state: end.state, exitCode: code, error: `SLURM job ${i.job!.state}: ${end.why}${i.job!.reason ? ' (' + i.job!.reason + ')' : ''}`, terminal: true, settled: true };
}

export function deriveState(i: StateInput): StateOutput {
  // 0. SLURM ended the job for a reason of its own: that is what the run shows, whatever the trainer wrote on its SIGTERM
  const end = slurmEnd(i);
  if (end) return end;
  // the trainer stopped on a signal nobody here asked for, and the job is queued or running
  // again: SLURM requeued it; the same run continues (a new run_started clears `finished`)
  // (while the job is still active the end is not known yet: a requeue, a time limit or an
  // admin's scancel all look the same to the trainer)
  if (i.finished && i.finished.status !== 'completed' && !i.cancelRequested && i.job && !i.job.outcome && !i.job.gone) {
    if (PENDING.has(i.job.state) || i.previous === 'requeued') return { state: 'requeued', terminal: false };
    return { state: ['running', 'unresponsive', 'starting', 'queued'].includes(i.previous) ? i.previous : 'running', terminal: false };
  }
  // the trainer stopped on a signal nobody here asked for and the job failed: a task elsewhere
  // died (srun --kill-on-bad-exit stopped the rest) or SLURM ended it; that is the run's end
  if (i.finished && i.finished.status === 'cancelled' && !i.cancelRequested && i.job?.outcome === 'failed') {
    const code = i.job.exitCode ?? i.exitFile ?? i.finished.exit_code;
    return {
      state: 'failed', exitCode: code, terminal: true, settled: true,
      error: `SLURM job ${i.job.state}${i.job.reason ? ' (' + i.job.reason + ')' : ''}, exit code ${code}; this trainer was stopped (${i.finished.error ?? 'signal'})`,
    };
  }
  // 1. the trainer said how it ended
  if (i.finished) {
    const processDone = i.process ? !i.process.alive : i.job ? i.job.outcome !== undefined || !!i.job.gone : true;
    const observed = i.process?.exitCode ?? i.job?.exitCode ?? i.exitFile;
    const code = processDone && observed !== undefined && observed !== null ? observed : i.finished.exit_code;
    let error = i.finished.error ?? null;
    if (processDone && i.finished.status === 'completed' && typeof observed === 'number' && observed !== 0)
      error = `the trainer wrote run_finished completed, but its process exited with code ${observed}${observed > 128 ? ' (signal ' + (observed - 128) + ')' : ''} (see stderr)`;
    return { state: i.finished.status, exitCode: code, error, terminal: true, settled: processDone };
  }
  // 2. the process / job ended without run_finished
  if (i.process && !i.process.alive) {
    const code = i.process.exitCode;
    if (i.cancelRequested) return { state: 'cancelled', exitCode: code ?? null, error: null, terminal: true, settled: true };
    if (code === undefined || code === null)
      return { state: 'failed', exitCode: null, error: 'the trainer process disappeared without an exit code (killed with its wrapper, or the host restarted)', terminal: true, settled: true };
    const sig = code > 128 ? ` (signal ${code - 128})` : '';
    return { state: 'failed', exitCode: code, error: `the trainer exited with code ${code}${sig} before writing run_finished`, terminal: true, settled: true };
  }
  if (i.job && (i.job.outcome || i.job.gone)) {
    const code = i.job.exitCode ?? i.exitFile ?? null;
    if (i.job.outcome === 'cancelled' || (i.cancelRequested && i.job.outcome !== 'completed')) return { state: 'cancelled', exitCode: code, error: null, terminal: true, settled: true };
    if (i.job.outcome === 'completed' && code === 0 && !i.started)
      return { state: 'failed', exitCode: code, error: 'the job finished without the trainer starting (see stderr)', terminal: true, settled: true };
    if (i.job.outcome === 'completed' || (i.job.gone && code === 0)) {
      return { state: 'failed', exitCode: code, error: 'the job ended before the trainer wrote run_finished', terminal: true, settled: true };
    }
    return { state: 'failed', exitCode: code, error: `SLURM job ${i.job.state}${i.job.reason ? ' (' + i.job.reason + ')' : ''}${code !== null ? ', exit code ' + code : ''}`, terminal: true, settled: true };
  }
  // 3. still there
  if (i.cancelRequested) return { state: 'cancelling', terminal: false };
  if (i.job && PENDING.has(i.job.state)) return { state: i.started ? 'requeued' : 'queued', terminal: false };
  if (!i.started) return { state: 'starting', terminal: false };
  if (i.now - i.lastActivity > i.heartbeatTimeout) return { state: 'unresponsive', terminal: false };
  return { state: 'running', terminal: false };
}
