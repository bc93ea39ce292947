// A real OpenSSH sshd for the launch tests: random high port on 127.0.0.1, generated host
// and user keys in a temp dir, its own config (-f), UsePAM no, root login with the key only.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

export interface Sshd {
  port: number;
  dir: string;
  userKey: string;
  knownHosts: string;
  /** The host's public key line ("ssh-ed25519 AAAA..."). */
  hostPub: string;
  /** Kills the per-connection sshd processes (cuts every open session) but keeps listening. */
  cutConnections(): void;
  /** Stops the listener and every connection, then starts sshd again on the same port. */
  restart(): Promise<void>;
  stop(): void;
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    const ok = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(p, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) return p;
  }
  throw new Error('no free port found');
}

function keygen(file: string, comment: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((x) => Number(x.trim())).filter((x) => x > 0);
}

export async function startSshd(opts: { hashKnownHosts?: boolean } = {}): Promise<Sshd> {
  const sshd = '/usr/sbin/sshd';
  if (!existsSync(sshd)) throw new Error('sshd is missing: run scripts/setup.sh (installs openssh-server)');
  const dir = mkdtempSync(join(tmpdir(), 'conscience-sshd-'));
  const port = await freePort();
  keygen(join(dir, 'host_ed25519'), 'host');
  keygen(join(dir, 'id_ed25519'), 'user');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'id_ed25519.pub')), { mode: 0o600 });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation folder
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_ed25519')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'UsePAM no',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'StrictModes no',
    'MaxStartups 100',
    'MaxSessions 100',
    `Subsystem sftp internal-sftp`,
    'LogLevel ERROR',
  ].join('\n');
  writeFileSync(join(dir, 'sshd_config'), config + '\n');
  const hostPub = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  const name = `[127.0.0.1]:${port}`;
  writeFileSync(knownHosts, `${name} ${hostPub}\n`, { mode: 0o600 });
  if (opts.hashKnownHosts) {
    const r = spawnSync('ssh-keygen', ['-H', '-f', knownHosts]);
    if (r.status !== 0) throw new Error(`ssh-keygen -H failed: ${r.stderr}`);
  }
  writeFileSync(join(dir, 'ssh_config'), '# empty: the tests do not read ~/.ssh/config\n');

  let proc: ChildProcess | undefined;
  const launch = async () => {
    proc = spawn(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    // wait until it accepts connections
    const { connect } = await import('node:net');
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((res) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          res(true);
        });
        s.once('error', () => res(false));
      });
      if (ok) return;
      if (proc.exitCode !== null) throw new Error(`sshd exited: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`sshd did not listen on ${port}: ${err}`);
  };
  await launch();
  // every process below the listener (per-connection sshd and sshd-session processes hold the
  // socket; the detached run was reparented away at start and is not among them)
  const descendants = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
  const isSshd = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('sshd');
    } catch {
      return false;
    }
  };
  const cut = () => {
    if (!proc?.pid) return;
    // only the sshd processes (that is what holds the network side); a session's shell is left
    // to finish, as after a real network cut: killing it mid-rc could leave e.g. a stale
    // pyenv rehash lock behind in the login user's home
    for (const c of descendants(proc.pid).filter(isSshd)) {
      try {
        process.kill(c, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  const stopNow = async () => {
    cut();
    if (proc && proc.exitCode === null) {
      const p = proc;
      const done = new Promise((res) => p.once('exit', res));
      p.kill('SIGTERM');
      await done;
    }
  };
  return {
    port,
    dir,
    userKey: join(dir, 'id_ed25519'),
    knownHosts,
    hostPub,
    cutConnections: cut,
    restart: async () => {
      await stopNow();
      await launch();
    },
    stop: () => {
      cut();
      if (proc && proc.exitCode === null) proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
