// What every check of a recipe sees: the parsed recipe, the schema of its TRL line, the values
// the walk converted, and helpers to read effective values and anchor diagnostics at keys.
// validate.ts fills it (the walk), rules.ts reads it (the rules), accelerate.ts adds the
// accelerate config it references.
import { type Diagnostic, type QuickFix, type Severity, diag } from './diagnostics';
import type { FieldSpec, RecipeSchema, SchemaChoice } from './schema';
import { headEnd, isNumber } from './values';
import { deref, getPair, lineEnd, lineStart, type YMap, type YPair } from './yaml';

export interface FileAccess {
  /** Whether a file or folder exists. */
  exists(path: string): boolean;
  /** Whether a path is a folder (optional: without it a folder reads as an unreadable file). */
  isFolder?(path: string): boolean;
  /** A file's size in bytes (optional: a file over LIMITS.maxBytes is then reported with it, unread). */
  size?(path: string): number | undefined;
  /** Raw bytes of a file, or undefined when it cannot be read. */
  readBytes(path: string): Uint8Array | undefined;
  /** Folder of a path and joining, so core stays free of node:path for browser use. */
  resolve(baseFile: string, rel: string): string;
  /** A cheap change stamp (mtime and size) so referenced files are parsed once per change. */
  stamp?(path: string): string | undefined;
  /**
   * The folder a run of `file` starts in (the workspace root; else the CLI's working folder):
   * a path the run opens itself (`deepspeed:`, an accelerate config's `deepspeed_config_file`) is
   * looked for there when it is not in the file's own folder. Optional: without it only the file's folder.
   */
  runFolder?(file: string): string | undefined;
}

/**
 * Where a relative path that the run opens itself is: next to `file` first, then in the folder the
 * run starts in (FileAccess.runFolder). `full` is the one that exists (else the first), `tried` all places looked.
 */
export function findFromRun(files: FileAccess, file: string, rel: string): { full: string; found: boolean; tried: string[] } {
  const here = files.resolve(file, rel);
  const run = files.runFolder?.(file);
  const there = run !== undefined ? files.resolve(`${run}/x`, rel) : here;
  const tried = there !== here ? [here, there] : [here];
  const full = tried.find((p) => files.exists(p));
  return { full: full ?? here, found: full !== undefined, tried };
}

/** What the recipe's accelerate config says, as far as the recipe rules need it. */
export interface AccelerateInfo {
  path: string;
  numProcesses?: number;
  numMachines?: number;
  mixedPrecision?: string | null;
  distributedType?: string;
  zeroStage?: number;
}

export interface Ctx {
  text: string;
  out: Diagnostic[];
  schema: RecipeSchema;
  /** Which TRL line the schema is and why (launch.trl, the host's recorded TRL, the default). */
  choice: SchemaChoice;
  /** TRL 1.x or later: its GRPOConfig checks differ from 0.18's. */
  v1: boolean;
  root: YMap;
  file?: string;
  files?: FileAccess;
  /** Values of flat keys after conversion (only valid ones). */
  vals: Map<string, unknown>;
  sectionVals: Map<string, Map<string, unknown>>;
  /** The referenced accelerate config, once read (accelerate.ts). */
  acc?: AccelerateInfo;
  /** The batch arithmetic of GRPOConfig, computed once for the C1-C5 rules (rules.ts). */
  batch?: unknown;
}

/** A key (`num_generations`) or a section key (`['launch', 'num_processes']`) to anchor at. */
export type Anchor = string | [string, string];

/** Which TRL the diagnostics assume, in words (for messages). */
export function assumed(ctx: Ctx): string {
  const v = `TRL ${ctx.schema.trlVersion}`;
  if (ctx.choice.source === 'recipe') return `${v} (launch.trl)`;
  if (ctx.choice.source === 'host') return `${v} (the target's TRL: its stack or its last run)`;
  return `${v} (the default: the recipe does not set launch.trl)`;
}

export function renameFix(p: YPair, to: string): QuickFix {
  return { title: `Rename to '${to}'`, edits: [{ start: p.key.start, end: p.key.end, newText: to }] };
}

/**
 * Remove a `key: value` pair with its lines (a block value goes with it); undefined when the
 * pair does not have its lines to itself (a flow mapping `{a: 1, b: 2}`).
 */
export function removeFix(text: string, p: YPair, name: string, why = ''): QuickFix | undefined {
  const start = lineStart(text, p.key.start);
  const end = lineAfter(text, p.value.end);
  if (text.slice(start, p.key.start).trim() !== '' || !/^[ \t]*(#.*)?(\r\n|\r|\n)?$/.test(text.slice(p.value.end, end))) return undefined;
  return { title: `Remove '${name}'${why}`, edits: [{ start, end, newText: '' }] };
}

/**
 * Rename a key to `to`, unless `map` already has `to`: then the rename would make a duplicate
 * key (CC003), so the fix removes this key instead.
 */
export function renameOrRemoveFix(text: string, map: YMap, p: YPair, name: string, to: string): QuickFix | undefined {
  return getPair(map, to) ? removeFix(text, p, name, ` ('${to}' is already set)`) : renameFix(p, to);
}

export function pair(ctx: Ctx, name: string): YPair | undefined { return getPair(ctx.root, name); }
export function sectionPair(ctx: Ctx, section: string, name: string): YPair | undefined {
  const s = deref(pair(ctx, section)?.value);
  return s && s.kind === 'map' ? getPair(s, name) : undefined;
}
/** Effective value: the recipe's valid value, else the schema default. `invalid` when set but unusable. */
export function val(ctx: Ctx, name: string): unknown {
  if (ctx.vals.has(name)) return ctx.vals.get(name);
  if (pair(ctx, name)) return INVALID;
  return ctx.schema.fields.get(name)?.default;
}
export function sval(ctx: Ctx, section: string, name: string): unknown {
  const m = ctx.sectionVals.get(section);
  if (m?.has(name)) return m.get(name);
  if (sectionPair(ctx, section, name)) return INVALID;
  return (ctx.schema.sections.get(section)?.get(name) as FieldSpec | undefined)?.default;
}
export const INVALID = Symbol('invalid');
export function isInt(v: unknown): v is number { return isNumber(v) && Number.isInteger(v); }

/** Offset just past the line holding `pos`, its line break included. */
export function lineAfter(text: string, pos: number): number {
  const e = lineEnd(text, pos);
  return e + (text.startsWith('\r\n', e) ? 2 : e < text.length ? 1 : 0);
}

/** Where to put a diagnostic about a key: its value if present, else the first present fallback, else line 1. */
export function anchorRange(ctx: Ctx, names: Anchor[]): { start: number; end: number } {
  for (const n of names) {
    const p = typeof n === 'string' ? pair(ctx, n) : sectionPair(ctx, n[0], n[1]);
    if (p) return { start: p.value.start === p.value.end ? p.key.start : p.value.start, end: p.value.start === p.value.end ? p.key.end : headEnd(ctx.text, p.value) };
  }
  const first = ctx.root.items[0];
  if (first) return { start: first.key.start, end: first.key.end };
  return { start: 0, end: 0 };
}

/** Push a diagnostic anchored at the first present key of `names`. */
export function report(ctx: Ctx, names: Anchor[], severity: Severity, code: string, message: string, fixes?: QuickFix[]): void {
  const r = anchorRange(ctx, names);
  ctx.out.push(diag(ctx.text, r.start, r.end, severity, code, message, fixes));
}

export function divisors(n: number): number[] {
  const out: number[] = [];
  if (!Number.isFinite(n) || n > 1e7) return out;
  for (let d = 2; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

export function setValueFix(ctx: Ctx, name: string, value: number | string): QuickFix {
  const p = pair(ctx, name);
  if (p) {
    if (p.value.start === p.value.end) {
      const colon = ctx.text[p.key.end] === ':' ? 1 : 0;
      return { title: `Set ${name} to ${value}`, edits: [{ start: p.key.end, end: p.key.end + colon, newText: `: ${value}` }] };
    }
    return { title: `Set ${name} to ${value}`, edits: [{ start: p.value.start, end: p.value.end, newText: String(value) }] };
  }
  const t = ctx.text;
  const sep = t.length === 0 || t.endsWith('\n') ? '' : '\n';
  return { title: `Add ${name}: ${value}`, edits: [{ start: t.length, end: t.length, newText: `${sep}${name}: ${value}\n` }] };
}

/**
 * One quick fix per valid value, nearest to `target` first (the preferred one), then in order;
 * at most `limit` (the values closest to `target`), so a large batch does not offer dozens.
 */
export function valueFixes(ctx: Ctx, name: string, values: number[], target: number, limit = 12): QuickFix[] | undefined {
  const first = nearest(values, target);
  if (first === undefined) return undefined;
  const rest = values.filter((v) => v !== first).sort((a, b) => Math.abs(a - target) - Math.abs(b - target) || a - b).slice(0, limit - 1).sort((a, b) => a - b);
  return [first, ...rest].map((v) => setValueFix(ctx, name, v));
}

/** Nearest valid value, preferring the smaller one on ties. */
export function nearest(values: number[], target: number): number | undefined {
  let best: number | undefined;
  for (const v of values) if (best === undefined || Math.abs(v - target) < Math.abs(best - target)) best = v;
  return best;
}

export interface Procs { P: number; source: string; machines: number }

/**
 * World size P. The runtime launcher (conscience.launch) always passes
 * `--num_processes launch.num_processes` (default 1), which overrides the accelerate config.
 */
export function processes(ctx: Ctx): Procs | undefined {
  const np = sval(ctx, 'launch', 'num_processes');
  const nm = sval(ctx, 'launch', 'num_machines');
  if (np === INVALID || nm === INVALID || !isInt(np)) return undefined;
  const explicit = sectionPair(ctx, 'launch', 'num_processes') !== undefined;
  return { P: np, source: `launch.num_processes = ${np}${explicit ? '' : ' (default)'}`, machines: isInt(nm) ? nm : 1 };
}
