// The names compared runs go by in a dashboard (chips, legend and tooltip prefixes, the config
// diff's columns, the samples table's Run column): each run's short name (core/runs/present.ts
// runName, "tiny-cpu · 21:03"), made unique, since two launches of one recipe in one minute, or
// two recipes of one file name in different folders, read the same and only colour tells them
// apart. A clash is told apart by the recipe's folder where the recipes differ, else by the
// end of the run id.
import type { RunRecord } from '../runs/store';

type Named = Pick<RunRecord, 'id'> & Partial<Pick<RunRecord, 'recipe'>>;

/** The last folder of a recipe path ("recipes/a/tiny-cpu.yaml" -> "a"), or "" when it has none. */
const folderOf = (recipe: string | undefined): string => {
  const parts = (recipe ?? '').split(/[\\/]/).filter((p) => p && p !== '.');
  return parts.length > 1 ? parts[parts.length - 2]! : '';
};
/** A run id's own part: "20261128-101530-cd34" -> "cd34". */
const idTail = (id: string): string => {
  const tail = id.split('-').pop() ?? '';
  return tail && tail !== id ? tail : id;
};

/** `names[i]` for `runs[i]`, each changed only where it reads the same as another's. */
export function uniqueRunLabels(runs: Named[], names: string[]): string[] {
  const labels = [...names];
  const clashes = (): Map<string, number[]> => {
    const by = new Map<string, number[]>();
    labels.forEach((l, i) => by.set(l, [...(by.get(l) ?? []), i]));
    return new Map([...by].filter(([, is]) => is.length > 1));
  };
  // recipes of one name in different folders: the folder in front
  for (const is of clashes().values()) {
    const folders = is.map((i) => folderOf(runs[i]!.recipe));
    if (new Set(folders).size > 1) for (const [j, i] of is.entries()) if (folders[j]) labels[i] = `${folders[j]}/${labels[i]}`;
  }
  // one recipe launched twice in a minute (or folders alike): the run id's end, then the id
  for (const is of clashes().values()) for (const i of is) labels[i] = `${labels[i]} (${idTail(runs[i]!.id)})`;
  for (const is of clashes().values()) for (const i of is) labels[i] = `${names[i]} (${runs[i]!.id})`;
  // (one id compared twice)
  for (const is of clashes().values()) for (const i of is.slice(1)) labels[i] = `${labels[i]} #${i + 1}`;
  return labels;
}
