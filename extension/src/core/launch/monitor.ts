// Follows a run: tails the host's events.jsonl, stdout and stderr from the offsets reached in
// the local store (the local copies' sizes), appends the new complete bytes verbatim, asks the
// host about the process or SLURM job, and records the derived state. A dropped connection is
// reopened and the tail continues from the same offsets: nothing lost, nothing duplicated.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyEvalOutputs } from '../eval/store';
import { EventTail, parseEventChunk, type RunEvent } from '../runs/events';
import { copyEventLines } from '../runs/copy';
import { deriveState } from '../runs/state';
import { completeSize, interruptedLaunch, launchMayHaveStarted, NoRunError, readRun, SUBMIT_GRACE_S, runDir as localRunDir, runsDir, TERMINAL_STATES, withRunLock, writeRun, type RunRecord } from '../runs/store';
import { LocalHost, type Host } from './host';
import { driverFor, type Observation } from './driver';
import type { LaunchSession } from './session';

// how the host is asked lives in the target's driver (driver-process.ts, driver-slurm.ts)
export { processStatus, type ProcessStatus } from './driver-process';
export { slurmStatus, type SlurmObservation } from './driver-slurm';

export interface MonitorOptions {
  /** Milliseconds between event polls (default 250). */
  intervalMs?: number;
  /** Milliseconds between process/job status checks (default 1000). */
  statusMs?: number;
  /** Seconds without new events before a running run is `unresponsive`, for targets that set no
   * heartbeatTimeout of their own (default 90; the editor passes conscience.launch.heartbeatTimeout). */
  heartbeatTimeoutS?: number;
  /** How long follow() waits, after the trainer's run_finished, for the process or job to end (default 60 s). */
  settleMs?: number;
  /** The grace period (s) of a cancel sent to a run adopted after its launcher died (default: the target's cancelGrace, else 30). */
  cancelGrace?: number;
}

/**
 * Emits 'events' (RunEvent[] in order, each once, with their span and lines: core/runs/feed.ts
 * EventChunk; an empty list when the file was cut or only lines without an event came), 'problems' (ParseProblem[]: bad event lines, skipped), 'stdout'/'stderr' (Buffer), 'run' (record
 * after each change), 'disconnected' (Error) and 'reconnected'.
 */
export class RunMonitor extends EventEmitter {
  private stopped = false;
  private lastStatusAt = 0;
  private observed: Observation = {};
  private disconnected = false;
  private lastHost?: Host;
  private emitted?: { events: EventTail; stdout: number; stderr: number };
  private readonly local = new LocalHost();

  constructor(
    private readonly session: LaunchSession,
    readonly runId: string,
    private readonly opts: MonitorOptions = {},
  ) {
    super();
  }

  /** Appends the host's new bytes of a log to its local copy, PIECE at a time; returns the offset reached. */
  private async tail(host: Host, remote: string, local: string): Promise<number> {
    let offset = await sizeOf(local);
    for (;;) {
      const buf = await host.readFrom(remote, offset, PIECE);
      if (!buf || !buf.length) return offset;
      await appendFile(local, buf);
      offset += buf.length;
      if (buf.length < PIECE) return offset;
    }
  }

  /**
   * One pass: status (when due), then events and logs, then the derived state. Several
   * followers of a run (editor, CLI) take turns through the run's lock; each emits what
   * reached the local store since it last looked, whoever fetched it.
   */
  async pollOnce(): Promise<RunRecord | undefined> {
    const root = this.session.root;
    const dir = localRunDir(root, this.runId);
    if (!this.emitted) {
      this.emitted = {
        events: new EventTail(join(dir, 'events.jsonl'), await completeSize(join(dir, 'events.jsonl')).catch(() => 0)),
        stdout: await sizeOf(join(dir, 'stdout.log')),
        stderr: await sizeOf(join(dir, 'stderr.log')),
      };
    }
    const rec = (await withRunLock(root, this.runId, () => this.pollLocked(), { wait: false })) ?? (await readRun(root, this.runId));
    await this.emitNew(dir);
    return rec;
  }

  private async emitNew(dir: string): Promise<void> {
    const e = this.emitted!;
    // a backlog (a run nobody followed for a day) is handed over PIECE at a time, never held whole
    for (let more = true; more; ) {
      const from = e.events.offset;
      const r = await e.events.read({ maxBytes: PIECE });
      more = !!r.more;
      // bad lines (docs/events.md) and a truncated file are reported, once per follower, and skipped
      if (r.problems.length) this.emit('problems', r.problems);
      // the bytes [from, to) of the local events.jsonl these events came from, and each line's end and
      // fingerprint: an in-window reader (the dashboard, core/runs/feed.ts) joins them to what it read
      // from the file, without gap or repeat. A cut is told even with no new line (from -1), so the
      // reader goes back to the file rather than wait past the cut for the monitor's next chunks;
      // lines with no event (blank, bad) are handed over too, so the reader stays where the monitor is.
      if (r.events.length || r.rewound || r.marks?.ends.length) this.emit('events', r.events, { from: r.rewound ? -1 : from, to: e.events.offset, lines: r.marks });
    }
    for (const name of ['stdout', 'stderr'] as const) {
      for (;;) {
        const buf = await this.local.readFrom(join(dir, `${name}.log`), e[name], PIECE);
        if (!buf || !buf.length) break;
        e[name] += buf.length;
        this.emit(name, buf);
        if (buf.length < PIECE) break;
      }
    }
  }

  /**
   * One status/copy pass for a caller that already holds the run's lock (cancel, resume): the
   * record as the host has it now, so a decision is never taken on a stale state.
   */
  async refreshLocked(): Promise<RunRecord | undefined> {
    this.lastStatusAt = 0;
    return this.pollLocked();
  }

  private async pollLocked(): Promise<RunRecord | undefined> {
    const root = this.session.root;
    const rec = await readRun(root, this.runId);
    if (!rec) throw new NoRunError(this.runId, runsDir(root));
    // preparing, and the process that launched it is gone (a closed window, a killed CLI): it never starts
    if (interruptedLaunch(rec)) {
      await writeRun(root, rec, { existing: true });
      this.emit('run', rec);
      return rec;
    }
    const t = this.session.target(rec.target);
    let host: Host;
    try {
      host = await this.session.host(t);
      // a new connection (after a drop, noticed here or by an error) continues from the saved offsets
      if ((this.lastHost && host !== this.lastHost) || this.disconnected) {
        this.disconnected = false;
        this.emit('reconnected');
      }
      this.lastHost = host;
    } catch (err) {
      this.noteDisconnect(err as Error);
      return rec;
    }
    const dir = localRunDir(root, this.runId);
    const before = JSON.stringify(rec);
    // what this pass learnt from the events is recorded even when it ends early (a dropped
    // connection) or fails after copying them (a log that cannot be read, a full disk): they are
    // in the local copy, and the next pass copies from its end. (A pass that fails before, while
    // adopting a run or asking for its status, records nothing: it is asked again.)
    let copying = false;
    const save = async (): Promise<void> => {
      if (!copying || JSON.stringify(rec) === before) return;
      await writeRun(root, rec, { existing: true });
      this.emit('run', rec);
    };
    try {
      // its launcher died while submitting it: the host says whether its process or job started
      // (adopted, and followed from here as the launch would have; stopped, if a cancel came
      // meanwhile) or not (interrupted, or cancelled). A host that cannot tell (squeue failing)
      // throws: the run stays as it is, asked again at the next poll
      if (launchMayHaveStarted(rec)) {
        const driver = driverFor(rec.targetKind);
        const nowS = Date.now() / 1000;
        if (await driver.find(host, rec)) {
          rec.submitting = undefined;
          rec.startedAt = nowS;
          rec.lastActivityAt = nowS;
          if (rec.cancelRequested) {
            await driver.cancel(host, rec, this.opts.cancelGrace ?? t.cancelGrace ?? 30);
            rec.state = 'cancelling';
          }
        } else if (nowS - (rec.submitting ?? 0) < SUBMIT_GRACE_S) {
          // the submit may still be on its way (an sbatch or remote start the launcher left running)
          return rec;
        } else {
          rec.submitting = undefined;
          if (rec.cancelRequested) {
            rec.state = 'cancelled';
            rec.error = 'cancelled while its launch was submitting it; nothing had started';
            rec.finishedAt = nowS;
          } else interruptedLaunch(rec);
          await writeRun(root, rec, { existing: true });
          this.emit('run', rec);
          return rec;
        }
      }
      const now = Date.now();
      if (rec.state !== 'preparing' && now - this.lastStatusAt >= (this.opts.statusMs ?? 1000)) {
        this.lastStatusAt = now;
        this.observed = await driverFor(rec.targetKind).status(host, rec);
      }
      // events the local copy holds past those the record took in (a pass killed between its
      // copy and its record): taken in now, so the record never misses run_started or run_finished
      const local = join(dir, 'events.jsonl');
      copying = true;
      await this.applyCopied(rec, local);
      // events: complete lines only; a host file cut under the copy is noticed and its new lines
      // kept (core/runs/copy.ts); a backlog PIECE at a time
      const remoteEvents = `${rec.outputDir}/events.jsonl`;
      for (;;) {
        const was = rec.eventOffset;
        const ev = await copyEventLines((o, max) => host.readFrom(remoteEvents, o, max), local, rec.eventShift ?? 0, rec.eventView, PIECE);
        if (ev.cut) this.emit('problems', [{ file: `${host.label}:${remoteEvents}`, offset: ev.hostOffset, message: ev.cut }]);
        rec.eventShift = ev.shift || undefined;
        rec.eventView = ev.view;
        if (ev.bytes.length) {
          const { events } = parseEventChunk(ev.bytes, ev.localOffset);
          rec.lastActivityAt = Date.now() / 1000;
          this.apply(rec, events);
        }
        rec.eventOffset = ev.hostOffset;
        if (!ev.more || (!ev.bytes.length && ev.hostOffset <= was)) break;
      }
      const logs = driverFor(rec.targetKind).logs(rec);
      for (const [name, key] of [['stdout', 'stdoutOffset'], ['stderr', 'stderrOffset']] as const) {
        rec[key] = await this.tail(host, logs[name], join(dir, `${name}.log`));
      }
    } catch (err) {
      if (!host.connected || /not connected|No response|ECONNRESET|closed|Channel/i.test((err as Error).message)) {
        await this.session.drop(t);
        this.noteDisconnect(err as Error);
        await save().catch(() => undefined);
        return rec;
      }
      await save().catch(() => undefined);
      throw err;
    }
    if (rec.state !== 'preparing' && !(TERMINAL_STATES.has(rec.state) && rec.finishedAt)) {
      const t2 = this.session.target(rec.target);
      const out = deriveState({
        previous: rec.state,
        started: !!rec.sawStarted,
        finished: rec.finished,
        cancelRequested: rec.cancelRequested,
        now: Date.now() / 1000,
        lastActivity: rec.lastActivityAt ?? rec.startedAt ?? rec.createdAt,
        // the target's own (docs/launch.md: every target accepts heartbeatTimeout), else the caller's default
        heartbeatTimeout: t2.heartbeatTimeout ?? this.opts.heartbeatTimeoutS ?? 90,
        ...this.observed,
      });
      rec.state = out.state;
      if (out.terminal) {
        rec.exitCode = out.exitCode ?? null;
        rec.error = out.error ?? null;
        // the final exit code is known once the process or job is gone as well
        if (out.settled) {
          // an eval's results and completions are kept with the run: from another host, and from
          // this one too (a later run of the same recipe writes the same output_dir over them)
          try {
            await copyEvalOutputs((f) => host.readFrom(f), rec.outputDir, dir);
          } catch (err) {
            if (!host.connected) {
              this.noteDisconnect(err as Error);
              await save().catch(() => undefined); // settled at a later poll, once they are copied
              return rec;
            }
            this.emit('problems', [{ file: `${host.label}:${rec.outputDir}`, offset: 0, message: `the eval's results were not copied: ${(err as Error).message}` }]);
          }
          // when the run ended: its run_finished's time when the trainer wrote one (a run settled by
          // a later look, `conscience runs` a day after, does not count the time nobody looked)
          const now = Date.now() / 1000;
          const said = rec.finished?.time;
          rec.finishedAt = rec.finishedAt ?? (said !== undefined && said <= now && (!rec.startedAt || said >= rec.startedAt - 300) ? said : now);
          await driverFor(rec.targetKind).settle(host, rec);
        }
      }
    }
    copying = true;
    await save();
    return rec;
  }

  /**
   * Applies the events of the local copy past the record's end of it (eventOffset + eventShift:
   * the local copy's size when the record was last written), PIECE at a time. Nothing when the
   * record has them all, as after every pass that ended normally.
   */
  private async applyCopied(rec: RunRecord, local: string): Promise<void> {
    let at = (rec.eventOffset ?? 0) + (rec.eventShift ?? 0);
    const size = await completeSize(local);
    if (!(Number.isSafeInteger(at) && at >= 0 && at < size)) return;
    while (at < size) {
      const buf = await this.local.readFrom(local, at, PIECE);
      if (!buf || !buf.length) return;
      let end = buf.lastIndexOf(0x0a) + 1;
      let chunk = buf.subarray(0, end);
      if (!end) {
        // one line longer than PIECE: read to its end
        const nl = await this.local.readFrom(local, at);
        end = nl ? nl.indexOf(0x0a) + 1 : 0;
        if (!end) return;
        chunk = nl!.subarray(0, end);
      }
      this.apply(rec, parseEventChunk(chunk, at).events);
      at += end;
    }
  }

  private noteDisconnect(err: Error): void {
    if (!this.disconnected) {
      this.disconnected = true;
      this.emit('disconnected', err);
    }
  }

  private apply(rec: RunRecord, events: RunEvent[]): void {
    for (const e of events) {
      rec.lastSeq = e.seq;
      rec.lastEventTime = e.time;
      switch (e.type) {
        case 'run_started': {
          rec.sawStarted = true;
          // where this attempt's trainer starts (a resume or a requeue goes on from a checkpoint)
          const from = typeof e.resumed_from === 'string' ? /checkpoint-(\d+)\/?$/.exec(e.resumed_from) : null;
          rec.startStep = from ? Number(from[1]) : 0;
          rec.attemptSeenAt = Date.now() / 1000;
          // the same run started again (a requeued SLURM job): the previous attempt's end is not this one's
          rec.finished = undefined;
          if (typeof e.max_steps === 'number') rec.maxSteps = e.max_steps;
          if (e.budgets !== undefined) rec.budgets = e.budgets;
          if (e.versions) rec.versions = e.versions;
          break;
        }
        case 'metrics':
          rec.step = e.step;
          if (e.values && 'reward' in e.values) rec.reward = e.values.reward ?? null;
          break;
        case 'heartbeat':
        case 'checkpoint':
          if (typeof e.step === 'number') rec.step = e.step;
          break;
        case 'run_finished':
          rec.finished = { status: e.status, exit_code: e.exit_code, error: e.error ?? null, ...(typeof e.time === 'number' && Number.isFinite(e.time) ? { time: e.time } : {}) };
          break;
      }
    }
  }

  /** Set once follow() ended because the run's record is gone (its folder deleted). */
  deleted = false;

  /**
   * Polls until the run is settled (completed/failed/cancelled and the process gone) or stop().
   * Ends with undefined, and `deleted` set, when the run's record is gone (its folder deleted).
   */
  async follow(): Promise<RunRecord | undefined> {
    let rec: RunRecord | undefined;
    let settledPasses = 0;
    let terminalSince: number | undefined;
    while (!this.stopped) {
      try {
        rec = await this.pollOnce();
      } catch (err) {
        rec = await readRun(this.session.root, this.runId).catch(() => undefined);
        if (!rec && (err instanceof NoRunError || !existsSync(localRunDir(this.session.root, this.runId)))) {
          this.deleted = true;
          return undefined;
        }
        if (this.listenerCount('error')) this.emit('error', err);
      }
      if (!rec) {
        this.deleted = !existsSync(join(localRunDir(this.session.root, this.runId), 'run.json'));
        if (this.deleted) return undefined;
      }
      if (rec && !TERMINAL_STATES.has(rec.state)) terminalSince = undefined;
      if (rec && TERMINAL_STATES.has(rec.state)) {
        terminalSince ??= Date.now();
        // wait (bounded) for the process/job to end so its exit code is recorded, then one
        // more pass picks up bytes written just before the end
        if (rec.finishedAt || Date.now() - terminalSince > (this.opts.settleMs ?? 60_000)) {
          if (++settledPasses >= 2) break;
          this.lastStatusAt = 0;
          continue;
        }
      }
      await new Promise((res) => setTimeout(res, this.disconnected ? 1000 : this.opts.intervalMs ?? 250));
    }
    return rec;
  }

  stop(): void {
    this.stopped = true;
  }
}

/** How much of a file a pass reads at once: a backlog of gigabytes is copied and handed over in pieces. */
const PIECE = 8 * 1024 * 1024;

async function sizeOf(file: string): Promise<number> {
  const { stat } = await import('node:fs/promises');
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}
