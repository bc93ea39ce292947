// The host's Python environment. A target with `python:` uses that interpreter as is.
// Otherwise a venv is built under <base>/envs/<sha256 of the requirements file>/ with uv when
// the host has it, else `python3 -m venv` + pip, from the pinned requirements, and reused for
// as long as that hash is unchanged (a `.conscience-ready` marker is written last, so a build
// that was interrupted is redone). Concurrent launches serialise on a flock.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { Host } from './host';
import { shQuote } from './quote';
import { SyncSource } from './sync';
import type { Target } from './targets';

/**
 * The runtime stacks a target can name in `requirements:` (runtime/requirements/<name>.txt):
 * `cpu`/`gpu` are open-r1's TRL 0.18.2 stack, `cpu-current`/`gpu-current` the current TRL 1.x one.
 */
export const STACKS = ['cpu', 'gpu', 'cpu-current', 'gpu-current'] as const;

/** The requirements a target's environment is built from: its own, else gpu.txt on a target with GPUs, else cpu.txt. */
export function requirementsPath(t: Target): string {
  const gpus = t.type === 'slurm' || t.type === 'ssh' ? t.gpusPerNode ?? 0 : 0;
  const r = t.requirements ?? (gpus > 0 ? 'gpu' : 'cpu');
  return (STACKS as readonly string[]).includes(r) ? `runtime/requirements/${r}.txt` : r;
}

export interface EnvResult {
  python: string;
  built: boolean;
  tool?: 'uv' | 'venv';
  envDir?: string;
}

export async function ensurePython(host: Host, t: Target, source: string | SyncSource, baseDir: string, onProgress?: (msg: string) => void): Promise<EnvResult> {
  if (t.python) {
    const r = await host.exec(`command -v -- ${shQuote(t.python)} >/dev/null 2>&1 && ${shQuote(t.python)} -c 'import sys; print(sys.version_info[0])'`);
    if (r.code !== 0 || r.stdout.trim() !== '3')
      throw new Error(`target '${t.name}': python '${t.python}' is not a working Python 3 on ${host.label}${r.stderr ? ': ' + r.stderr.trim() : ''}`);
    return { python: t.python, built: false };
  }
  const reqRel = requirementsPath(t);
  // a workspace file, or an absolute path on this machine (joined to the workspace it named a file that is not there)
  const reqAbs = isAbsolute(reqRel) ? reqRel : SyncSource.of(source).abs(reqRel);
  let req: Buffer;
  try {
    req = await readFile(reqAbs);
  } catch (err) {
    throw new Error(`target '${t.name}': cannot read requirements ${reqAbs}: ${(err as Error).message}`);
  }
  const hash = createHash('sha256').update(req).digest('hex').slice(0, 16);
  const envDir = `${baseDir}/envs/${hash}`;
  const python = `${envDir}/bin/python`;
  const ready = await host.exec(`test -f ${shQuote(envDir + '/.conscience-ready')} && test -x ${shQuote(python)}`);
  if (ready.code === 0) return { python, built: false, envDir };
  await host.mkdirp(`${baseDir}/envs`);
  const reqFile = `${baseDir}/envs/${hash}.requirements.txt`;
  await host.writeFile(reqFile, req, 0o644);
  onProgress?.(`building the Python environment on ${host.label} from ${reqRel} (${hash})…`);
  const E = shQuote(envDir);
  const R = shQuote(reqFile);
  const script = [
    'set -e',
    `exec 9>${shQuote(envDir + '.lock')}`,
    'command -v flock >/dev/null 2>&1 && flock 9',
    `if [ -f ${E}/.conscience-ready ]; then echo tool=reused; exit 0; fi`,
    `rm -rf -- ${E}`,
    'if command -v uv >/dev/null 2>&1; then',
    `  echo tool=uv; uv venv -q ${E} && VIRTUAL_ENV=${E} uv pip install -q -r ${R}`,
    'else',
    `  echo tool=venv; python3 -m venv ${E} && ${E}/bin/pip install -q --disable-pip-version-check -r ${R}`,
    'fi',
    `touch ${E}/.conscience-ready`,
  ].join('\n');
  const r = await host.exec(script);
  if (r.code !== 0) throw new Error(`building the Python environment on ${host.label} failed (exit ${r.code}):\n${(r.stderr || r.stdout).trim().slice(-4000)}`);
  const tool = /tool=uv/.test(r.stdout) ? 'uv' : 'venv';
  onProgress?.(`Python environment ready (${tool}) at ${envDir}`);
  return { python, built: true, tool, envDir };
}
