// The seam between "a run" and "where it runs". One TargetDriver per kind of target:
//   prepare  -> the generated script and the command that starts it (the launch preview)
//   submit   -> starts it; records the handle (pid/process group, or SLURM job id) in the run
//   status   -> what the host says, in the shape core/runs/state.ts derives the run state from
//   cancel   -> asks it to stop
//   logs     -> where its stdout/stderr land on the host
//   settle   -> cleanup once the run is over for good
// The launcher, the monitor and cancel/resume only call these: a new kind of target
// (SkyPilot, Kubernetes, ...) is one new file implementing TargetDriver plus a line in
// driverFor. Two drivers today: process (local and SSH: a detached wrapper) and SLURM (sbatch).
import type { StateInput } from '../runs/state';
import type { RunRecord, TargetKind } from '../runs/store';
import type { Host } from './host';
import { processDriver } from './driver-process';
import type { RecipeInfo } from './scripts';
import { slurmDriver } from './driver-slurm';
import type { Target } from './targets';

export interface PrepareSpec {
  runId: string;
  launchToken: string;
  projectDir: string;
  runDir: string;
  outputDir: string;
  python: string;
  /** Recipe path on the host. */
  recipe: string;
  info: RecipeInfo;
  target: Target;
}

export interface Prepared {
  /** The generated script (run.sh / job.sbatch). */
  script: string;
  /** Its file name in the run folder. */
  scriptName: string;
  /** The shell command that starts it on the host. */
  command: string;
}

/** What the host says about a run, in deriveState's terms. */
export type Observation = Pick<StateInput, 'process' | 'job' | 'exitFile'>;

export interface TargetDriver {
  /** 'process' (local, SSH) or 'slurm'. */
  readonly kind: 'process' | 'slurm';
  /** How the plan says the command is used ("started (detached, own session) with" / "submitted with"). */
  readonly verb: string;
  prepare(spec: PrepareSpec): Prepared;
  /** Starts the prepared command; sets the handle (pid/pgid or jobId) and the first state on `rec`. */
  submit(host: Host, target: Target, command: string, rec: RunRecord): Promise<void>;
  status(host: Host, rec: RunRecord): Promise<Observation>;
  cancel(host: Host, rec: RunRecord, graceS: number): Promise<void>;
  /** Host paths of the run's stdout and stderr. */
  logs(rec: RunRecord): { stdout: string; stderr: string };
  /** The run is over for good (terminal, and the process or job gone). */
  settle(host: Host, rec: RunRecord): Promise<void>;
  /** No process of the run is left on the host (a cancel waits for this before it reports). */
  gone(host: Host, rec: RunRecord): Promise<boolean>;
  /**
   * The run's process or job, started by a launch that died before recording it
   * (launchMayHaveStarted): sets the handle on `rec` as submit would and returns true when the
   * host has it (running, or started and ended since); false when it was never started.
   */
  find(host: Host, rec: RunRecord): Promise<boolean>;
}

/** The driver for a target (or a recorded run's target kind). */
export function driverFor(t: Target | TargetKind): TargetDriver {
  const kind = typeof t === 'string' ? t : t.type;
  return kind === 'slurm' ? slurmDriver : processDriver;
}
