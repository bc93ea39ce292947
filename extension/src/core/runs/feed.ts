// In one window, readers of a run (the dashboard) take the events the run monitor has already
// parsed instead of reading and parsing events.jsonl again. Between processes (the CLI, another
// window) the disk stays the bus: a run with no monitor here is read from its run store.
//
// RunFeed is the window's hub: the launch adapter attaches each monitor it starts, by the run's
// workspace folder and id (two folders of a multi-root workspace may each hold a run of one id,
// core/folders.ts runKey); a reader
// subscribes with followRun, which reads the local events.jsonl once up to where the monitor
// is, then takes the monitor's chunks (each names the bytes [from, to) it came from, and each
// line's end and fingerprint), so every event arrives once, in order, whichever side got there
// first, and a cut of the file inside lines taken from the monitor is found as if read here.
import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runKey } from '../folders';
import { EventTail, type LineMarks, type ParseProblem, type RunEvent } from './events';
import { readRun, runDir, type RunRecord } from './store';

/**
 * The file is read in batches of about this many bytes, each handed to the reader before the
 * next is read: a run's events.jsonl of hundreds of MB never sits in memory as one array.
 */
export const CATCH_UP_BATCH_BYTES = 16 * 1024 * 1024;

/**
 * What a monitor emits: parsed events with their byte span and the lines they came from (from =
 * -1: the file was cut under the monitor; then emitted even with no events, so a reader goes back
 * to the file).
 */
export interface EventChunk {
  events: RunEvent[];
  from: number;
  to: number;
  /** Each line's end and head fingerprint (EventTail.take). */
  lines?: LineMarks;
}

/** The monitor surface the feed needs (core/launch/monitor.ts RunMonitor): 'events' (events, span) and 'run' (record). */
export interface MonitorLike {
  on(ev: string, fn: (...a: any[]) => void): unknown;
  off(ev: string, fn: (...a: any[]) => void): unknown;
}

export interface RunReader {
  /** Which source feeds it now: the window's monitor or the run store on disk. */
  readonly source: 'monitor' | 'disk';
  close(): void;
}

export interface ReaderHandlers {
  events(events: RunEvent[]): void;
  run(rec: RunRecord): void;
  problems?(ps: ParseProblem[]): void;
  error?(err: Error): void;
}

export class RunFeed {
  private readonly monitors = new Map<string, MonitorLike>();
  private readonly changed = new EventEmitter();

  /** A monitor now follows run `id` of the workspace folder `root` in this window (until detach). */
  attach(root: string, id: string, m: MonitorLike): void {
    const key = runKey(root, id);
    this.monitors.set(key, m);
    this.changed.emit(key);
  }
  detach(root: string, id: string, m: MonitorLike): void {
    const key = runKey(root, id);
    if (this.monitors.get(key) === m) this.monitors.delete(key);
    this.changed.emit(key);
  }
  has(root: string, id: string): boolean {
    return this.monitors.has(runKey(root, id));
  }

  /**
   * Every event of run `id` of the folder `root` once, in file order, then what arrives: from this window's monitor
   * while one follows the run, else from the run store (polled every `pollMs`). Switches
   * between the two as monitors come and go (a resume starts one; a settled run's ends).
   */
  followRun(root: string, id: string, h: ReaderHandlers, opts: { pollMs?: number; batchBytes?: number } = {}): RunReader {
    const key = runKey(root, id);
    const tail = new EventTail(join(runDir(root, id), 'events.jsonl'), 0);
    let closed = false;
    let source: 'monitor' | 'disk' = 'disk';
    let watcher: { close(): void } | undefined;
    let runMtime = 0;
    let mon: MonitorLike | undefined;
    let chain = Promise.resolve();
    // one step at a time: a monitor chunk never overtakes the file read before it
    const serial = (fn: () => Promise<void> | void) => {
      chain = chain.then(fn).catch((err) => h.error?.(err as Error));
    };
    const catchUp = async () => {
      for (;;) {
        const r = await tail.read({ maxBytes: opts.batchBytes ?? CATCH_UP_BATCH_BYTES });
        if (closed) return;
        if (r.problems.length) h.problems?.(r.problems);
        if (r.events.length) h.events(r.events);
        if (!r.more) return;
      }
    };
    const onEvents = (events: RunEvent[], span?: { from: number; to: number; lines?: LineMarks }) =>
      serial(async () => {
        if (closed) return;
        // the monitor read these lines: the tail takes each with its end and fingerprint, as if read here
        if (span?.lines && span.from >= 0 && span.from === tail.offset && span.lines.from === span.from && tail.take(span.lines)) {
          if (events.length) h.events(events);
        } else await catchUp(); // a gap, an overlap, a rewind or a chunk without its lines: the file decides, from this reader's own tail
      });
    const onRun = (rec: RunRecord) => serial(() => { if (!closed) h.run(rec); });
    const use = () => {
      const m = this.monitors.get(key);
      if (m === mon && (m || watcher)) return;
      if (mon) {
        mon.off('events', onEvents);
        mon.off('run', onRun);
        mon = undefined;
      }
      watcher?.close();
      watcher = undefined;
      if (m) {
        source = 'monitor';
        mon = m;
        m.on('events', onEvents);
        m.on('run', onRun);
        serial(catchUp);
      } else {
        source = 'disk';
        // the run store on disk, polled (one tail, so nothing is read twice when a monitor comes back)
        const poll = () => serial(async () => {
          if (closed) return;
          await catchUp();
          try {
            const st = await stat(join(runDir(root, id), 'run.json'));
            if (st.mtimeMs !== runMtime) {
              runMtime = st.mtimeMs;
              const rec = await readRun(root, id);
              if (rec && !closed) h.run(rec);
            }
          } catch {
            /* no run.json yet */
          }
        });
        const timer = setInterval(poll, opts.pollMs ?? 1000);
        timer.unref?.();
        watcher = { close: () => clearInterval(timer) };
        poll();
      }
    };
    const onChange = () => use();
    this.changed.on(key, onChange);
    use();
    return {
      get source() {
        return source;
      },
      close: () => {
        closed = true;
        this.changed.off(key, onChange);
        mon?.off('events', onEvents);
        mon?.off('run', onRun);
        watcher?.close();
      },
    };
  }
}
