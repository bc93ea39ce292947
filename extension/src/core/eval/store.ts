// Where an eval run's files are read from: results.json and completions.jsonl (written by
// runtime/conscience/eval.py in the run's output dir). When the run settles, the run monitor
// (core/launch/monitor.ts) copies both into the run store (copyEvalOutputs), on every target: a
// remote eval is then read as a local one, and each run keeps its own results even when a later
// run of the same recipe writes the same output_dir. A local run not settled yet is read where
// it runs (its partial results).
import { rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runDir, type RunRecord } from '../runs/store';
import { TERMINAL_STATES } from '../runs/state';

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
  const dir = runDir(root, run.id);
  const stored = join(dir, 'results.json');
  const completions = join(dir, 'completions.jsonl');
  // a local run going (a resumed one included: its store copies are the ended attempt's) is read where it runs
  const live = run.targetKind === 'local' && !TERMINAL_STATES.has(run.state);
  if (!live && await isFile(stored)) return { results: stored, completions: (await isFile(completions)) ? completions : undefined };
  if (run.targetKind === 'local') return { results: join(run.outputDir, 'results.json'), completions: join(run.outputDir, 'completions.jsonl') };
  return { results: stored };
}

/** Whether `run` has results to show (an eval run that wrote its first batch). */
export async function hasResults(root: string, run: RunRecord): Promise<boolean> {
  return isFile((await evalFiles(root, run)).results);
}
