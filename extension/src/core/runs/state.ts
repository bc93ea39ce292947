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

export function deriveState(i: StateInput): StateOutput {
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
  if (i.job && PENDING.has(i.job.state)) return { state: 'queued', terminal: false };
  if (!i.started) return { state: 'starting', terminal: false };
  if (i.now - i.lastActivity > i.heartbeatTimeout) return { state: 'unresponsive', terminal: false };
  return { state: 'running', terminal: false };
}
