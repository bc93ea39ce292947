// Which workspace folder a command acts in (multi-root workspaces): the rules are here
// (vscode-free, tested with plain Node), editor/folders.ts is the thin adapter.
// - A command on a file acts in the folder that holds the file (the innermost one, as VS Code's
//   getWorkspaceFolder answers), the first folder only for a file outside every folder.
// - A run is named by its id and, from the Runs view, by its folder's root: a run named by id
//   alone is looked up in every folder's run store, first folder first.
// - The Runs view lists the runs of every folder: with one folder, as a flat list; with
//   several, one group per folder that has runs, labelled by the folder's name (told apart by
//   their paths when two folders share a name).
import { isAbsolute, relative, sep } from 'node:path';

export interface Folder {
  /** the folder's name as VS Code shows it (a .code-workspace may rename it) */
  name: string;
  /** its path on this machine */
  root: string;
}

/** A run as the commands take it: its id, and the root of the folder whose store holds it when known. */
export interface RunRef {
  id: string;
  root?: string;
}

/** Whether `path` is `root` or lies under it. */
export function isUnder(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The innermost folder that holds `path`; undefined for a path outside every folder. */
export function folderOf(path: string, folders: readonly Folder[]): Folder | undefined {
  let best: Folder | undefined;
  for (const f of folders) if (isUnder(path, f.root) && (!best || f.root.length > best.root.length)) best = f;
  return best;
}

/** The root a command on `path` acts in: its folder's, else (a file outside every folder, or no file) the first folder's. */
export function rootFor(path: string | undefined, folders: readonly Folder[]): string | undefined {
  return (path !== undefined ? folderOf(path, folders)?.root : undefined) ?? folders[0]?.root;
}

/** A run argument of a command: a run id, or an object with a string `id` (a Runs view node, { id, root }). */
export function runRef(arg: unknown): RunRef | undefined {
  if (typeof arg === 'string') return arg ? { id: arg } : undefined;
  if (arg === null || typeof arg !== 'object') return undefined;
  const { id, root } = arg as { id?: unknown; root?: unknown };
  if (typeof id !== 'string' || !id) return undefined;
  return typeof root === 'string' && root ? { id, root } : { id };
}

/** Key of a run in this window's maps: two folders may each hold a run of the same id. */
export const runKey = (root: string, id: string): string => `${root}\u0000${id}`;

/** The root of the folder whose run store holds the run: the one named when it is a folder of
 * this workspace, else the first folder whose store has the id (`has`), else undefined. */
export async function runRoot(ref: RunRef, folders: readonly Folder[], has: (root: string, id: string) => Promise<boolean>): Promise<string | undefined> {
  if (ref.root !== undefined && folders.some((f) => f.root === ref.root)) return ref.root;
  for (const f of folders) if (await has(f.root, ref.id).catch(() => false)) return f.root;
  return undefined;
}

/** Each folder's label: its name, with its path added when another folder has the same name. */
export function folderLabels(folders: readonly Folder[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const f of folders) count.set(f.name, (count.get(f.name) ?? 0) + 1);
  return new Map(folders.map((f) => [f.root, count.get(f.name)! > 1 ? `${f.name} (${f.root})` : f.name]));
}

export interface RunGroup<T> {
  folder: Folder;
  label: string;
  runs: T[];
}

/** What the Runs view shows: one folder (or none), its runs as they are; several, one group per
 * folder that has runs, in the workspace's folder order (none when no folder has a run: the
 * view's welcome shows). */
export function runGroups<T>(folders: readonly Folder[], runsOf: ReadonlyMap<string, readonly T[]>): { runs: T[] } | { groups: RunGroup<T>[] } {
  if (folders.length <= 1) return { runs: [...(runsOf.get(folders[0]?.root ?? '') ?? [])] };
  const labels = folderLabels(folders);
  return {
    groups: folders
      .map((folder) => ({ folder, label: labels.get(folder.root)!, runs: [...(runsOf.get(folder.root) ?? [])] }))
      .filter((g) => g.runs.length > 0),
  };
}

/** A pick's description of a run's folder: the folder's label when the workspace has several, else nothing. */
export function folderNote(root: string, folders: readonly Folder[]): string | undefined {
  return folders.length > 1 ? folderLabels(folders).get(root) : undefined;
}
