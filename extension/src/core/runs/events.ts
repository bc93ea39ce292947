// The event protocol of docs/events.md, typed, and a reader that resumes from a byte offset.
// Shared by the run store (launch), the dashboard and the CLI.
import { open, type FileHandle } from 'node:fs/promises';
import { escapeControls } from '../escape';
import { checkEvent, type RunFinishedStatus } from './event-fields';

export { RUN_FINISHED_STATUSES, type RunFinishedStatus } from './event-fields';

interface Base {
  seq: number;
  time: number;
  run_id?: string;
}
export interface RunStartedEvent extends Base {
  type: 'run_started';
  recipe_hash?: string;
  world_size?: number;
  versions?: Record<string, string>;
  resumed_from?: string | null;
  reward_funcs?: string[];
  max_steps?: number;
}
export interface MetricsEvent extends Base {
  type: 'metrics';
  step: number;
  values: Record<string, number | null>;
}
export interface SampleRow {
  prompt: string;
  completion: string;
  rewards: Record<string, number | null>;
  budget?: number | null;
  label?: string | null;
  /** The safety block's text (null: no block), the answer after it, and the block's tokens (runtime ≥ samples split). */
  safety?: string | null;
  answer?: string;
  safety_tokens?: number | null;
}
export interface SamplesEvent extends Base {
  type: 'samples';
  step: number;
  rows: SampleRow[];
}
export interface CheckpointEvent extends Base {
  type: 'checkpoint';
  step: number;
  path: string;
}
export interface HeartbeatEvent extends Base {
  type: 'heartbeat';
  step?: number;
}
export interface RunFinishedEvent extends Base {
  type: 'run_finished';
  status: RunFinishedStatus;
  exit_code: number;
  error?: string | null;
}
export type RunEvent =
  | RunStartedEvent
  | MetricsEvent
  | SamplesEvent
  | CheckpointEvent
  | HeartbeatEvent
  | RunFinishedEvent;

export interface ParseProblem {
  /** The events file, when the reader knows it. */
  file?: string;
  /** Byte offset of the line that could not be read. */
  offset: number;
  /** The line's seq, when it had an integer one (how a person finds the event). */
  seq?: number;
  message: string;
}

/** "FILE: seq N, byte O: message" on one line, the one way a bad event is shown (CLI, output channel). */
export function formatProblem(p: ParseProblem): string {
  const where = [p.seq !== undefined ? `seq ${p.seq}` : undefined, `byte ${p.offset}`].filter(Boolean).join(', ');
  return escapeControls(`${p.file ?? 'events.jsonl'}: ${where}: ${p.message}`);
}

/** A line longer than this is reported and skipped (a samples event with 4 long rows is ~100 KB). */
export const MAX_EVENT_LINE_BYTES = 16 * 1024 * 1024;
/** The reader reads a file in pieces of this size, so memory stays bounded by a piece plus one line. */
const READ_PIECE_BYTES = 4 * 1024 * 1024;

export interface ParseOptions {
  file?: string;
}

/**
 * Parses the complete lines of `chunk` (bytes read starting at `baseOffset`). Returns the
 * events, the offset just after the last complete line (where the next read starts), and the
 * lines that were not valid events: invalid JSON or a field that breaks docs/events.md. Those
 * are reported (file, seq, offset) and skipped, never fatal. The order of seq is not enforced
 * here: one corrupt line with a huge seq must not silence every event after it.
 */
export function parseEventChunk(chunk: Buffer, baseOffset: number, opts: ParseOptions = {}): {
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
  lastSeq?: number;
} {
  const events: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  let lastSeq: number | undefined;
  let start = 0;
  for (;;) {
    const nl = chunk.indexOf(0x0a, start);
    if (nl < 0) break;
    const offset = baseOffset + start;
    if (nl - start > MAX_EVENT_LINE_BYTES) {
      problems.push({ file: opts.file, offset, message: `line of ${nl - start} bytes is longer than ${MAX_EVENT_LINE_BYTES}: skipped` });
      start = nl + 1;
      continue;
    }
    const line = chunk.subarray(start, nl).toString('utf8').trim();
    start = nl + 1;
    if (!line) continue;
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch (err) {
      problems.push({ file: opts.file, offset, message: `invalid JSON: ${(err as Error).message}` });
      continue;
    }
    const seq = ev && typeof ev === 'object' && Number.isSafeInteger((ev as { seq?: unknown }).seq) ? ((ev as { seq: number }).seq) : undefined;
    const bad = checkEvent(ev);
    if (bad) {
      problems.push({ file: opts.file, offset, seq, message: `bad event, skipped: ${bad}` });
      continue;
    }
    lastSeq = lastSeq === undefined ? seq : Math.max(lastSeq, seq!);
    events.push(ev as RunEvent);
  }
  return { events, nextOffset: baseOffset + start, problems, lastSeq };
}

export interface ReadResult {
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
  /** The highest seq returned so far (or `afterSeq` when none). */
  lastSeq?: number;
  /** The file had shrunk or been replaced below `offset`, and was read again from its start. */
  rewound?: boolean;
}

/**
 * Reads the complete events of `file` from byte `offset` on, in bounded pieces. A missing file
 * reads as empty. A file that shrank below `offset`, or whose byte before `offset` is no longer
 * the end of a line, was truncated or replaced under the reader: that is reported and the file
 * is read again from its start, taking only events after `afterSeq` (the highest seq already
 * taken; the ones up to it are skipped, counted in the report), so nothing after the cut is
 * silently lost or taken twice.
 */
export async function readEventsFrom(file: string, offset = 0, opts: { afterSeq?: number } = {}): Promise<ReadResult> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], nextOffset: offset, problems: [], lastSeq: opts.afterSeq };
    throw err;
  }
  try {
    const { size } = await fh.stat();
    let rewound = false;
    let replaced = false;
    const problems: ParseProblem[] = [];
    if (offset > 0 && size < offset) {
      // cut back (truncated, or a writer restarted on a shorter copy): what is still there up to
      // its last complete line was read already; everything written after the cut is new
      rewound = true;
      const resume = await lastLineEnd(fh, size);
      problems.push({ file, offset, message: `the file shrank to ${size} bytes under the reader (it had read ${offset}): it was truncated; going on from byte ${resume}, so the events written after the cut are read` });
      offset = resume;
    } else if (offset > 0) {
      const before = Buffer.alloc(1);
      const { bytesRead } = await fh.read(before, 0, 1, offset - 1);
      if (bytesRead !== 1 || before[0] !== 0x0a) {
        // replaced by another file at least as long: where it was cut is unknown, so read it
        // again from the start and take the events after the last seq already taken
        rewound = replaced = true;
        problems.push({ file, offset, message: `the file was replaced under the reader (byte ${offset - 1} is no longer the end of a line): reading it again from the start` });
        offset = 0;
      }
    }
    if (size <= offset) return { events: [], nextOffset: offset, problems, lastSeq: opts.afterSeq, rewound };
    const events: RunEvent[] = [];
    let lastSeq = opts.afterSeq;
    let skippedOld = 0;
    let pos = offset; // start of the first line not yet parsed
    let longFrom: number | undefined; // start of an over-long line whose end is not found yet
    let carry = Buffer.alloc(0);
    let readTo = offset; // bytes read so far
    while (readTo < size) {
      const want = Math.min(READ_PIECE_BYTES, size - readTo);
      const piece = Buffer.alloc(want);
      const { bytesRead } = await fh.read(piece, 0, want, readTo);
      if (bytesRead === 0) break;
      readTo += bytesRead;
      let buf = carry.length ? Buffer.concat([carry, piece.subarray(0, bytesRead)]) : piece.subarray(0, bytesRead);
      carry = Buffer.alloc(0);
      let base = readTo - buf.length;
      if (longFrom !== undefined) {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) continue; // still inside the over-long line: drop these bytes
        problems.push({ file, offset: longFrom, message: `line of ${base + nl - longFrom} bytes is longer than ${MAX_EVENT_LINE_BYTES}: skipped` });
        longFrom = undefined;
        buf = buf.subarray(nl + 1);
        base += nl + 1;
        pos = base;
      }
      const r = parseEventChunk(buf, base, { file });
      for (const ev of r.events) {
        if (replaced && opts.afterSeq !== undefined && ev.seq <= opts.afterSeq) {
          skippedOld++;
          continue;
        }
        lastSeq = lastSeq === undefined ? ev.seq : Math.max(lastSeq, ev.seq);
        events.push(ev);
      }
      problems.push(...r.problems);
      pos = r.nextOffset;
      carry = buf.subarray(r.nextOffset - base);
      if (carry.length > MAX_EVENT_LINE_BYTES) {
        longFrom = pos;
        carry = Buffer.alloc(0);
      }
    }
    // an over-long line not finished yet: the next read starts at its beginning again
    if (skippedOld) problems.push({ file, offset: 0, message: `${skippedOld} event(s) with seq up to ${opts.afterSeq} are not taken again (read before the file was replaced; if they were rewritten, see the file itself)` });
    return { events, nextOffset: longFrom ?? pos, problems, lastSeq, rewound };
  } finally {
    await fh.close();
  }
}

/** The offset just after the last newline at or before `end` (0 when there is none). */
async function lastLineEnd(fh: FileHandle, end: number): Promise<number> {
  const piece = 64 * 1024;
  for (let hi = end; hi > 0; ) {
    const lo = Math.max(0, hi - piece);
    const buf = Buffer.alloc(hi - lo);
    const { bytesRead } = await fh.read(buf, 0, buf.length, lo);
    const nl = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (nl >= 0) return lo + nl + 1;
    hi = lo;
  }
  return 0;
}

/**
 * A reader that follows one events file: remembers its byte offset and the last seq taken, so a
 * truncated or replaced file is noticed (see readEventsFrom) and each event is taken once.
 */
export class EventTail {
  lastSeq?: number;
  constructor(
    readonly file: string,
    public offset = 0,
  ) {}

  async read(): Promise<{ events: RunEvent[]; problems: ParseProblem[]; rewound?: boolean }> {
    const r = await readEventsFrom(this.file, this.offset, { afterSeq: this.lastSeq });
    this.offset = r.nextOffset;
    this.lastSeq = r.lastSeq;
    return { events: r.events, problems: r.problems, rewound: r.rewound };
  }
}
