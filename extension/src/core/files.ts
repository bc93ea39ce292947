// Ranged reads of a local file, for everything that reads part of a growing or large file: the
// local host's readFrom (the run monitor's event copy, eval outputs) and the log tail the editor
// shows. vscode-free.
import { open } from 'node:fs/promises';

/** Up to `maxBytes` of a file from byte `offset` (empty past its end). A missing file is
 * `undefined`; other errors (a folder, no permission) are thrown. */
export async function readRange(path: string, offset = 0, maxBytes = Infinity): Promise<Buffer | undefined> {
  const r = await readWith(path, () => offset, maxBytes);
  return r?.buf;
}

/** The last `maxBytes` of a file (starting at a line when it is cut), and how many bytes before
 * it were left out. A missing file is `undefined`; other read errors are thrown. */
export async function readTail(file: string, maxBytes: number): Promise<{ text: string; skipped: number } | undefined> {
  const r = await readWith(file, (size) => Math.max(0, size - maxBytes), maxBytes);
  if (!r) return undefined;
  let body = r.buf;
  let skipped = r.start;
  if (r.start > 0) {
    // start at a line (and so never inside a UTF-8 sequence) when one begins in the tail
    const nl = body.indexOf(0x0a);
    if (nl >= 0 && nl < body.length - 1) { body = body.subarray(nl + 1); skipped += nl + 1; }
  }
  return { text: body.toString('utf8'), skipped };
}

/** Opens `path`, picks the start from its size, and reads until `maxBytes` or the end as it was
 * when opened (a short read is retried, so a big range comes back whole). */
async function readWith(path: string, startAt: (size: number) => number, maxBytes: number): Promise<{ buf: Buffer; start: number } | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    const start = startAt(size);
    if (size <= start) return { buf: Buffer.alloc(0), start };
    const buf = Buffer.alloc(Math.min(size - start, maxBytes));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
      if (!bytesRead) break;
      got += bytesRead;
    }
    return { buf: buf.subarray(0, got), start };
  } finally {
    await fh.close();
  }
}
