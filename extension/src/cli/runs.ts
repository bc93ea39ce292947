// conscience launch | runs | logs | cancel | resume: the CLI over core/launch and core/runs.
// Secrets come from the environment (HF_TOKEN, WANDB_API_KEY) and reach the host in a 0600
// file the run deletes at start; they are never printed or written to the run store.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatFindings, launchGuard, resumeGuard } from '../core/launch/guard';
import { cancelRun, formatPlan, launchRun, planLaunch, resumeRun } from '../core/launch/launcher';
import { RunMonitor } from '../core/launch/monitor';
import { driverFor } from '../core/launch/driver';
import { LaunchSession } from '../core/launch/session';
import { loadTargets } from '../core/launch/targets';
import { formatProblem, type ParseProblem, type RunEvent } from '../core/runs/events';
import { FAILED_STATES, publicRun, runEnd, runFailure, runProgress } from '../core/runs/present';
import { escapeControls } from '../core/escape';
import { isRunId, launchMayHaveStarted, listRuns, readRun, runDir, runsDir, settleInterruptedLaunch, TERMINAL_STATES, withRunLock, writeRun, type RunRecord } from '../core/runs/store';

export const SECRET_NAMES = ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'WANDB_API_KEY'];

export class UsageError extends Error {}

const common = {
  workspace: { type: 'string' },
  targets: { type: 'string' },
  'accept-new': { type: 'boolean' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = Record<string, string | boolean | undefined> & { workspace?: string; targets?: string; 'accept-new'?: boolean; format?: string };

/**
 * `json`: whether the verb prints JSON with --format json (cancel and logs do not: a script that
 * asks for it is told so, exit 2, rather than handed text).
 */
export function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>, usage: string, json = true): { values: Values; positionals: string[] } | undefined {
  try {
    const r = parseArgs({ args: argv, options: { ...common, ...options }, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
    if (r.values.help) {
      process.stdout.write(usage + '\n');
      return undefined;
    }
    const fmt = r.values.format;
    if (fmt !== undefined && fmt !== 'json' && fmt !== 'text') throw new UsageError(`--format must be json or text`);
    if (fmt === 'json' && !json) throw new UsageError(`--format json: this command has no JSON output (\`conscience runs --format json\` gives the runs' records)`);
    return r;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`);
  }
}

export async function session(values: { workspace?: string; targets?: string; 'accept-new'?: boolean }, quiet = false): Promise<LaunchSession> {
  const root = resolve(values.workspace ?? process.env.CONSCIENCE_WORKSPACE ?? process.cwd());
  const { targets } = await loadTargets(root, values.targets);
  const secrets: Record<string, string> = {};
  for (const n of SECRET_NAMES) if (process.env[n]) secrets[n] = process.env[n]!;
  return new LaunchSession(root, targets, {
    secrets,
    onUnknownHostKey: (info) => {
      if (values['accept-new']) {
        process.stderr.write(`conscience: adding ${info.keyType} ${info.fingerprint} for ${info.host}:${info.port} to ${info.knownHostsFile}\n`);
        return true;
      }
      return false;
    },
    onProgress: quiet ? undefined : (m) => process.stderr.write(`conscience: ${m}\n`),
  });
}

export async function wrap(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`conscience: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`conscience: ${(err as Error).message}\n`);
    return 1;
  }
}

/** A run id, a unique prefix of one, or "last". */
async function resolveRun(root: string, ref: string | undefined): Promise<RunRecord> {
  if (!ref) throw new UsageError('a run id is required');
  // a run whose run.json cannot be read is that run, broken: readRun's error ("FILE: why"), not "no run"
  if (ref !== 'last' && isRunId(ref) && existsSync(join(runDir(root, ref), 'run.json'))) {
    const rec = await readRun(root, ref);
    if (rec) return rec;
  }
  const runs = await listRuns(root);
  if (ref === 'last') {
    if (!runs[0]) throw new Error(`no runs in ${root}/.conscience/runs`);
    return runs[0];
  }
  const exact = runs.find((r) => r.id === ref);
  if (exact) return exact;
  // a prefix is matched against every run folder, readable or not: one whose run.json is broken
  // makes the prefix ambiguous (it named the other run's logs), and alone it is that run, broken
  const folders = (await readdir(runsDir(root)).catch(() => [] as string[])).filter((n) => isRunId(n) && n.startsWith(ref) && existsSync(join(runDir(root, n), 'run.json'))).sort();
  if (folders.length === 1) {
    const rec = await readRun(root, folders[0]!);
    if (rec) return rec;
  }
  if (folders.length > 1) {
    const readable = new Set(runs.map((r) => r.id));
    throw new Error(`'${ref}' matches ${folders.length} runs: ${folders.map((n) => (readable.has(n) ? n : `${n} (run.json unreadable)`)).join(', ')}`);
  }
  throw new Error(`no run '${ref}' in ${root}/.conscience/runs`);
}

function describeEvent(e: RunEvent): string | undefined {
  switch (e.type) {
    case 'run_started':
      return `run_started${e.resumed_from ? ' (resumed from ' + e.resumed_from + ')' : ''}, max_steps ${e.max_steps ?? '?'}`;
    case 'metrics': {
      const r = e.values?.reward;
      return `step ${e.step}${r !== undefined && r !== null ? ' reward ' + r.toFixed(4) : ''}`;
    }
    case 'checkpoint':
      return `checkpoint step ${e.step}`;
    case 'run_finished':
      return `run_finished ${e.status} (exit ${e.exit_code})${e.error ? ': ' + e.error : ''}`;
    default:
      return undefined;
  }
}

/** A follower's error listener: a failing pass is said, once while it fails the same way (not 4 times a second). */
function onceEach(): (e: Error) => void {
  let last: string | undefined;
  return (e) => {
    if (e.message !== last) process.stderr.write(`conscience: ${escapeControls(e.message)}\n`);
    last = e.message;
  };
}

/** The error of a verb whose run was deleted while it followed it. */
export class RunDeletedError extends Error {
  constructor(root: string, id: string) {
    super(`run ${id} was deleted while it was followed (${runDir(root, id)} is gone); nothing more to follow`);
  }
}

/**
 * `detached` is set when Ctrl-C ended the following (the run goes on): the verb then exits 130.
 * A run deleted meanwhile (its folder removed) throws RunDeletedError: the verb exits 1 saying so.
 */
export async function followRun(s: LaunchSession, id: string, opts: { logs?: boolean; events?: boolean; detached?: boolean }): Promise<RunRecord | undefined> {
  const m = new RunMonitor(s, id);
  if (opts.logs) {
    m.on('stdout', (b: Buffer) => process.stdout.write(b));
    m.on('stderr', (b: Buffer) => process.stderr.write(b));
  }
  if (opts.events) {
    m.on('events', (evs: RunEvent[]) => {
      for (const e of evs) {
        const d = describeEvent(e);
        if (d) process.stderr.write(`conscience: ${id}: ${d}\n`);
      }
    });
  }
  m.on('problems', (ps: ParseProblem[]) => { for (const p of ps) process.stderr.write(`conscience: ${formatProblem(p)}\n`); });
  m.on('disconnected', (e: Error) => process.stderr.write(`conscience: connection lost (${e.message}); reconnecting…\n`));
  m.on('reconnected', () => process.stderr.write(`conscience: reconnected; continuing from the saved offset\n`));
  m.on('error', onceEach());
  const onSig = () => {
    opts.detached = true;
    m.stop();
  };
  process.once('SIGINT', onSig);
  try {
    const fin = await m.follow();
    if (m.deleted) throw new RunDeletedError(s.root, id);
    return fin;
  } finally {
    process.off('SIGINT', onSig);
  }
}

const LAUNCH_USAGE = 'usage: conscience launch RECIPE [--target NAME (default: local)] [--wait] [--dry-run] [--force] [--accept-new] [--targets FILE] [--workspace DIR] [--format json|text]';

/** The root cause of a failed run, read from its store (stderr.log, run_finished, run.json). */
export async function failureCause(root: string, rec: RunRecord): Promise<string | undefined> {
  if (!FAILED_STATES.has(rec.state)) return undefined; // failed, or ended by SLURM (preempted, timed_out, ...)
  const stderr = await readFile(join(runDir(root, rec.id), 'stderr.log'), 'utf8').catch(() => '');
  const c = runFailure(rec, stderr);
  return c ? `${c.message}${c.line !== undefined ? ` (stderr.log:${c.line + 1})` : ''}` : undefined;
}

/** What a verb that launches a recipe adds to the one launch flow (guard, plan or launch, follow). */
export interface LaunchVerb {
  usage: string;
  /** Refuses a recipe this verb does not run (e.g. `conscience eval` on a training recipe). */
  check?(file: string, recipe: string): Promise<void>;
  /** With --wait, once the run has finished: the JSON to print (default: the run record, with
   * its cause) and text lines after the state line. */
  finished?(s: LaunchSession, fin: RunRecord | undefined, cause: string | undefined): Promise<{ json: unknown; text: string[]; errors: string[] }>;
  /** What follows the run ("the run goes on", "the eval goes on"). */
  noun?: string;
}

/**
 * The one launch flow, for `conscience launch` and every verb that launches a recipe kind
 * (`conscience eval`): the launch guard (a recipe with errors would fail on the host after
 * the sync, the environment build and, on SLURM, the queue wait: refused unless --force),
 * then the plan (--dry-run) or the launch, the recipe snapshot, and --wait's follow.
 */
export async function launchWith(argv: string[], verb: LaunchVerb): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { target: { type: 'string', short: 't' }, wait: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' } }, verb.usage);
    if (!r) return 0;
    const [recipe, ...rest] = r.positionals;
    if (!recipe || rest.length) throw new UsageError(verb.usage);
    const json = r.values.format === 'json';
    const root = resolve(r.values.workspace ?? process.env.CONSCIENCE_WORKSPACE ?? process.cwd());
    const file = isAbsolute(recipe) ? recipe : join(root, recipe);
    await verb.check?.(file, recipe);
    // checked against the TRL the target runs when the recipe does not say (launch.trl)
    const target = await loadTargets(root, r.values.targets).then(({ targets }) => targets.get(String(r.values.target ?? 'local'))).catch(() => undefined);
    const errors = await launchGuard(root, file, target);
    if (errors.length) {
      const show = (f: string) => { const rel = relative(process.cwd(), f); return rel && !rel.startsWith('..') ? rel : f; };
      process.stderr.write(formatFindings(errors, show) + '\n');
      if (!r.values.force && !r.values['dry-run']) {
        process.stderr.write(`conscience: ${errors.length} error(s) in ${recipe}: not launching (fix them, or pass --force to launch anyway)\n`);
        return 1;
      }
      if (!r.values['dry-run']) process.stderr.write(`conscience: launching despite ${errors.length} error(s) (--force)\n`);
    }
    const s = await session(r.values, json && !r.values.wait);
    try {
      const target = String(r.values.target ?? 'local');
      if (r.values['dry-run']) {
        const plan = await planLaunch(s, recipe, target);
        if (json) {
          const { target: t, info: _i, recipeBytes: _b, ...rest2 } = plan;
          process.stdout.write(JSON.stringify({ ...rest2, target: t.name }, null, 2) + '\n');
        } else process.stdout.write(formatPlan(plan) + '\n');
        return 0;
      }
      // Ctrl-C while syncing or building the environment: the run is recorded as failed ("launch
      // interrupted"), not left preparing for ever; once its process or job is recorded it is kept
      // as started (it runs on; `conscience cancel` stops it)
      let launching: RunRecord | undefined;
      const interrupted = (): void => {
        void (async () => {
          if (launching && !TERMINAL_STATES.has(launching.state)) {
            const rec = launching;
            // under the run's lock, and not over a cancel sent meanwhile (the stored record is kept then)
            await withRunLock(s.root, rec.id, async () => {
              const stored = await readRun(s.root, rec.id);
              if (stored && (TERMINAL_STATES.has(stored.state) || stored.cancelRequested)) {
                launching = stored;
                return;
              }
              // interrupted while submitting: its process or job may have started (the host is asked
              // by the next `conscience runs`, logs, cancel or resume); before: it never will
              if (!rec.pgid && !rec.jobId && !rec.submitting) {
                rec.state = 'failed';
                rec.error = 'launch interrupted';
                rec.finishedAt = Date.now() / 1000;
              }
              await writeRun(s.root, rec);
            }, { wait: true, timeoutMs: 5000 }).catch(() => undefined);
            const now = launching;
            const submitting = now.state === 'preparing' && !!now.submitting && !now.pgid && !now.jobId;
            process.stderr.write(`conscience: ${now.id}: ${now.state === 'failed' ? 'launch interrupted' : TERMINAL_STATES.has(now.state) || now.cancelRequested ? `interrupted; the run was ${now.state} meanwhile` : submitting ? `interrupted while submitting the run: it may have started; \`conscience runs\` asks ${now.host} (\`conscience cancel ${now.id}\` stops it if it did)` : 'interrupted after the start; the run goes on'}\n`);
          }
          process.exit(130);
        })();
      };
      process.once('SIGINT', interrupted);
      let out;
      try {
        out = await launchRun(s, recipe, target, (rec) => (launching = rec));
      } finally {
        process.off('SIGINT', interrupted);
      }
      if (!r.values.wait) {
        process.stdout.write(json ? JSON.stringify(publicRun(out.run), null, 2) + '\n' : `${out.run.id}\n`);
        return 0;
      }
      process.stderr.write(`conscience: launched ${out.run.id}; following (Ctrl-C detaches, the ${verb.noun ?? 'run'} goes on)\n`);
      const following: { events: boolean; detached?: boolean } = { events: true };
      const fin = await followRun(s, out.run.id, following);
      // Ctrl-C detached: the run goes on, which is neither its success nor its failure
      if (following.detached && fin && !TERMINAL_STATES.has(fin.state)) {
        process.stderr.write(`conscience: detached from ${out.run.id} (${fin.state}); it goes on: \`conscience logs ${out.run.id} --follow\` follows it again\n`);
        return 130;
      }
      const cause = fin ? await failureCause(s.root, fin) : undefined;
      const extra = verb.finished ? await verb.finished(s, fin, cause) : { json: fin ? publicRun(fin, cause) : null, text: [], errors: [] };
      if (json) process.stdout.write(JSON.stringify(extra.json, null, 2) + '\n');
      else {
        process.stdout.write(`${out.run.id} ${fin?.state ?? 'unknown'}${fin?.exitCode !== undefined && fin?.exitCode !== null ? ' exit ' + fin.exitCode : ''}${cause ? ': ' + escapeControls(cause) : ''}\n`);
        for (const line of extra.text) process.stdout.write(line + '\n');
      }
      for (const e of extra.errors) process.stderr.write(`conscience: ${e}\n`);
      return fin?.state === 'completed' ? 0 : 1;
    } finally {
      await s.close();
    }
  });
}

export function launch(argv: string[]): Promise<number> {
  return launchWith(argv, { usage: LAUNCH_USAGE });
}

function elapsed(r: RunRecord): string {
  if (!r.startedAt) return '-';
  const s = Math.max(0, Math.round(runEnd(r) - r.startedAt));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

const RUNS_USAGE = 'usage: conscience runs [--format json] [--no-refresh] [--workspace DIR] [--targets FILE]';

export async function runs(argv: string[]): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { 'no-refresh': { type: 'boolean' } }, RUNS_USAGE);
    if (!r) return 0;
    if (r.positionals.length) throw new UsageError(RUNS_USAGE);
    const s = await session(r.values, true);
    try {
      let list = await listRuns(s.root);
      if (!r.values['no-refresh']) {
        // a run still preparing whose launcher is gone (killed, its window closed) never starts: failed ("launch interrupted")
        for (const run of list.filter((x) => x.state === 'preparing')) {
          try {
            await settleInterruptedLaunch(s.root, run.id);
          } catch (err) {
            process.stderr.write(`conscience: ${run.id}: ${(err as Error).message}\n`);
          }
        }
        // reattach: one pass over every unsettled run brings its store up to date
        // (a preparing run whose launcher died while submitting it is asked for on its host too)
        list = await listRuns(s.root);
        // (and a run that ended but was not settled: its process or job was still going away)
        for (const run of list.filter((x) => (!TERMINAL_STATES.has(x.state) || !x.finishedAt) && (x.state !== 'preparing' || launchMayHaveStarted(x)))) {
          try {
            await new RunMonitor(s, run.id).pollOnce();
          } catch (err) {
            process.stderr.write(`conscience: ${run.id}: ${(err as Error).message}\n`);
          }
        }
      }
      // the final listing says which folders hold a run.json that is not readable (conscience: FILE: why)
      list = await listRuns(s.root, (_name, err) => process.stderr.write(`conscience: ${err.message}\n`));
      if (r.values.format === 'json') {
        // a failed run carries its root cause ("cause": the trainer's error line, with its stderr.log line)
        const out = await Promise.all(list.map(async (x) => publicRun(x, await failureCause(s.root, x))));
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return 0;
      }
      const rows = [['RUN', 'STATE', 'STEP', 'REWARD', 'ELAPSED', 'TARGET', 'RECIPE']];
      for (const x of list)
        rows.push([x.id, x.state + (x.exitCode ? ` (${x.exitCode})` : ''), runProgress(x)?.text.replace(/^step /, '') ?? '-',
          x.reward !== undefined && x.reward !== null ? x.reward.toFixed(3) : '-', elapsed(x), x.target, x.recipe]);
      const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
      process.stdout.write(rows.map((row) => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n');
      // a failed run says why, in the trainer's words
      for (const x of list) {
        const cause = await failureCause(s.root, x);
        if (cause) process.stdout.write(`${x.id} failed: ${escapeControls(cause)}\n`);
      }
      return 0;
    } finally {
      await s.close();
    }
  });
}

const LOGS_USAGE = 'usage: conscience logs RUN [--follow] [--events] [--workspace DIR] [--targets FILE]';

export async function logs(argv: string[]): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { follow: { type: 'boolean', short: 'f' }, events: { type: 'boolean' } }, LOGS_USAGE, false);
    if (!r) return 0;
    if (r.positionals.length !== 1) throw new UsageError(LOGS_USAGE);
    const s = await session(r.values, true);
    try {
      let run = await resolveRun(s.root, r.positionals[0]);
      if (run.state === 'preparing') run = (await settleInterruptedLaunch(s.root, run.id)) ?? run;
      // the run's target as the targets file has it now: gone or invalid, the host cannot be
      // asked, so the local copy is all there is (--follow would otherwise poll for ever in silence)
      let targetError: string | undefined;
      try {
        s.target(run.target);
      } catch (err) {
        targetError = (err as Error).message;
      }
      // its launcher died while submitting it: the host is asked first (it may be running)
      if (!targetError && launchMayHaveStarted(run)) run = (await new RunMonitor(s, run.id).pollOnce()) ?? run;
      const dir = runDir(s.root, run.id);
      // a run with no process or job recorded has nothing to follow (and a launch interrupted
      // before its start stays preparing): say so rather than wait for ever
      if (r.values.follow && run.state === 'preparing' && !run.pgid && !run.jobId) {
        process.stderr.write(`conscience: ${run.id} is preparing with no process or job recorded: its launch is still syncing or building the environment, or was interrupted (\`conscience cancel ${run.id}\` marks it cancelled); nothing to follow yet\n`);
        return 1;
      }
      const m = new RunMonitor(s, run.id);
      // print what the store holds, then (with --follow) what arrives
      if (!targetError && !r.values.follow && (!TERMINAL_STATES.has(run.state) || !run.finishedAt)) await m.pollOnce().catch(() => undefined);
      const show = async (name: string) => {
        try {
          return await readFile(join(dir, name));
        } catch {
          return Buffer.alloc(0);
        }
      };
      if (r.values.events) process.stdout.write(await show('events.jsonl'));
      else {
        process.stdout.write(await show('stdout.log'));
        process.stderr.write(await show('stderr.log'));
      }
      // a finished run has nothing more to follow: its local copy is the whole of it
      if (targetError && (!TERMINAL_STATES.has(run.state) || !run.finishedAt)) {
        process.stderr.write(`conscience: ${run.id} ran on target '${run.target}', which cannot be reached now: ${targetError}; the local copy is shown${r.values.follow ? ', nothing more can be followed' : ''}\n`);
        return r.values.follow ? 1 : 0;
      }
      if (targetError) {
        process.stderr.write(`conscience: ${run.id} ${run.state}${run.exitCode !== undefined && run.exitCode !== null ? ' exit ' + run.exitCode : ''}\n`);
        return 0;
      }
      if (!r.values.follow) return 0;
      const mon = new RunMonitor(s, run.id);
      if (r.values.events) {
        mon.on('events', (evs: RunEvent[]) => {
          for (const e of evs) process.stdout.write(JSON.stringify(e) + '\n');
        });
      } else {
        mon.on('stdout', (b: Buffer) => process.stdout.write(b));
        mon.on('stderr', (b: Buffer) => process.stderr.write(b));
      }
      mon.on('problems', (ps: ParseProblem[]) => { for (const p of ps) process.stderr.write(`conscience: ${formatProblem(p)}\n`); });
      mon.on('disconnected', (e: Error) => process.stderr.write(`conscience: connection lost (${e.message}); reconnecting…\n`));
      mon.on('error', onceEach());
      const stop = () => mon.stop();
      process.once('SIGINT', stop);
      const fin = await mon.follow();
      process.off('SIGINT', stop);
      if (mon.deleted) throw new RunDeletedError(s.root, run.id);
      process.stderr.write(`conscience: ${run.id} ${fin?.state}${fin?.exitCode !== undefined && fin?.exitCode !== null ? ' exit ' + fin.exitCode : ''}\n`);
      return 0;
    } finally {
      await s.close();
    }
  });
}

const CANCEL_USAGE = 'usage: conscience cancel RUN [--grace SECONDS] [--no-wait] [--workspace DIR] [--targets FILE]';

export async function cancel(argv: string[]): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { grace: { type: 'string' }, 'no-wait': { type: 'boolean' } }, CANCEL_USAGE, false);
    if (!r) return 0;
    if (r.positionals.length !== 1) throw new UsageError(CANCEL_USAGE);
    const grace = r.values.grace !== undefined ? Number(r.values.grace) : undefined;
    if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) throw new UsageError('--grace must be a whole number of seconds');
    const s = await session(r.values, true);
    try {
      const run = await resolveRun(s.root, r.positionals[0]);
      if (TERMINAL_STATES.has(run.state)) {
        process.stdout.write(`${run.id} already ${run.state}\n`);
        return 0;
      }
      await cancelRun(s, run.id, grace);
      if (r.values['no-wait']) {
        process.stdout.write(`${run.id} cancelling\n`);
        return 0;
      }
      const fin = await followRun(s, run.id, {});
      // every process of the run gone, not just the state recorded
      if (fin) {
        const host = await s.host(s.target(fin.target));
        const driver = driverFor(fin.targetKind);
        const deadline = Date.now() + ((grace ?? s.target(fin.target).cancelGrace ?? 30) + 15) * 1000;
        while (Date.now() < deadline && !(await driver.gone(host, fin))) await new Promise((res) => setTimeout(res, 250));
      }
      process.stdout.write(`${run.id} ${fin?.state ?? 'unknown'}\n`);
      return fin?.state === 'cancelled' ? 0 : 1;
    } finally {
      await s.close();
    }
  });
}

const RESUME_USAGE = 'usage: conscience resume RUN [--wait] [--force] [--accept-new] [--workspace DIR] [--targets FILE] [--format json|text]';

export async function resume(argv: string[]): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { wait: { type: 'boolean' }, force: { type: 'boolean' } }, RESUME_USAGE);
    if (!r) return 0;
    if (r.positionals.length !== 1) throw new UsageError(RESUME_USAGE);
    const s = await session(r.values);
    try {
      const run = await resolveRun(s.root, r.positionals[0]);
      // the recipe edited since the attempt that ended is checked as a launch is (--force: anyway)
      const target = await loadTargets(s.root, r.values.targets).then(({ targets }) => targets.get(run.target)).catch(() => undefined);
      const errors = await resumeGuard(s.root, run, target);
      if (errors.length) {
        const show = (f: string) => { const rel = relative(process.cwd(), f); return rel && !rel.startsWith('..') ? rel : f; };
        process.stderr.write(formatFindings(errors, show) + '\n');
        if (!r.values.force) {
          process.stderr.write(`conscience: ${errors.length} error(s) in ${run.recipe}, edited since run ${run.id} last ran: not resuming (fix them, or pass --force to resume anyway)\n`);
          return 1;
        }
        process.stderr.write(`conscience: resuming despite ${errors.length} error(s) (--force)\n`);
      }
      const out = await resumeRun(s, run.id);
      if (!r.values.wait) {
        process.stdout.write(r.values.format === 'json' ? JSON.stringify(publicRun(out.run), null, 2) + '\n' : `${out.run.id}\n`);
        return 0;
      }
      const following: { events: boolean; detached?: boolean } = { events: true };
      const fin = await followRun(s, run.id, following);
      if (following.detached && fin && !TERMINAL_STATES.has(fin.state)) {
        process.stderr.write(`conscience: detached from ${run.id} (${fin.state}); it goes on: \`conscience logs ${run.id} --follow\` follows it again\n`);
        return 130;
      }
      const cause = fin ? await failureCause(s.root, fin) : undefined;
      if (r.values.format === 'json') process.stdout.write(JSON.stringify(fin ? publicRun(fin, cause) : null, null, 2) + '\n');
      else process.stdout.write(`${run.id} ${fin?.state ?? 'unknown'}${cause ? ': ' + escapeControls(cause) : ''}\n`);
      return fin?.state === 'completed' ? 0 : 1;
    } finally {
      await s.close();
    }
  });
}

export { readRun };
