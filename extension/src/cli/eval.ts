// conscience eval EVAL.yaml [--target T] [--wait] [--format json]: launch an eval recipe
// (`kind: eval`, run by `python -m conscience.eval`) through the one launch flow of
// `conscience launch` (cli/runs.ts launchWith: guard, plan or launch, snapshot, follow), plus a
// kind check; with --wait, print its results (the arm x label table, or JSON); a remote run's
// results.json and completions.jsonl are copied into the run store (core/eval/store.ts).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseResults, formatTable, type EvalResults } from '../core/eval/results';
import { copyEvalOutputs, evalFiles } from '../core/eval/store';
import { readRecipeInfo } from '../core/launch/scripts';
import type { LaunchSession } from '../core/launch/session';
import { runDir, type RunRecord } from '../core/runs/store';
import { publicRun } from '../core/runs/present';
import { launchWith, UsageError } from './runs';

const USAGE = 'usage: conscience eval EVAL.yaml [--target NAME] [--wait] [--dry-run] [--force] [--accept-new] [--targets FILE] [--workspace DIR] [--format json|text]';

/** results.json of a finished eval run: the run store's copy, which the monitor made when the run
 * settled (core/eval/store.ts); read from the host (and copied with completions.jsonl) when the
 * store has none, e.g. a remote run that settled before copies were made. */
export async function fetchResults(s: LaunchSession, run: RunRecord): Promise<EvalResults | undefined> {
  let where = (await evalFiles(s.root, run)).results;
  let buf = await readFile(where).catch(() => undefined);
  if (!buf && run.targetKind !== 'local') {
    const host = await s.host(s.target(run.target));
    await copyEvalOutputs((f) => host.readFrom(f), run.outputDir, runDir(s.root, run.id));
    buf = await readFile(where).catch(() => undefined);
  }
  if (!buf || !buf.length) return undefined;
  if (run.targetKind !== 'local') where = `${run.outputDir}/results.json`;
  return parseResults(buf.toString('utf8'), where);
}

export function evalCommand(argv: string[]): Promise<number> {
  return launchWith(argv, {
    usage: USAGE,
    noun: 'eval',
    async check(file, recipe) {
      const info = await readRecipeInfo(file);
      if (info.kind !== 'eval') throw new UsageError(`${recipe} is a \`kind: ${info.kind}\` recipe; conscience eval runs \`kind: eval\` recipes (use conscience launch for training)`);
    },
    async finished(s, fin, cause) {
      let results: EvalResults | undefined;
      let resultsError: string | undefined;
      if (fin) {
        try {
          results = await fetchResults(s, fin);
        } catch (err) {
          resultsError = (err as Error).message;
        }
      }
      return {
        json: { run: fin ? publicRun(fin) : null, ...(cause ? { cause } : {}), results: results ?? null, ...(resultsError ? { resultsError } : {}) },
        text: results ? [formatTable(results)] : [],
        errors: !results && resultsError ? [resultsError] : [],
      };
    },
  });
}
