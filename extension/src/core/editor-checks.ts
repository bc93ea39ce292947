// Small vscode-free checks the editor adapters (editor/*.ts) apply to what they are handed:
// settings of the wrong shape (VS Code does not enforce a setting's schema), command arguments
// (command: links, keybindings and other extensions pass anything), the file a launch is asked
// for, and a per-file cache of the workspace's recipes by mtime and size.
import { stat } from 'node:fs/promises';
import { recipeKind } from './recipe';
import { RECIPE_MARKERS } from './recipe/validate';

/** A setting that should be a list of strings. A single string is taken as one entry; anything
 * else falls back to the default. `problem` says what was done, for one warning naming the setting. */
export function stringListSetting(name: string, value: unknown, fallback: string[]): { value: string[]; problem?: string } {
  if (value === undefined || value === null) return { value: fallback };
  if (Array.isArray(value)) {
    const strings = value.filter((g): g is string => typeof g === 'string' && g.trim() !== '');
    if (strings.length === value.length) return { value: strings };
    return { value: strings, problem: `${name}: ignored ${value.length - strings.length} entr${value.length - strings.length === 1 ? 'y' : 'ies'} that ${value.length - strings.length === 1 ? 'is' : 'are'} not a non-empty string` };
  }
  if (typeof value === 'string') {
    return value.trim()
      ? { value: [value], problem: `${name} should be a list of glob patterns; the string ${JSON.stringify(value)} is used as one pattern` }
      : { value: fallback, problem: `${name} is an empty string, not a list of glob patterns; the default is used` };
  }
  return { value: fallback, problem: `${name} should be a list of glob patterns, not ${describe(value)}; the default is used` };
}

/** A numeric setting: a number (or a numeric string) clamped to [min, max]; anything else is the default. */
export function numberSetting(value: unknown, opts: { def: number; min: number; max?: number }): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n)) return opts.def;
  return Math.min(opts.max ?? Number.MAX_SAFE_INTEGER, Math.max(opts.min, n));
}

/** A TCP port given as a command argument or typed: the error message, or undefined when fine. */
export function checkPort(v: unknown): string | undefined {
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : undefined;
  if (s !== undefined && /^\d+$/.test(s) && Number(s) > 0 && Number(s) < 65536) return undefined;
  return `a port number, 1-65535 (got ${describe(v)})`;
}

/** Why a YAML file cannot be launched as a recipe (it is an accelerate config, or no recipe at
 * all), or undefined when it is a recipe. `name` is how the file is shown. */
export function notARecipe(text: string, name: string): string | undefined {
  const kind = recipeKind(text);
  if (kind === 'recipe') return undefined;
  if (kind === 'accelerate') return `${name} is an accelerate config, not a recipe: launch the recipe that uses it (its launch.accelerate_config)`;
  return `${name} is not a recipe (no recipe keys such as model_name_or_path, dataset_name or launch: at its top level)`;
}

const MAYBE_RECIPE = new RegExp(`(?:^|[\\s{,])["']?(?:${RECIPE_MARKERS.join('|')})["']?[ \\t]*:`, 'm');

/** A cheap test before parsing a workspace YAML file: false when no recipe key appears as a key
 * anywhere in it (block or flow style), so recipeKind could not call it a recipe. */
export function mayBeRecipe(text: string): boolean {
  return MAYBE_RECIPE.test(text);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `a ${typeof v}`;
}

/** Size of a file in bytes, or undefined when it cannot be read. */
export async function fileSize(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch {
    return undefined;
  }
}

/** What the scan needs of a file system (VS Code's workspace.fs in the editor, node:fs in tests). */
export interface ScanFs<K> {
  stat(f: K): Promise<{ mtime: number; size: number }>;
  read(f: K): Promise<string>;
}

/**
 * Per-file results of reading the workspace's YAML files (which are recipes, and their settings),
 * kept until a file's mtime or size changes: a rescan reads and parses only the files that
 * changed, and a file over `maxBytes` is skipped from its stat, without being read.
 */
export class FileScanCache<K, T> {
  private readonly entries = new Map<string, { mtime: number; size: number; value: T | undefined }>();

  constructor(
    private readonly fs: ScanFs<K>,
    private readonly key: (f: K) => string,
    private readonly compute: (text: string, f: K) => T | undefined,
    private readonly maxBytes: number,
  ) {}

  /** How many files were read on the last scan (for tests and logs). */
  reads = 0;

  async scan(files: K[]): Promise<T[]> {
    this.reads = 0;
    const out: T[] = [];
    const seen = new Set<string>();
    for (const f of files) {
      const k = this.key(f);
      seen.add(k);
      let st: { mtime: number; size: number };
      try {
        st = await this.fs.stat(f);
      } catch {
        this.entries.delete(k);
        continue;
      }
      let e = this.entries.get(k);
      if (!e || e.mtime !== st.mtime || e.size !== st.size) {
        let value: T | undefined;
        if (st.size <= this.maxBytes) {
          try {
            this.reads++;
            value = this.compute(await this.fs.read(f), f);
          } catch {
            value = undefined; // unreadable, or not YAML we can read: not a recipe here
          }
        }
        e = { mtime: st.mtime, size: st.size, value };
        this.entries.set(k, e);
      }
      if (e.value !== undefined) out.push(e.value);
    }
    for (const k of [...this.entries.keys()]) if (!seen.has(k)) this.entries.delete(k);
    return out;
  }
}
