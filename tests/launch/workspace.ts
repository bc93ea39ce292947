// A throwaway workspace for the launch tests: a copy of runtime/ and the demo recipe, a long
// variant of it (for cancel / kill / disconnect scenarios), and a targets file.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dump } from 'js-yaml';
import { pathToFileURL } from 'node:url';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const PYTHON = join(REPO, '.venv', 'bin', 'python');

const created: string[] = [];

/** Test cleanup: removes every workspace made by makeWorkspace in this process. */
export function removeWorkspaces(): void {
  for (const d of created.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function makeWorkspace(targets: Record<string, unknown>): string {
  const root = mkdtempSync(join(tmpdir(), 'conscience-ws-'));
  created.push(root);
  cpSync(join(REPO, 'runtime'), join(root, 'runtime'), {
    recursive: true,
    filter: (src) => !/__pycache__|\.egg-info|\.pytest_cache|[/\\]tests([/\\]|$)/.test(src),
  });
  mkdirSync(join(root, 'recipes', 'demo'), { recursive: true });
  const demo = readFileSync(join(REPO, 'recipes', 'demo', 'tiny-cpu.yaml'), 'utf8');
  writeFileSync(join(root, 'recipes', 'demo', 'tiny-cpu.yaml'), demo);
  // one process, many steps, frequent checkpoints: a trainer that runs until cancelled
  const long = demo
    .replace(/^max_steps:.*$/m, 'max_steps: 400')
    .replace(/^save_steps:.*$/m, 'save_steps: 2')
    .replace(/^( {2}num_processes:).*$/m, '$1 1');
  writeFileSync(join(root, 'recipes', 'demo', 'long.yaml'), long);
  writeFileSync(join(root, 'conscience.targets.yaml'), dump(targets));
  return root;
}

/** Runs the CLI (from source, through tsx) in a fresh process. */
export function cli(root: string, args: string[], env: Record<string, string> = {}, timeoutMs = 600_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(REPO, 'extension', 'src', 'cli', 'main.ts'), ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', rej);
    p.on('close', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

/** Pids of live (non-zombie) processes whose environment carries CONSCIENCE_RUN_ID=id. */
export function processesOfRun(id: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue;
      const env = readFileSync(`/proc/${d}/environ`);
      if (env.toString('utf8').split('\0').includes(`CONSCIENCE_RUN_ID=${id}`)) out.push(Number(d));
    } catch {
      /* gone or not readable */
    }
  }
  return out;
}

export function environOf(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`).toString('utf8').split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 300_000, everyMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Asserts the local copy is the remote file byte for byte, with seq 0..n-1 each once. */
export function checkEventsComplete(localFile: string, remoteFile: string): { count: number; seqs: number[] } {
  const local = readFileSync(localFile);
  const remote = readFileSync(remoteFile);
  if (!local.equals(remote)) throw new Error(`local events (${local.length} bytes) differ from the host's (${remote.length} bytes)`);
  const seqs = local.toString('utf8').trim().split('\n').map((l) => JSON.parse(l).seq as number);
  seqs.forEach((s, i) => {
    if (s !== i) throw new Error(`event ${i} has seq ${s}: lost or duplicated events`);
  });
  return { count: seqs.length, seqs };
}

/** Test cleanup: SIGKILL every process of every run recorded in the workspace (even after a failed assertion). */
export function killRunsOf(root: string): void {
  let ids: string[] = [];
  try {
    ids = readdirSync(join(root, '.conscience', 'runs'));
  } catch {
    return;
  }
  for (const id of ids) {
    for (const pid of processesOfRun(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}
