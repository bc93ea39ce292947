// File access for the validator on Node (CLI, extension host, tests, bench).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { FileAccess } from './validate';

/** Largest referenced file read (accelerate configs are tiny). */
const MAX_READ = 2 * 1024 * 1024 + 1;

export const nodeFiles: FileAccess = {
  exists: (p) => existsSync(p),
  readBytes: (p) => {
    try {
      const st = statSync(p);
      if (!st.isFile()) return undefined;
      // Only the head of a huge file is read: enough for the validator to say it is too large.
      if (st.size > MAX_READ) {
        const buf = Buffer.alloc(MAX_READ);
        const fd = openSync(p, 'r');
        try { readSync(fd, buf, 0, MAX_READ, 0); } finally { closeSync(fd); }
        return buf;
      }
      return readFileSync(p);
    } catch {
      return undefined;
    }
  },
  resolve: (baseFile, rel) => resolve(dirname(baseFile), rel),
  stamp: (p) => {
    try {
      const st = statSync(p, { bigint: false });
      return st.isFile() ? `${st.mtimeMs}:${st.size}:${st.ino}` : undefined;
    } catch {
      return undefined;
    }
  },
};
