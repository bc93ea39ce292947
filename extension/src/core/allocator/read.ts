// Streaming prompt readers for JSONL and CSV datasets. Lines are split on bytes and each line is
// decoded as strict UTF-8, so invalid bytes, non-JSON lines and lines without a prompt become
// errors naming the line, and every other line is still read. Memory stays bounded by the
// longest line (capped), whatever the file size.
import { Parser as CsvParser } from 'csv-parse';
import type { Readable } from 'node:stream';
import { isPyBlank, jsonNumberMembers, jsonWritable, MAX_DEPTH, parsePyJson, pyRstrip, tooDeep } from './json';

export interface PromptRecord {
  kind: 'prompt';
  /** 1-based line of the record (the line it ends on, for multi-line CSV records) */
  line: number;
  /**
   * The row's `id` as it came, to be written back as it came (as Python's `score` does): any
   * JSON value (null, a list, true...), a bigint for an integer beyond 2^53 (kept exact), a
   * string from a CSV `id` column; undefined when the row has none.
   */
  id: unknown;
  prompt: string;
}

export interface RecordError {
  kind: 'error';
  line: number;
  message: string;
}

export type ReadItem = PromptRecord | RecordError;

/** Lines longer than this are reported and skipped (a 1 MB prompt is fine). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Splits a byte stream into lines ("\n", with a trailing "\r" dropped); oversize lines yield null. */
export async function* byteLines(source: AsyncIterable<Uint8Array | string>, maxBytes = MAX_LINE_BYTES): AsyncGenerator<Buffer | null> {
  let parts: Buffer[] = [];
  let size = 0;
  let oversize = false;
  const finish = (): Buffer | null => {
    const whole = oversize ? null : Buffer.concat(parts, size);
    parts = [];
    size = 0;
    oversize = false;
    if (whole && whole.length && whole[whole.length - 1] === 0x0d) return whole.subarray(0, whole.length - 1);
    return whole;
  };
  for await (const chunk0 of source) {
    const chunk = typeof chunk0 === 'string' ? Buffer.from(chunk0) : Buffer.from(chunk0.buffer, chunk0.byteOffset, chunk0.byteLength);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!oversize) {
        if (size + (end - start) > maxBytes) {
          oversize = true;
          parts = [];
          size = 0;
        } else if (end > start) {
          parts.push(chunk.subarray(start, end));
          size += end - start;
        }
      }
      if (nl < 0) break;
      yield finish();
      start = nl + 1;
    }
  }
  if (size || oversize || parts.length) yield finish();
}

// ignoreBOM: true keeps a byte-order mark in the text (the decoder would strip one from every line);
// only line 1's is dropped, below, as Python's reader does.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Offset of the first byte of the first ill-formed UTF-8 sequence (what Python's
 * UnicodeDecodeError.start reports, so both readers name the same byte), or -1.
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    if (c < 0x80) { i++; continue; }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c === 0xe0) lo = 0xa0; else if (c === 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c === 0xf0) lo = 0x90; else if (c === 0xf4) hi = 0x8f; }
    else return i;
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || x < (k === 1 ? lo : 0x80) || x > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/**
 * The prompt text of one dataset row: a string `prompt`, or TRL's conversational form (a list of
 * {role, content} messages: their contents joined by newlines). Returns an error message otherwise.
 */
export function promptOf(row: unknown): { prompt: string; id: unknown } | string {
  if (!row || typeof row !== 'object' || Array.isArray(row)) return 'not a JSON object';
  const o = row as Record<string, unknown>;
  const id = Object.prototype.hasOwnProperty.call(o, 'id') ? o.id : undefined;
  const p = o.prompt;
  if (typeof p === 'string') return { prompt: p, id };
  if (Array.isArray(p)) {
    const parts: string[] = [];
    for (const m of p) {
      const c = m && typeof m === 'object' ? (m as Record<string, unknown>).content : undefined;
      if (typeof c !== 'string') return "'prompt' is a list but not of {role, content} messages";
      parts.push(c);
    }
    return { prompt: parts.join('\n'), id };
  }
  if (p === undefined) return "no 'prompt' field";
  return `'prompt' must be a string or a list of messages, got ${p === null ? 'null' : typeof p}`;
}

/**
 * Parses one JSONL line (already decoded) as Python's reader does (prompt_sets.iter_jsonl_stream,
 * then score.iter_jsonl_prompts), so `conscience inspect` and `python -m conscience.allocator
 * score` score and refuse the same lines: blank is what Python's str.strip() strips (\x85 and
 * \x1c-\x1f too, a byte-order mark not); trailing Python whitespace is dropped before parsing;
 * nesting deeper than 64 is an error; NaN / Infinity are read (parsePyJson); an id that cannot be
 * written back as JSON is an error. Blank lines return null.
 */
export function parsePromptLine(text: string, line: number): ReadItem | null {
  if (isPyBlank(text)) return null;
  return parseRow(text, line);
}

function parseRow(text: string, line: number): ReadItem {
  if (tooDeep(text)) return { kind: 'error', line, message: `JSON nested deeper than ${MAX_DEPTH} levels` };
  const body = pyRstrip(text);
  let row: unknown;
  try {
    row = parsePyJson(body);
  } catch (err) {
    return { kind: 'error', line, message: `invalid JSON: ${(err as Error).message}` };
  }
  const r = promptOf(row);
  if (typeof r === 'string') return { kind: 'error', line, message: r };
  let id = r.id;
  if (id !== undefined && !jsonWritable(id)) return { kind: 'error', line, message: '"id" cannot be written back as JSON (a lone surrogate, NaN or Infinity)' };
  if (typeof id === 'number' && Number.isInteger(id) && !Number.isSafeInteger(id)) {
    // an integer beyond 2^53: JSON.parse rounded it; Python keeps it exact, and so does this
    const src = jsonNumberMembers(body).get('id');
    if (src && /^-?\d+$/.test(src)) id = BigInt(src);
  }
  return { kind: 'prompt', line, prompt: r.prompt, id };
}

/** Reads a JSONL prompt file as a stream of records and per-line errors. */
export async function* readJsonl(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<ReadItem> {
  let line = 0;
  for await (const bytes of byteLines(source)) {
    line++;
    if (bytes === null) {
      yield { kind: 'error', line, message: `line longer than ${MAX_LINE_BYTES} bytes` };
      continue;
    }
    if (bytes.includes(0)) {
      yield { kind: 'error', line, message: 'binary data (NUL byte); expected JSON text' };
      continue;
    }
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      yield { kind: 'error', line, message: `not UTF-8 (byte ${firstInvalidUtf8(bytes)})` };
      continue;
    }
    // Python's order (prompt_sets.iter_jsonl): line 1's byte-order mark is dropped before the
    // blank check, so a line 1 of only a BOM is a blank line
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (isPyBlank(text)) continue;
    yield parseRow(text, line);
  }
}

/** Header names taken as the prompt column of a CSV dataset, in order of preference. */
export const CSV_PROMPT_COLUMNS = ['prompt', 'text', 'question', 'instruction', 'input'];

export function csvPromptColumn(header: string[]): number {
  const lower = header.map((h) => h.trim().toLowerCase());
  for (const name of CSV_PROMPT_COLUMNS) {
    const i = lower.indexOf(name);
    if (i >= 0) return i;
  }
  return -1;
}

/**
 * Line numbers of byte offsets in CSV text read chunk by chunk: a line ends at \r\n, \n or a
 * lone \r, as editors count them. csv-parse's own count (info.lines) takes a \r\n inside a
 * quoted field as two line ends, so every record after such a field was placed too low (the
 * editor's hints on the wrong rows, inspect's lines wrong); records are placed from their byte
 * offsets (info.bytes) instead. Chunks are kept from the last record's end only.
 */
export class CsvLines {
  private chunks: Buffer[] = [];
  /** absolute offset of chunks[0] */
  private base = 0;
  /** bytes pushed in all */
  private total = 0;
  /** offsets below this are counted */
  private pos = 0;
  /** line ends in [0, pos) */
  private breaks = 0;
  /** the byte at pos - 1 */
  private prev = -1;
  /** end of the last record (info.bytes) */
  private lastEnd = 0;

  push(b: Buffer): void {
    if (!b.length) return;
    this.chunks.push(b);
    this.total += b.length;
  }

  private byteAt(off: number): number | undefined {
    let at = this.base;
    for (const c of this.chunks) {
      if (off < at + c.length) return off >= at ? c[off - at] : undefined;
      at += c.length;
    }
    return undefined;
  }

  /** 1-based line of the byte at `off` (1 + line ends before it); offsets only grow. */
  private lineAt(off: number): number {
    let at = this.base;
    for (const c of this.chunks) {
      const from = Math.max(this.pos, at);
      const to = Math.min(off, at + c.length);
      for (let i = from; i < to; i++) {
        const b = c[i - at]!;
        if (b === 0x0d || (b === 0x0a && this.prev !== 0x0d)) this.breaks++;
        this.prev = b;
      }
      if (to > this.pos) this.pos = to;
      at += c.length;
      if (at >= off) break;
    }
    return this.breaks + 1;
  }

  /** Drops the chunks wholly before both the counted offset and the last record's end. */
  private forget(): void {
    const keep = Math.min(this.pos, this.lastEnd);
    while (this.chunks.length && this.base + this.chunks[0]!.length <= keep) this.base += this.chunks.shift()!.length;
  }

  /** The line a record ends on, from its info.bytes (the offset after its record delimiter, if any). */
  recordEnd(bytes: number): number {
    let end = bytes;
    const last = this.byteAt(end - 1);
    if (last === 0x0a) {
      end--;
      if (this.byteAt(end - 1) === 0x0d) end--;
    } else if (last === 0x0d) {
      end--;
    }
    const line = this.lineAt(Math.max(end, this.pos));
    this.lastEnd = bytes;
    this.forget();
    return line;
  }

  /** The line where the record after the last one starts (its first byte that is not a line end). */
  nextRecordStart(): number {
    let off = Math.max(this.lastEnd, this.pos);
    for (let b = this.byteAt(off); b === 0x0a || b === 0x0d; b = this.byteAt(++off));
    return this.lineAt(Math.min(off, this.total));
  }
}

/** csv-parse's error text without its own " at line N" (counted its way; the error names the line itself). */
const csvErrorText = (e: Error): string => e.message.replace(/ at line \d+/g, '');

/** csv-parse's synchronous core, which the Parser stream wraps: records come out per chunk. */
interface CsvCore {
  parse(buf: Buffer | undefined, end: boolean, push: (r: { record: string[]; info: { bytes: number } }) => void, close: () => void): (Error & { code?: string }) | undefined;
}

/**
 * Reads a CSV prompt file (header row required; prompt column per CSV_PROMPT_COLUMNS). Chunks
 * are parsed one at a time with csv-parse's synchronous core, so every record before a syntax
 * error is yielded (the stream form dropped the records still buffered when it failed), and
 * max_record_size caps a record: an unclosed quote makes the rest of the file one field, and
 * without the cap the parser buffered it all (memory grew with the file size, issue #16 item 7).
 * A quote inside an unquoted field (`What does "kill -9" do?`) is kept as text (relax_quotes, as
 * the editor's csvPrompts reads it); an error that does stop the parser (an unclosed quote) says
 * the rest of the file is not read. Lines are counted by CsvLines.
 */
export async function* readCsv(source: Readable | AsyncIterable<Uint8Array | string>): AsyncGenerator<ReadItem> {
  const core = (new CsvParser({ relax_column_count: true, info: true, skip_empty_lines: true, bom: true, relax_quotes: true, max_record_size: MAX_LINE_BYTES }) as unknown as { api?: CsvCore }).api;
  if (!core || typeof core.parse !== 'function') throw new Error('csv-parse: this version has no synchronous core (Parser.api); update read.ts');
  const lines = new CsvLines();
  let header: string[] | undefined;
  let col = -1;
  let idCol = -1;
  let done = false;
  const take = (rec: { record: string[]; info: { bytes: number } }): ReadItem | undefined => {
    const line = lines.recordEnd(rec.info.bytes);
    if (done) return undefined;
    if (!header) {
      header = rec.record;
      col = csvPromptColumn(header);
      idCol = header.map((h) => h.trim().toLowerCase()).indexOf('id');
      if (col < 0) {
        done = true;
        return { kind: 'error', line, message: `no prompt column in the header (expected one of: ${CSV_PROMPT_COLUMNS.join(', ')})` };
      }
      return undefined;
    }
    const prompt = rec.record[col];
    if (prompt === undefined) return { kind: 'error', line, message: `row has no column ${col + 1} ('${header[col]}')` };
    return { kind: 'prompt', line, id: idCol >= 0 ? rec.record[idCol] : undefined, prompt };
  };
  // The parser stops at an error: named at the line where the record it was reading starts.
  const failure = (e: Error & { code?: string }): ReadItem =>
    e.code === 'CSV_MAX_RECORD_SIZE'
      ? { kind: 'error', line: lines.nextRecordStart(), message: `invalid CSV: the record starting here is longer than ${MAX_LINE_BYTES} characters (an unclosed quote?); the rest of the file is not read` }
      : { kind: 'error', line: lines.nextRecordStart(), message: `invalid CSV: ${csvErrorText(e)} (in the record starting on this line); the rest of the file is not read` };
  const run = function* (buf: Buffer | undefined, end: boolean): Generator<ReadItem, boolean> {
    const out: ReadItem[] = [];
    if (buf) lines.push(buf);
    const err = core.parse(buf, end, (r) => { const it = take(r); if (it) out.push(it); }, () => undefined);
    yield* out;
    if (err) {
      yield failure(err);
      return false;
    }
    return !done;
  };
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (!(yield* run(buf, false))) return;
    }
    yield* run(undefined, true);
  } finally {
    (source as Partial<Readable>).destroy?.();
  }
}
