// conscience eval EVAL.yaml [--target T] [--wait] [--format json]: launch an eval recipe
// (`kind: eval`, run by `python -m conscience.eval`) through the same launcher, run store,
// logs, cancel and resume as `conscience launch` (the same steps as cli/runs.ts launch: guard,
// session, planLaunch/launchRun, snapshotRecipe, followRun), plus a kind check; with --wait,
// print its results (the arm x label table, or JSON) and keep a copy of results.json in the
// run store.
import { writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseResults, formatTable, type EvalResults } from '../core/eval/results';
import { formatFindings, recipeErrors } from '../core/launch/guard';
import { formatPlan, launchRun, planLaunch } from '../core/launch/launcher';
import { readRecipeInfo } from '../core/launch/scripts';
import type { LaunchSession } from '../core/launch/session';
import { runDir, snapshotRecipe, type RunRecord } from '../core/runs/store';
import { failureCause, followRun, parse, session, UsageError, wrap } from './runs';

const USAGE = 'usage: conscience eval EVAL.yaml [--target NAME] [--wait] [--dry-run] [--force] [--accept-new] [--targets FILE] [--workspace DIR] [--format json|text]';

/** results.json of a finished eval run, read on its host, copied into the run store. */
export async function fetchResults(s: LaunchSession, run: RunRecord): Promise<EvalResults | undefined> {
  const host = await s.host(s.target(run.target));
  const buf = await host.readFrom(`${run.outputDir}/results.json`).catch(() => undefined);
  if (!buf || !buf.length) return undefined;
  const results = parseResults(buf.toString('utf8'), `${run.outputDir}/results.json`);
  await writeFile(join(runDir(s.root, run.id), 'results.json'), buf).catch(() => undefined);
  return results;
}

export async function evalCommand(argv: string[]): Promise<number> {
  return wrap(async () => {
    const r = parse(argv, { target: { type: 'string', short: 't' }, wait: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' } }, USAGE);
    if (!r) return 0;
    const [recipe, ...rest] = r.positionals;
    if (!recipe || rest.length) throw new UsageError(USAGE);
    const json = r.values.format === 'json';
    const root = resolve(r.values.workspace ?? process.env.CONSCIENCE_WORKSPACE ?? process.cwd());
    const file = isAbsolute(recipe) ? recipe : join(root, recipe);
    const info = await readRecipeInfo(file);
    if (info.kind !== 'eval') throw new UsageError(`${recipe} is a \`kind: ${info.kind}\` recipe; conscience eval runs \`kind: eval\` recipes (use conscience launch for training)`);
    const errors = await recipeErrors(file);
    if (errors.length) {
      const show = (f: string) => { const rel = relative(process.cwd(), f); return rel && !rel.startsWith('..') ? rel : f; };
      process.stderr.write(formatFindings(errors, show) + '\n');
      if (!r.values.force && !r.values['dry-run']) {
        process.stderr.write(`conscience: ${errors.length} error(s) in ${recipe}: not launching (fix them, or pass --force to launch anyway)\n`);
        return 1;
      }
    }
    const s = await session(r.values, json && !r.values.wait);
    try {
      const target = String(r.values.target ?? 'local');
      if (r.values['dry-run']) {
        const plan = await planLaunch(s, recipe, target);
        if (json) {
          const { target: t, info: _i, ...rest2 } = plan;
          process.stdout.write(JSON.stringify({ ...rest2, target: t.name }, null, 2) + '\n');
        } else process.stdout.write(formatPlan(plan) + '\n');
        return 0;
      }
      const out = await launchRun(s, recipe, target);
      // the recipe as launched, for the dashboard's config diff (as conscience launch keeps it)
      await snapshotRecipe(s.root, out.run.id, file).catch(() => undefined);
      if (!r.values.wait) {
        process.stdout.write(json ? JSON.stringify(out.run, null, 2) + '\n' : `${out.run.id}\n`);
        return 0;
      }
      process.stderr.write(`conscience: launched ${out.run.id}; following (Ctrl-C detaches, the eval goes on)\n`);
      const fin = await followRun(s, out.run.id, { events: true });
      const cause = fin ? await failureCause(s.root, fin) : undefined;
      let results: EvalResults | undefined;
      let resultsError: string | undefined;
      if (fin) {
        try {
          results = await fetchResults(s, fin);
        } catch (err) {
          resultsError = (err as Error).message;
        }
      }
      if (json) process.stdout.write(JSON.stringify({ run: fin, ...(cause ? { cause } : {}), results: results ?? null, ...(resultsError ? { resultsError } : {}) }, null, 2) + '\n');
      else {
        process.stdout.write(`${out.run.id} ${fin?.state ?? 'unknown'}${fin?.exitCode !== undefined && fin?.exitCode !== null ? ' exit ' + fin.exitCode : ''}${cause ? ': ' + cause : ''}\n`);
        if (results) process.stdout.write(formatTable(results) + '\n');
        else if (resultsError) process.stderr.write(`conscience: ${resultsError}\n`);
      }
      return fin?.state === 'completed' ? 0 : 1;
    } finally {
      await s.close();
    }
  });
}
