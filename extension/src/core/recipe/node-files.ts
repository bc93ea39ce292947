// File access for the validator on Node (CLI, extension host, tests, bench).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { FileAccess } from './validate';

/** Largest referenced file read (accelerate configs are tiny). */
const MAX_READ = 2 * 1024 * 1024 + 1;

export const nodeFiles: FileAccess = {
  exists: (p) => existsSync(p),
  size: (p) => {
    try { return statSync(p).size; } catch { return undefined; }
  },
  isFolder: (p) => {
    try { return statSync(p).isDirectory(); } catch { return false; }
  },
  readBytes: (p) => {
    try {
      const st = statSync(p);
      if (!st.isFile()) return undefined;
      // Only the head of a huge file is read (callers check size() first to report its real size),
      // cut before a UTF-8 character the limit splits, so the cut is never reported as bad UTF-8.
      if (st.size > MAX_READ) {
        const buf = Buffer.alloc(MAX_READ);
        const fd = openSync(p, 'r');
        try { readSync(fd, buf, 0, MAX_READ, 0); } finally { closeSync(fd); }
        let end = MAX_READ;
        for (let i = end - 1; i >= Math.max(0, end - 4); i--) {
          const b = buf[i]!;
          if (b < 0x80) break; // ASCII: nothing split
          if (b >= 0xc0) { // a lead byte: keep its character only if all its bytes are here
            const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
            if (end - i < need) end = i;
            break;
          }
        }
        return buf.subarray(0, end);
      }
      return readFileSync(p);
    } catch {
      return undefined;
    }
  },
  resolve: (baseFile, rel) => resolve(dirname(baseFile), rel),
  // Runs start at the workspace (repository) root: the nearest folder above the file that holds
  // .conscience or .git; outside one, the folder the CLI runs in (not the extension host's).
  runFolder: (file) => {
    for (let dir = dirname(resolve(file)); ; dir = dirname(dir)) {
      if (existsSync(join(dir, '.conscience')) || existsSync(join(dir, '.git'))) return dir;
      if (dirname(dir) === dir) return process.cwd();
    }
  },
  stamp: (p) => {
    try {
      const st = statSync(p, { bigint: false });
      return st.isFile() ? `${st.mtimeMs}:${st.size}:${st.ino}` : undefined;
    } catch {
      return undefined;
    }
  },
};
