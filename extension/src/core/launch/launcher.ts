// Launch, resume and cancel: plan what will run (shown before launch), sync, build or reuse
// the environment, start detached (local/SSH) or through sbatch (SLURM), and record the run.
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, relative } from 'node:path';
import { completeSize, interruptedLaunch, launcherIdentity, launchMayHaveStarted, readRun, runDir as localRunDir, snapshotRecipe, TERMINAL_STATES, withRunLock, writeRun, type RunRecord } from '../runs/store';
import { resumeRefusal } from '../runs/resume';
import { ensurePython, requirementsPath } from './env';
import type { Host } from './host';
import { shQuote } from './quote';
import { recipeInfoFromText, type RecipeInfo } from './scripts';
import type { LaunchSession } from './session';
import { collectFiles, syncToHost, type SyncResult } from './sync';
import { driverFor } from './driver';
import { RunMonitor } from './monitor';
import { describeTarget, type Target } from './targets';
import { requireTopology } from './topology';

export interface Plan {
  runId: string;
  /** Random per start; exported to the run as CONSCIENCE_LAUNCH_TOKEN. */
  launchToken: string;
  recipe: string;
  /** The recipe's bytes, read once: planned from, kept as the run's recipe.yaml, and written to recipeOnHost. */
  recipeBytes: Buffer;
  /**
   * The file the trainer reads (--config): this attempt's own copy of the recipe, beside the
   * synced one so that paths in it resolve as before (the runtime resolves them against the
   * recipe's folder), written once at start and never again: the synced recipe is shared by
   * every run of the workspace and is overwritten by the next launch.
   */
  recipeOnHost: string;
  target: Target;
  host: string;
  baseDir: string;
  projectDir: string;
  runDir: string;
  outputDir: string;
  python: string;
  /** The python is built on first launch (no `python:` in the target). */
  buildsEnv: boolean;
  kind: 'process' | 'slurm';
  /** The generated wrapper (local/SSH) or batch script (SLURM). */
  script: string;
  /** Its file name in the run folder (run.sh, job.sbatch). */
  scriptName: string;
  /** The command that starts it on the host. */
  command: string;
  /** Files synced (workspace-relative). */
  files: string[];
  info: RecipeInfo;
  /** The topology planner's warnings (recipe and target disagree, the target decides). */
  warnings: string[];
}

export function newRunId(recipe: string, now = new Date()): string {
  const stem = basename(recipe).replace(/\.(ya?ml)$/i, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 32) || 'run';
  const ts = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${ts}-${stem}-${randomBytes(2).toString('hex')}`;
}

/**
 * Workspace-relative recipe path, refusing files outside the workspace. A workspace reached
 * through a symbolic link (the shell's $PWD, an editor's path) and a recipe named through the
 * other path are compared by their real paths.
 */
export function recipeRelative(root: string, recipe: string): string {
  const abs = isAbsolute(recipe) ? recipe : join(root, recipe);
  const inside = (r: string) => !!r && !r.startsWith('..') && !isAbsolute(r);
  let rel = relative(root, abs);
  if (!inside(rel)) {
    const real = (p: string) => {
      try {
        return realpathSync(p);
      } catch {
        return p;
      }
    };
    const viaReal = relative(real(root), real(abs));
    if (inside(viaReal)) rel = viaReal;
  }
  if (!inside(rel)) throw new Error(`${recipe}: the recipe must be inside the workspace ${root}`);
  return rel.split('\\').join('/');
}

export interface PlanOptions {
  /** The run's id (a resume's, or the launch's own once planned); a new one when absent. */
  runId?: string;
  /** The interpreter found or built (replaces the preview's placeholder). */
  python?: string;
  /** The attempt this plan starts (1 for a launch; a resume's is the next): names the trainer's copy of the recipe. */
  attempt?: number;
  /** The recipe's bytes when already read (a re-plan uses the same, never a later edit). */
  recipeBytes?: Buffer;
  /** A resume's project folder on the host, kept when it is under the target's base folder (its
   * key was computed another way by an older version: the workspace path as given, not its real
   * path); otherwise the folder is the project key's. */
  projectDir?: string;
}

/** The trainer's own copy of the recipe for one attempt, beside the synced recipe (Plan.recipeOnHost). */
export function recipeCopyOnHost(projectDir: string, rel: string, runId: string, attempt: number): string {
  return posix.join(projectDir, posix.dirname(rel), `.conscience-${runId}.attempt-${attempt}.yaml`);
}

/** Whether `dir` is one folder directly under `baseDir/projects/` (a project folder a resume may keep). */
function isProjectFolderUnder(dir: string, baseDir: string): boolean {
  const rest = dir.startsWith(`${baseDir}/projects/`) ? dir.slice(baseDir.length + '/projects/'.length) : '';
  return /^[A-Za-z0-9._-]+$/.test(rest) && rest !== '.' && rest !== '..';
}

/** Everything that will happen, computed without starting anything (the preview / --dry-run). */
export async function planLaunch(s: LaunchSession, recipe: string, targetName: string, o: PlanOptions = {}): Promise<Plan> {
  const t = s.target(targetName);
  const rel = recipeRelative(s.root, recipe);
  const abs = join(s.root, rel);
  let recipeBytes = o.recipeBytes;
  if (!recipeBytes) {
    try {
      recipeBytes = await readFile(abs);
    } catch (err) {
      throw new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${abs}: recipe not found` : `${abs}: ${(err as Error).message}`);
    }
  }
  const info = recipeInfoFromText(recipeBytes.toString('utf8'), abs);
  // the recipe must fit the target before anything is synced or submitted (core/launch/topology.ts)
  const { warnings } = requireTopology(
    info.launch,
    { kind: t.type, nodes: t.type === 'slurm' ? t.nodes ?? 1 : 1, gpusPerNode: t.type === 'local' ? undefined : t.gpusPerNode, name: t.name },
    rel,
    info.serverPort,
  );
  const id = o.runId ?? newRunId(rel);
  const launchToken = randomBytes(8).toString('hex');
  const host = await s.host(t);
  const baseDir = await s.baseDir(t, host);
  const projectDir = o.projectDir && isProjectFolderUnder(o.projectDir, baseDir) ? o.projectDir : `${baseDir}/projects/${s.projectKey()}`;
  const runDir = `${projectDir}/.conscience-runs/${id}`;
  const outputDir = `${runDir}/output`;
  const python = o.python ?? t.python ?? `${baseDir}/envs/<sha256 of ${requirementsPath(t)}>/bin/python`;
  const files = await collectFiles(s.source, rel, t.python ? [] : [requirementsPath(t)]);
  const recipeOnHost = recipeCopyOnHost(projectDir, rel, id, o.attempt ?? 1);
  const prepared = driverFor(t).prepare({ runId: id, launchToken, projectDir, runDir, outputDir, python, recipe: recipeOnHost, info, target: t });
  return {
    runId: id, launchToken, recipe: rel, recipeBytes, recipeOnHost, target: t, host: describeTarget(t, s.targets), baseDir, projectDir, runDir, outputDir, python,
    buildsEnv: !t.python, kind: driverFor(t).kind, script: prepared.script, scriptName: prepared.scriptName, command: prepared.command, files, info,
    warnings: warnings.map((w) => `${rel}: ${w.key}: ${w.message}`),
  };
}

/** The plan as a person reads it before launching. */
export function formatPlan(p: Plan): string {
  return [
    `run ${p.runId}: ${p.recipe} on ${p.target.name} (${p.host})`,
    ...p.warnings.map((w) => `warning: ${w}`),
    `sync ${p.files.length} files to ${p.projectDir} (only changed files are sent)`,
    `recipe: the trainer reads this run's own copy of ${p.recipe}, as it is now: ${p.recipeOnHost}`,
    p.buildsEnv ? `python: a venv built from ${requirementsPath(p.target)} (uv when present, else python3 -m venv), reused while its hash is unchanged` : `python: ${p.python}`,
    `output: ${p.outputDir}`,
    '',
    `# ${driverFor(p.target).verb}:`,
    p.command,
    '',
    `# ${p.runDir}/${p.scriptName}:`,
    p.script,
  ].join('\n');
}

async function writeSecrets(host: Host, runDir: string, secrets: Record<string, string> | undefined): Promise<boolean> {
  const entries = Object.entries(secrets ?? {}).filter(([, v]) => v);
  if (!entries.length) return false;
  const body = entries.map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid secret name '${k}'`);
    return `${k}=${shQuote(v)}`;
  });
  await host.writeFile(`${runDir}/secrets.env`, body.join('\n') + '\n', 0o600);
  return true;
}

export interface StartOutcome {
  run: RunRecord;
  sync: SyncResult;
  envBuilt: boolean;
}

/** Syncs, prepares Python, writes the script and starts it; updates `rec` in the store. */
async function start(s: LaunchSession, plan: Plan, rec: RunRecord): Promise<StartOutcome> {
  const t = plan.target;
  const progress = s.opts.onProgress ?? (() => undefined);
  const host = await s.host(t);
  progress(`syncing ${plan.files.length} files to ${host.label}:${plan.projectDir}`);
  const sync = await syncToHost(host, s.source, plan.files, plan.projectDir, (p) => {
    if (p.phase === 'sending' && p.file) progress(`sent ${p.filesDone}/${p.filesTotal} ${p.file}`);
  });
  progress(`sync: ${sync.filesSent} of ${sync.filesTotal} files sent (${sync.bytesSent} bytes)`);
  const env = await ensurePython(host, t, s.source, plan.baseDir, progress);
  // the real interpreter path replaces the placeholder of the preview
  const finalPlan = env.python === plan.python
    ? plan
    : await planLaunch(s, plan.recipe, t.name, { runId: plan.runId, python: env.python, attempt: rec.attempts, recipeBytes: plan.recipeBytes, projectDir: plan.projectDir });
  await host.mkdirp(plan.outputDir);
  // a resumed run starts in the same folder: the previous attempt's pid and exit code must not be read as this one's
  const stale = ['pid', 'trainer.pid', 'exit_code', 'exit_code.tmp', 'job_id'].map((f) => shQuote(`${plan.runDir}/${f}`));
  // nor its copy of the recipe (that attempt has ended: resume takes only an ended run)
  if (rec.attempts > 1) stale.push(shQuote(recipeCopyOnHost(plan.projectDir, plan.recipe, rec.id, rec.attempts - 1)));
  await host.exec(`rm -f -- ${stale.join(' ')}`);
  // the recipe as it was when this attempt was planned (the bytes kept as the run's recipe.yaml),
  // in a file of its own: a later launch that syncs an edited recipe does not reach this run
  await host.writeFile(finalPlan.recipeOnHost, plan.recipeBytes, 0o644);
  await host.writeFile(`${plan.runDir}/${finalPlan.scriptName}`, finalPlan.script, 0o700);
  await writeSecrets(host, plan.runDir, s.opts.secrets);
  rec.python = env.python;
  rec.command = finalPlan.command;
  rec.launchToken = finalPlan.launchToken;
  const dropSecrets = () => host.exec(`rm -f -- ${shQuote(plan.runDir + '/secrets.env')}`).catch(() => undefined);
  // cancelled while preparing (`conscience cancel`, another window): the stored record says so,
  // not this launch's copy of it; nothing is started. Otherwise the record says the run is being
  // submitted: should this launcher die before it records the process or job, the monitor asks
  // the host for it (TargetDriver.find) instead of calling the run interrupted while it runs
  const ended = await withRunLock(s.root, rec.id, async () => {
    const stored = endedMeanwhile(await readRun(s.root, rec.id));
    if (!stored) {
      rec.submitting = Date.now() / 1000;
      await writeRun(s.root, rec);
    }
    return stored;
  }, { wait: true });
  if (ended) {
    await dropSecrets();
    throw new NotStartedError(rec.id, ended);
  }
  try {
    await driverFor(t).submit(host, t, finalPlan.command, rec);
  } catch (err) {
    rec.submitting = undefined;
    await dropSecrets();
    throw err;
  }
  rec.submitting = undefined;
  rec.startedAt = Date.now() / 1000;
  rec.lastActivityAt = rec.startedAt;
  // a cancel that came while submitting is not lost: the process or job just started is cancelled
  const late = await withRunLock(s.root, rec.id, async () => {
    const stored = endedMeanwhile(await readRun(s.root, rec.id));
    if (!stored) {
      await writeRun(s.root, rec);
      return undefined;
    }
    rec.cancelRequested = true;
    rec.state = 'cancelling';
    const why = stored.state === 'cancelled' || stored.cancelRequested ? 'cancelled while preparing' : `marked ${stored.state} while preparing${stored.error ? ` (${stored.error})` : ''}`;
    rec.error = `${why}; the ${plan.kind === 'slurm' ? 'SLURM job' : 'process'} started meanwhile is being stopped`;
    try {
      await driverFor(t).cancel(host, rec, t.cancelGrace ?? 30);
    } catch (err) {
      rec.error += ` (sending the cancel failed: ${(err as Error).message}; \`conscience cancel ${rec.id}\` tries again)`;
    }
    await writeRun(s.root, rec);
    return stored;
  }, { wait: true });
  if (late) throw new NotStartedError(rec.id, late, true);
  progress(plan.kind === 'slurm' ? `submitted SLURM job ${rec.jobId}` : `started pid ${rec.pid} (process group ${rec.pgid})`);
  return { run: rec, sync, envBuilt: env.built };
}

/** The stored record when the run ended (cancelled) while its launch was preparing, else undefined. */
function endedMeanwhile(stored: RunRecord | undefined): RunRecord | undefined {
  return stored && (TERMINAL_STATES.has(stored.state) || stored.cancelRequested) ? stored : undefined;
}

/** A launch or resume that did not start its run: it was cancelled (or ended) while preparing. */
export class NotStartedError extends Error {
  constructor(readonly runId: string, readonly stored: RunRecord, stopped = false) {
    super(stopped
      ? `run ${runId} was cancelled while it was starting: the ${stored.targetKind === 'slurm' ? 'SLURM job' : 'process'} it had just started is being stopped`
      : stored.state === 'cancelled' || stored.cancelRequested
        ? `run ${runId} was cancelled before it started: nothing was started`
        : `run ${runId} was marked ${stored.state} while preparing${stored.error ? ` (${stored.error})` : ''}: nothing was started`);
  }
}

/**
 * start(), and on failure the run recorded as failed, unless it was cancelled or ended
 * meanwhile (the stored record, under the run's lock, is kept then).
 */
async function startRecorded(s: LaunchSession, plan: Plan, rec: RunRecord): Promise<StartOutcome & { plan: Plan }> {
  try {
    return { ...(await start(s, plan, rec)), plan };
  } catch (err) {
    if (!(err instanceof NotStartedError)) {
      await withRunLock(s.root, rec.id, async () => {
        if (endedMeanwhile(await readRun(s.root, rec.id))) return;
        rec.state = 'failed';
        rec.error = (err as Error).message;
        rec.finishedAt = Date.now() / 1000;
        await writeRun(s.root, rec);
      }, { wait: true });
    }
    throw err;
  }
}

/** Launches a recipe on a target. Returns the recorded run (state starting or queued). */
export async function launchRun(s: LaunchSession, recipe: string, targetName: string, onRecord?: (rec: RunRecord) => void): Promise<StartOutcome & { plan: Plan }> {
  const plan = await planLaunch(s, recipe, targetName);
  const now = Date.now() / 1000;
  const rec: RunRecord = {
    id: plan.runId, recipe: plan.recipe, target: plan.target.name, targetKind: plan.target.type, host: plan.host,
    projectDir: plan.projectDir, remoteDir: plan.runDir, outputDir: plan.outputDir, python: plan.python,
    state: 'preparing', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, createdAt: now, updatedAt: now,
    command: plan.command, attempts: 1, attemptOffset: 0, maxSteps: plan.info.maxSteps,
    // who prepares it: a run whose launcher died meanwhile is not left preparing for ever
    launcher: launcherIdentity(),
  };
  await writeRun(s.root, rec);
  // the record as it goes (the CLI ends an interrupted launch with it)
  onRecord?.(rec);
  await keepRecipe(s, plan, rec);
  return startRecorded(s, plan, rec);
}

/**
 * Starts a finished (cancelled/failed) run again in the same output folder: the trainer resumes from its last checkpoint.
 * The state check and the record's move to `preparing` (the new attempt) are one step under the
 * run's lock: a second resume at the same moment (another window, another CLI) finds the run
 * preparing and is refused, never a second trainer in the same output folder. Planning comes
 * after, outside the lock; a resume that cannot be planned puts the record back as it was, with why.
 */
export async function resumeRun(s: LaunchSession, id: string): Promise<StartOutcome & { plan: Plan }> {
  let before: RunRecord | undefined;
  const rec = (await withRunLock(s.root, id, async () => {
    // the state as the host has it now: a run recorded as running or cancelling may have ended since
    const r = await refreshedLocked(s, id);
    if (!TERMINAL_STATES.has(r.state)) throw new Error(`run ${id} is ${r.state}; cancel it before resuming`);
    before = structuredClone(r);
    const offset = await completeSize(join(localRunDir(s.root, id), 'events.jsonl'));
    Object.assign(r, {
      state: 'preparing', attempts: r.attempts + 1, attemptOffset: offset, sawStarted: false, finished: undefined,
      exitCode: undefined, error: undefined, finishedAt: undefined, cancelRequested: false, jobId: undefined,
      // the previous attempt's process is not this one's (a cancel while preparing has nothing to stop)
      pid: undefined, pgid: undefined, launcher: launcherIdentity(), submitting: undefined, startedAt: undefined,
      // nor its SLURM job: a job of this attempt is a later one (TargetDriver.find)
      supersededJob: r.jobId ?? r.supersededJob,
    });
    await writeRun(s.root, r);
    return r;
  }, { wait: true }))!;
  let plan: Plan;
  try {
    plan = await planLaunch(s, rec.recipe, rec.target, { runId: rec.id, attempt: rec.attempts, projectDir: rec.projectDir });
    const refusal = resumeRefusal(before!, plan.info.maxSteps);
    if (refusal) throw new Error(refusal);
    if (plan.runDir !== rec.remoteDir) throw new Error(`run ${id}: the target '${rec.target}' now points elsewhere (${plan.runDir} instead of ${rec.remoteDir})`);
  } catch (err) {
    await withRunLock(s.root, id, async () => {
      const stored = await readRun(s.root, id);
      // cancelled meanwhile, or no longer this resume's: the stored record stays
      if (!stored || stored.state !== 'preparing' || stored.cancelRequested || stored.attempts !== rec.attempts || stored.launcher?.pid !== rec.launcher?.pid) return;
      const back = structuredClone(before!);
      // a completed run refused (nothing left to train) stays completed as it was; any other
      // keeps why it ended and says why it did not resume
      if (back.state !== 'completed') back.error = `${back.error ? `${back.error}; ` : ''}resume failed: ${(err as Error).message}`;
      await writeRun(s.root, back);
    }, { wait: true });
    throw err;
  }
  await keepRecipe(s, plan, rec);
  return startRecorded(s, plan, rec);
}

/**
 * The recipe this attempt starts with, kept beside the run for compare's config diff (the
 * workspace file may change after). Not keeping it does not stop the launch: it is said.
 */
async function keepRecipe(s: LaunchSession, plan: Plan, rec: RunRecord): Promise<void> {
  try {
    const kept = await snapshotRecipe(s.root, rec.id, plan.recipeBytes, rec.attempts);
    if (kept) s.opts.onProgress?.(`${plan.recipe} changed since the last attempt: the run now trains with it; the previous one is kept as ${kept}`);
  } catch (err) {
    s.opts.onProgress?.(`run ${rec.id}: recipe not kept for compare: ${(err as Error).message}`);
  }
}

/** Sends the cancel: SIGTERM to the process group then SIGKILL after the grace period (run by a detached helper on the host, so it completes even if we disconnect), or scancel. */
export async function cancelRun(s: LaunchSession, id: string, graceS?: number): Promise<RunRecord> {
  // under the run's lock: a follower polling at the same moment must not write back a record without cancelRequested
  return (await withRunLock(s.root, id, () => cancelLocked(s, id, graceS), { wait: true }))!;
}

/**
 * The run's record after one status/copy pass (the monitor's poll; the caller holds the run's
 * lock), so cancel and resume decide on what the host says now, not on the state last recorded.
 * A run already ended, or not started yet (preparing), is returned as recorded (a preparing one
 * whose launcher is gone as failed, core/runs/store.ts interruptedLaunch); so is the record
 * when the host cannot be asked (the decision then falls back on it).
 */
async function refreshedLocked(s: LaunchSession, id: string, graceS?: number): Promise<RunRecord> {
  const rec = await readRun(s.root, id);
  if (!rec) throw new Error(`no run '${id}' in ${s.root}/.conscience/runs`);
  if (TERMINAL_STATES.has(rec.state) && rec.finishedAt) return rec;
  // (a launcher that died while submitting it: the monitor's pass below asks the host whether it started)
  if (rec.state === 'preparing' && !launchMayHaveStarted(rec)) {
    // its launcher is gone (killed, its window closed): it never starts (failed, "launch interrupted"), and can be resumed
    if (interruptedLaunch(rec)) await writeRun(s.root, rec);
    return rec;
  }
  try {
    return (await new RunMonitor(s, id, { cancelGrace: graceS }).refreshLocked()) ?? rec;
  } catch {
    return (await readRun(s.root, id)) ?? rec;
  }
}

async function cancelLocked(s: LaunchSession, id: string, graceS?: number): Promise<RunRecord> {
  const rec = await refreshedLocked(s, id, graceS);
  // ended meanwhile (a failure stays a failure, with its exit code)
  if (TERMINAL_STATES.has(rec.state)) return rec;
  // its launcher died while submitting it, and the host could not tell yet whether it started:
  // the cancel is recorded, and the monitor stops what it finds (or ends the run cancelled once
  // nothing is found)
  if (launchMayHaveStarted(rec)) {
    rec.cancelRequested = true;
    await writeRun(s.root, rec);
    return rec;
  }
  // nothing started (a launch interrupted before its process or job was recorded): nothing to stop
  if (!(rec.targetKind === 'slurm' ? rec.jobId : rec.pgid)) {
    rec.error = `cancelled while ${rec.state}, before a ${rec.targetKind === 'slurm' ? 'SLURM job' : 'process'} was recorded: nothing was stopped`;
    rec.cancelRequested = true;
    rec.state = 'cancelled';
    rec.finishedAt = Date.now() / 1000;
    await writeRun(s.root, rec);
    return rec;
  }
  const t = s.target(rec.target);
  const host = await s.host(t);
  const grace = graceS ?? t.cancelGrace ?? 30;
  rec.cancelRequested = true;
  await driverFor(rec.targetKind).cancel(host, rec, grace);
  rec.state = 'cancelling';
  await writeRun(s.root, rec);
  return rec;
}
