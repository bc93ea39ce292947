// Whether a finished run can be resumed. A completed run whose recipe still asks for the steps
// it already trained has nothing left: the trainer, resumed from its last checkpoint, would
// run one step past max_steps (issue #16 item 7: "trains step 401 of 400"). Raising max_steps
// in the recipe makes it resumable again. Shared by `conscience resume` and the editor.
import type { RunRecord } from './store';

/** Why `rec` cannot be resumed with a recipe asking for `recipeMaxSteps`, or undefined when it can. */
export function resumeRefusal(rec: Pick<RunRecord, 'id' | 'state' | 'step' | 'maxSteps' | 'recipe'>, recipeMaxSteps: number | undefined): string | undefined {
  if (rec.state !== 'completed') return undefined;
  const done = rec.step ?? rec.maxSteps;
  if (recipeMaxSteps !== undefined && recipeMaxSteps > 0 && done !== undefined && recipeMaxSteps > done) return undefined;
  const of = recipeMaxSteps !== undefined && recipeMaxSteps > 0 ? ` of ${recipeMaxSteps}` : '';
  return `run ${rec.id} completed${done !== undefined ? ` all ${done}${of} steps` : ''}: nothing to resume. Raise max_steps in ${rec.recipe} to train further, or launch the recipe again for a new run`;
}
