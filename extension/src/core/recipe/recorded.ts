// The TRL a recipe last ran with: the `run_started.versions.trl` of the newest run of that recipe
// in the workspace's run store (each run's local events.jsonl). The validator uses it for a
// recipe without `launch.trl` (ValidateOptions.trl), so a recipe launched on a TRL 1.x host is
// checked as 1.x without saying so. Node only (reads .conscience/runs).
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { STACKS } from '../launch/env';
import { schemaForVersion } from './schema';
import type { Target } from '../launch/targets';
import { listRuns, readRunStarted } from '../runs/store';

/** `recipe` is relative to the workspace root, as run records store it. */
export async function recordedTrl(root: string, recipe: string): Promise<string | undefined> {
  const want = recipe.replace(/\\/g, '/');
  for (const run of await listRuns(root)) {
    if (run.recipe.replace(/\\/g, '/') !== want) continue;
    let started;
    try {
      started = await readRunStarted(root, run.id, 'first');
    } catch {
      continue;
    }
    const trl = (started as { versions?: Record<string, string> } | undefined)?.versions?.trl;
    if (typeof trl === 'string' && trl && trl !== 'missing') return trl;
  }
  return undefined;
}

/**
 * The TRL a launch of `recipe` on `target` will run with, for a recipe without launch.trl: the
 * stack the target's `requirements:` names (cpu / gpu: open-r1's TRL 0.18.2; cpu-current /
 * gpu-current: TRL 1.x; stacks.test.ts checks these against the requirements files' pins) or
 * the pin in its own requirements file, when the target builds its environment; else (a target
 * with its own `python:`) the TRL of the recipe's newest run.
 */
export async function launchTrl(root: string, recipe: string, target?: Target): Promise<string | undefined> {
  if (target && !target.python) {
    const r = target.requirements ?? 'cpu';
    if ((STACKS as readonly string[]).includes(r)) return schemaForVersion(r.endsWith('-current') ? '1' : '0.18').schema.trlVersion;
    try {
      const text = await readFile(isAbsolute(r) ? r : join(root, r), 'utf8');
      const pin = /^trl(?:\[[^\]]*\])?==(\S+)/m.exec(text)?.[1];
      if (pin) return pin;
    } catch {
      /* the launch reports an unreadable requirements file itself */
    }
  }
  return recordedTrl(root, recipe);
}
