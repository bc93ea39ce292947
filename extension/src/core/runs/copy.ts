// Copies the new complete lines of a host's events.jsonl into the run store's local copy, and
// notices when the host's file was cut under the copy (truncated, or rewritten by a writer that
// started again from a shorter file). The local copy stays append-only in every case: its
// readers (dashboard, Runs view, CLI) never see it shrink. After a cut, the host's lines from
// the cut on are appended after what the copy had, and `shift` (local size minus the host
// offset reached) records the difference, so the next read starts at the right host byte.
// The monitor (core/launch/monitor.ts) keeps `shift` in run.json (eventShift).
import { appendFile, open } from 'node:fs/promises';
import { completeSize } from './store';

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
}

/** Length of the common prefix of the host's bytes and the local file's first bytes. */
async function commonPrefix(host: Buffer, local: string): Promise<number> {
  const fh = await open(local, 'r');
  try {
    const piece = 1024 * 1024;
    let at = 0;
    const buf = Buffer.alloc(piece);
    while (at < host.length) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(piece, host.length - at), at);
      if (bytesRead === 0) return at;
      const theirs = host.subarray(at, at + bytesRead);
      if (!theirs.equals(buf.subarray(0, bytesRead))) {
        let i = 0;
        while (i < bytesRead && theirs[i] === buf[i]) i++;
        return at + i;
      }
      at += bytesRead;
    }
    return at;
  } finally {
    await fh.close();
  }
}

/** How many bytes before the offset reached must still be the ones copied (a verbatim copy's last bytes). */
const TAIL_CHECK_BYTES = 4096;

/** The last `n` bytes of a local file of `size` bytes. */
async function lastBytes(file: string, size: number, n: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, size - n);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * `readFrom(offset)` reads the host's file from a byte offset (undefined when it is missing).
 * Reads from a little before the offset reached: while the copy is verbatim (shift 0) the host's
 * bytes there must still be the copy's last bytes (up to 4 KiB, the last line's end included),
 * else the host's file was cut, rewritten or replaced below the offset, even when it grew past
 * it again with a line ending where the old one did; after a cut (shift > 0) the byte before
 * the offset must still end a line. The cut is found by comparing the host's file with the local
 * copy (when the copy is still verbatim, shift 0); otherwise the host's lines after the last
 * seq taken are appended.
 */
export async function copyEventLines(readFrom: (offset: number) => Promise<Buffer | undefined>, local: string, shift: number, lastSeq?: number): Promise<CopyResult> {
  const localSize = await completeSize(local);
  let hostOffset = Math.max(0, localSize - shift);
  let buf: Buffer | undefined;
  let cut: string | undefined;
  if (hostOffset > 0) {
    const n = shift === 0 ? Math.min(hostOffset, TAIL_CHECK_BYTES) : 1;
    const b = await readFrom(hostOffset - n);
    const copied = shift === 0 ? await lastBytes(local, localSize, n) : Buffer.from([0x0a]);
    if (b && b.length >= n && b.subarray(0, n).equals(copied)) buf = b.subarray(n);
    else if (b) {
      const whole = (await readFrom(0)) ?? Buffer.alloc(0);
      if (shift === 0) {
        const same = await commonPrefix(whole.subarray(0, Math.min(whole.length, hostOffset)), local);
        const k = same > 0 ? whole.lastIndexOf(0x0a, same - 1) + 1 : 0;
        cut = `the host's events.jsonl was cut under the copy (it is ${whole.length} bytes, ${hostOffset} had been copied; the first ${k} are unchanged): the lines written after the cut are appended to the local copy, which keeps every line it had`;
        hostOffset = k;
        buf = whole.subarray(k);
      } else {
        // cut again after an earlier cut: take the lines whose seq is after the last one taken
        const lines = whole.subarray(0, whole.lastIndexOf(0x0a) + 1).toString('utf8').split('\n');
        const keep = lines.filter((l) => {
          try {
            const seq = (JSON.parse(l) as { seq?: unknown }).seq;
            return typeof seq === 'number' && (lastSeq === undefined || seq > lastSeq);
          } catch {
            return false;
          }
        });
        cut = `the host's events.jsonl was cut under the copy again (it is ${whole.length} bytes, ${hostOffset} had been copied): the lines after seq ${lastSeq} are appended`;
        hostOffset = whole.lastIndexOf(0x0a) + 1;
        buf = Buffer.from(keep.map((l) => l + '\n').join(''));
        if (buf.length) await appendFile(local, buf);
        return { bytes: buf, localOffset: localSize, hostOffset, shift: localSize + buf.length - hostOffset, cut };
      }
    }
  } else buf = await readFrom(0);
  if (!buf || !buf.length) return { bytes: Buffer.alloc(0), localOffset: localSize, hostOffset, shift: localSize - hostOffset, cut };
  const nl = buf.lastIndexOf(0x0a);
  const take = nl < 0 ? Buffer.alloc(0) : buf.subarray(0, nl + 1);
  if (take.length) await appendFile(local, take);
  return { bytes: take, localOffset: localSize, hostOffset: hostOffset + take.length, shift: localSize + take.length - (hostOffset + take.length), cut };
}
