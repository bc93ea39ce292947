// The SLURM driver: job.sbatch (scripts.ts, executing the topology plan) submitted with sbatch;
// status from squeue, then scontrol once the job left the queue, then sacct where it exists,
// then the batch script's exit_code file; cancel = scancel; the secrets file, kept for the
// job's life (requeues), is removed once the run settles.
import type { RunRecord } from '../runs/store';
import type { Observation, PrepareSpec, Prepared, TargetDriver } from './driver';
import type { Host } from './host';
import { shQuote } from './quote';
import { sbatchCommand, sbatchScript } from './scripts';
import { jobOutcome, parseSacct, parseSbatchOutput, parseScontrol, parseSqueue, type JobStatus } from './slurm';
import type { Target } from './targets';

export interface SlurmObservation {
  job?: JobStatus;
  /** SLURM says the job no longer exists (and gave no final state): squeue ran and did not list it, scontrol says "Invalid job id". */
  gone: boolean;
  /** Why the job's state is not known this time (squeue failed, scontrol gave no answer): not `gone`, ask again later. */
  transient?: string;
  exitFile: number | null;
}

export async function slurmStatus(host: Host, rec: RunRecord): Promise<SlurmObservation> {
  const id = shQuote(rec.jobId ?? '');
  const cmd = [
    // squeue's exit status is kept: a slurmctld that does not answer is not a job that ended
    `squeue -h -j ${id} -o '%i|%T|%r' 2>/dev/null; sqrc=$?`,
    'echo @@',
    // scontrol's error text too: "Invalid job id" is how SLURM says the job is gone
    `scontrol show job -o ${id} 2>&1`,
    'echo @@',
    `cat ${shQuote(rec.remoteDir + '/exit_code')} 2>/dev/null`,
    'echo @@',
    `command -v sacct >/dev/null 2>&1 && sacct -n -P -X -j ${id} -o JobID,State,ExitCode 2>/dev/null`,
    'echo @@',
    // srun's own word on the task that died first ("srun: error: n2: task 1: Killed"; the
    // tasks --kill-on-bad-exit then stopped follow it), the why of a lost node
    `grep -a 'srun: error: .*: task' ${shQuote(rec.remoteDir + '/stderr.log')} 2>/dev/null | head -n 1`,
    'echo @@',
    'echo "squeue=$sqrc"',
    'true',
  ].join('; ');
  const r = await host.exec(cmd);
  const [sq = '', sc = '', ex = '', sa = '', task = '', rcs = ''] = r.stdout.split('@@\n');
  const exitFile = /^\d+/.test(ex.trim()) ? Number(ex.trim()) : null;
  const fromQueue = parseSqueue(sq, rec.jobId ?? '');
  const fromCtl = parseScontrol(sc);
  const fromAcct = parseSacct(sa, rec.jobId ?? '');
  // squeue knows live jobs; scontrol keeps finished ones for MinJobAge; sacct only with slurmdbd
  const job = fromCtl && (!fromQueue || jobOutcome(fromCtl)) ? fromCtl : fromQueue ?? fromAcct;
  const died = /srun: error: (.*: task .*)$/.exec(task.trim())?.[1];
  if (job && died && jobOutcome(job) === 'failed' && (!job.reason || job.reason === 'NonZeroExitCode')) job.reason = died.slice(0, 200);
  if (job) return { job, gone: false, exitFile };
  // no state from anyone: gone only when squeue answered (and did not list the job) and
  // scontrol says the id is invalid; anything else (squeue failed or timed out, slurmctld
  // down, output cut) is a passing failure, not the end of the job
  const squeueRc = /^squeue=(\d+)$/m.exec(rcs)?.[1];
  const invalid = /invalid job id/i.test(sc);
  if (squeueRc === '0' && invalid) return { gone: true, exitFile };
  const why = squeueRc === undefined ? 'the status command was cut off' : squeueRc !== '0' ? `squeue failed (exit ${squeueRc})` : 'scontrol gave no answer';
  return { gone: false, transient: `${why}${sc.trim() && !invalid ? ': ' + sc.trim().split('\n')[0]!.slice(0, 200) : ''}`, exitFile };
}

/**
 * Checks that each SLURM partition of the target (sbatch takes a comma-separated list) exists
 * before submitting, for a clear error. `sinfo -a`: hidden partitions the user can reach count too.
 */
async function checkPartition(host: Host, t: Target): Promise<void> {
  if (t.type !== 'slurm' || !t.partition) return;
  const r = await host.exec(`sinfo -a -h -o %R`);
  if (r.code !== 0) throw new Error(`target '${t.name}': sinfo failed on ${host.label}: ${(r.stderr || r.stdout).trim() || 'exit ' + r.code}`);
  const parts = r.stdout.split('\n').map((x) => x.trim()).filter(Boolean);
  for (const want of t.partition.split(',')) {
    if (!parts.includes(want))
      throw new Error(`target '${t.name}': SLURM partition '${want}' does not exist on ${host.label} (partitions: ${parts.join(', ') || 'none'})`);
  }
}

export const slurmDriver: TargetDriver = {
  kind: 'slurm',
  verb: 'submitted with',

  prepare(p: PrepareSpec): Prepared {
    if (p.target.type !== 'slurm') throw new Error(`target '${p.target.name}' is not a SLURM target`);
    const spec = {
      runId: p.runId, launchToken: p.launchToken, projectDir: p.projectDir, runDir: p.runDir, python: p.python, recipe: p.recipe,
      outputDir: p.outputDir, launch: p.info.launch, model: p.info.model, modelRevision: p.info.modelRevision, kind: p.info.kind, serverPort: p.info.serverPort, target: p.target, env: p.target.env,
    };
    return { script: sbatchScript(spec), scriptName: 'job.sbatch', command: `cd -- ${shQuote(p.projectDir)} && ${sbatchCommand(spec)}` };
  },

  async submit(host: Host, t: Target, command: string, rec: RunRecord): Promise<void> {
    await checkPartition(host, t);
    const r = await host.exec(command);
    const jobId = parseSbatchOutput(r.stdout);
    if (r.code !== 0 || !jobId) throw new Error(`sbatch on ${host.label} failed: ${(r.stderr || r.stdout).trim() || 'exit ' + r.code}`);
    rec.jobId = jobId;
    rec.state = 'queued';
  },

  async find(host: Host, rec: RunRecord): Promise<boolean> {
    // queued or running: the job named after the run (the newest, should there be several);
    // started and ended since: the job id its script wrote when it began (the launch removed
    // the previous attempt's file before it submitted this one)
    const q = await host.exec(
      `squeue --noheader --format=%i --name=${shQuote(`conscience-${rec.id}`)} --user="$(id -un)"; printf 'squeue=%s\\n' "$?"; ` +
      `printf 'file=%s\\n' "$(cat ${shQuote(rec.remoteDir + '/job_id')} 2>/dev/null)"`,
    );
    // a failing squeue (slurmctld down or slow) cannot tell: the run is asked about again later
    if (q.code !== 0 || /^squeue=(\d+)$/m.exec(q.stdout)?.[1] !== '0') {
      throw new Error(`${host.label}: cannot tell whether run ${rec.id} was submitted (squeue failed): ${(q.stderr || q.stdout).trim().split('\n').slice(-2).join(' ')}`);
    }
    // a job of the attempt before a resume is not this attempt's (SLURM job ids only grow)
    const after = rec.supersededJob ? parseInt(rec.supersededJob, 10) : -1;
    const ids = q.stdout.split('\n').map((l) => l.trim()).filter((l) => /^\d+(_\d+)?$/.test(l) && parseInt(l, 10) > after);
    const file = /file=(\d+)/.exec(q.stdout)?.[1];
    const jobId = ids.sort((a, b) => parseInt(b, 10) - parseInt(a, 10))[0] ?? (file && parseInt(file, 10) > after ? file : undefined);
    if (!jobId) return false;
    rec.jobId = jobId;
    rec.state = 'queued';
    return true;
  },

  async status(host: Host, rec: RunRecord): Promise<Observation> {
    if (!rec.jobId) return {};
    const o = await slurmStatus(host, rec);
    return {
      // a transient failure reads as a job in an unknown but live state: the run keeps its state until the next poll
      job: o.job
        ? { state: o.job.state, outcome: jobOutcome(o.job), exitCode: o.job.exitCode, reason: o.job.reason }
        : o.gone
          ? { state: 'UNKNOWN', gone: true }
          : { state: 'UNKNOWN', reason: o.transient },
      exitFile: o.exitFile,
    };
  },

  async cancel(host: Host, rec: RunRecord): Promise<void> {
    if (!rec.jobId) throw new Error(`run ${rec.id} has no SLURM job id yet`);
    const r = await host.exec(`scancel ${shQuote(rec.jobId)}`);
    if (r.code !== 0) throw new Error(`scancel ${rec.jobId} on ${host.label} failed: ${(r.stderr || r.stdout).trim()}`);
  },

  logs(rec: RunRecord) {
    return { stdout: `${rec.remoteDir}/stdout.log`, stderr: `${rec.remoteDir}/stderr.log` };
  },

  async settle(host: Host, rec: RunRecord): Promise<void> {
    // a SLURM job keeps its secrets file for its whole life (requeues included); the job is over now
    await host.exec(`rm -f -- ${shQuote(rec.remoteDir + '/secrets.env')}`).catch(() => undefined);
  },

  async gone(): Promise<boolean> {
    // SLURM ends every step of a finished job itself; its state is the whole answer
    return true;
  },
};
