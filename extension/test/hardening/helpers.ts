// Shared by the hardening tests: a workspace with one local run whose trainer has already
// exited (a real process that ran and ended), its host output folder holding a given
// events.jsonl, and the real `conscience` CLI run against it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeRun, type RunRecord } from '../../src/core/runs/store';

export const REPO = resolve(__dirname, '..', '..', '..');
/** tsx by path, so the CLI runs from any working folder. */
const TSX = pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/** Runs the CLI entry point (extension/src/cli/main.ts) as a user would, with a hard timeout. */
export function cli(args: string[], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): { code: number | null; stdout: string; stderr: string; timedOut: boolean } {
  const r = spawnSync(process.execPath, ['--import', TSX, join(REPO, 'extension/src/cli/main.ts'), ...args], {
    cwd: opts.cwd ?? REPO,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    input: opts.input,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT' };
}

/** The pid of a process that ran and has exited (its session has no live member any more). */
export function deadPid(): number {
  const r = spawnSync('/bin/sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

/**
 * A workspace with run `id` on the local target, state `running` as the monitor last saw it,
 * whose trainer exited with `exitCode`; `events` is the host's <output_dir>/events.jsonl.
 */
export async function localRunWorkspace(events: string | Buffer, opts: { id?: string; exitCode?: number; state?: RunRecord['state']; extra?: Partial<RunRecord> } = {}): Promise<{ root: string; id: string; outputDir: string; remoteDir: string }> {
  const root = mkdtempSync(join(tmpdir(), 'hard-ws-'));
  const id = opts.id ?? '20261126-101500-abc123';
  const remoteDir = join(root, 'host', 'runs', id);
  const outputDir = join(remoteDir, 'out');
  mkdirSync(outputDir, { recursive: true });
  writeFileSync(join(outputDir, 'events.jsonl'), events);
  writeFileSync(join(remoteDir, 'exit_code'), `${opts.exitCode ?? 0}\n`);
  writeFileSync(join(remoteDir, 'stdout.log'), '');
  writeFileSync(join(remoteDir, 'stderr.log'), '');
  const pid = deadPid();
  const now = Date.now() / 1000;
  const rec: RunRecord = {
    id, recipe: 'recipe.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: join(root, 'host'), remoteDir, outputDir,
    python: 'python3', pid, pgid: pid, state: opts.state ?? 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0,
    createdAt: now - 60, startedAt: now - 60, updatedAt: now, command: 'python3 -m conscience.train recipe.yaml', attempts: 1,
    ...opts.extra,
  };
  await writeRun(root, rec);
  return { root, id, outputDir, remoteDir };
}
