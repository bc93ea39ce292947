// Reading SLURM's answers: squeue's one-line format, `scontrol show job -o`, sacct -P.
// Job states map onto run states in runs/state.ts.

export interface JobStatus {
  state: string; // PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...
  reason?: string;
  exitCode?: number;
  signal?: number;
  source: 'squeue' | 'scontrol' | 'sacct';
}

/** squeue -h -j ID -o '%i|%T|%r' → status of that job, or undefined when squeue no longer lists it. */
export function parseSqueue(text: string, jobId: string): JobStatus | undefined {
  for (const line of text.split('\n')) {
    const [id, state, reason] = line.trim().split('|');
    if (id === jobId && state) return { state: state.trim(), reason: reason?.trim() || undefined, source: 'squeue' };
  }
  return undefined;
}

/** `scontrol show job -o ID` → key=value fields of one job (values may contain spaces only in the last keys; we read the ones we need). */
export function parseScontrol(text: string): JobStatus | undefined {
  if (!/JobId=\d+/.test(text)) return undefined;
  const field = (k: string) => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(text)?.[1];
  const state = field('JobState');
  if (!state) return undefined;
  const ec = field('ExitCode');
  const [code, sig] = (ec ?? '').split(':').map((x) => Number(x));
  return {
    state,
    reason: field('Reason') && field('Reason') !== 'None' ? field('Reason') : undefined,
    exitCode: Number.isFinite(code) ? code : undefined,
    signal: Number.isFinite(sig) && sig ? sig : undefined,
    source: 'scontrol',
  };
}

/** sacct -n -P -X -j ID -o JobID,State,ExitCode → status (State may read "CANCELLED by 0"). */
export function parseSacct(text: string, jobId: string): JobStatus | undefined {
  for (const line of text.split('\n')) {
    const [id, state, ec] = line.trim().split('|');
    if (id === jobId && state) {
      const [code, sig] = (ec ?? '').split(':').map(Number);
      return { state: state.split(' ')[0]!, exitCode: Number.isFinite(code) ? code : undefined, signal: sig || undefined, source: 'sacct' };
    }
  }
  return undefined;
}

export const PENDING_STATES = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD', 'SUSPENDED', 'STOPPED']);
export const ACTIVE_STATES = new Set(['RUNNING', 'COMPLETING', 'STAGE_OUT', 'SIGNALING', 'RESIZING']);

/** The job ended; what did it end as? */
export function jobOutcome(s: JobStatus): 'completed' | 'failed' | 'cancelled' | undefined {
  if (PENDING_STATES.has(s.state) || ACTIVE_STATES.has(s.state)) return undefined;
  if (s.state === 'COMPLETED') return 'completed';
  if (s.state.startsWith('CANCELLED')) return 'cancelled';
  return 'failed'; // FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, PREEMPTED
}

/** sbatch --parsable prints "jobid" or "jobid;cluster". */
export function parseSbatchOutput(stdout: string): string | undefined {
  const m = /^(\d+)(?:;\S+)?\s*$/m.exec(stdout.trim());
  return m?.[1];
}
