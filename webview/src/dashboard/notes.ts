// What the dashboard says about how its runs ended: the empty grid's note and a run's cause
// line. No DOM (main.ts shows them as text), so the node tests check them.
import type { RunMeta } from '../../../extension/src/core/protocol/dashboard';
import { TERMINAL_STATES } from '../../../extension/src/core/runs/state';

/** Every way a run ends: completed, failed, cancelled, and SLURM's own (preempted, node_failed, timed_out, out_of_memory). */
const ended = (status: string) => (TERMINAL_STATES as ReadonlySet<string>).has(status);
/** "failed", "cancelled", ...; a SLURM end reads "ended (timed_out)". */
const how = (status: string) => (['completed', 'failed', 'cancelled'].includes(status) ? status : `ended (${status})`);

/** The note of a grid without charts: waiting for metrics, or no metrics were logged before the runs ended. */
export function emptyNote(runs: readonly RunMeta[]): string {
  if (!runs.length || !runs.every((r) => ended(r.status))) return 'Waiting for metrics…';
  return `No metrics were logged: ${runs.length > 1 ? 'the runs ended before their' : `the run ${how(runs[0]!.status)} before its`} first logging step.`;
}

/** Why a run ended (its `cause`: the trainer's error line, or SLURM's reason): "Run failed: …", "Run ended (preempted): …". */
export function causeNote(r: RunMeta, compare: boolean): string {
  return `${compare ? r.label : 'Run'} ${r.status === 'failed' || !ended(r.status) ? 'failed' : how(r.status)}: ${r.cause ?? ''}`;
}
