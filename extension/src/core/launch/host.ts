// A host we run commands on and move files to: this machine (child_process + fs) or an SSH
// server (ssh2 exec + SFTP, in ssh.ts). Commands are shell strings built with shQuote only.
import { spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { readRange } from '../files';

export interface ExecResult {
  code: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
}

export interface Host {
  /** "local" or "user@host:port". */
  readonly label: string;
  readonly remote: boolean;
  /** The login user's home folder on the host (absolute). */
  home(): Promise<string>;
  /** Runs a shell command (sh -c) and collects its output. `env` reaches the command's environment. */
  exec(command: string, opts?: { stdin?: string | Buffer; timeoutMs?: number; env?: Record<string, string> }): Promise<ExecResult>;
  /** Bytes of `path` from `offset` to its current end, at most `maxBytes` of them; undefined when the file does not exist. */
  readFrom(path: string, offset?: number, maxBytes?: number): Promise<Buffer | undefined>;
  /** Writes a whole file (parent folders must exist), with `mode` applied before any byte is written. */
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void>;
  mkdirp(path: string): Promise<void>;
  /** True while the connection is usable (always true locally). */
  readonly connected: boolean;
  close(): Promise<void>;
}

export class LocalHost implements Host {
  readonly label = 'local';
  readonly remote = false;
  readonly connected = true;
  async home(): Promise<string> {
    return homedir();
  }
  exec(command: string, opts: { stdin?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.stdin ?? '');
    });
  }
  readFrom(path: string, offset = 0, maxBytes = Infinity): Promise<Buffer | undefined> {
    return readRange(path, offset, maxBytes);
  }
  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    // open with the mode first (O_CREAT|O_TRUNC) so a secret is never readable by others
    const fh = await open(path, 'w', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
  }
  async mkdirp(path: string): Promise<void> {
    await mkdir(path, { recursive: true });
  }
  async close(): Promise<void> {}
}

