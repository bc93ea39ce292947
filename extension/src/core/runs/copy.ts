// Copies the new complete lines of a host's events.jsonl into the run store's local copy, and
// notices when the host's file was cut under the copy (truncated, rewritten by a writer that
// started again from a shorter file, or seen short for a moment: a stale NFS size, a copy synced
// back over it). The local copy stays append-only in every case: its readers (dashboard, Runs
// view, CLI) never see it shrink. The copy knows the host's file as it last saw it by line
// identity, not by seq: a `view`, the ranges of the local copy that hold the host's bytes in
// order. After a cut, the host's lines from the cut on that the view still holds there (the same
// bytes) are not appended again; the first line that differs and every line after it are
// appended after what the copy had, once. `shift` (local size minus the host offset reached)
// says where the next read starts on the host. The monitor (core/launch/monitor.ts) keeps
// `shift` and `view` in run.json (eventShift, eventView).
import { createHash } from 'node:crypto';
import { appendFile, open, readFile, type FileHandle } from 'node:fs/promises';
import { completeSize } from './store';

/** The host's events.jsonl as the copy last saw it: byte ranges [start, end) of the local copy, in order. */
export type CopyView = Array<[number, number]>;

export interface CopyResult {
  /** The bytes appended to the local copy (complete lines). */
  bytes: Buffer;
  /** Local offset where `bytes` begin (the local copy's size before the append). */
  localOffset: number;
  /** Host offset reached after this copy. */
  hostOffset: number;
  /** Local size minus host offset, after this copy. */
  shift: number;
  /** Set when the host's file was found cut: what happened, for the report. */
  cut?: string;
  /**
   * The host's file as last seen, as ranges of the local copy: its first `hostOffset` bytes are
   * the host's now, the rest are lines the host held before a cut (skipped if they come back).
   * Undefined while the copy is verbatim (the whole local copy, nothing more). Pass it back.
   */
  view?: CopyView;
  /** Set when the read stopped at `maxBytes`: the host's file holds more, copy again. */
  more?: boolean;
}

/** How many bytes before the offset reached must still be the ones copied (the view's last bytes). */
const TAIL_CHECK_BYTES = 4096;
/** Pieces in which the local copy is compared with the host's bytes. */
const PIECE = 1024 * 1024;

const total = (v: CopyView) => v.reduce((n, [s, e]) => n + e - s, 0);

/** Adjacent ranges joined, empty ones dropped. */
function merged(v: CopyView): CopyView {
  const out: CopyView = [];
  for (const [s, e] of v) {
    if (e <= s) continue;
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out;
}

/** The ranges holding the view's first `n` bytes. */
function prefix(v: CopyView, n: number): CopyView {
  const out: CopyView = [];
  for (const [s, e] of v) {
    if (n <= 0) break;
    const take = Math.min(e - s, n);
    out.push([s, s + take]);
    n -= take;
  }
  return out;
}

/** A view read from run.json: ranges inside the local copy, holding at least the host bytes reached. */
function valid(v: unknown, size: number, reached: number): v is CopyView {
  return Array.isArray(v) && v.every((r) => Array.isArray(r) && r.length === 2 && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]) && 0 <= r[0] && r[0] <= r[1] && r[1] <= size) && total(v as CopyView) >= reached;
}

/** The bytes of a view, read from the local copy. */
class ViewBytes {
  readonly length: number;
  constructor(
    private readonly fh: FileHandle | undefined,
    readonly view: CopyView,
  ) {
    this.length = total(view);
  }

  /** Bytes [from, from + len) of the view (fewer at its end). */
  async read(from: number, len: number): Promise<Buffer> {
    const out: Buffer[] = [];
    let at = 0;
    for (const [s, e] of this.view) {
      if (len <= 0) break;
      const n = e - s;
      if (from < at + n) {
        const off = from - at;
        const take = Math.min(n - off, len);
        const b = Buffer.alloc(take);
        const { bytesRead } = await this.fh!.read(b, 0, take, s + off);
        out.push(b.subarray(0, bytesRead));
        if (bytesRead < take) break;
        from += take;
        len -= take;
      }
      at += n;
    }
    return Buffer.concat(out);
  }

  /** Length of the common prefix of `host` and the view's bytes from `from` on. */
  async common(host: Buffer, from: number): Promise<number> {
    const n = Math.min(host.length, this.length - from);
    for (let at = 0; at < n; at += PIECE) {
      const mine = await this.read(from + at, Math.min(PIECE, n - at));
      const theirs = host.subarray(at, at + mine.length);
      if (!theirs.equals(mine)) {
        let i = 0;
        while (i < mine.length && theirs[i] === mine[i]) i++;
        return at + i;
      }
      if (mine.length < Math.min(PIECE, n - at)) return at + mine.length;
    }
    return Math.max(0, n);
  }
}

/** The end of the last complete line within the first `n` bytes of `buf`. */
const lineEnd = (buf: Buffer, n: number) => (n > 0 ? buf.lastIndexOf(0x0a, n - 1) + 1 : 0);

/**
 * No view kept (a copy cut before views were kept, or one that no longer fits the local copy):
 * the host's lines matched, in order, to the copy's lines with the same bytes, from the first on,
 * as far as they match. Returns the view of the host's first `held` bytes.
 */
async function align(host: Buffer, local: string, size: number): Promise<{ view: CopyView; held: number }> {
  const copy = size ? (await readFile(local)).subarray(0, size) : Buffer.alloc(0);
  const key = (b: Buffer) => createHash('sha1').update(b).digest('base64');
  const starts = new Map<string, number[]>(); // a line's hash → where the copy's lines with it begin
  for (let s = 0, nl = copy.indexOf(0x0a); nl >= 0; s = nl + 1, nl = copy.indexOf(0x0a, s)) {
    const k = key(copy.subarray(s, nl + 1));
    const list = starts.get(k);
    if (list) list.push(s);
    else starts.set(k, [s]);
  }
  const next = new Map<string, number>();
  const view: CopyView = [];
  let cursor = 0;
  let held = 0;
  for (let s = 0, nl = host.indexOf(0x0a); nl >= 0; s = nl + 1, nl = host.indexOf(0x0a, s)) {
    const line = host.subarray(s, nl + 1);
    const k = key(line);
    const list = starts.get(k) ?? [];
    let i = next.get(k) ?? 0;
    while (i < list.length && (list[i]! < cursor || !copy.subarray(list[i]!, list[i]! + line.length).equals(line))) i++;
    if (i === list.length) break;
    next.set(k, i + 1);
    view.push([list[i]!, list[i]! + line.length]);
    cursor = list[i]! + line.length;
    held = nl + 1;
  }
  return { view: merged(view), held };
}

/**
 * `readFrom(offset)` reads the host's file from a byte offset (undefined when it is missing).
 * `shift` and `view`: what the last copy returned (a record without a view: the copy is
 * verbatim when shift is 0, else the view is found by matching lines). Reads from a little
 * before the offset reached: the host's bytes there must still be the view's (up to 4 KiB, the
 * last line's end included), else the host's file was cut, rewritten or replaced below the
 * offset, even when it grew past it again with a line ending where the old one did. The cut is
 * found by comparing the whole host file with the view; the host's lines from there that the
 * view still holds at that place (identical bytes: a short view of the file that comes back
 * whole) are skipped, and the first one that differs and all after it are appended.
 * `maxBytes`: at most that much is read past the offset reached (more when one line is longer),
 * with `more` set: the caller copies again, so a backlog of gigabytes is never held whole (a
 * host's file found cut is still read whole).
 */
export async function copyEventLines(readFrom: (offset: number, maxBytes?: number) => Promise<Buffer | undefined>, local: string, shift: number, view?: CopyView, maxBytes = Infinity): Promise<CopyResult> {
  const size = await completeSize(local);
  let reached = Math.max(0, size - shift);
  let v: CopyView | undefined = view ?? (shift === 0 ? [[0, size]] : undefined);
  if (v !== undefined && !valid(v, size, reached)) v = undefined;
  const same = (): CopyResult => ({ bytes: Buffer.alloc(0), localOffset: size, hostOffset: reached, shift: size - reached, view });
  const fh = size > 0 ? await open(local, 'r') : undefined;
  try {
    let cut: string | undefined;
    let buf: Buffer | undefined;
    let more = false;
    // the host's bytes from `from` on, `maxBytes` at most, unless no line ends in them (a line
    // longer than that: read on to its end); `skip` bytes before them are read for the check
    const piece = async (from: number, skip: number): Promise<Buffer | undefined> => {
      let got = await readFrom(from - skip, skip + maxBytes);
      if (!got || got.length < skip + maxBytes) return got;
      more = true;
      while (got.lastIndexOf(0x0a) < skip) {
        const next = await readFrom(from - skip + got.length, maxBytes);
        got = Buffer.concat([got, next ?? Buffer.alloc(0)]);
        if (!next || next.length < maxBytes) {
          more = false; // its end, as it is now
          break;
        }
      }
      return got;
    };
    if (v === undefined) {
      const whole = await readFrom(0);
      if (!whole) return same();
      const a = await align(whole, local, size);
      v = a.view;
      reached = a.held;
      buf = whole.subarray(reached);
    } else if (reached > 0) {
      const n = Math.min(reached, TAIL_CHECK_BYTES);
      const got = await piece(reached, n);
      if (!got) return same();
      const vb = new ViewBytes(fh, v);
      if (got.length >= n && got.subarray(0, n).equals(await vb.read(reached - n, n))) buf = got.subarray(n);
      else {
        more = false; // (a cut: the whole file, rare and small next to the copy)
        const whole = (await readFrom(0)) ?? Buffer.alloc(0);
        const k = lineEnd(whole, await vb.common(whole, 0));
        if (k < reached) {
          cut = `the host's events.jsonl was cut under the copy (it is ${whole.length} bytes, ${reached} had been copied; the first ${k} are unchanged): the lines written after the cut are appended to the local copy, which keeps every line it had (lines it holds there already, the same bytes, are not appended again)`;
          reached = k;
        }
        buf = whole.subarray(reached);
      }
    } else {
      buf = await piece(0, 0);
      if (!buf) return same();
    }
    const complete = buf.subarray(0, buf.lastIndexOf(0x0a) + 1);
    // the host's lines that the view holds at this place already (a short view of the file come
    // back whole, the same lines written again): not appended twice
    const vb = new ViewBytes(fh, v);
    const again = complete.length && vb.length > reached ? lineEnd(complete, await vb.common(complete, reached)) : 0;
    reached += again;
    const take = complete.subarray(again);
    if (take.length) {
      await appendFile(local, take);
      v = merged([...prefix(v, reached), [size, size + take.length]]);
      reached += take.length;
    }
    const end = size + take.length;
    const verbatim = reached === end && v.length === 1 && v[0]![0] === 0 && v[0]![1] === end;
    return { bytes: take, localOffset: size, hostOffset: reached, shift: end - reached, cut, view: verbatim || end === 0 ? undefined : merged(v), ...(more ? { more: true } : {}) };
  } finally {
    await fh?.close();
  }
}
