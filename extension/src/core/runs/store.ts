// The run store: `.conscience/runs/<id>/` in the workspace. One folder per run with
//   run.json      the run's record (RunRecord below), rewritten atomically (tmp + rename)
//   events.jsonl  a verbatim local copy of the host's <output_dir>/events.jsonl, appended from
//                 the saved offset; its size IS the offset reached on the host (complete lines only),
//                 less eventShift once the host's file was cut under it (core/runs/copy.ts)
//   stdout.log / stderr.log  verbatim copies of the trainer's output, appended the same way
//   recipe.yaml   the recipe the latest attempt started with (snapshotRecipe), read by compare's config diff
//   recipe.before-attempt-N.yaml  the one it replaced, when a resume (attempt N) started from an edited recipe
// Writers: the launcher creates run.json (launch, resume, cancel's request); the launch
// monitor appends the copies and rewrites run.json as the run goes, under the run's lock
// (withRunLock), so several followers (editor, CLI, another window) never write the same bytes.
// Readers (dashboard, Runs view, CLI) use listRuns / readRun / watchRun, or in one window the
// monitor's parsed events (core/runs/feed.ts). No vscode import: shared by the editor and the CLI.
import { EventEmitter } from 'node:events';
import { readFileSync, readlinkSync, watch as fsWatch, type FSWatcher } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile, stat, open, utimes } from 'node:fs/promises';
import { hostname, uptime } from 'node:os';
import { join } from 'node:path';
import { escapeControls } from '../escape';
import { EventTail, parseEventChunk, readEventsFrom, type BudgetSources, type ParseProblem, type RunEvent } from './events';
import { DERIVED_STATES } from './state';

export type TargetKind = 'local' | 'ssh' | 'slurm';
export type RunState =
  | 'preparing' // syncing files / building the environment
  | 'queued' // SLURM job pending
  | 'starting' // process started, no run_started yet
  | 'running'
  | 'unresponsive' // running, but no event for longer than the heartbeat timeout
  | 'cancelling'
  | 'requeued' // SLURM requeued the job (preemption, node failure, scontrol requeue): the same run starts again
  | 'completed'
  | 'failed'
  | 'cancelled'
  // SLURM ended the job for a reason of its own (runs/state.ts SLURM_END_STATES)
  | 'preempted'
  | 'node_failed'
  | 'timed_out'
  | 'out_of_memory';

// declared with the state machine (runs/state.ts, no node imports), where the webviews take it from too
export { TERMINAL_STATES } from './state';

export interface RunRecord {
  id: string;
  /** Recipe path relative to the workspace root. */
  recipe: string;
  target: string;
  targetKind: TargetKind;
  /** Human-readable host ("local", "user@host:port"). */
  host: string;
  /** Folder of the project on the host (synced runtime + recipe). */
  projectDir: string;
  /** Folder of this run on the host: wrapper script, logs, exit code, pid. */
  remoteDir: string;
  /** The trainer's --output_dir on the host (events.jsonl and checkpoints inside). */
  outputDir: string;
  /** Python interpreter used on the host. */
  python: string;
  pid?: number;
  pgid?: number;
  jobId?: string;
  state: RunState;
  /** Process exit code (or SLURM exit code) once known. */
  exitCode?: number | null;
  error?: string | null;
  /** Byte offset reached in the host's events.jsonl (== size of the local copy, less eventShift). */
  eventOffset: number;
  /** Set once the host's events.jsonl was cut under the copy: the local copy keeps its lines and
   * is this many bytes longer than the host offset reached (core/runs/copy.ts). */
  eventShift?: number;
  /** Set once the host's events.jsonl was cut under the copy: the host's file as the copy last saw
   * it, as byte ranges of the local copy (core/runs/copy.ts CopyView). */
  eventView?: Array<[number, number]>;
  stdoutOffset: number;
  stderrOffset: number;
  lastSeq?: number;
  /** run_started.budgets of the current attempt: where the safety budgets came from. */
  budgets?: BudgetSources | null;
  /** run_started.versions of the current attempt: the stack the run used (python, torch, transformers, trl, ...). */
  versions?: Record<string, string>;
  step?: number;
  maxSteps?: number;
  reward?: number | null;
  /** Unix seconds of the last event seen (heartbeat staleness). */
  lastEventTime?: number;
  createdAt: number;
  /** When the current attempt started (every start and resume sets it again). */
  startedAt?: number;
  /**
   * The step this attempt's trainer started from (run_started.resumed_from's checkpoint-N; 0 for a
   * fresh start; absent: 0) and when its run_started was seen (local clock): the ETA is paced by
   * the steps since and the time since, so a resume or a requeue does not count earlier work.
   */
  startStep?: number;
  attemptSeenAt?: number;
  finishedAt?: number;
  updatedAt: number;
  /** The exact command (or sbatch line) that started the run, as previewed. */
  command: string;
  /** How many times the run was started (1 + resumes). */
  attempts: number;
  cancelRequested?: boolean;
  /** Random per start, in the run's environment as CONSCIENCE_LAUNCH_TOKEN (cancel's sweep). */
  launchToken?: string;
  /** run_started seen in the current attempt. */
  sawStarted?: boolean;
  /** run_finished of the current attempt (time: the event's, Unix s: when the run ended, finishedAt). */
  finished?: { status: 'completed' | 'failed' | 'cancelled'; exit_code: number; error?: string | null; time?: number };
  /** Local clock (Unix s) when new event bytes last arrived (heartbeat staleness). */
  lastActivityAt?: number;
  /** Byte offset of events.jsonl where the current attempt began. */
  attemptOffset?: number;
  /** The process preparing the current attempt (launch or resume; set while `preparing`): a run
   * whose launcher is gone is not left preparing for ever (interruptedLaunch). Absent in records
   * written before it existed: such a run is left as it is. */
  launcher?: LauncherId;
  /** When (Unix s) the launcher began to submit the run; set from just before its process or
   * job is started until its handle is recorded. A run whose launcher died then may be running
   * without a recorded handle: the host is asked (TargetDriver.find) before it is called
   * interrupted, and for SUBMIT_GRACE_S a submit still on its way is waited for. */
  submitting?: number;
  /** The SLURM job of the attempt before a resume: the job found for this attempt is a later one. */
  supersededJob?: string;
}

/**
 * Who is preparing a run: the launching process (the CLI, or the editor's extension host) and
 * the machine it runs on. `host` is the host name plus, on Linux, the pid namespace (a container
 * with the same name has pids of its own); `boot` tells one boot from the next (Linux: boot_id,
 * elsewhere the boot time); `start` is the process's start time (Linux: /proc/PID/stat), so a pid
 * reused by another process is not taken for the launcher.
 */
export interface LauncherId {
  pid: number;
  host: string;
  boot: string;
  start?: string;
}

function procStat(pid: number): { start: string; zombie: boolean } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ... field 22 is starttime; comm may hold spaces and parentheses
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return f[19] ? { start: f[19], zombie: f[0] === 'Z' || f[0] === 'X' } : undefined;
  } catch {
    return undefined;
  }
}

let machine: { host: string; boot: string } | undefined;
function thisMachine(): { host: string; boot: string } {
  if (machine) return machine;
  let ns = '';
  let boot: string;
  try {
    ns = ':' + readlinkSync('/proc/self/ns/pid');
  } catch {
    /* not Linux */
  }
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    boot = `t${Math.round(Date.now() / 1000 - uptime())}`;
  }
  return (machine = { host: hostname() + ns, boot });
}

/** This process as a run's launcher (recorded in the run while it prepares). */
export function launcherIdentity(pid = process.pid): LauncherId {
  const m = thisMachine();
  const st = procStat(pid);
  return { pid, host: m.host, boot: m.boot, ...(st ? { start: st.start } : {}) };
}

/**
 * Whether the recorded launcher is known to be gone: on this machine, its process no longer
 * exists (or the pid is another process now), or the machine restarted since. A launcher on
 * another machine, or a record without one, is not known to be gone.
 */
export function launcherGone(l: LauncherId | undefined): boolean {
  if (!l || typeof l !== 'object' || !Number.isInteger(l.pid) || l.pid <= 0 || typeof l.host !== 'string' || typeof l.boot !== 'string') return false;
  const m = thisMachine();
  if (l.host !== m.host) return false;
  if (l.boot !== m.boot) {
    // the boot time read from the uptime drifts by a second or so; a real restart moves it more
    const a = /^t(\d+)$/.exec(l.boot);
    const b = /^t(\d+)$/.exec(m.boot);
    if (!(a && b && Math.abs(Number(a[1]) - Number(b[1])) <= 120)) return true;
  }
  try {
    process.kill(l.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    // EPERM: a process of another user has the pid (told apart below by its start time)
  }
  if (l.start !== undefined) {
    const st = procStat(l.pid);
    if (!st || st.zombie || st.start !== l.start) return true;
  }
  return false;
}

/** The error of a run whose launcher ended before its process or job was started. */
export const LAUNCH_INTERRUPTED = 'launch interrupted';

/**
 * How long after a dead launcher began its submit the host is given for the submit to land (an
 * sbatch or a remote start command carries on after the launcher died): a process or job not
 * found before then may still appear; one not found after it never started.
 */
export const SUBMIT_GRACE_S = 120;

/**
 * Marks a `preparing` run whose launcher is gone (launcherGone) as failed ("launch interrupted"),
 * in `rec`; true when it did. Any other run, a preparing one whose launcher is alive, on
 * another machine or not recorded, and one whose launcher died while submitting it
 * (launchMayHaveStarted: the host decides), is left as it is.
 */
export function interruptedLaunch(rec: RunRecord): boolean {
  if (rec.state !== 'preparing' || rec.submitting || !launcherGone(rec.launcher)) return false;
  rec.state = 'failed';
  rec.error = LAUNCH_INTERRUPTED;
  rec.finishedAt = Date.now() / 1000;
  return true;
}

/**
 * Whether a preparing run's launcher died while it submitted the run: its process or job may
 * be running without a recorded handle, so only the host can tell (the monitor asks it:
 * TargetDriver.find, then the run is adopted or marked interrupted).
 */
export function launchMayHaveStarted(rec: RunRecord): boolean {
  return rec.state === 'preparing' && !!rec.submitting && launcherGone(rec.launcher);
}

/** interruptedLaunch on the stored record, under the run's lock (the refresh of the Runs view and `conscience runs`). */
export async function settleInterruptedLaunch(root: string, id: string): Promise<RunRecord | undefined> {
  return withRunLock(root, id, async () => {
    const rec = await readRun(root, id);
    if (rec && interruptedLaunch(rec)) await writeRun(root, rec);
    return rec;
  }, { wait: true });
}

export function runsDir(root: string): string {
  return join(root, '.conscience', 'runs');
}
/** Whether `id` can name a run's folder (letters, digits, . _ -; no path). */
export function isRunId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id);
}
export function runDir(root: string, id: string): string {
  if (!isRunId(id)) throw new Error(`invalid run id '${id}'`);
  return join(runsDir(root), id);
}

/** A run's folder (or its run.json) is not there: deleted, or never created. */
export class NoRunError extends Error {
  constructor(readonly runId: string, where: string) {
    super(`no run '${runId}' in ${where}`);
  }
}

/** Every state a run.json may hold. */
export const RUN_STATES: ReadonlySet<RunState> = new Set<RunState>(['preparing', ...DERIVED_STATES]);

/** Reads one run's record, or undefined when there is no such run. */
export async function readRun(root: string, id: string): Promise<RunRecord | undefined> {
  let text: string;
  try {
    text = await readFile(join(runDir(root, id), 'run.json'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let rec: RunRecord;
  const file = join(runDir(root, id), 'run.json');
  try {
    rec = JSON.parse(text) as RunRecord;
  } catch (err) {
    throw new Error(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  // what every reader relies on: a record missing them is not a run (listRuns skips it)
  const o = rec as unknown as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${file}: not a run record (a JSON object)`);
  const missing = ['id', 'state', 'recipe', 'target'].filter((k) => typeof o[k] !== 'string');
  if (missing.length) throw new Error(`${file}: not a run record (no string ${missing.join(', ')})`);
  // a run folder copied aside (`cp -r RUN backup`) holds the other run's record: every verb would
  // act on that run (its logs, its process, its host folder), so it is not read as a run
  if (rec.id !== id) throw new Error(`${file}: id '${escapeControls(rec.id)}' does not match its folder '${id}' (a copy of run '${escapeControls(rec.id)}'?)`);
  if (!RUN_STATES.has(rec.state)) throw new Error(`${file}: not a run record (state '${escapeControls(rec.state)}' is none of ${[...RUN_STATES].join(', ')})`);
  return withNumbers(rec);
}

/**
 * The numbers every reader formats (reward, step, maxSteps, the times, the exit code) are numbers
 * or absent: a run.json written before event fields were validated, or edited by hand, may hold
 * `"reward": "high"` (which made `conscience runs` and the Runs view throw: "toFixed is not a
 * function"), `"startedAt": "yesterday"` (ELAPSED NaNmNaNs) or `"exitCode": "x"`.
 */
function withNumbers(rec: RunRecord): RunRecord {
  if (!rec || typeof rec !== 'object') return rec;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (rec.reward !== undefined && rec.reward !== null && !num(rec.reward)) rec.reward = null;
  if (rec.step !== undefined && !num(rec.step)) delete rec.step;
  if (rec.maxSteps !== undefined && !num(rec.maxSteps)) delete rec.maxSteps;
  if (rec.exitCode !== undefined && rec.exitCode !== null && !(num(rec.exitCode) && Number.isInteger(rec.exitCode))) delete rec.exitCode;
  for (const k of ['startedAt', 'finishedAt', 'attemptSeenAt', 'lastActivityAt', 'lastEventTime', 'updatedAt'] as const) if (rec[k] !== undefined && !num(rec[k])) delete rec[k];
  // the listing is sorted by it: else the start, else unknown (0)
  if (!num(rec.createdAt)) rec.createdAt = rec.startedAt ?? 0;
  return rec;
}

/**
 * Every run in the store, newest first. Folders without a readable run.json are skipped; a
 * run.json that cannot be read or is not a run record (corrupted, truncated) is told to
 * `skipped` with readRun's error ("FILE: why"), so a caller can say so rather than hide the run.
 */
export async function listRuns(root: string, skipped?: (name: string, err: Error) => void): Promise<RunRecord[]> {
  let names: string[];
  try {
    names = await readdir(runsDir(root));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: RunRecord[] = [];
  for (const name of names) {
    if (!isRunId(name)) continue; // not a run folder's name (a stray file)
    try {
      const r = await readRun(root, name);
      if (r) out.push(r);
    } catch (err) {
      // a broken folder is not listed as a run; the caller may say why
      skipped?.(name, err as Error);
    }
  }
  return out.sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
}

/** Writes `name` in a run's folder through a temporary file and a rename: a reader never sees half of it. */
async function writeAtomic(dir: string, name: string, data: string | Buffer): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, join(dir, name));
}

/**
 * Writes run.json atomically so a reader never sees half a record. Creates the run's folder,
 * unless `existing`: a follower's write (the monitor's) does not bring back a run deleted
 * meanwhile, it fails with NoRunError.
 */
export async function writeRun(root: string, rec: RunRecord, opts: { existing?: boolean } = {}): Promise<void> {
  const dir = runDir(root, rec.id);
  if (!opts.existing) await mkdir(dir, { recursive: true });
  rec.updatedAt = Date.now() / 1000;
  try {
    await writeAtomic(dir, 'run.json', JSON.stringify(rec, null, 2) + '\n');
  } catch (err) {
    if (opts.existing && (err as NodeJS.ErrnoException).code === 'ENOENT') throw new NoRunError(rec.id, runsDir(root));
    throw err;
  }
}

/** The recipe the latest attempt started with, kept beside the run (the workspace file may change after): what compare's config diff reads. */
export const RECIPE_SNAPSHOT = 'recipe.yaml';

/** The name an attempt's predecessor recipe is kept under when a resume starts from a changed one. */
export const recipeBeforeAttempt = (attempt: number): string => `recipe.before-attempt-${attempt}.yaml`;

/**
 * Copies the recipe an attempt starts with into the run's folder (launchRun and resumeRun do,
 * before the run starts): `recipe.yaml` is always what the latest attempt trains with. A resume
 * from a recipe edited since keeps the one it replaces as `recipe.before-attempt-N.yaml` (N: the
 * resumed attempt), so compare shows the config that now governs the run and nothing is lost.
 * Returns that file's name when there is one.
 */
export async function snapshotRecipe(root: string, id: string, recipe: string | Buffer, attempt = 1): Promise<string | undefined> {
  const dir = runDir(root, id);
  await mkdir(dir, { recursive: true });
  // the bytes the launcher planned from and gave the trainer, or a file's
  const now = typeof recipe === 'string' ? await readFile(recipe) : recipe;
  let kept: string | undefined;
  if (attempt > 1) {
    const before = await readFile(join(dir, RECIPE_SNAPSHOT)).catch(() => undefined);
    if (before && !before.equals(now)) {
      kept = recipeBeforeAttempt(attempt);
      await writeFile(join(dir, kept), before);
    }
  }
  await writeAtomic(dir, RECIPE_SNAPSHOT, now);
  return kept;
}

/** All events of a run's local copy. */
export async function readRunEvents(root: string, id: string): Promise<RunEvent[]> {
  return (await readEventsFrom(join(runDir(root, id), 'events.jsonl'), 0)).events;
}

const RUN_STARTED = Buffer.from('run_started');

/**
 * The first or the last `run_started` event of a run's local copy (a resumed run has one per
 * attempt), read without holding the file: it is scanned in 1 MiB pieces and only the lines that
 * hold the word `run_started` are parsed (a run's events.jsonl can be gigabytes of samples). The
 * first one is usually line 1, so `first` reads little. Undefined when there is none or no file.
 */
export async function readRunStarted(root: string, id: string, which: 'first' | 'last'): Promise<RunEvent | undefined> {
  let fh;
  try {
    fh = await open(join(runDir(root, id), 'events.jsonl'), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let found: RunEvent | undefined;
  const take = (line: Buffer): boolean => {
    if (!line.includes(RUN_STARTED)) return false;
    const got = parseEventChunk(Buffer.concat([line, Buffer.from('\n')]), 0).events[0];
    if (got?.type !== 'run_started') return false;
    found = got;
    return which === 'first';
  };
  try {
    const piece = Buffer.alloc(1 << 20);
    let rest: Buffer[] = [];
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(piece, 0, piece.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      const chunk = piece.subarray(0, bytesRead);
      let from = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
        const line = rest.length ? Buffer.concat([...rest, chunk.subarray(from, nl)]) : chunk.subarray(from, nl);
        rest = [];
        from = nl + 1;
        if (take(line)) return found;
      }
      if (from < chunk.length) rest.push(Buffer.from(chunk.subarray(from)));
    }
    if (rest.length) take(Buffer.concat(rest)); // a last line without its newline (a writer mid-append)
    return found;
  } finally {
    await fh.close();
  }
}

/**
 * Size of a local append-only copy, cut back to its last complete line: a partial line left by
 * a crash mid-append is dropped so the next append starts exactly where the host's file has a
 * line boundary. The size is then the offset to resume from on the host.
 */
export async function completeSize(file: string): Promise<number> {
  let fh;
  try {
    fh = await open(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return 0;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    if (last[0] === 0x0a) return size;
    // scan back for the last newline
    const chunk = 65536;
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk);
      const buf = Buffer.alloc(end - start);
      await fh.read(buf, 0, buf.length, start);
      const nl = buf.lastIndexOf(0x0a);
      if (nl >= 0) {
        await fh.truncate(start + nl + 1);
        return start + nl + 1;
      }
      end = start;
    }
    await fh.truncate(0);
    return 0;
  } finally {
    await fh.close();
  }
}

export interface RunWatcher {
  /** 'events' (RunEvent[]) when new complete lines land in the local copy; 'run' (RunRecord) when run.json changes. */
  on(ev: 'events', fn: (events: RunEvent[]) => void): this;
  on(ev: 'run', fn: (run: RunRecord) => void): this;
  /** Lines of events.jsonl that are not valid events (docs/events.md), or a truncation noticed: reported once, skipped. */
  on(ev: 'problems', fn: (problems: ParseProblem[]) => void): this;
  on(ev: 'error', fn: (err: Error) => void): this;
  close(): void;
}

/**
 * Watches a run's local store: emits every event once, in order, starting at `fromOffset`
 * (0 = replay the whole file first), and the record whenever run.json changes. Uses fs.watch
 * with a polling fallback (`pollMs`), so it works on every file system.
 */
export function watchRun(root: string, id: string, opts: { fromOffset?: number; pollMs?: number } = {}): RunWatcher {
  const dir = runDir(root, id);
  const em = new EventEmitter() as EventEmitter & RunWatcher;
  const tail = new EventTail(join(dir, 'events.jsonl'), opts.fromOffset ?? 0);
  let runMtime = 0;
  let closed = false;
  let busy = false;
  let again = false;
  let watcher: FSWatcher | undefined;
  const tick = async () => {
    if (closed) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        const r = await tail.read();
        if (r.problems.length && !closed) em.emit('problems', r.problems);
        if (r.events.length && !closed) em.emit('events', r.events);
        try {
          const st = await stat(join(dir, 'run.json'));
          if (st.mtimeMs !== runMtime) {
            runMtime = st.mtimeMs;
            const rec = await readRun(root, id);
            if (rec && !closed) em.emit('run', rec);
          }
        } catch {
          /* not written yet */
        }
      } while (again && !closed);
    } catch (err) {
      if (!closed && em.listenerCount('error')) em.emit('error', err as Error);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(tick, opts.pollMs ?? 500);
  timer.unref?.();
  try {
    watcher = fsWatch(dir, () => void tick());
    watcher.on('error', () => undefined);
  } catch {
    /* folder not there yet: polling covers it */
  }
  em.close = () => {
    closed = true;
    clearInterval(timer);
    watcher?.close();
  };
  setImmediate(tick);
  return em;
}

/** A lock not refreshed for this long, whose holder cannot be checked (another machine, an older version's lock), is taken as left by a dead process. */
const LOCK_STALE_MS = 60_000;
/** How often a holder refreshes its lock's age (mtime), so a long pass is never taken for a dead one. */
const LOCK_REFRESH_MS = 10_000;
/** A takeover's own lock (`.lock.break`) is held for a few file operations; older, its taker died. */
const BREAK_STALE_MS = 10_000;
const OWNER = 'owner.json';

interface LockOwner extends LauncherId {
  /** Random per acquisition: the release removes the lock only while it is still this one. */
  token: string;
  /** Unix ms when it was taken. */
  since: number;
}

async function lockOwner(lock: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(join(lock, OWNER), 'utf8')) as LockOwner;
    return o && typeof o === 'object' && typeof o.token === 'string' ? o : undefined;
  } catch {
    return undefined; // an older version's lock, or one whose owner is being written
  }
}

function describeOwner(o: LockOwner | undefined, ageMs: number): string {
  const age = `${Math.round(ageMs / 1000)} s ago`;
  return o ? `pid ${o.pid} on ${o.host.split(':')[0]}, taken ${Math.round((Date.now() - o.since) / 1000)} s ago` : `no holder recorded, last refreshed ${age}`;
}

/**
 * Whether a held lock is left by a dead process: its holder (owner.json) ran on this machine and
 * is gone (launcherGone), at once; a holder that is alive, never; one on another machine, or no
 * holder recorded, when the lock has not been refreshed for LOCK_STALE_MS.
 */
function lockStale(o: LockOwner | undefined, mtimeMs: number): boolean {
  if (o && o.host === thisMachine().host) return launcherGone(o);
  return Date.now() - mtimeMs > LOCK_STALE_MS;
}

/**
 * Removes a stale lock, once: takers serialise through `.lock.break` (an O_EXCL-style mkdir) and
 * look at the lock again inside it, so a lock another taker has just taken over (a live holder
 * now) is never removed. True when the caller should try to take the lock again at once.
 */
async function breakStale(lock: string, seen: LockOwner | undefined): Promise<boolean> {
  const brk = `${lock}.break`;
  try {
    await mkdir(brk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // another taker is at it; its own lock is left only by one that died in these few steps
    const st = await stat(brk).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > BREAK_STALE_MS) await rm(brk, { recursive: true, force: true });
    return false;
  }
  try {
    const st = await stat(lock).catch(() => undefined);
    if (!st) return true; // released meanwhile
    const now = await lockOwner(lock);
    // the same lock as judged stale (the same holder, or still none), and still stale
    if ((now?.token ?? '') !== (seen?.token ?? '') || !lockStale(now, st.mtimeMs)) return false;
    await rm(lock, { recursive: true, force: true });
    return true;
  } finally {
    await rm(brk, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` holding the run's lock (an O_EXCL-style mkdir of `<run>/.lock`, with its holder's
 * identity in `.lock/owner.json`), so that several followers of one run (the editor, a CLI,
 * another window) never append the same bytes twice or write back a stale run.json. A lock
 * whose holder was a process of this machine that is gone (a killed CLI, a closed window) is
 * taken over at once; one whose holder is alive is waited for, whatever its age (the holder
 * refreshes it while it works); one held from another machine, or by an older version, is taken
 * as left by a dead process once it is 60 s old. Waits up to `timeoutMs` (default 90 s: past
 * that age), then fails naming the holder. With `wait: false`, returns undefined at once when
 * another process holds it. The run's folder must exist: a lock never creates it (a follower
 * does not bring back a deleted run), NoRunError when it is gone.
 */
export async function withRunLock<T>(root: string, id: string, fn: () => Promise<T>, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<T | undefined> {
  const dir = runDir(root, id);
  const lock = join(dir, '.lock');
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  const me: LockOwner = { ...launcherIdentity(), token: randomBytes(8).toString('hex'), since: Date.now() };
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NoRunError(id, runsDir(root));
      if (code !== 'EEXIST') throw err;
      const st = await stat(lock).catch(() => undefined);
      if (!st) continue; // released meanwhile
      const owner = await lockOwner(lock);
      if (lockStale(owner, st.mtimeMs)) {
        if (await breakStale(lock, owner)) continue;
      }
      if (!opts.wait) return undefined;
      if (Date.now() > deadline) throw new Error(`run ${id} is locked by another process (${describeOwner(owner, Date.now() - st.mtimeMs)}): ${lock}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  // who holds it: a waiter on this machine takes it over at once should this process die
  await writeFile(join(lock, OWNER), JSON.stringify(me)).catch(() => undefined);
  const refresh = setInterval(() => {
    const t = new Date();
    void utimes(lock, t, t).catch(() => undefined);
  }, LOCK_REFRESH_MS);
  refresh.unref?.();
  try {
    return await fn();
  } finally {
    clearInterval(refresh);
    // only while it is still this one (not one taken over after this process was thought dead)
    const now = await lockOwner(lock);
    if (!now || now.token === me.token) await rm(lock, { recursive: true, force: true });
  }
}
