// The TRL a recipe last ran with: the `run_started.versions.trl` of the newest run of that recipe
// in the workspace's run store (each run's local events.jsonl). The validator uses it for a
// recipe without `launch.trl` (ValidateOptions.trl), so a recipe launched on a TRL 1.x host is
// checked as 1.x without saying so. Node only (reads .conscience/runs).
import { listRuns, readRunEvents } from '../runs/store';

/** `recipe` is relative to the workspace root, as run records store it. */
export async function recordedTrl(root: string, recipe: string): Promise<string | undefined> {
  const want = recipe.replace(/\\/g, '/');
  for (const run of await listRuns(root)) {
    if (run.recipe.replace(/\\/g, '/') !== want) continue;
    let events;
    try {
      events = await readRunEvents(root, run.id);
    } catch {
      continue;
    }
    const started = events.find((e) => e.type === 'run_started');
    const trl = (started as { versions?: Record<string, string> } | undefined)?.versions?.trl;
    if (typeof trl === 'string' && trl && trl !== 'missing') return trl;
  }
  return undefined;
}
