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
/** A line's fingerprint covers its first bytes: the writer puts type, seq and time there. */
const HEAD_BYTES = 4096;

/** One complete line: bytes [start, end) of the file, `end` just after its `\n`. */
interface Line {
  start: number;
  end: number;
  /** Its bytes without the `\n`; undefined when longer than MAX_EVENT_LINE_BYTES (dropped as read). */
  bytes?: Buffer;
  /** Its first bytes (up to HEAD_BYTES), what its fingerprint covers. */
  head: Buffer;
}

/**
 * The one line loop: calls `fn` for each complete line of `buf` (whose byte 0 is at file offset
 * `base`) from index `from` on, until `fn` returns false. Returns the index just after the last
 * line given to `fn`, and whether `fn` stopped the loop.
 */
function eachLine(buf: Buffer, base: number, from: number, fn: (l: Line) => boolean | void): { next: number; stopped: boolean } {
  let start = from;
  for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
    const bytes = buf.subarray(start, nl);
    const line: Line = { start: base + start, end: base + nl + 1, bytes: bytes.length > MAX_EVENT_LINE_BYTES ? undefined : bytes, head: bytes.subarray(0, HEAD_BYTES) };
    start = nl + 1;
    if (fn(line) === false) return { next: start, stopped: true };
  }
  return { next: start, stopped: false };
}

/**
 * eachLine over bytes [from, to) of a file, read in pieces (memory: a piece plus one line of at
 * most MAX_EVENT_LINE_BYTES; a longer one is dropped as it is read, its head kept). Returns the
 * offset after the last line given to `fn`: where a partial (or unfinished over-long) line begins.
 */
async function scanLines(fh: FileHandle, from: number, to: number, fn: (l: Line) => boolean | void): Promise<number> {
  let pos = from; // start of the first line not given to fn yet
  let carry = Buffer.alloc(0);
  let longHead: Buffer | undefined; // inside an over-long line (its first bytes): drop until its end
  for (let readTo = from; readTo < to; ) {
    const piece = Buffer.alloc(Math.min(READ_PIECE_BYTES, to - readTo));
    const { bytesRead } = await fh.read(piece, 0, piece.length, readTo);
    if (bytesRead === 0) break;
    readTo += bytesRead;
    const buf = carry.length ? Buffer.concat([carry, piece.subarray(0, bytesRead)]) : piece.subarray(0, bytesRead);
    carry = Buffer.alloc(0);
    const base = readTo - buf.length;
    let start = 0;
    if (longHead) {
      const nl = buf.indexOf(0x0a);
      if (nl < 0) continue;
      const line: Line = { start: pos, end: base + nl + 1, head: longHead };
      longHead = undefined;
      pos = line.end;
      if (fn(line) === false) return pos;
      start = nl + 1;
    }
    const r = eachLine(buf, base, start, fn);
    pos = base + r.next;
    if (r.stopped) return pos;
    carry = buf.subarray(r.next);
    if (carry.length > MAX_EVENT_LINE_BYTES) {
      longHead = Buffer.from(carry.subarray(0, HEAD_BYTES));
      carry = Buffer.alloc(0);
    }
  }
  return pos;
}

/** The one way a line becomes an event, or a problem (file, offset, line number, seq). */
function parseLine(l: Line, file: string | undefined, line: number | undefined): { event?: RunEvent; problem?: ParseProblem } {
  if (!l.bytes) return { problem: { file, offset: l.start, line, message: `line of ${l.end - 1 - l.start} bytes is longer than ${MAX_EVENT_LINE_BYTES}: skipped` } };
  const text = l.bytes.toString('utf8').trim(); // a CRLF line's \r goes here
  if (!text) return {};
  let ev: unknown;
  try {
    ev = JSON.parse(text);
  } catch (err) {
    return { problem: { file, offset: l.start, line, message: `invalid JSON: ${(err as Error).message}` } };
  }
  const bad = checkEvent(ev);
  if (bad) {
    const seq = ev && typeof ev === 'object' && Number.isSafeInteger((ev as { seq?: unknown }).seq) ? (ev as { seq: number }).seq : undefined;
    return { problem: { file, offset: l.start, line, seq, message: `bad event, skipped: ${bad}` } };
  }
  return { event: ev as RunEvent };
}

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
  /** Complete lines consumed (blank and skipped ones included). */
  lines: number;
} {
  const events: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  let k = 0;
  const { next } = eachLine(chunk, baseOffset, 0, (l) => {
    const r = parseLine(l, opts.file, opts.line === undefined ? undefined : opts.line + k);
    k++;
    if (r.event) events.push(r.event);
    if (r.problem) problems.push(r.problem);
  });
  return { events, nextOffset: baseOffset + next, problems, lines: k };
}

/** FNV-1a (32 bits) of a line's head: with the line's place and length, what tells it from another. */
function fingerprint(head: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < head.length; i++) h = Math.imul(h ^ head[i]!, 0x01000193);
  return h >>> 0;
}

/** A span of bytes taken without this reader reading them (before its start offset, or parsed by another reader). */
const UNREAD = -1;

/**
 * What a follower has read of a file, to tell later whether the file still holds it: the file's
 * identity (device and inode), and each line read, by where it ends and a fingerprint of its
 * head (16 bytes a line). A span taken without being read (UNREAD) is known only by its end.
 */
class ReadLines {
  ident?: string;
  private ends = new Float64Array(64);
  private fps = new Float64Array(64);
  private n = 0;

  /** `offset`: the bytes before it are taken as read, unseen. `remember` false: a one-off read, no fingerprints kept. */
  constructor(offset = 0, readonly remember = true) {
    if (offset > 0) this.push(offset, UNREAD);
  }

  /** The offset after the last line read (where the next read starts). */
  get end(): number {
    return this.n ? this.ends[this.n - 1]! : 0;
  }

  /** Bytes up to `end` are taken as read, unseen (another reader parsed them: core/runs/feed.ts). */
  skipTo(end: number): void {
    if (end > this.end) this.push(end, UNREAD);
  }

  /** A line read, ending at `end`, with the fingerprint of its head. */
  add(end: number, head: Buffer): void {
    this.push(end, this.remember ? fingerprint(head) : UNREAD);
  }

  private push(end: number, fp: number): void {
    if (fp === UNREAD && this.n && this.fps[this.n - 1] === UNREAD) {
      this.ends[this.n - 1] = end;
      return;
    }
    if (this.n === this.ends.length) {
      const ends = new Float64Array(this.n * 2);
      const fps = new Float64Array(this.n * 2);
      ends.set(this.ends);
      fps.set(this.fps);
      this.ends = ends;
      this.fps = fps;
    }
    this.ends[this.n] = end;
    this.fps[this.n++] = fp;
  }

  private startOf(i: number): number {
    return i ? this.ends[i - 1]! : 0;
  }

  /** Does the file (`size` bytes) still hold entry `i` where it was read? (For an UNREAD span: does a line still end where it ended.) */
  private async holds(fh: FileHandle, size: number, i: number): Promise<boolean> {
    const start = this.startOf(i);
    const end = this.ends[i]!;
    if (end > size) return false;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, end - 1);
    if (last[0] !== 0x0a) return false;
    if (this.fps[i] === UNREAD) return true;
    const head = Buffer.alloc(Math.min(HEAD_BYTES, end - 1 - start));
    const { bytesRead } = await fh.read(head, 0, head.length, start);
    return bytesRead === head.length && !head.includes(0x0a) && fingerprint(head) === this.fps[i];
  }

  /**
   * Checks the file against what was read. Returns undefined when it still holds all of it;
   * else forgets what it no longer holds and returns where reading goes on: the end of the
   * lines it still holds (a cut keeps the lines before it, so the first line no longer held is
   * found by bisection), with the UNREAD span cut there, if any (its events may be taken again).
   */
  async check(fh: FileHandle, size: number, ident: string | undefined): Promise<{ keep: number; lines?: number; unread?: [number, number]; replaced: boolean } | undefined> {
    const replaced = this.ident !== undefined && ident !== undefined && ident !== this.ident;
    this.ident = ident;
    if (!this.n || (!replaced && (await this.holds(fh, size, this.n - 1)))) return undefined;
    let lo = 0;
    let hi = replaced ? this.n : this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (await this.holds(fh, size, mid)) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.n) return undefined; // a new file with the very lines read (a copy renamed over it)
    let lines: number | undefined = lo;
    for (let i = 0; i < lo && lines !== undefined; i++) if (this.fps[i] === UNREAD) lines = undefined;
    const unread: [number, number] | undefined = this.fps[lo] === UNREAD ? [this.startOf(lo), this.ends[lo]!] : undefined;
    this.n = lo;
    return { keep: this.end, lines, unread, replaced };
  }
}

export interface ReadResult {
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
  /** The file no longer held what had been read (cut, rewritten or replaced): reading went back to where it differs. */
  rewound?: boolean;
  /** The 1-based line number at `nextOffset`, when known (pass it back as `line`). */
  nextLine?: number;
}

/**
 * Reads the complete events of `file` from byte `offset` on, in bounded pieces (`line`: the
 * 1-based line number at `offset`, when the caller knows it). A missing file reads as empty.
 * The bytes before `offset` are taken as read but unseen: a follower keeps an EventTail, which
 * knows each line it read and so where a file cut under it differs (see readLines).
 */
export async function readEventsFrom(file: string, offset = 0, opts: { line?: number } = {}): Promise<ReadResult> {
  return readLines(file, new ReadLines(offset, false), opts.line);
}

/**
 * Reads the events of `file` after what `seen` says was read, and adds what it reads to `seen`.
 * A file cut under the reader is reported, never passed over in silence, whatever the order of
 * seq and time in it (a requeued job's clock may be behind, its seq goes on from the cut): the
 * reader finds the first line read that the file no longer holds, where it was (its identity,
 * end and fingerprint, see ReadLines), and reads every line from there once. So a file truncated,
 * regrown past the reader, rewritten in place, replaced by a new file or deleted and written
 * again shows each event it holds once, the ones after the cut included.
 */
async function readLines(file: string, seen: ReadLines, line?: number): Promise<ReadResult> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], nextOffset: seen.end, problems: [], nextLine: seen.end === 0 ? 1 : line };
    throw err;
  }
  try {
    const st = await fh.stat({ bigint: true });
    const size = Number(st.size);
    const problems: ParseProblem[] = [];
    const had = seen.end;
    // the 1-based line number at the offset: known from the caller, or counted only if a problem needs it
    let baseLine: number | undefined = had === 0 ? 1 : line;
    const cut = await seen.check(fh, size, st.ino ? `${st.dev}:${st.ino}` : undefined);
    if (cut) {
      const { keep } = cut;
      const again = cut.unread ? `; bytes ${cut.unread[0]} to ${cut.unread[1]} had been taken without this reader reading them, so their events from byte ${keep} on may be taken again` : '';
      const message =
        cut.replaced ? `the file was replaced under the reader (a new file at its path${keep ? `, whose first ${keep} bytes are the ones read` : ''}): reading it from byte ${keep}, so each of its events after them is read once${again}`
        : size < had ? `the file shrank to ${size} bytes under the reader (it had read ${had}): it was truncated; going on from byte ${keep}, so the events written after the cut are read${again}`
        : `the file was cut and written again under the reader (it had read ${had} bytes; the first ${keep} are unchanged): going on from byte ${keep}, so the events written after the cut are read${again}`;
      problems.push({ file, offset: had, message });
      baseLine = keep === 0 ? 1 : cut.lines === undefined ? undefined : cut.lines + 1;
    }
    const from = seen.end;
    const events: RunEvent[] = [];
    const lineProblems: ParseProblem[] = []; // their `line` is relative (1 = the line at `from`) until the end
    let rel = 0;
    const next = await scanLines(fh, from, size, (l) => {
      seen.add(l.end, l.head);
      const r = parseLine(l, file, ++rel);
      if (r.event) events.push(r.event);
      if (r.problem) lineProblems.push(r.problem);
    });
    problems.push(...lineProblems);
    if (lineProblems.length && baseLine === undefined) {
      let n = 0;
      await scanLines(fh, 0, from, () => void n++);
      baseLine = n + 1;
    }
    for (const p of lineProblems) p.line = baseLine === undefined ? undefined : baseLine + p.line! - 1;
    return { events, nextOffset: next, problems, rewound: !!cut, nextLine: baseLine === undefined ? undefined : baseLine + rel };
  } finally {
    await fh.close();
  }
}

/**
 * A reader that follows one events file: remembers what it read (ReadLines), so a file cut,
 * rewritten or replaced under it is noticed (see readLines) and each event is taken once.
 */
export class EventTail {
  /** 1-based line number at `offset`, once known. */
  line?: number;
  private readonly seen: ReadLines;
  constructor(
    readonly file: string,
    offset = 0,
  ) {
    this.seen = new ReadLines(offset);
  }

  /** The offset after the last line taken. */
  get offset(): number {
    return this.seen.end;
  }

  /** The lines up to `end` were taken from another reader (a monitor's chunk): the next read starts there. */
  skipTo(end: number): void {
    this.seen.skipTo(end);
    this.line = undefined; // not counted here: the next problem counts them from the file
  }

  async read(): Promise<{ events: RunEvent[]; problems: ParseProblem[]; rewound?: boolean }> {
    const r = await readLines(this.file, this.seen, this.line);
    this.line = r.nextLine;
    return { events: r.events, problems: r.problems, rewound: r.rewound };
  }
}
