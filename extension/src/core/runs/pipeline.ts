// A training pipeline is a chain of runs: a GRPO run whose model is a warm-start SFT run's
// output names that run in run_started.init_from (docs/events.md). The dashboard shows the
// stages together, oldest first, so the format learned in SFT and the budget adherence GRPO
// adds read as one story.
import { readRun, readRunStarted } from './store';

/** The run ids of `id`'s pipeline, earliest stage first (just [id] for a run with no parent in the store). */
export async function pipelineOf(root: string, id: string, maxStages = 4): Promise<string[]> {
  const chain = [id];
  let current = id;
  while (chain.length < maxStages) {
    let parent: string | undefined;
    try {
      const started = (await readRunStarted(root, current, 'last')) as { init_from?: { run_id?: unknown } | null } | undefined;
      const rid = started?.init_from?.run_id;
      if (typeof rid === 'string' && rid !== current && !chain.includes(rid) && (await readRun(root, rid).catch(() => undefined))) parent = rid;
    } catch {
      parent = undefined;
    }
    if (!parent) break;
    chain.unshift(parent);
    current = parent;
  }
  return chain;
}
