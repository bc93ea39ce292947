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
  /** Where the prompts' safety budgets came from (docs/events.md): counts by source and the allocator's status. */
  budgets?: BudgetSources | null;
}
export interface BudgetSources {
  source?: Record<string, number>;
  /** `used`, `not needed`, `disabled` or `failed: <why>`. */
  allocator?: string;
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
  /** Its 1-based line number in the file, when the reader knows it. */
  line?: number;
  /** The line's seq, when it had an integer one (how a person finds the event). */
  seq?: number;
  message: string;
}

/** "FILE:LINE: seq N, byte O: message" on one line, the one way a bad event is shown (CLI, output channel). */
export function formatProblem(p: ParseProblem): string {
  const where = [p.seq !== undefined ? `seq ${p.seq}` : undefined, `byte ${p.offset}`].filter(Boolean).join(', ');
  return escapeControls(`${p.file ?? 'events.jsonl'}${p.line !== undefined ? ':' + p.line : ''}: ${where}: ${p.message}`);
}

/** A line longer than this is reported and skipped (a samples event with 4 long rows is ~100 KB). */
export const MAX_EVENT_LINE_BYTES = 16 * 1024 * 1024;
/** The reader reads a file in pieces of this size, so memory stays bounded by a piece plus one line. */
const READ_PIECE_BYTES = 4 * 1024 * 1024;

export interface ParseOptions {
  file?: string;
  /** The 1-based line number of the chunk's first byte, when known: problems then carry theirs. */
  line?: number;
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
  /** Complete lines consumed (blank and skipped ones included). */
  lines: number;
} {
  const events: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  let lastSeq: number | undefined;
  let start = 0;
  let k = -1;
  for (;;) {
    const nl = chunk.indexOf(0x0a, start);
    if (nl < 0) break;
    k++;
    const offset = baseOffset + start;
    const lineNo = opts.line !== undefined ? opts.line + k : undefined;
    if (nl - start > MAX_EVENT_LINE_BYTES) {
      problems.push({ file: opts.file, offset, line: lineNo, message: `line of ${nl - start} bytes is longer than ${MAX_EVENT_LINE_BYTES}: skipped` });
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
      problems.push({ file: opts.file, offset, line: lineNo, message: `invalid JSON: ${(err as Error).message}` });
      continue;
    }
    const seq = ev && typeof ev === 'object' && Number.isSafeInteger((ev as { seq?: unknown }).seq) ? ((ev as { seq: number }).seq) : undefined;
    const bad = checkEvent(ev);
    if (bad) {
      problems.push({ file: opts.file, offset, line: lineNo, seq, message: `bad event, skipped: ${bad}` });
      continue;
    }
    lastSeq = lastSeq === undefined ? seq : Math.max(lastSeq, seq!);
    events.push(ev as RunEvent);
  }
  return { events, nextOffset: baseOffset + start, problems, lastSeq, lines: k + 1 };
}

export interface ReadResult {
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
  /** The highest seq returned so far (or `afterSeq` when none). */
  lastSeq?: number;
  /** The latest `time` returned so far (or `afterTime` when none). */
  lastTime?: number;
  /** The file had shrunk or been replaced below `offset`, and was read again from its start. */
  rewound?: boolean;
  /** The 1-based line number at `nextOffset`, when known (pass it back as `line`). */
  nextLine?: number;
}

/**
 * Reads the complete events of `file` from byte `offset` on, in bounded pieces (`line`: the
 * 1-based line number at `offset`, when the caller knows it). A missing file reads as empty.
 * A file cut under the reader is reported, never passed over in silence:
 * - it shrank below `offset` (truncated): reading goes on after its last line written no later
 *   than `afterTime` (the latest event time already taken; without it, after its last complete
 *   line), so every event written after the cut is read, even when the file grew again before
 *   this read, and none read before is taken again;
 * - its byte before `offset` no longer ends a line (replaced by a file at least as long): it is
 *   read again from the start, taking only events after `afterSeq` (the highest seq already
 *   taken; the ones skipped are counted in the report).
 */
export async function readEventsFrom(file: string, offset = 0, opts: { afterSeq?: number; afterTime?: number; line?: number } = {}): Promise<ReadResult> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], nextOffset: offset, problems: [], lastSeq: opts.afterSeq, lastTime: opts.afterTime, nextLine: offset === 0 ? 1 : opts.line };
    throw err;
  }
  try {
    const { size } = await fh.stat();
    let rewound = false;
    let replaced = false;
    const problems: ParseProblem[] = [];
    // the 1-based line number at `offset`: known from the caller, or counted only if a problem needs it
    let baseLine: number | undefined = offset === 0 ? 1 : opts.line;
    if (offset > 0 && size < offset) {
      // cut back (truncated, or a writer restarted on a shorter copy): the lines still there from
      // before the cut were read already; everything written after the cut is new, and may be
      // there already (the writer went on before this read): those lines are later than any taken
      rewound = true;
      const kept = opts.afterTime === undefined ? { offset: await lastLineEnd(fh, size), lines: undefined } : await linesUpTo(fh, size, opts.afterTime);
      problems.push({ file, offset, message: `the file shrank to ${size} bytes under the reader (it had read ${offset}): it was truncated; going on from byte ${kept.offset}, so the events written after the cut are read` });
      offset = kept.offset;
      baseLine = offset === 0 ? 1 : kept.lines === undefined ? undefined : kept.lines + 1;
    } else if (offset > 0) {
      const before = Buffer.alloc(1);
      const { bytesRead } = await fh.read(before, 0, 1, offset - 1);
      if (bytesRead !== 1 || before[0] !== 0x0a) {
        // replaced by another file at least as long: where it was cut is unknown, so read it
        // again from the start and take the events after the last seq already taken
        rewound = replaced = true;
        problems.push({ file, offset, message: `the file was replaced under the reader (byte ${offset - 1} is no longer the end of a line): reading it again from the start` });
        offset = 0;
        baseLine = 1;
      }
    }
    if (size <= offset) return { events: [], nextOffset: offset, problems, lastSeq: opts.afterSeq, lastTime: opts.afterTime, rewound, nextLine: baseLine };
    const events: RunEvent[] = [];
    let lastSeq = opts.afterSeq;
    let lastTime = opts.afterTime;
    let skippedOld = 0;
    let pos = offset; // start of the first line not yet parsed
    let longFrom: number | undefined; // start of an over-long line whose end is not found yet
    let carry = Buffer.alloc(0);
    let readTo = offset; // bytes read so far
    let rel = 0; // complete lines consumed since `offset`
    const startOffset = offset;
    const lineProblems: ParseProblem[] = []; // their `line` is relative (1 = the line at startOffset) until the end
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
        const p: ParseProblem = { file, offset: longFrom, line: rel + 1, message: `line of ${base + nl - longFrom} bytes is longer than ${MAX_EVENT_LINE_BYTES}: skipped` };
        problems.push(p);
        lineProblems.push(p);
        rel++;
        longFrom = undefined;
        buf = buf.subarray(nl + 1);
        base += nl + 1;
        pos = base;
      }
      const r = parseEventChunk(buf, base, { file, line: rel + 1 });
      rel += r.lines;
      lineProblems.push(...r.problems);
      for (const ev of r.events) {
        if (replaced && opts.afterSeq !== undefined && ev.seq <= opts.afterSeq) {
          skippedOld++;
          continue;
        }
        lastSeq = lastSeq === undefined ? ev.seq : Math.max(lastSeq, ev.seq);
        lastTime = lastTime === undefined ? ev.time : Math.max(lastTime, ev.time);
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
    if (skippedOld) problems.push({ file, offset: 0, message: `${skippedOld} event(s) with seq up to ${opts.afterSeq} are not taken again (read before the file was replaced; if they were rewritten, see the file itself)` });
    if (lineProblems.length && baseLine === undefined) baseLine = 1 + (await countNewlines(fh, 0, startOffset));
    for (const p of lineProblems) p.line = baseLine === undefined ? undefined : baseLine + p.line! - 1;
    // an over-long line not finished yet: the next read starts at its beginning again
    return { events, nextOffset: longFrom ?? pos, problems, lastSeq, lastTime, rewound, nextLine: baseLine === undefined ? undefined : baseLine + rel };
  } finally {
    await fh.close();
  }
}

/** Newlines in bytes [from, to) of a file, read in pieces. */
async function countNewlines(fh: FileHandle, from: number, to: number): Promise<number> {
  let n = 0;
  const buf = Buffer.alloc(Math.min(READ_PIECE_BYTES, Math.max(1, to - from)));
  for (let at = from; at < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - at), at);
    if (bytesRead === 0) break;
    for (let i = buf.indexOf(0x0a, 0); i >= 0 && i < bytesRead; i = buf.indexOf(0x0a, i + 1)) n++;
    at += bytesRead;
  }
  return n;
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
 * The lines of a file cut under its reader that were there before the cut: up to the first line
 * whose `time` is later than `afterTime`, the latest event time the reader took (the runtime
 * writes events in time order, so a line written after the cut is later than every line read
 * before it). The offset after the last of them, and how many lines that is.
 */
async function linesUpTo(fh: FileHandle, size: number, afterTime: number): Promise<{ offset: number; lines: number }> {
  let kept = { offset: 0, lines: 0 };
  let lines = 0;
  let carry = Buffer.alloc(0);
  let skipping = false; // inside a line longer than MAX_EVENT_LINE_BYTES: not parsed
  for (let readTo = 0; readTo < size; ) {
    const piece = Buffer.alloc(Math.min(READ_PIECE_BYTES, size - readTo));
    const { bytesRead } = await fh.read(piece, 0, piece.length, readTo);
    if (bytesRead === 0) break;
    readTo += bytesRead;
    const buf = carry.length ? Buffer.concat([carry, piece.subarray(0, bytesRead)]) : piece.subarray(0, bytesRead);
    const base = readTo - buf.length;
    let start = 0;
    for (let nl = buf.indexOf(0x0a); nl >= 0; start = nl + 1, nl = buf.indexOf(0x0a, start)) {
      lines++;
      if (skipping || nl - start > MAX_EVENT_LINE_BYTES) {
        skipping = false;
        continue;
      }
      let time: unknown;
      try {
        time = (JSON.parse(buf.subarray(start, nl).toString('utf8')) as { time?: unknown } | null)?.time;
      } catch {
        continue;
      }
      if (typeof time !== 'number') continue;
      if (time > afterTime) return kept;
      kept = { offset: base + nl + 1, lines };
    }
    carry = buf.subarray(start);
    if (carry.length > MAX_EVENT_LINE_BYTES) {
      skipping = true;
      carry = Buffer.alloc(0);
    }
  }
  return kept;
}

/**
 * A reader that follows one events file: remembers its byte offset, the last seq and the latest
 * time taken, so a truncated or replaced file is noticed (see readEventsFrom) and each event is taken once.
 */
export class EventTail {
  lastSeq?: number;
  lastTime?: number;
  /** 1-based line number at `offset`, once known. */
  line?: number;
  constructor(
    readonly file: string,
    public offset = 0,
  ) {}

  async read(): Promise<{ events: RunEvent[]; problems: ParseProblem[]; rewound?: boolean }> {
    const r = await readEventsFrom(this.file, this.offset, { afterSeq: this.lastSeq, afterTime: this.lastTime, line: this.line });
    this.offset = r.nextOffset;
    this.lastSeq = r.lastSeq;
    this.lastTime = r.lastTime;
    this.line = r.nextLine;
    return { events: r.events, problems: r.problems, rewound: r.rewound };
  }
}
