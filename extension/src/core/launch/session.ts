// One place that knows the targets and holds open connections (one per SSH target, reopened
// after a drop). Used by the launcher, the monitor and cancel/resume, in the CLI and the editor.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { LocalHost, type Host } from './host';
import { connectSsh, type SshConnectOptions } from './ssh';
import { packageRoot, SyncSource } from './sync';
import type { SshTarget, Target } from './targets';

export interface SessionOptions extends SshConnectOptions {
  /** HF_TOKEN, WANDB_API_KEY, ...: sent to the host in a 0600 file deleted by the run at start. */
  secrets?: Record<string, string>;
  onProgress?: (msg: string) => void;
  /** The folder that ships runtime/ and models/allocator/ (the extension's folder); defaults to this package's root. */
  bundleRoot?: string;
}

export class LaunchSession {
  private readonly hosts = new Map<string, Promise<Host>>();
  /** Where synced files are read from: the workspace, and the bundle for runtime/ and the allocator. */
  readonly source: SyncSource;
  constructor(
    readonly root: string,
    readonly targets: Map<string, Target>,
    readonly opts: SessionOptions = {},
  ) {
    this.source = new SyncSource(root, opts.bundleRoot ?? packageRoot());
  }

  target(name: string): Target {
    const t = this.targets.get(name);
    if (!t) throw new Error(`unknown target '${name}' (known: ${[...this.targets.keys()].join(', ')})`);
    return t;
  }

  /** The SSH target that carries `t`, or undefined for this machine. */
  connectionOf(t: Target): SshTarget | undefined {
    if (t.type === 'ssh') return t;
    if (t.type === 'slurm' && t.via) return this.target(t.via) as SshTarget;
    return undefined;
  }

  /** An open host for a target; a dropped SSH connection is opened again. */
  async host(t: Target): Promise<Host> {
    const ssh = this.connectionOf(t);
    const key = ssh ? ssh.name : 'local';
    const cached = this.hosts.get(key);
    if (cached) {
      try {
        const h = await cached;
        if (h.connected) return h;
      } catch {
        /* reconnect below */
      }
    }
    const p: Promise<Host> = ssh ? connectSsh(ssh, this.opts) : Promise.resolve(new LocalHost());
    this.hosts.set(key, p);
    p.catch(() => this.hosts.delete(key));
    return p;
  }

  /** Forget a connection (after an error) so the next call reconnects. */
  async drop(t: Target): Promise<void> {
    const ssh = this.connectionOf(t);
    const key = ssh ? ssh.name : 'local';
    const p = this.hosts.get(key);
    this.hosts.delete(key);
    if (p) await p.then((h) => h.close(), () => undefined);
  }

  /** Base folder on the host: the target's workdir, else ~/.conscience (SSH) or <workspace>/.conscience/host. */
  async baseDir(t: Target, host: Host): Promise<string> {
    const w = t.workdir ?? (this.connectionOf(t) ? '~/.conscience' : `${this.root}/.conscience/host`);
    if (w === '~' || w.startsWith('~/')) return (await host.home()) + w.slice(1);
    if (!w.startsWith('/')) return `${await host.home()}/${w}`;
    return w.replace(/\/+$/, '');
  }

  /** Per-project folder name: the workspace folder's name plus a hash of its real path (the
   * same workspace opened through a link, or as `dir/.` by the CLI and `dir` by the editor,
   * syncs into the same folder on the host, not a second full copy). */
  projectKey(): string {
    let path = this.root;
    try {
      path = realpathSync.native(this.root);
    } catch {
      /* not on this machine (yet): the path as given */
    }
    const name = basename(path).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40) || 'project';
    return `${name}-${createHash('sha256').update(path).digest('hex').slice(0, 8)}`;
  }

  async close(): Promise<void> {
    const all = [...this.hosts.values()];
    this.hosts.clear();
    await Promise.all(all.map((p) => p.then((h) => h.close(), () => undefined)));
  }
}
