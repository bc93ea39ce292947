// SSH transport over ssh2: ~/.ssh/config honoured (ssh-config), host keys checked against
// known_hosts (knownhosts.ts), ProxyJump through ssh2's forwardOut, keepalives so a cut
// connection is noticed, exec for commands and SFTP for files.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import SSHConfig from 'ssh-config';
import type { ExecResult, Host } from './host';
import { addKnownHost, fingerprint, hostKeyName, keyTypeOf, loadKnownHosts, verifyHostKey } from './knownhosts';
import type { SshTarget } from './targets';

export interface UnknownHostKey {
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
  knownHostsFile: string;
}

export interface SshConnectOptions {
  /** Called for a key that known_hosts does not know. Return true to trust it (it is then added). Default: refuse. */
  onUnknownHostKey?: (info: UnknownHostKey) => Promise<boolean> | boolean;
  readyTimeoutMs?: number;
}

export class HostKeyError extends Error {
  constructor(
    message: string,
    readonly reason: 'unknown' | 'changed' | 'revoked',
  ) {
    super(message);
  }
}

const expandHome = (p: string) => (p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p);

interface Resolved {
  host: string;
  hostName: string;
  port: number;
  user: string;
  identityFiles: string[];
  proxyJump?: string;
  knownHostsFile: string;
}

async function resolve(t: { host: string; port?: number; user?: string; identityFile?: string; proxyJump?: string; knownHostsFile?: string; sshConfigFile?: string }): Promise<Resolved> {
  let computed: Record<string, string | string[]> = {};
  const cfgFile = expandHome(t.sshConfigFile ?? '~/.ssh/config');
  try {
    const text = await readFile(cfgFile, 'utf8');
    // Match exec is skipped: a config is data here, never a command to run.
    computed = SSHConfig.parse(text).compute(t.host, { ignoreCase: true, matchExec: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${cfgFile}: ${(err as Error).message}`);
  }
  const one = (k: string): string | undefined => {
    const v = computed[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const many = (k: string): string[] => {
    const v = computed[k];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  const port = t.port ?? (one('port') ? Number(one('port')) : 22);
  const pj = t.proxyJump ?? one('proxyjump');
  return {
    host: t.host,
    hostName: one('hostname') ?? t.host,
    port,
    user: t.user ?? one('user') ?? process.env.USER ?? 'root',
    identityFiles: t.identityFile ? [t.identityFile] : many('identityfile'),
    proxyJump: pj && pj.toLowerCase() !== 'none' ? pj : undefined,
    knownHostsFile: expandHome(t.knownHostsFile ?? one('userknownhostsfile')?.split(/\s+/)[0] ?? '~/.ssh/known_hosts'),
  };
}

/** Parses one ProxyJump hop: [user@]host[:port]. */
export function parseJump(spec: string): { host: string; user?: string; port?: number } {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`invalid ProxyJump '${spec}'`);
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : undefined };
}

function connectClient(r: Resolved, opts: SshConnectOptions, sock?: NodeJS.ReadableStream): Promise<Client> {
  return new Promise(async (resolveP, rejectP) => {
    let privateKey: Buffer | undefined;
    for (const f of r.identityFiles) {
      try {
        privateKey = await readFile(expandHome(f));
        break;
      } catch {
        /* try the next one */
      }
    }
    if (!privateKey && !process.env.SSH_AUTH_SOCK) {
      for (const f of ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa']) {
        try {
          privateKey = await readFile(expandHome(f));
          break;
        } catch {
          /* none */
        }
      }
    }
    let keyError: HostKeyError | undefined;
    const client = new Client();
    const cfg: ConnectConfig = {
      host: r.hostName,
      port: r.port,
      username: r.user,
      privateKey,
      agent: process.env.SSH_AUTH_SOCK,
      readyTimeout: opts.readyTimeoutMs ?? 20000,
      keepaliveInterval: 5000,
      keepaliveCountMax: 3,
      sock: sock as ConnectConfig['sock'],
      hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
        (async () => {
          // known_hosts is looked up by the name the user gave (as ssh does with HostKeyAlias unset)
          const lookup = r.hostName;
          const entries = await loadKnownHosts(r.knownHostsFile);
          const v = verifyHostKey(entries, lookup, r.port, key);
          const fp = fingerprint(key);
          const name = hostKeyName(lookup, r.port);
          if (v.kind === 'match') return true;
          if (v.kind === 'changed') {
            keyError = new HostKeyError(
              `REMOTE HOST IDENTIFICATION HAS CHANGED for ${name}: it offered ${keyTypeOf(key)} ${fp}, ` +
                `but ${r.knownHostsFile} line ${v.line} holds a different ${v.knownType} key. Refusing to connect ` +
                `(remove the old entry with: ssh-keygen -R '${name}').`,
              'changed',
            );
            return false;
          }
          if (v.kind === 'revoked') {
            keyError = new HostKeyError(`host key ${fp} of ${name} is marked @revoked in ${r.knownHostsFile} line ${v.line}`, 'revoked');
            return false;
          }
          const info: UnknownHostKey = { host: lookup, port: r.port, keyType: keyTypeOf(key), fingerprint: fp, knownHostsFile: r.knownHostsFile };
          const ok = opts.onUnknownHostKey ? await opts.onUnknownHostKey(info) : false;
          if (!ok) {
            keyError = new HostKeyError(
              `unknown host key for ${name} (${info.keyType} ${fp}); not in ${r.knownHostsFile}. ` +
                `Refusing to connect (CLI: pass --accept-new to trust it on first use).`,
              'unknown',
            );
            return false;
          }
          await addKnownHost(r.knownHostsFile, lookup, r.port, key);
          return true;
        })().then(verify, (err) => {
          keyError = new HostKeyError(`host key check failed: ${(err as Error).message}`, 'unknown');
          verify(false);
        });
      }) as ConnectConfig['hostVerifier'],
    };
    let settled = false;
    client.on('ready', () => {
      settled = true;
      resolveP(client);
    });
    client.on('error', (err) => {
      if (settled) return;
      settled = true;
      rejectP(keyError ?? new Error(`ssh ${r.user}@${r.hostName}:${r.port}: ${err.message}`));
    });
    client.on('close', () => {
      if (!settled) {
        settled = true;
        rejectP(keyError ?? new Error(`ssh ${r.user}@${r.hostName}:${r.port}: connection closed during handshake`));
      }
    });
    try {
      client.connect(cfg);
    } catch (err) {
      settled = true;
      rejectP(new Error(`ssh ${r.user}@${r.hostName}:${r.port}: ${(err as Error).message}`));
    }
  });
}

export class SshHost implements Host {
  readonly remote = true;
  private sftpP?: Promise<SFTPWrapper>;
  private homeDir?: string;
  private alive = true;
  /** What fails each SFTP request in flight (see req). */
  private readonly pending = new Set<(err: Error) => void>();
  constructor(
    private readonly client: Client,
    readonly label: string,
    private readonly jumps: Client[] = [],
  ) {
    const dead = () => {
      this.alive = false;
      this.sftpP = undefined;
      this.failPending('the connection closed');
    };
    client.on('close', dead);
    client.on('end', dead);
    client.on('error', dead);
  }
  get connected(): boolean {
    return this.alive;
  }

  async home(): Promise<string> {
    if (!this.homeDir) {
      const r = await this.exec('printf %s "$HOME"');
      if (r.code !== 0 || !r.stdout.startsWith('/')) throw new Error(`${this.label}: cannot find the home folder: ${r.stderr.trim()}`);
      this.homeDir = r.stdout;
    }
    return this.homeDir;
  }

  exec(command: string, opts: { stdin?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
    return new Promise((resolveP, rejectP) => {
      if (!this.alive) return rejectP(new Error(`${this.label}: not connected`));
      this.client.exec(command, opts.env ? { env: opts.env } : {}, (err: Error | undefined, stream: ClientChannel) => {
        if (err) return rejectP(new Error(`${this.label}: ${err.message}`));
        const out: Buffer[] = [];
        const errs: Buffer[] = [];
        let code: number | null = null;
        let signal: string | null = null;
        let timer: NodeJS.Timeout | undefined;
        if (opts.timeoutMs) timer = setTimeout(() => stream.close(), opts.timeoutMs);
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errs.push(d));
        stream.on('exit', (c: number | null, s?: string) => {
          code = c;
          signal = s ?? null;
        });
        stream.on('close', () => {
          if (timer) clearTimeout(timer);
          resolveP({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8') });
        });
        stream.on('error', (e: Error) => rejectP(e));
        stream.end(opts.stdin ?? '');
      });
    });
  }

  private failPending(why: string): void {
    for (const fail of [...this.pending]) fail(new Error(`${this.label}: ${why}`));
  }

  private sftp(): Promise<SFTPWrapper> {
    if (!this.alive) return Promise.reject(new Error(`${this.label}: not connected`));
    if (!this.sftpP) {
      const p = this.req<SFTPWrapper>((cb) => this.client.sftp(cb));
      this.sftpP = p;
      p.then(
        (s) => s.on('close', () => {
          if (this.sftpP === p) this.sftpP = undefined;
          this.failPending('the SFTP channel closed');
        }),
        () => { if (this.sftpP === p) this.sftpP = undefined; },
      );
    }
    return this.sftpP;
  }

  /**
   * One request on the connection: settles with the server's answer, or fails when the
   * connection or its SFTP channel closes first. ssh2 fails the requests in flight when a
   * connection is cut, but one sent after that (the handle's close in a finally, the next read)
   * is never answered: a read cut mid-file used to hang for good, and the run monitor with it.
   */
  private req<T>(send: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.label}: not connected`));
    return new Promise<T>((resolveP, rejectP) => {
      const fail = (err: Error): void => {
        if (this.pending.delete(fail)) rejectP(err);
      };
      this.pending.add(fail);
      try {
        send((err, value) => {
          if (!this.pending.delete(fail)) return;
          if (err) rejectP(err);
          else resolveP(value as T);
        });
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  async readFrom(path: string, offset = 0, maxBytes = Infinity): Promise<Buffer | undefined> {
    const sftp = await this.sftp();
    const handle = await this.req<Buffer>((cb) => sftp.open(path, 'r', cb)).catch((err: { code?: number }) => {
      if (err.code === 2) return undefined; // no such file
      throw err;
    });
    if (!handle) return undefined;
    try {
      const st = await this.req<{ size: number }>((cb) => sftp.fstat(handle, cb));
      const size = st.size;
      if (size <= offset) return Buffer.alloc(0);
      const buf = Buffer.alloc(Math.min(size - offset, maxBytes));
      let got = 0;
      while (got < buf.length) {
        const n = await this.req<number>((cb) => sftp.read(handle, buf, got, Math.min(buf.length - got, 32768), offset + got, (err, bytes) => cb(err, bytes)));
        if (n <= 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      // on a dead connection this fails instead of waiting for an answer that never comes
      await this.req<void>((cb) => sftp.close(handle, cb)).catch(() => undefined);
    }
  }

  async writeFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    await this.req<void>((cb) => sftp.writeFile(path, data, { mode }, cb)).catch((err: Error) => {
      throw new Error(`${this.label}: write ${path}: ${err.message}`);
    });
    await this.req<void>((cb) => sftp.chmod(path, mode, cb));
  }

  async mkdirp(path: string): Promise<void> {
    const { shQuote } = await import('./quote');
    const r = await this.exec(`mkdir -p -- ${shQuote(path)}`);
    if (r.code !== 0) throw new Error(`${this.label}: mkdir ${path}: ${r.stderr.trim()}`);
  }

  async close(): Promise<void> {
    this.alive = false;
    this.client.end();
    for (const j of this.jumps.reverse()) j.end();
  }
}

/** Opens an SSH connection to a target, through its ProxyJump hops when set. */
export async function connectSsh(t: SshTarget, opts: SshConnectOptions = {}): Promise<SshHost> {
  const r = await resolve(t);
  const jumps: Client[] = [];
  let sock: NodeJS.ReadableStream | undefined;
  try {
    if (r.proxyJump) {
      for (const hop of r.proxyJump.split(',')) {
        const j = parseJump(hop);
        const jr = await resolve({ host: j.host, port: j.port, user: j.user, knownHostsFile: t.knownHostsFile, sshConfigFile: t.sshConfigFile });
        // a hop without its own IdentityFile (ssh config) tries the target's key
        if (!jr.identityFiles.length && t.identityFile) jr.identityFiles = [t.identityFile];
        const c = await connectClient(jr, opts, sock);
        jumps.push(c);
        // next hop (or the target) is reached through this one
        const nextSpec = r.proxyJump.split(',')[jumps.length];
        const next = nextSpec ? await resolve({ ...parseJump(nextSpec), sshConfigFile: t.sshConfigFile }) : r;
        sock = await new Promise<ClientChannel>((res, rej) =>
          c.forwardOut('127.0.0.1', 0, next.hostName, next.port, (err, stream) => (err ? rej(new Error(`ProxyJump ${hop}: ${err.message}`)) : res(stream))),
        );
      }
    }
    const client = await connectClient(r, opts, sock);
    return new SshHost(client, `${r.user}@${r.hostName}${r.port !== 22 ? ':' + r.port : ''}`, jumps);
  } catch (err) {
    for (const j of jumps) j.end();
    throw err;
  }
}
