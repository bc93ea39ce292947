// The event protocol of docs/events.md, typed, and a reader that resumes from a byte offset.
// Shared by the run store (launch), the dashboard and the CLI.
import { open } from 'node:fs/promises';
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
  /** the prompts whose budget is at least max_completion_length (absent when none) */
  over_completion?: { count: number; largest: number; max_completion_length: number };
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

/** The reads a follower makes: a FileHandle, its bytes counted (EventTail.bytesRead). */
interface Reader {
  read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
}

/**
 * The unfinished line at the end of what was read (no `\n` yet): where it starts, how far it was
 * looked at, its head's fingerprint, and its head when it is already over-long. A follower keeps
 * it, so the next read looks only at the bytes after `scanned` for the line's end, instead of
 * reading the whole unfinished line again at every poll.
 */
interface Unfinished {
  start: number;
  scanned: number;
  fp: number;
  longHead?: Buffer;
}

/** The offset of the first `\n` in bytes [from, to) of a file (-1: none), and how far it looked. */
async function findNewline(fh: Reader, from: number, to: number): Promise<{ nl: number; reached: number }> {
  const piece = Buffer.alloc(Math.max(1, Math.min(READ_PIECE_BYTES, to - from)));
  let at = from;
  while (at < to) {
    const { bytesRead } = await fh.read(piece, 0, Math.min(piece.length, to - at), at);
    if (bytesRead === 0) break;
    const nl = piece.subarray(0, bytesRead).indexOf(0x0a);
    if (nl >= 0) return { nl: at + nl, reached: at + nl + 1 };
    at += bytesRead;
  }
  return { nl: -1, reached: at };
}

/**
 * eachLine over bytes [from, to) of a file, read in pieces (memory: a piece plus one line of at
 * most MAX_EVENT_LINE_BYTES; a longer one is dropped as it is read, its head kept). Returns the
 * offset after the last line given to `fn` (where a partial, or unfinished over-long, line
 * begins) and that unfinished line's state. `resume`: the state a previous scan left at `from`;
 * when the file still holds that line's head, only the bytes after `resume.scanned` are searched
 * for its end, and the line is read once, when complete.
 */
async function scanLines(fh: Reader, from: number, to: number, fn: (l: Line) => boolean | void, resume?: Unfinished): Promise<{ next: number; unfinished?: Unfinished }> {
  let begin = from;
  if (resume && resume.start === from && resume.scanned - from >= HEAD_BYTES && resume.scanned <= to) {
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, from);
    if (bytesRead === HEAD_BYTES && !head.includes(0x0a) && fingerprint(head) === resume.fp) {
      const { nl, reached } = await findNewline(fh, resume.scanned, to);
      if (nl < 0) return { next: from, unfinished: { ...resume, scanned: Math.max(resume.scanned, reached) } };
      if (resume.longHead) {
        const line: Line = { start: from, end: nl + 1, head: resume.longHead };
        if (fn(line) === false) return { next: line.end };
        begin = line.end;
      }
      // else the line, complete now, is read once from its start by the loop below
    }
  }
  let pos = begin; // start of the first line not given to fn yet
  let carry = Buffer.alloc(0);
  let longHead: Buffer | undefined; // inside an over-long line (its first bytes): drop until its end
  let readTo = begin;
  while (readTo < to) {
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
      if (fn(line) === false) return { next: pos };
      start = nl + 1;
    }
    const r = eachLine(buf, base, start, fn);
    pos = base + r.next;
    if (r.stopped) return { next: pos };
    carry = buf.subarray(r.next);
    if (carry.length > MAX_EVENT_LINE_BYTES) {
      longHead = Buffer.from(carry.subarray(0, HEAD_BYTES));
      carry = Buffer.alloc(0);
    }
  }
  const unfinished: Unfinished | undefined =
    longHead ? { start: pos, scanned: readTo, fp: fingerprint(longHead), longHead }
    : carry.length ? { start: pos, scanned: pos + carry.length, fp: fingerprint(carry.subarray(0, HEAD_BYTES)) }
    : undefined;
  return { next: pos, unfinished };
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

/** Byte `at - 1` of the file is a `\n` (a line ends at `at`). */
async function endsLine(fh: Reader, at: number): Promise<boolean> {
  const b = Buffer.alloc(1);
  const { bytesRead } = await fh.read(b, 0, 1, at - 1);
  return bytesRead === 1 && b[0] === 0x0a;
}

/** The head (up to HEAD_BYTES) of the line [start, end) of the file, undefined when the file is shorter. */
async function readHead(fh: Reader, start: number, end: number): Promise<Buffer | undefined> {
  const head = Buffer.alloc(Math.max(0, Math.min(HEAD_BYTES, end - 1 - start)));
  const { bytesRead } = await fh.read(head, 0, head.length, start);
  return bytesRead === head.length ? head : undefined;
}

/** Where the line that ends with the `\n` at `nl` begins, looking back no further than `lo`. */
async function lineStart(fh: Reader, lo: number, nl: number): Promise<number> {
  const piece = Buffer.alloc(Math.max(1, Math.min(65536, nl - lo)));
  for (let to = nl; to > lo; ) {
    const from = Math.max(lo, to - piece.length);
    const { bytesRead } = await fh.read(piece, 0, to - from, from);
    const i = piece.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (i >= 0) return from + i + 1;
    to = from;
  }
  return lo;
}

/**
 * The lines one read took, for a second follower of the same file (the dashboard's feed takes the
 * monitor's, core/runs/feed.ts): the file's identity, the offset they begin at, and each line's
 * end and head fingerprint, so the second follower knows them as if it had read them.
 */
export interface LineMarks {
  ident?: string;
  from: number;
  ends: number[];
  fps: number[];
}

/**
 * What a follower has read of a file, to tell later whether the file still holds it: the file's
 * identity (device and inode), and each line read, by where it ends and a 32-bit fingerprint of
 * its head (12 bytes a line). The bytes before a reader's start offset were taken without being
 * read (an UNREAD span, kept apart in `unread`): the first look at the file records the span's
 * last line (its start and fingerprint), and that line is checked from then on.
 */
class ReadLines {
  ident?: string;
  private ends = new Float64Array(64);
  private fps = new Uint32Array(64);
  private n = 0;
  /** UNREAD spans: entry index → start of the span's last line (-1 until the first look records it; its fingerprint is then in fps). */
  private readonly unread = new Map<number, number>();
  /** The unfinished line after `end`, as far as it was looked at (the next read goes on from there). */
  unfinished?: Unfinished;
  /** Bytes this follower read from the file. */
  bytesRead = 0;

  /** `offset`: the bytes before it are taken as read, unseen. `remember` false: a one-off read, no fingerprints kept. */
  constructor(offset = 0, readonly remember = true) {
    if (offset > 0) this.push(offset, 0, true);
  }

  /** The offset after the last line read (where the next read starts). */
  get end(): number {
    return this.n ? this.ends[this.n - 1]! : 0;
  }

  /** Bytes of memory the entries take (12 per entry slot). */
  get memoryBytes(): number {
    return this.ends.byteLength + this.fps.byteLength;
  }

  /** A line read, ending at `end`, with the fingerprint of its head. */
  add(end: number, fp: number): void {
    if (this.remember) this.push(end, fp, false);
    else this.push(end, 0, true);
  }

  /** Lines another follower read (`marks`), taken as if read here: false (nothing taken) unless they begin where this one is, in the same file. */
  take(marks: LineMarks): boolean {
    if (!this.remember || marks.from !== this.end || marks.ends.length !== marks.fps.length) return false;
    if (this.ident !== undefined && marks.ident !== this.ident) return false;
    this.ident = marks.ident;
    for (let i = 0; i < marks.ends.length; i++) this.push(marks.ends[i]!, marks.fps[i]!, false);
    this.unfinished = undefined;
    return true;
  }

  private push(end: number, fp: number, unread: boolean): void {
    if (unread && this.n && this.unread.has(this.n - 1)) {
      this.ends[this.n - 1] = end;
      this.unread.set(this.n - 1, -1);
      return;
    }
    if (this.n === this.ends.length) {
      const cap = Math.ceil(this.n * 1.5);
      const ends = new Float64Array(cap);
      const fps = new Uint32Array(cap);
      ends.set(this.ends);
      fps.set(this.fps);
      this.ends = ends;
      this.fps = fps;
    }
    this.ends[this.n] = end;
    this.fps[this.n] = fp;
    if (unread) this.unread.set(this.n, -1);
    this.n++;
  }

  private startOf(i: number): number {
    return i ? this.ends[i - 1]! : 0;
  }

  /** The first look at the file after an UNREAD span was taken: records its last line, when a line still ends where the span ends. */
  private async learn(fh: Reader, size: number): Promise<void> {
    if (!this.remember) return;
    for (const [i, last] of this.unread) {
      if (last >= 0) continue;
      const end = this.ends[i]!;
      if (end > size || !(await endsLine(fh, end))) continue; // not held: the check finds it
      const start = await lineStart(fh, this.startOf(i), end - 1);
      const head = await readHead(fh, start, end);
      if (!head || head.includes(0x0a)) continue;
      this.unread.set(i, start);
      this.fps[i] = fingerprint(head);
    }
  }

  /** Does the file (`size` bytes) still hold entry `i` where it was read? (For an UNREAD span: its last line, once recorded.) */
  private async holds(fh: Reader, size: number, i: number): Promise<boolean> {
    const end = this.ends[i]!;
    if (end > size || !(await endsLine(fh, end))) return false;
    let start = this.startOf(i);
    const last = this.unread.get(i);
    if (last !== undefined) {
      if (last < 0) return true; // a one-off read: known by its end only
      if (last > start && !(await endsLine(fh, last))) return false;
      start = last;
    }
    const head = await readHead(fh, start, end);
    return !!head && !head.includes(0x0a) && fingerprint(head) === this.fps[i];
  }

  /**
   * Checks the file against what was read. Returns undefined when it still holds all of it;
   * else forgets what it no longer holds and returns where reading goes on: the end of the
   * lines it still holds (a cut keeps the lines before it, so the first line no longer held is
   * found by bisection), with the UNREAD span cut there, if any (its events may be taken again).
   */
  async check(fh: Reader, size: number, ident: string | undefined): Promise<{ keep: number; lines?: number; unread?: [number, number]; replaced: boolean } | undefined> {
    const replaced = this.ident !== undefined && ident !== undefined && ident !== this.ident;
    this.ident = ident;
    if (!replaced) await this.learn(fh, size);
    if (!this.n || (!replaced && (await this.holds(fh, size, this.n - 1)))) return undefined;
    let lo = 0;
    let hi = replaced ? this.n : this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (await this.holds(fh, size, mid)) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.n) return undefined; // a new file with the very lines read (a copy renamed over it)
    const spans = [...this.unread.keys()];
    const lines = spans.some((i) => i < lo) ? undefined : lo;
    const unread: [number, number] | undefined = this.unread.has(lo) ? [this.startOf(lo), this.ends[lo]!] : undefined;
    for (const i of spans) if (i >= lo) this.unread.delete(i);
    this.n = lo;
    this.unfinished = undefined;
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
  /** The lines this read took (a follower's read): what a second follower takes with its events (EventTail.take). */
  marks?: LineMarks;
  /** The read stopped at its `maxBytes` with complete lines left to read: read again for them. */
  more?: boolean;
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
async function readLines(file: string, seen: ReadLines, line?: number, maxBytes = Infinity): Promise<ReadResult> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], nextOffset: seen.end, problems: [], nextLine: seen.end === 0 ? 1 : line };
    throw err;
  }
  const h = handle;
  const fh: Reader = {
    read: async (buf, off, len, pos) => {
      const r = await h.read(buf, off, len, pos);
      seen.bytesRead += r.bytesRead;
      return r;
    },
  };
  try {
    const st = await h.stat({ bigint: true });
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
    const marks: LineMarks | undefined = seen.remember ? { ident: seen.ident, from, ends: [], fps: [] } : undefined;
    let rel = 0;
    let more = false;
    const scan = await scanLines(fh, from, size, (l) => {
      const fp = seen.remember ? fingerprint(l.head) : 0;
      seen.add(l.end, fp);
      marks?.ends.push(l.end);
      marks?.fps.push(fp);
      const r = parseLine(l, file, ++rel);
      if (r.event) events.push(r.event);
      if (r.problem) lineProblems.push(r.problem);
      // a bounded read stops after the line that took it to maxBytes
      if (l.end - from >= maxBytes && l.end < size) {
        more = true;
        return false;
      }
    }, seen.unfinished);
    if (seen.remember) seen.unfinished = scan.unfinished;
    problems.push(...lineProblems);
    if (lineProblems.length && baseLine === undefined) {
      let n = 0;
      await scanLines(fh, 0, from, () => void n++);
      baseLine = n + 1;
    }
    for (const p of lineProblems) p.line = baseLine === undefined ? undefined : baseLine + p.line! - 1;
    return { events, nextOffset: scan.next, problems, rewound: !!cut, nextLine: baseLine === undefined ? undefined : baseLine + rel, marks, ...(more ? { more } : {}) };
  } finally {
    await h.close();
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

  /** Bytes read from the file so far (what following it costs). */
  get bytesRead(): number {
    return this.seen.bytesRead;
  }

  /** Bytes of memory what it remembers of the lines read takes (12 per line, and some room to grow). */
  get memoryBytes(): number {
    return this.seen.memoryBytes;
  }

  /**
   * Takes the lines another follower of this file read (a monitor's chunk, core/runs/feed.ts) as
   * read here, each with its end and fingerprint, so a cut inside them is found as if this
   * follower had read them. False, and nothing taken, unless they begin at `offset` in the same
   * file: the caller then reads the file itself.
   */
  take(marks: LineMarks): boolean {
    if (!this.seen.take(marks)) return false;
    if (this.line !== undefined) this.line += marks.ends.length;
    return true;
  }

  /**
   * Reads the lines after the last one taken. `maxBytes`: stop after the line that reaches
   * that many bytes, with `more` set, so a large file is taken in bounded
   * batches instead of as one array of every event.
   */
  async read(opts: { maxBytes?: number } = {}): Promise<{ events: RunEvent[]; problems: ParseProblem[]; rewound?: boolean; marks?: LineMarks; more?: boolean }> {
    const r = await readLines(this.file, this.seen, this.line, opts.maxBytes);
    this.line = r.nextLine;
    return { events: r.events, problems: r.problems, rewound: r.rewound, marks: r.marks, ...(r.more ? { more: true } : {}) };
  }
}
