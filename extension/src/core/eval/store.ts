// Where an eval run's files are read from: results.json and completions.jsonl (written by
// runtime/conscience/eval.py in the run's output dir). A run on this machine is read where it
// ran; a run on another host (SSH, SLURM) has both files copied into the run store when it
// settles (core/launch/monitor.ts calls copyEvalOutputs), so the report, `conscience eval
// --wait` and Compare read a remote eval as they read a local one.
import { rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runDir, type RunRecord } from '../runs/store';

export const EVAL_FILES = ['results.json', 'completions.jsonl'] as const;

/**
 * Copies the eval files of `outputDir` on a host into `storeDir` (each written whole, then
 * renamed into place). A file the host does not have is skipped: a training run has neither,
 * and an eval that failed before its first batch has no results.json. A read that fails (a
 * dropped connection) throws. Returns the names copied.
 */
export async function copyEvalOutputs(readFrom: (path: string) => Promise<Buffer | undefined>, outputDir: string, storeDir: string): Promise<string[]> {
  const copied: string[] = [];
  for (const name of EVAL_FILES) {
    // undefined: the host has no such file; a failed read (a dropped connection) throws, and the
    // monitor settles the run at a later poll instead of without its results
    const buf = await readFrom(`${outputDir}/${name}`);
    if (!buf) continue;
    const dest = join(storeDir, name);
    await writeFile(`${dest}.tmp`, buf);
    await rename(`${dest}.tmp`, dest);
    copied.push(name);
  }
  return copied;
}

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

/** The results.json and completions.jsonl to read for `run` (completions undefined when there is none). */
export async function evalFiles(root: string, run: RunRecord): Promise<{ results: string; completions?: string }> {
  if (run.targetKind === 'local' && (await isFile(join(run.outputDir, 'results.json')))) {
    return { results: join(run.outputDir, 'results.json'), completions: join(run.outputDir, 'completions.jsonl') };
  }
  const dir = runDir(root, run.id);
  const completions = join(dir, 'completions.jsonl');
  return { results: join(dir, 'results.json'), completions: (await isFile(completions)) ? completions : undefined };
}
