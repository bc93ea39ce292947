// Shared by the allocator tests: where the repo, the shipped model and the Python reference are.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '../../..');
export const MODEL_DIR = join(REPO, 'models', 'allocator');
export const PYTHON = join(REPO, '.venv', 'bin', 'python');

export function requireReference(): void {
  if (!existsSync(PYTHON)) throw new Error(`Python reference missing: ${PYTHON} (run scripts/setup.sh)`);
  if (!existsSync(join(MODEL_DIR, 'model.onnx'))) throw new Error(`allocator model missing: ${MODEL_DIR}/model.onnx (run scripts/setup.sh or python -m conscience.allocator train)`);
}

/** Runs Python code with the project venv; returns stdout, throws with stderr on failure. */
export function python(code: string, input = '', args: string[] = []): string {
  requireReference();
  const r = spawnSync(PYTHON, ['-c', code, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 28, cwd: REPO, env: { ...process.env, PYTHONPATH: join(REPO, 'runtime') } });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
