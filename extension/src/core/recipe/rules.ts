// Every diagnostic code of the recipe validator, as one table: `{code, severity, summary, check}`.
// The codes found while reading (bytes, YAML), walking the keys (types, enums, ranges, renamed
// fields) or reading the accelerate config are listed with the stage that reports them; the
// cross-field rules carry their `check`, which validateText runs in table order once the walk has
// converted the values. Adding a rule is one entry here plus its fixtures
// (extension/test/recipes/fixtures/{bad,good}/<CODE>-<name>.yaml); docs/recipes.md's table is
// generated from these entries (rulesMarkdown) and a test keeps it equal.
//
// The rules reproduce TRL's GRPOConfig.__post_init__ / GRPOTrainer.__init__ (0.18.2 or 1.x, per
// the recipe's TRL line: ctx.v1), transformers' TrainingArguments and our own dataclasses.
import type { QuickFix, Severity } from './diagnostics';
import { diag } from './diagnostics';
import {
  type Anchor, type Ctx, INVALID, type Procs, divisors, findFromRun, isInt, nearest, pair, processes, report, sectionPair, setValueFix, sval, val, valueFixes,
} from './context';
import { didYouMean, isNumber, pyFloatRepr } from './values';
import { decodeBytes } from './decode';
import { deref, getPair, parseYaml, toPlain, type YNode } from './yaml';
import { PLACEHOLDERS, unsupportedField } from '../template';
import { PASSED_BY_GET_SCHEDULER, SCHEDULES, type Schedule } from './schedulers';
import { zeroStageOfJson } from './accelerate';

/** Where a rule's diagnostics come from. */
export type Stage = 'read' | 'yaml' | 'keys' | 'rules' | 'accelerate';

/** What a check reports with: its own code and (default) severity. */
export interface Emit {
  /** At the value of the first present key of `at` (else its key, else the first key). */
  at(at: Anchor[], message: string, fixes?: QuickFix[], severity?: Severity): void;
  /** At a source range of the recipe. */
  range(start: number, end: number, message: string, fixes?: QuickFix[], severity?: Severity): void;
}

export interface Rule {
  code: string;
  /** The default severity; `also` when some findings of the code are reported at another one. */
  severity: Severity;
  also?: Severity;
  summary: string;
  stage: Stage;
  /** A GRPOConfig / GRPOTrainer rule: not run on a `kind: sft` recipe. */
  only?: 'grpo';
  /** Also run on a `kind: eval` recipe (core/eval/recipe.ts), whose keys it reads mean the same there. */
  alsoEval?: true;
  check?(ctx: Ctx, emit: Emit): void;
}

// ---------------------------------------------------------------------------------------
// GRPOConfig's batch arithmetic, computed once for C1-C5

interface Batch {
  procs?: Procs;
  B: unknown; GA: unknown; G: unknown; Be: unknown; evalStrategy: unknown;
  gbs0: unknown; spg0: unknown;
  /** C1: both generation_batch_size and steps_per_generation set. */
  c1: boolean;
  /** The numbers are usable (not C1, all integers): the fields below are set. */
  usable: boolean;
  P: number; gbs: number; steps: number;
  /** C2 fails. */
  c2: boolean;
  /** Valid num_generations for the generation batch. */
  possible: number[];
}

function batch(ctx: Ctx): Batch {
  if (ctx.batch) return ctx.batch as Batch;
  const procs = processes(ctx);
  const B = val(ctx, 'per_device_train_batch_size');
  const GA = val(ctx, 'gradient_accumulation_steps');
  const G = val(ctx, 'num_generations');
  const gbs0 = val(ctx, 'generation_batch_size');
  const spg0 = val(ctx, 'steps_per_generation');
  const c1 = isSet(gbs0) && isSet(spg0) && gbs0 !== INVALID && spg0 !== INVALID;
  const b: Batch = { procs, B, GA, G, gbs0, spg0, Be: val(ctx, 'per_device_eval_batch_size'), evalStrategy: val(ctx, 'eval_strategy'), c1, usable: false, P: 0, gbs: 0, steps: 0, c2: false, possible: [] };
  if (!c1 && procs && isInt(B) && isInt(GA) && isInt(G) && B > 0 && GA > 0 && (gbs0 === null || gbs0 === undefined || isInt(gbs0)) && (spg0 === null || spg0 === undefined || isInt(spg0))) {
    const P = procs.P;
    const spg = isInt(spg0) ? spg0 : GA;
    const gbs = isInt(gbs0) ? gbs0 : B * P * spg;
    // C2, with 0.18's operator precedence: (gbs % B) * P != 0; TRL 1.x checks gbs % (B * P).
    const c2 = isInt(gbs0) && (ctx.v1 ? gbs % (B * P) : (gbs % B) * P) !== 0;
    Object.assign(b, { usable: true, P, gbs, c2, steps: Math.floor(gbs / (B * P)), possible: c2 ? [] : divisors(gbs) });
  }
  ctx.batch = b;
  return b;
}

function isSet(v: unknown): boolean { return v !== null && v !== undefined; }

function formatWeight(x: number): string { return Number.isInteger(x) ? x.toFixed(1) : String(x); }


/**
 * A number field's value as Python prints it: argparse keeps a YAML integer an int (`3`) but
 * converts a string with the field's type, and a float field's default is a float (`3.0`).
 */
function pyNumber(ctx: Ctx, name: string, v: number): string {
  const n = deref(pair(ctx, name)?.value);
  return n && n.kind === 'scalar' && n.tag === 'int' ? String(v) : pyFloatRepr(v);
}

function safePlain(n: YNode): unknown {
  try { return toPlain(n); } catch { return undefined; }
}

/** The recipe's lr_scheduler_type (default linear), its entry in SCHEDULES, and its lr_scheduler_kwargs as a plain object (a JSON string too, as TrainingArguments takes it). */
function schedulerKwargs(ctx: Ctx): { kind: string; sched: Schedule | undefined; kw: Record<string, unknown> } {
  const t = val(ctx, 'lr_scheduler_type');
  const kind = typeof t === 'string' ? t : 'linear';
  let kw = val(ctx, 'lr_scheduler_kwargs');
  if (kw && typeof kw === 'object' && 'kind' in (kw as object)) kw = safePlain(kw as YNode);
  if (typeof kw === 'string') { try { kw = JSON.parse(kw); } catch { kw = undefined; } }
  const o = kw && typeof kw === 'object' && !Array.isArray(kw) ? kw as Record<string, unknown> : {};
  return { kind, sched: Object.hasOwn(SCHEDULES, kind) ? SCHEDULES[kind] : undefined, kw: o };
}

function looksLocal(v: string): boolean {
  return v.startsWith('./') || v.startsWith('../') || v.startsWith('/') || v.startsWith('~/') || /\.(jsonl|json|csv|parquet|arrow|txt)$/i.test(v);
}

function looksLikePath(v: string): boolean { return v.startsWith('./') || v.startsWith('../') || v.startsWith('/'); }
function looksLikeTemplateFile(v: string): boolean { return !v.includes('{') && !v.includes('\n') && /\.(jinja2?|j2|tmpl)$/i.test(v); }

/** A run's output folder in the workspace (`.conscience/outputs/<run>`): a later stage's input. */
const RUN_OUTPUT = /(^|[\\/])\.conscience[\\/]outputs[\\/]/;

/** A referenced local file that does not exist (CC303-CC305; an eval recipe's policy_recipe). */
export function missingFile(ctx: Ctx, emit: Emit, name: string, what: string, cond: (v: string) => boolean): void {
  const { files, file } = ctx;
  if (!files || !file) return;
  const v = val(ctx, name);
  const p = pair(ctx, name);
  if (typeof v !== 'string' || !p || !cond(v) || v.startsWith('~/')) return;
  const full = files.resolve(file, v);
  if (files.exists(full)) return;
  if (RUN_OUTPUT.test(v)) {
    // A warm start names the earlier stage's output (e.g. the SFT run's) before that stage ran.
    emit.range(p.value.start, p.value.end, `${what} '${v}' is a run's output folder that does not exist yet (${full}): run the stage that writes it (e.g. the SFT recipe) first, or pass --model_name_or_path at launch.`, undefined, 'info');
    return;
  }
  emit.range(p.value.start, p.value.end, `${what} '${v}' not found (resolved against the recipe's folder: ${full}). Fix the path or create the file.`);
}

/**
 * A referenced file, read: its text, or why it cannot be used (missing, a folder, binary, not
 * UTF-8). Relative paths resolve against the recipe's folder, as the runtime resolves them;
 * `fromRun`: a file the run opens itself (`deepspeed:`), then also from the folder the run starts in.
 */
export function readReferenced(ctx: Ctx, v: string, what: string, fromRun = false): { full: string; text?: string; problem?: string } | undefined {
  const { files, file } = ctx;
  if (!files || !file || v.startsWith('~/')) return undefined;
  const found = fromRun ? findFromRun(files, file, v) : { full: files.resolve(file, v), tried: [files.resolve(file, v)] };
  const full = found.full;
  if (!files.exists(full)) {
    const tried = found.tried.length > 1 ? `looked for ${found.tried[0]} (the recipe's folder) and ${found.tried[1]} (the working folder)` : `resolved against the recipe's folder: ${full}`;
    return { full, problem: `${what} '${v}' not found (${tried}). Fix the path or create the file.` };
  }
  if (files.isFolder?.(full)) return { full, problem: `${what} '${v}' is a folder (${full}), not a file. Name the file in it.` };
  const bytes = files.readBytes(full);
  if (!bytes) return { full, problem: `${what} '${v}' cannot be read (${full}).` };
  const dec = decodeBytes(bytes);
  if ('diagnostic' in dec) return { full, problem: `${what} '${v}' (${full}) is not a text file: ${dec.diagnostic.code === 'CC005' ? 'it contains NUL bytes (binary)' : 'it is not valid UTF-8'}.` };
  return { full, text: dec.text };
}

/** Where JSON.parse stopped, as "line L, column C" of `text` (when the engine says the position). */
function jsonWhere(text: string, err: unknown): string {
  const m = /position (\d+)/.exec(String((err as Error)?.message ?? err));
  if (!m) return '';
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
}

/**
 * What Python's `s.format(budget=…, open_tag=…, close_tag=…)` raises, worded as Python does;
 * undefined when it formats. (A format spec's own syntax, `{budget:q}`, is not checked.)
 */
export function formatError(s: string, depth = 0): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '}') {
      if (s[i + 1] !== '}') return "ValueError: Single '}' encountered in format string";
      i++;
      continue;
    }
    if (c !== '{') continue;
    if (i + 1 >= s.length) return "ValueError: Single '{' encountered in format string";
    if (s[i + 1] === '{') { i++; continue; }
    let j = i + 1;
    for (let count = 1; j < s.length; j++) {
      if (s[j] === '{') count++;
      else if (s[j] === '}' && --count === 0) break;
    }
    if (j >= s.length) return /^[^[]*[!:]/.test(s.slice(i + 1)) ? "ValueError: unmatched '{' in format spec" : "ValueError: expected '}' before end of string";
    const err = fieldError(s.slice(i + 1, j), depth);
    if (err) return err;
    i = j;
  }
  return undefined;
}

/** One replacement field: name[!conversion][:spec]. */
function fieldError(field: string, depth: number): string | undefined {
  const m = /^([^.[!:]*)((?:\.[^.[!:]*|\[[^\]]*\])*)(.*)$/s.exec(field)!;
  const [, arg, access, rest0] = m as unknown as [string, string, string, string];
  if (arg === '' || /^\d+$/.test(arg)) return `IndexError: Replacement index ${arg || 0} out of range for positional args tuple`;
  if (!(PLACEHOLDERS as readonly string[]).includes(arg)) return `KeyError: '${arg}'`;
  // `.attr` / `[i]` reach into the value: Python resolves them (most work), so only an empty name is checked
  if (/\.(?=[.[]|$)/.test(access)) return 'ValueError: Empty attribute in format string';
  let rest = rest0;
  let conversion = false;
  if (rest.startsWith('!')) {
    if (rest.length < 2) return "ValueError: unmatched '{' in format spec";
    if (rest.length > 2 && rest[2] !== ':') return "ValueError: expected ':' after conversion specifier";
    if (!'rsa'.includes(rest[1]!)) return `ValueError: Unknown conversion specifier ${rest[1]}`;
    rest = rest.slice(2);
    conversion = true;
  }
  if (!rest.startsWith(':')) return undefined;
  const spec = rest.slice(1);
  if (spec.includes('{')) return depth >= 1 ? 'ValueError: Max string recursion exceeded' : formatError(spec, depth + 1);
  // the spec applies to the value: {budget} is an int, the tags (and any !r/!s/!a) are strings
  return access ? undefined : specError(spec, arg === 'budget' && !conversion ? 'int' : 'str');
}

const SPEC_RE = /^(?:[^]?[<>=^])?([-+ ])?(z)?(#)?0?(\d+)?([_,])?(\.\d+)?([bcdeEfFgGnosxX%])?$/;

/** What format(value, spec) raises for an int or a str value (Python's format mini-language). */
function specError(spec: string, type: 'int' | 'str'): string | undefined {
  const m = SPEC_RE.exec(spec);
  if (!m) {
    if (/\.$/.test(spec) && SPEC_RE.test(spec.slice(0, -1))) return 'ValueError: Format specifier missing precision';
    if (/[A-Za-z]$/.test(spec) && SPEC_RE.test(spec.slice(0, -1))) return `ValueError: Unknown format code '${spec.at(-1)}' for object of type '${type}'`;
    return 'ValueError: Invalid format specifier';
  }
  const [, sign, z, alt, , grouping, precision, code] = m;
  const align = spec.length >= 2 && '<>=^'.includes(spec[1]!) ? spec[1] : '<>=^'.includes(spec[0] ?? '') ? spec[0] : undefined;
  if (type === 'str') {
    if (code && code !== 's') return `ValueError: Unknown format code '${code}' for object of type 'str'`;
    if (sign) return 'ValueError: Sign not allowed in string format specifier';
    if (z) return 'ValueError: Negative zero coercion (z) not allowed in string format specifier';
    if (alt) return 'ValueError: Alternate form (#) not allowed in string format specifier';
    if (align === '=') return "ValueError: '=' alignment not allowed in string format specifier";
    if (grouping) return `ValueError: Cannot specify '${grouping}' with 's'.`;
    return undefined;
  }
  if (code === 's') return "ValueError: Unknown format code 's' for object of type 'int'";
  if (code && 'eEfFgG%'.includes(code)) return undefined; // formatted as a float
  if (precision) return 'ValueError: Precision not allowed in integer format specifier';
  if (z) return 'ValueError: Negative zero coercion (z) not allowed in integer format specifier';
  if (code === 'c' && sign) return "ValueError: Sign not allowed with integer format specifier 'c'";
  if (code === 'c' && alt) return "ValueError: Alternate form (#) not allowed with integer format specifier 'c'";
  if (grouping && (code === 'n' || code === 'c' || (grouping === ',' && code && 'boxX'.includes(code)))) return `ValueError: Cannot specify '${grouping}' with '${code}'.`;
  return undefined;
}

const LOSSES_018 = ['grpo', 'bnpo', 'dr_grpo'];
const LOSSES_1 = ['grpo', 'dr_grpo', 'dapo', 'bnpo', 'cispo', 'sapo', 'luspo', 'vespo'];

// ---------------------------------------------------------------------------------------
// the table

/** The ZeRO stage of the recipe's own `deepspeed:` (a mapping, JSON text or a JSON file), if it names one. */
function recipeDeepspeedStage(ctx: Ctx): number | undefined {
  const node = deref(pair(ctx, 'deepspeed')?.value);
  if (node?.kind === 'map') {
    try { return zeroStageOfJson(toPlain(node)); } catch { return undefined; }
  }
  const v = val(ctx, 'deepspeed');
  if (typeof v !== 'string' || !v.trim()) return undefined;
  try {
    if (v.trim().startsWith('{')) return zeroStageOfJson(JSON.parse(v));
    if (!v.endsWith('.json')) {
      const decoded = base64JsonObject(v);
      if (decoded) return zeroStageOfJson(decoded);
    }
    const r = readReferenced(ctx, v, 'DeepSpeed config', true);
    return r?.text !== undefined ? zeroStageOfJson(JSON.parse(r.text)) : undefined;
  } catch {
    return undefined; // CC306 says why it cannot be read
  }
}

/** TrainingArguments also takes `deepspeed:` as base64-encoded JSON (runtime/conscience/recipe.py `_base64_json`): the object `v` decodes to when it is strict base64 of a UTF-8 JSON object, else undefined. */
function base64JsonObject(v: string): object | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)) return undefined;
  try {
    const bytes = Uint8Array.from(atob(v), (c) => c.charCodeAt(0));
    const o: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return o !== null && typeof o === 'object' && !Array.isArray(o) ? o : undefined;
  } catch {
    return undefined;
  }
}

export const RULES: readonly Rule[] = [
  // reading the file and its YAML (yaml.ts, decode.ts, validate.ts, the CLI)
  { code: 'CC001', severity: 'error', stage: 'yaml', summary: "YAML syntax error, at the parser's position; also what yaml.safe_load refuses although js-yaml reads it (an undefined alias, an anchor defined twice, a tag safe_load cannot construct, a tab between tokens, `=` or `<<` as a value, a value with no key, a non-printable character anywhere, comments included, a number or date PyYAML's pattern takes but cannot read such as `0b_`), NEL / LINE SEPARATOR / PARAGRAPH SEPARATOR outside quotes (a line break to PyYAML only), nesting deeper than 64 levels, and a value that contains itself" },
  { code: 'CC002', severity: 'error', stage: 'yaml', summary: 'tab character in indentation' },
  { code: 'CC003', severity: 'error', stage: 'yaml', summary: 'duplicate key (PyYAML keeps the last one silently)' },
  { code: 'CC004', severity: 'error', stage: 'yaml', summary: 'more than 100 aliases in a document (alias bombs); aliases are never expanded' },
  { code: 'CC005', severity: 'error', stage: 'read', summary: 'binary file (NUL bytes)' },
  { code: 'CC006', severity: 'error', stage: 'read', summary: 'not UTF-8, at the first bad byte' },
  { code: 'CC007', severity: 'error', stage: 'yaml', summary: 'file over 2 MB (its size on disk): not parsed' },
  { code: 'CC008', severity: 'error', stage: 'yaml', summary: 'empty file' },
  { code: 'CC009', severity: 'error', stage: 'yaml', summary: 'not a single YAML mapping (a list, a scalar, several `---` documents, reported at the second `---`)' },
  { code: 'CC010', severity: 'error', also: 'warning', stage: 'read', summary: 'CLI: path cannot be read; a folder argument with no recipe or accelerate config in it (error); folders more than 32 levels deep are not searched (warning); launch (editor and CLI): an accelerate config is not a recipe to launch (error)' },
  // the key walk against the schema of the recipe's TRL line (validate.ts, values.ts)
  { code: 'CC100', severity: 'error', stage: 'keys', summary: 'unknown key (top level or in a section) with did-you-mean; quick fix renames (removes the key when the suggestion is set already)' },
  { code: 'CC101', severity: 'error', also: 'warning', stage: 'keys', summary: 'wrong type (warning for a number where text is expected, but an error for a key that takes a list or one string, as the runtime refuses it; an empty value is reported at its key); a single value for a list key, refused by the runtime too (quick fix wraps it), except those that take one string (`reward_funcs`, `lora_target_modules`; an eval recipe\'s `arms`); null for a list key only where the runtime takes it (`include_for_metrics: null` is refused, `debug: null` is no debug options); list items and mapping values as they are (argparse converts only a top-level string: `reward_weights: [2e-1]`, `["1.0"]` or `reward_funcs: [refusal, 5]` are errors, and so is a number PyYAML reads as text anywhere inside the mappings and lists of a flat key, such as `{min_lr: 1e-6}` or `fsdp_config: {min_num_params: 1.0e8}`); section values as the runtime converts them (`launch:`/`safety:`: `true`/`false` only, integers without `+`; `allocator:` not at all); quick fixes quote `no`/`yes`, drop `.0`; a date (`run_name: 2024-05-01`, which PyYAML reads as a date; quick fix quotes it) or `!!binary` data where text is expected; a merge key (`<<`) whose value is not a mapping' },
  { code: 'CC102', severity: 'error', stage: 'keys', summary: 'value not among the choices (argparse `choices`, transformers enums, `Literal`)' },
  { code: 'CC103', severity: 'error', stage: 'keys', summary: 'value out of range (`top_p` in (0, 1], `warmup_ratio` in [0, 1], batch sizes ≥ 1, …); `.nan` and `.inf` are outside every range (the runtime refuses them too), except `max_grad_norm: .inf` (never clip); `.nan` / `.inf` in `reward_weights`' },
  { code: 'CC104', severity: 'error', stage: 'keys', summary: "field removed in the TRL line the recipe is checked against; quick fix renames to that line's name, or removes the key" },
  { code: 'CC105', severity: 'info', stage: 'keys', summary: 'field gone from the other TRL line; reported only on the default line (not when the recipe sets `launch.trl` or the line comes from the host: its last run, the target)' },
  { code: 'CC106', severity: 'error', stage: 'keys', summary: "the other TRL line's spelling of a field; quick fix renames to this line's name (removes the key when that is set already)" },
  { code: 'CC107', severity: 'warning', stage: 'keys', summary: '`launch.trl` names a TRL without a schema here: the nearest supported line is used; quick fixes set a supported one' },
  // GRPOConfig / GRPOTrainer
  {
    code: 'CC201', severity: 'error', stage: 'rules', only: 'grpo', summary: 'C1: `generation_batch_size` and `steps_per_generation` both set',
    check(ctx, emit) {
      if (batch(ctx).c1) emit.at(['steps_per_generation'], "'generation_batch_size' and 'steps_per_generation' can not be both configured at the same time (GRPOConfig). Remove one of them.");
    },
  },
  {
    code: 'CC202', severity: 'error', stage: 'rules', only: 'grpo', summary: "C2: `generation_batch_size` not divisible; 0.18's precedence `(gbs % B) * P != 0`, 1.x's `gbs % (B × P) != 0`",
    check(ctx, emit) {
      const b = batch(ctx);
      if (!b.usable || !b.c2) return;
      const { gbs, P } = b, B = b.B as number;
      emit.at(['generation_batch_size'],
        `generation_batch_size (${gbs}) must be divisible by the global batch size (${B * P}). (${ctx.v1 ? `GRPOConfig checks generation_batch_size % (per_device_train_batch_size x processes)` : `GRPOConfig 0.18 checks (generation_batch_size % per_device_train_batch_size) * processes`}; ${b.procs!.source}) Use a multiple of ${B * P}, e.g. ${B * P * Math.max(1, Math.round(gbs / (B * P)))}.`);
    },
  },
  {
    code: 'CC203', severity: 'error', stage: 'rules', only: 'grpo', summary: 'C3: `num_generations < 2` (or null); a quick fix per valid value (at most 12, the nearest to 2 first; none for null)',
    check(ctx, emit) {
      const b = batch(ctx);
      if (b.usable && !b.c2 && (b.G as number) < 2) {
        emit.at(['num_generations'],
          `GRPO requires at least 2 generations per prompt to calculate the advantages. You provided ${b.G}, which is less than the minimum required. Set num_generations to 2 or more.`,
          valueFixes(ctx, 'num_generations', divisors(b.gbs), 2));
      }
      if (pair(ctx, 'num_generations') && b.G === null) {
        emit.at(['num_generations'], 'num_generations cannot be null: GRPO requires at least 2 generations per prompt to calculate the advantages (GRPOConfig compares it with 2 and fails). Set a number.');
      }
    },
  },
  {
    code: 'CC204', severity: 'error', stage: 'rules', only: 'grpo', summary: 'C4: `P × B × steps_per_generation` not divisible by `G`; lists the valid values; a quick fix per valid value, the nearest first (at most 12)',
    check(ctx, emit) {
      const b = batch(ctx);
      const G = b.G as number;
      if (!b.usable || b.c2 || G < 2 || b.possible.includes(G)) return;
      const { P, gbs, steps, possible, procs } = b, B = b.B as number;
      const v = nearest(possible, G);
      emit.at(['num_generations', 'per_device_train_batch_size', 'gradient_accumulation_steps', ['launch', 'num_processes']], (ctx.v1
        ? `generation_batch_size (${gbs}) must be divisible by num_generations (${G}). The generation batch is ${P} processes x ${B} per device x ${steps} steps_per_generation; the valid values for the number of generations are: [${possible.join(', ')}]. (processes from ${procs!.source})`
        : `The effective train batch size (${P} x ${B} x ${steps}) must be evenly divisible by the number of generations per prompt (${G}). Given the current effective train batch size, the valid values for the number of generations are: [${possible.join(', ')}]. (processes from ${procs!.source}; per_device_train_batch_size ${B}; steps_per_generation ${steps})`)
        + (v ? ` Set num_generations to ${v}, or change the batch so that it divides.` : ' Increase the batch size.'),
      valueFixes(ctx, 'num_generations', possible, G));
    },
  },
  {
    code: 'CC205', severity: 'error', stage: 'rules', only: 'grpo', summary: 'C5: with `eval_strategy` ≠ `no`, `P × per_device_eval_batch_size` not divisible by `G` (1.x: by `num_generations_eval` when set)',
    check(ctx, emit) {
      const b = batch(ctx);
      const G = b.G as number;
      const { evalStrategy, Be, P, possible } = b;
      if (!b.usable || b.c2 || G < 2 || evalStrategy === 'no' || evalStrategy === INVALID || !isInt(Be)) return;
      const pe = divisors(Be * P);
      if (ctx.v1) {
        // TRL 1.x: with num_generations_eval when set
        const Ge0 = val(ctx, 'num_generations_eval');
        const Ge = isInt(Ge0) && Ge0 > 0 ? Ge0 : G;
        if (pe.includes(Ge)) return;
        const fixKey = Ge === G ? 'num_generations' : 'num_generations_eval';
        emit.at([fixKey, 'per_device_eval_batch_size', 'eval_strategy'],
          `The global eval batch size (${Be} * ${P}) must be divisible by the number of generations used for evaluation (${Ge}). The valid values are: [${pe.join(', ')}]. (evaluation is on: eval_strategy ${String(evalStrategy)}; processes from ${b.procs!.source}) Change per_device_eval_batch_size so that ${P} x it is divisible by ${Ge}, or set num_generations_eval.`,
          valueFixes(ctx, fixKey, fixKey === 'num_generations' ? pe.filter((x) => possible.includes(x)) : pe, Ge));
        return;
      }
      if (pe.includes(G)) return;
      const v = nearest(pe.filter((x) => possible.includes(x)), G);
      emit.at(['num_generations', 'per_device_eval_batch_size', 'eval_strategy'],
        `The global eval batch size (${P} x ${Be}) must be evenly divisible by the number of generations per prompt (${G}). Given the current global eval batch size, the valid values for the number of generations are: [${pe.join(', ')}]. (evaluation is on: eval_strategy ${String(evalStrategy)}) Change per_device_eval_batch_size so that ${P} x it is divisible by ${G}` + (v ? `, or set num_generations to ${v}.` : '.'),
        valueFixes(ctx, 'num_generations', pe.filter((x) => possible.includes(x)), G));
    },
  },
  {
    code: 'CC206', severity: 'error', stage: 'rules', only: 'grpo', summary: 'C6: `delta` with `use_liger_loss`',
    check(ctx, emit) {
      if (isNumber(val(ctx, 'delta')) && val(ctx, 'use_liger_loss') === true) {
        emit.at(['delta', 'use_liger_loss'], 'Liger loss does not support two-sided GRPO loss yet. Remove `delta` or set use_liger_loss: false.');
      }
    },
  },
  {
    code: 'CC207', severity: 'error', stage: 'rules', only: 'grpo', summary: '`len(reward_weights) != len(reward_funcs)` (GRPOTrainer); quick fix pads with 1.0 / truncates',
    check(ctx, emit) {
      const rw = val(ctx, 'reward_weights');
      const rf0 = val(ctx, 'reward_funcs');
      const rf = typeof rf0 === 'string' ? [rf0] : rf0; // one name is a one-element list (ConscienceScriptArguments)
      const rwPair = pair(ctx, 'reward_weights');
      if (!Array.isArray(rw) || !Array.isArray(rf) || rw.length === rf.length || !rwPair) return;
      const fixed = rf.map((_, i) => (isNumber(rw[i]) ? formatWeight(rw[i] as number) : '1.0'));
      emit.at(['reward_weights'],
        `Number of reward weights (${rw.length}) must match number of reward functions (${rf.length}) (GRPOTrainer). Give one weight per entry of reward_funcs, in the same order.`,
        [{ title: `Use ${rf.length} weights: [${fixed.join(', ')}]`, edits: [{ start: rwPair.value.start, end: rwPair.value.end, newText: `[${fixed.join(', ')}]` }] }]);
    },
  },
  {
    code: 'CC208', severity: 'error', stage: 'rules', only: 'grpo', summary: '`vllm_mode: colocate` and `vllm_tensor_parallel_size` does not divide `P`',
    check(ctx, emit) {
      const procs = processes(ctx);
      const tp = val(ctx, 'vllm_tensor_parallel_size');
      if (val(ctx, 'use_vllm') === true && val(ctx, 'vllm_mode') === 'colocate' && procs && isInt(tp) && tp > 0 && procs.P % tp !== 0) {
        emit.at(['vllm_tensor_parallel_size'],
          `vllm_tensor_parallel_size (${tp}) must divide world size (${procs.P}) evenly (GRPOTrainer, colocate mode; ${procs.source}). Valid sizes: ${[1, ...divisors(procs.P)].join(', ')}.`);
      }
    },
  },
  {
    code: 'CC209', severity: 'error', stage: 'rules', only: 'grpo', summary: "`loss_type` not one of the TRL line's losses (0.18: grpo, bnpo, dr_grpo; 1.x adds dapo, cispo, sapo, luspo, vespo); TRL raises at the first step",
    check(ctx, emit) {
      const lt = val(ctx, 'loss_type');
      const losses = ctx.v1 ? LOSSES_1 : LOSSES_018;
      if (typeof lt !== 'string' || losses.includes(lt)) return;
      const sug = didYouMean(lt, losses);
      emit.at(['loss_type'], `Unknown loss type: ${lt}. TRL ${ctx.schema.trlVersion} supports ${losses.slice(0, -1).join(', ')} and ${losses.at(-1)} (raised at the first training step).${sug ? ` Did you mean '${sug}'?` : ''}`,
        sug ? [setValueFix(ctx, 'loss_type', sug)] : undefined);
    },
  },
  {
    code: 'CC210', severity: 'error', stage: 'rules', only: 'grpo', summary: '`vllm_mode` not server/colocate (0.18 does not check; generation fails)',
    check(ctx, emit) {
      const mode = val(ctx, 'vllm_mode');
      if (val(ctx, 'use_vllm') !== true || typeof mode !== 'string' || mode === 'server' || mode === 'colocate') return;
      const sug = didYouMean(mode, ['server', 'colocate']);
      emit.at(['vllm_mode'], `vllm_mode must be 'server' or 'colocate', got '${mode}' (TRL 0.18 does not check this and fails during generation).`,
        sug ? [setValueFix(ctx, 'vllm_mode', sug)] : undefined);
    },
  },
  // ModelConfig, transformers
  {
    code: 'CC211', severity: 'error', stage: 'rules', summary: '`load_in_8bit` and `load_in_4bit` (ModelConfig)',
    check(ctx, emit) {
      if (val(ctx, 'load_in_8bit') === true && val(ctx, 'load_in_4bit') === true) {
        emit.at(['load_in_4bit', 'load_in_8bit'], "You can't use 8 bit and 4 bit precision at the same time (ModelConfig). Set one of load_in_8bit / load_in_4bit to false.");
      }
    },
  },
  {
    code: 'CC212', severity: 'error', stage: 'rules', summary: '`cosine_with_min_lr` needs exactly one of `min_lr` / `min_lr_rate` in `lr_scheduler_kwargs`',
    check(ctx, emit) {
      if (val(ctx, 'lr_scheduler_type') !== 'cosine_with_min_lr') return;
      let kw = val(ctx, 'lr_scheduler_kwargs');
      if (kw && typeof kw === 'object' && 'kind' in (kw as object)) kw = safePlain(kw as YNode);
      if (typeof kw === 'string') { try { kw = JSON.parse(kw); } catch { kw = undefined; } }
      const o = (kw && typeof kw === 'object' ? kw : {}) as Record<string, unknown>;
      const hasMin = o.min_lr !== undefined && o.min_lr !== null;
      const hasRate = o.min_lr_rate !== undefined && o.min_lr_rate !== null;
      if (hasMin && hasRate) emit.at(['lr_scheduler_kwargs'], 'Only one of min_lr or min_lr_rate should be set (transformers cosine_with_min_lr). Remove one.');
      else if (!hasMin && !hasRate) emit.at(['lr_scheduler_kwargs', 'lr_scheduler_type'], 'One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs` (lr_scheduler_type: cosine_with_min_lr). Add e.g. `lr_scheduler_kwargs: {min_lr_rate: 0.1}`.');
    },
  },
  // TrainingArguments.__post_init__
  {
    code: 'CC213', severity: 'error', stage: 'rules', summary: '`fp16` and `bf16` both true (TrainingArguments)',
    check(ctx, emit) {
      if (val(ctx, 'fp16') === true && val(ctx, 'bf16') === true) emit.at(['fp16', 'bf16'], 'At most one of fp16 and bf16 can be True, but not both (TrainingArguments). Set one to false.');
    },
  },
  {
    code: 'CC214', severity: 'error', stage: 'rules', summary: 'steps strategy with zero `logging_steps` (or zero `eval_steps` and `logging_steps`)',
    check(ctx, emit) {
      const lsteps = val(ctx, 'logging_steps'), es = val(ctx, 'eval_steps');
      if (val(ctx, 'eval_strategy') === 'steps' && (es === null || es === 0) && lsteps === 0) {
        emit.at(['eval_steps', 'eval_strategy'], 'evaluation strategy steps requires either non-zero --eval_steps or --logging_steps (TrainingArguments). Set eval_steps.');
      }
      if (val(ctx, 'logging_strategy') === 'steps' && lsteps === 0) {
        emit.at(['logging_steps'], 'logging strategy steps requires non-zero --logging_steps (TrainingArguments). Set logging_steps to 1 or more.');
      }
    },
  },
  {
    code: 'CC215', severity: 'error', stage: 'rules', summary: '`logging_steps` / `eval_steps` / `save_steps` > 1 and not an integer',
    check(ctx, emit) {
      const pairs = [['logging_strategy', 'logging_steps'], ['eval_strategy', 'eval_steps'], ['save_strategy', 'save_steps']] as const;
      for (const [strategy, name] of pairs) {
        const steps = val(ctx, name);
        if (val(ctx, strategy) === 'steps' && isNumber(steps) && steps > 1 && !Number.isInteger(steps)) {
          emit.at([name], `--${name} must be an integer if bigger than 1: ${steps} (TrainingArguments). Use a whole number, or a ratio below 1.`);
        }
      }
    },
  },
  {
    code: 'CC216', severity: 'error', stage: 'rules', summary: '`load_best_model_at_end` with different eval/save strategies, or save steps not a multiple of eval steps',
    check(ctx, emit) {
      const evalStrategy = val(ctx, 'eval_strategy'), ss = val(ctx, 'save_strategy');
      if (val(ctx, 'load_best_model_at_end') !== true || ss === 'best' || typeof evalStrategy !== 'string' || typeof ss !== 'string') return;
      if (evalStrategy !== ss) {
        emit.at(['load_best_model_at_end'], `--load_best_model_at_end requires the save and eval strategy to match, but found eval_strategy ${evalStrategy} and save_strategy ${ss} (TrainingArguments).`);
      } else if (evalStrategy === 'steps') {
        const es = val(ctx, 'eval_steps'), ssteps = val(ctx, 'save_steps');
        const e = isNumber(es) && es > 0 ? es : val(ctx, 'logging_steps');
        if (isInt(e) && isInt(ssteps) && e > 0 && ssteps % e !== 0) {
          emit.at(['save_steps', 'load_best_model_at_end'], `--load_best_model_at_end requires the saving steps to be a round multiple of the evaluation steps, but found ${ssteps}, which is not a round multiple of ${e} (TrainingArguments).`);
        }
      }
    },
  },
  {
    code: 'CC217', severity: 'error', stage: 'rules', summary: '`reduce_lr_on_plateau` without evaluation',
    check(ctx, emit) {
      if (val(ctx, 'lr_scheduler_type') === 'reduce_lr_on_plateau' && val(ctx, 'eval_strategy') === 'no') {
        emit.at(['lr_scheduler_type'], 'lr_scheduler_type reduce_lr_on_plateau requires an eval strategy (TrainingArguments). Set eval_strategy to steps or epoch, or pick another scheduler.');
      }
    },
  },
  // launch:, vLLM, our sections
  {
    code: 'CC218', severity: 'warning', stage: 'rules', summary: '`launch.num_processes` not a multiple of `launch.num_machines`',
    check(ctx, emit) {
      const np = sval(ctx, 'launch', 'num_processes'), nm = sval(ctx, 'launch', 'num_machines');
      if (isInt(np) && isInt(nm) && nm > 0 && np % nm !== 0 && sectionPair(ctx, 'launch', 'num_processes')) {
        emit.at([['launch', 'num_processes']], `launch.num_processes (${np}) is the total over all machines, so it should be a multiple of launch.num_machines (${nm}); accelerate starts num_processes / num_machines per machine.`);
      }
    },
  },
  {
    code: 'CC219', severity: 'warning', stage: 'rules', only: 'grpo', summary: '`use_vllm` in server mode but `launch.vllm_server` is not true and no `vllm_server_base_url`',
    check(ctx, emit) {
      if (val(ctx, 'use_vllm') === true && val(ctx, 'vllm_mode') === 'server' && sval(ctx, 'launch', 'vllm_server') !== true && !pair(ctx, 'vllm_server_base_url')) {
        emit.at(['use_vllm'],
          `use_vllm with vllm_mode: server needs a running \`trl vllm-serve\`, but launch.vllm_server is not true, so none is started. The trainer will wait vllm_server_timeout seconds and fail unless you start one at vllm_server_host:vllm_server_port. Set launch.vllm_server: true or vllm_mode: colocate.`);
      }
    },
  },
  {
    code: 'CC220', severity: 'error', stage: 'rules', only: 'grpo', summary: "colocate mode with `max_prompt_length: null` (vLLM's `max_model_len`)",
    check(ctx, emit) {
      if (val(ctx, 'use_vllm') === true && val(ctx, 'vllm_mode') === 'colocate' && pair(ctx, 'max_prompt_length') && val(ctx, 'max_prompt_length') === null) {
        emit.at(['max_prompt_length'], 'vLLM colocate mode builds its engine with max_model_len = max_prompt_length + max_completion_length, so max_prompt_length cannot be null. Set a number.');
      }
    },
  },
  {
    code: 'CC221', severity: 'error', stage: 'rules', only: 'grpo', summary: 'ZeRO-3 + vLLM with `ds3_gather_for_generation: false`',
    check(ctx, emit) {
      if (val(ctx, 'use_vllm') === true && ctx.acc?.zeroStage === 3 && val(ctx, 'ds3_gather_for_generation') === false) {
        emit.at(['ds3_gather_for_generation'], 'ds3_gather_for_generation: false is not compatible with vLLM generation under ZeRO-3 (the weights must be gathered to sync them to vLLM). Set it to true or turn use_vllm off.');
      }
    },
  },
  {
    code: 'CC222', severity: 'error', stage: 'rules', alsoEval: true, summary: '`safety.open_tag` / `safety.close_tag` empty, equal, or one inside the other (SafetyConfig)',
    check(ctx, emit) {
      const open = sval(ctx, 'safety', 'open_tag'), close = sval(ctx, 'safety', 'close_tag');
      if (typeof open !== 'string' || typeof close !== 'string') return;
      if (!open || !close) emit.at([['safety', open ? 'close_tag' : 'open_tag'], 'safety'], 'safety.open_tag and safety.close_tag must be non-empty (SafetyConfig). Use e.g. "<safety>" and "</safety>".');
      else if (open === close) emit.at([['safety', 'close_tag'], 'safety'], `safety.open_tag and safety.close_tag must differ (SafetyConfig); both are ${JSON.stringify(open)}. Use e.g. "<safety>" and "</safety>".`);
      else {
        // one inside the other: the parser would find it in the other (SafetyConfig's words)
        for (const [inner, outer] of [['open_tag', 'close_tag'], ['close_tag', 'open_tag']] as const) {
          const i = inner === 'open_tag' ? open : close, o = outer === 'open_tag' ? open : close;
          if (o.includes(i)) {
            emit.at([['safety', sectionPair(ctx, 'safety', outer) ? outer : inner], 'safety'], `safety.${outer} ${pyRepr(o)} contains safety.${inner} ${pyRepr(i)}: a completion's block could not be told apart from its tags (safety_format would score every well-formed completion 0.5); choose tags that do not contain each other (SafetyConfig).`);
            break;
          }
        }
      }
    },
  },
  {
    code: 'CC223', severity: 'warning', stage: 'rules', summary: '`model_init_kwargs` set: `conscience.train` replaces it with values built from the ModelConfig keys',
    check(ctx, emit) {
      // conscience.train builds model_init_kwargs itself from the ModelConfig keys.
      if (pair(ctx, 'model_init_kwargs') && val(ctx, 'model_init_kwargs') !== null) {
        emit.at(['model_init_kwargs'], 'model_init_kwargs is replaced by the trainer (conscience.train builds it from model_revision, trust_remote_code, attn_implementation and torch_dtype), so this value has no effect. Set those keys instead.');
      }
    },
  },
  // checks TRL 1.x's GRPOConfig added
  {
    code: 'CC224', severity: 'error', stage: 'rules', only: 'grpo', summary: 'TRL 1.x: `auto_find_batch_size: true` (GRPOConfig rejects it)',
    check(ctx, emit) {
      if (ctx.v1 && val(ctx, 'auto_find_batch_size') === true) {
        emit.at(['auto_find_batch_size'], 'auto_find_batch_size is not supported by GRPO, because the generation batch must contain full prompt groups of num_generations completions (GRPOConfig, TRL 1.x). Set auto_find_batch_size: false and lower per_device_train_batch_size instead.');
      }
    },
  },
  {
    code: 'CC225', severity: 'error', stage: 'rules', only: 'grpo', summary: 'TRL 1.x: `log_completions_hub_repo` without `log_completions: true`',
    check(ctx, emit) {
      if (ctx.v1 && typeof val(ctx, 'log_completions_hub_repo') === 'string' && val(ctx, 'log_completions') !== true) {
        emit.at(['log_completions_hub_repo'], 'log_completions_hub_repo is set, but log_completions is False. Enable log_completions to upload completions to the Hub, or unset log_completions_hub_repo (GRPOConfig, TRL 1.x).',
          [setValueFix(ctx, 'log_completions', 'true')]);
      }
    },
  },
  // reward names and referenced files
  {
    code: 'CC226', severity: 'error', stage: 'rules', summary: '`load_in_4bit` / `load_in_8bit`: a quantized policy is not supported (the runtime refuses it)',
    check(ctx, emit) {
      for (const key of ['load_in_4bit', 'load_in_8bit']) {
        if (val(ctx, key) === true) {
          emit.at([key], `${key}: a quantized policy is not supported by the runtime (conscience.train and conscience.sft would load the full-precision model, so the recipe is refused). Train LoRA adapters (use_peft: true) on a bf16 model instead.`);
        }
      }
    },
  },
  {
    code: 'CC227', severity: 'error', stage: 'rules', alsoEval: true, summary: '`safety.budget_instruction` without `{budget}`, or `budget_instruction` / `zero_budget_instruction` that do not format: a placeholder other than `{budget}`, `{open_tag}`, `{close_tag}`, or a lone `{` / `}`; or a field with a format spec, conversion or index (`{budget:d}`, `{budget!s}`), which Python renders but the serving gateway\'s template does not (SafetyConfig)',
    check(ctx, emit) {
      for (const key of ['budget_instruction', 'zero_budget_instruction']) {
        const v = sval(ctx, 'safety', key);
        if (typeof v !== 'string' || !sectionPair(ctx, 'safety', key)) continue;
        const err = formatError(v);
        if (err) {
          emit.at([['safety', key]], `safety.${key}: ${err} (placeholders: {budget}, {open_tag}, {close_tag}; write {{ and }} for braces). The runtime formats it for every prompt and refuses the recipe (SafetyConfig).`);
          continue;
        }
        if (key === 'budget_instruction' && !hasBudgetField(v)) {
          emit.at([['safety', key]], 'safety.budget_instruction has no {budget}: the policy would never be told its budget, which the budget reward scores its block against; write {budget} where the token count goes. The runtime refuses the recipe (SafetyConfig).');
          continue;
        }
        const field = unsupportedField(v);
        if (field) {
          // conscience.template.unsupported_field: the same words as SafetyConfig's refusal
          const plain = PLACEHOLDERS.find((p) => field.slice(1).startsWith(p)) ?? 'budget';
          emit.at([['safety', key]], `safety.${key}: ${field} has a format spec, conversion or index; write the plain {${plain}} (the serving gateway fills in only {budget}, {open_tag} and {close_tag} as they are, so the policy would be served other text than it trained on). The runtime refuses the recipe (SafetyConfig).`);
        }
      }
    },
  },
  // checks of TRL 1.x (GRPOConfig) and transformers (TrainingArguments), appended
  {
    code: 'CC228', severity: 'error', stage: 'rules', summary: 'TRL 1.x (transformers 5): `lr_scheduler_type: greedy` without evaluation (`eval_strategy: no`); TRL 0.18 has no greedy scheduler (CC102)',
    check(ctx, emit) {
      if (val(ctx, 'lr_scheduler_type') === 'greedy' && val(ctx, 'eval_strategy') === 'no') {
        emit.at(['lr_scheduler_type'], 'lr_scheduler_type greedy requires an eval strategy (TrainingArguments, transformers 5): it lowers the learning rate from the evaluation loss. Set eval_strategy to steps or epoch, or pick another scheduler.',
          [setValueFix(ctx, 'eval_strategy', 'epoch')]);
      }
    },
  },
  {
    code: 'CC229', severity: 'error', stage: 'rules', only: 'grpo', summary: 'TRL 1.x: `vllm_importance_sampling_clip_min` not below `vllm_importance_sampling_clip_max` (or the deprecated `vllm_importance_sampling_cap`), or a `*_truncate` `vllm_importance_sampling_mode` with neither bound (GRPOConfig)',
    check(ctx, emit) {
      if (!ctx.v1) return;
      // GRPOConfig.__post_init__: a set cap replaces clip_max, then the two checks
      const cap = val(ctx, 'vllm_importance_sampling_cap');
      const usesCap = cap !== null && cap !== undefined;
      const max = usesCap ? cap : val(ctx, 'vllm_importance_sampling_clip_max');
      const maxKey = usesCap ? 'vllm_importance_sampling_cap' : 'vllm_importance_sampling_clip_max';
      const min = val(ctx, 'vllm_importance_sampling_clip_min');
      if (min === INVALID || max === INVALID) return;
      if (isNumber(min) && isNumber(max) && min >= max) {
        emit.at(['vllm_importance_sampling_clip_min'],
          `vllm_importance_sampling_clip_min (${pyNumber(ctx, 'vllm_importance_sampling_clip_min', min)}) must be less than vllm_importance_sampling_clip_max (${pyNumber(ctx, maxKey, max)}) (GRPOConfig, TRL 1.x${usesCap ? '; the deprecated vllm_importance_sampling_cap sets clip_max' : ''}). Lower clip_min or raise clip_max.`);
        return;
      }
      const mode = val(ctx, 'vllm_importance_sampling_mode');
      if (val(ctx, 'vllm_importance_sampling_correction') === true && (mode === 'token_truncate' || mode === 'sequence_truncate') && min === null && (max === null || max === undefined)) {
        emit.at(['vllm_importance_sampling_clip_min', 'vllm_importance_sampling_clip_max', 'vllm_importance_sampling_mode'],
          'At least one of `vllm_importance_sampling_clip_min` or `vllm_importance_sampling_clip_max` must be set when `vllm_importance_sampling_mode` is a `*_truncate` mode (GRPOConfig, TRL 1.x). Set vllm_importance_sampling_clip_max (e.g. 3.0, the default), or use a `*_mask` mode.');
      }
    },
  },
  {
    code: 'CC230', severity: 'error', stage: 'rules', summary: '`dataloader_prefetch_factor` set with `dataloader_num_workers: 0` (TrainingArguments, both TRL lines)',
    check(ctx, emit) {
      const pf = val(ctx, 'dataloader_prefetch_factor');
      if (val(ctx, 'dataloader_num_workers') === 0 && pf !== null && pf !== undefined && pf !== INVALID) {
        // transformers 4.52 (TRL 0.18) says "> 1", transformers 5 "> 0"; both refuse only 0 workers
        emit.at(['dataloader_prefetch_factor'],
          `--dataloader_prefetch_factor can only be set when data is loaded in a different process, i.e. when --dataloader_num_workers > ${ctx.v1 ? 0 : 1}. (TrainingArguments; dataloader_num_workers is ${pair(ctx, 'dataloader_num_workers') ? '0' : '0, the default'}) Set dataloader_num_workers to 1 or more, or remove dataloader_prefetch_factor.`);
      }
    },
  },
  {
    code: 'CC231', severity: 'error', stage: 'rules', only: 'grpo', summary: '`vllm_server_base_url` with `launch.vllm_server: true`: the trainer would not reach the server launched for it',
    check(ctx, emit) {
      const url = val(ctx, 'vllm_server_base_url');
      if (sval(ctx, 'launch', 'vllm_server') === true && typeof url === 'string' && url) {
        // the launcher refuses it too (scripts.ts recipeInfoFromText, conscience.launch): TRL
        // ignores vllm_server_host/port when a base URL is set
        emit.at(['vllm_server_base_url'],
          `vllm_server_base_url sends the trainer to ${url} instead of the vLLM server that launch.vllm_server starts (TRL ignores vllm_server_host and vllm_server_port when a base URL is set). Remove it: the launcher points the trainer at its own server.`);
      }
    },
  },
  {
    code: 'CC232', severity: 'error', stage: 'rules', only: 'grpo', summary: '`remove_unused_columns: true`: TRL would drop the per-prompt `budget` and `safety_label` columns before the rewards see them, so `safety_budget` and `refusal` score 0.0 for every completion (the runtime refuses it)',
    check(ctx, emit) {
      if (val(ctx, 'remove_unused_columns') === true) {
        // conscience.recipe.check_grpo_keys: the same words
        emit.at(['remove_unused_columns'], 'remove_unused_columns: true drops every dataset column but the prompt before the reward functions see them (TRL keeps only the columns its model inputs name), so the per-prompt `budget` and `safety_label` are gone: safety_budget and refusal would score 0.0 for every completion. Remove the key or set it to false (GRPOConfig\'s default).',
          [setValueFix(ctx, 'remove_unused_columns', 'false')]);
      }
    },
  },
  {
    code: 'CC233', severity: 'error', stage: 'rules', only: 'grpo', summary: '`soft_overlong_punishment` with `soft_punish_cache` ≥ `max_completion_length`: every completion would be penalised (the runtime refuses it)',
    check(ctx, emit) {
      const rf0 = val(ctx, 'reward_funcs');
      const rf = typeof rf0 === 'string' ? [rf0] : rf0;
      const cache = val(ctx, 'soft_punish_cache');
      const ml0 = val(ctx, 'max_completion_length');
      const max = ml0 === null ? 256 : ml0; // the reward's own fallback (build_reward_funcs)
      if (!Array.isArray(rf) || !rf.includes('soft_overlong_punishment') || !isInt(cache) || !isInt(max) || cache < max) return;
      const mp = pair(ctx, 'max_completion_length');
      const said = mp ? `max_completion_length (${max}, line ${ctx.text.slice(0, mp.key.start).split('\n').length})` : `max_completion_length (${max}, the default)`;
      // conscience.recipe.check_grpo_keys: the same words
      emit.at(['soft_punish_cache', 'max_completion_length', 'reward_funcs'], `soft_punish_cache (${cache}) must be less than ${said}: soft_overlong_punishment penalises completions longer than max_completion_length - soft_punish_cache tokens, so it would penalise every completion. Lower soft_punish_cache.`);
    },
  },
  {
    code: 'CC234', severity: 'error', stage: 'rules', summary: 'an `lr_scheduler_kwargs` key the schedule of `lr_scheduler_type` does not take, or one it needs that is missing (transformers fails when training starts)',
    check(ctx, emit) {
      const { kind, sched, kw } = schedulerKwargs(ctx);
      if (!sched || !(sched.passes === 'always' || (sched.passes === 'v5' && ctx.v1))) return;
      const when = '(transformers, when the trainer builds the learning-rate schedule: after the model and data are loaded)';
      for (const key of Object.keys(kw)) {
        if (sched.takes.includes(key)) continue;
        if (PASSED_BY_GET_SCHEDULER.includes(key)) {
          emit.at([['lr_scheduler_kwargs', key], 'lr_scheduler_kwargs'], `${sched.fn}() got multiple values for argument '${key}' ${when}: the trainer passes ${key} itself. Remove it from lr_scheduler_kwargs. The runtime refuses the recipe.`);
          continue;
        }
        const sug = didYouMean(key, [...sched.takes]);
        emit.at([['lr_scheduler_kwargs', key], 'lr_scheduler_kwargs'], `${sched.fn}() got an unexpected keyword argument '${key}' ${when}. lr_scheduler_type ${kind} takes ${sched.takes.join(', ')}${sug ? `; did you mean ${sug}?` : ''}. The runtime refuses the recipe.`);
      }
      const missing = (sched.needs ?? []).filter((k) => kw[k] === undefined || kw[k] === null);
      if (missing.length) {
        emit.at(['lr_scheduler_kwargs', 'lr_scheduler_type'], `${sched.fn}() missing ${missing.length} required positional argument${missing.length > 1 ? 's' : ''}: ${missing.map((k) => `'${k}'`).join(' and ')} ${when}. Add it to lr_scheduler_kwargs (lr_scheduler_type ${kind}). The runtime refuses the recipe.`);
      }
    },
  },
  {
    code: 'CC235', severity: 'warning', stage: 'rules', summary: '`lr_scheduler_kwargs` that the schedule of `lr_scheduler_type` ignores (transformers does not pass them)',
    check(ctx, emit) {
      const { kind, sched, kw } = schedulerKwargs(ctx);
      if (!sched || sched.passes === 'always' || (sched.passes === 'v5' && ctx.v1)) return;
      const keys = Object.keys(kw);
      if (keys.length) emit.at(['lr_scheduler_kwargs'], `lr_scheduler_kwargs ${keys.join(', ')} have no effect: transformers builds the ${kind} schedule without them${sched.passes === 'v5' ? ' (transformers 5, TRL 1.x, passes them)' : ''}. Remove them, or pick a schedule that takes them.`);
    },
  },
  {
    code: 'CC236', severity: 'error', stage: 'rules', summary: '`num_train_epochs: 0` with `max_steps` unset or <= 0: no step is trained (the runtime refuses it)',
    check(ctx, emit) {
      const epochs = val(ctx, 'num_train_epochs'), steps = val(ctx, 'max_steps');
      if (epochs === 0 && isNumber(steps) && steps <= 0 && pair(ctx, 'num_train_epochs')) {
        emit.at(['num_train_epochs'], `num_train_epochs: 0 with max_steps ${steps} trains no step: set num_train_epochs above 0, or max_steps to the number of steps to train. The runtime refuses the recipe (the run would end at once as completed).`);
      }
    },
  },
  {
    code: 'CC237', severity: 'error', also: 'warning', stage: 'rules', only: 'grpo', summary: '`sync_ref_model: true` with `beta: 0` (the default of TRL 1.x) or `use_peft: true`: GRPO keeps no reference model to sync; TRL 1.x refuses it when the trainer is built, after the model is loaded (the runtime refuses it at load), TRL 0.18 ignores it (warning)',
    check(ctx, emit) {
      if (val(ctx, 'sync_ref_model') !== true) return;
      const beta = val(ctx, 'beta');
      const peft = val(ctx, 'use_peft') === true;
      // TRL 0.18 loads a reference model beside a PEFT policy under ZeRO-3, and syncs it
      if (beta !== 0 && !(peft && (ctx.v1 || ctx.acc?.zeroStage !== 3))) return;
      // conscience.recipe.check_sync_ref_model: the same words
      const why = beta === 0
        ? `beta is 0${pair(ctx, 'beta') ? '' : ` (the default of TRL ${ctx.schema.trlVersion})`}, so GRPO keeps no reference model`
        : 'use_peft is true, so GRPO keeps no reference model (it disables the adapter to get the reference)';
      const fix = `Set sync_ref_model: false${beta === 0 ? ', or beta above 0 (e.g. 0.04)' : ''}.`;
      if (ctx.v1) {
        emit.at(['sync_ref_model'], `sync_ref_model: true, but ${why}: there is nothing to sync, and TRL ${ctx.schema.trlVersion} refuses it when the trainer is built (GRPOTrainer, after the model is loaded). ${fix} The runtime refuses the recipe.`,
          [setValueFix(ctx, 'sync_ref_model', 'false')]);
      } else {
        emit.at(['sync_ref_model'], `sync_ref_model: true, but ${why}: there is nothing to sync, so TRL ${ctx.schema.trlVersion} ignores it (TRL 1.x refuses it). ${fix}`,
          [setValueFix(ctx, 'sync_ref_model', 'false')], 'warning');
      }
    },
  },
  {
    code: 'CC238', severity: 'warning', stage: 'rules', summary: '`safety.budget_harmful` / `budget_borderline` / `budget_benign` (set or default) above `safety.max_budget`: the runtime clips every budget to `max_budget`, so those prompts get less than the recipe says',
    check(ctx, emit) {
      const max = sval(ctx, 'safety', 'max_budget');
      if (!isInt(max) || max < 0) return;
      for (const label of ['harmful', 'borderline', 'benign']) {
        const key = `budget_${label}`;
        const b = sval(ctx, 'safety', key);
        if (!isInt(b) || b <= max) continue;
        // conscience.recipe.SafetyConfig.clip_budget: max(0, min(max_budget, budget))
        const set = !!sectionPair(ctx, 'safety', key);
        emit.at([['safety', set ? key : 'max_budget'], 'safety'], `safety.${key} (${b}${set ? '' : ', the default'}) is above safety.max_budget (${max}${sectionPair(ctx, 'safety', 'max_budget') ? '' : ', the default'}): the runtime clips every budget to max_budget, so ${label} prompts without a budget of their own get ${max} tokens, not ${b}. Raise max_budget or lower ${key}.`);
      }
    },
  },
  {
    code: 'CC239', severity: 'error', stage: 'rules', only: 'grpo', summary: '`eval_strategy` other than `no` with `dataset_name` the bundled prompt set (the default) or a single file (`.jsonl`, `.json`, ...): it has no test split, so evaluation would run on the training prompts (the runtime refuses it)',
    check(ctx, emit) {
      const strategy = val(ctx, 'eval_strategy');
      const name = val(ctx, 'dataset_name');
      if (typeof strategy !== 'string' || strategy === 'no' || typeof name !== 'string') return;
      const bundled = name === 'conscience/safety_prompts';
      if (!bundled && !/\.(jsonl|json|csv|parquet|arrow|txt)$/i.test(name)) return;
      const split = val(ctx, 'dataset_test_split');
      // conscience.recipe.check_grpo_keys (prompt_sets.has_splits): the same words
      emit.at(['eval_strategy'], `eval_strategy is '${strategy}', but dataset_name ${name}${pair(ctx, 'dataset_name') ? '' : ' (the default)'} is ${bundled ? 'the bundled prompt set' : 'a single prompt file'}, which has no '${typeof split === 'string' ? split : 'test'}' split: evaluation would run on the training prompts. Give a folder with train.jsonl and test.jsonl, or set eval_strategy: no. The runtime refuses the recipe.`,
        [setValueFix(ctx, 'eval_strategy', 'no')]);
    },
  },
  {
    code: 'CC240', severity: 'error', stage: 'rules', only: 'grpo', summary: '`top_k` below 0 when transformers generates (`use_vllm` off: it takes 0 as no top-k filter and refuses any other value below 1), or below -1 with vLLM (-1 and 0 are no filter there): the first generation fails (the runtime refuses it)',
    check(ctx, emit) {
      const k = val(ctx, 'top_k');
      const vllm = val(ctx, 'use_vllm') === true;
      if (!isInt(k) || k >= (vllm ? -1 : 0)) return;
      // conscience.recipe.check_grpo_keys: the same words
      emit.at(['top_k'], vllm
        ? `top_k ${k} is refused by vLLM at the first generation: use a positive number of tokens, or 0 or -1 for no top-k filter.`
        : `top_k ${k} is refused by transformers at the first generation (top_k has to be a strictly positive integer; 0 turns the filter off): use a positive number of tokens, or 0 for no top-k filter.`,
      [setValueFix(ctx, 'top_k', 0)]);
    },
  },
  {
    code: 'CC300', severity: 'error', stage: 'rules', only: 'grpo', summary: '`reward_funcs: []`: no reward function',
    check(ctx, emit) {
      const p = pair(ctx, 'reward_funcs');
      const v = deref(p?.value);
      if (p && v && v.kind === 'seq' && v.items.length === 0) {
        emit.range(p.value.start, p.value.end, `reward_funcs is empty: GRPO needs at least one reward function. Add some of: ${ctx.schema.rewardNames.join(', ')}.`);
      }
    },
  },
  {
    code: 'CC301', severity: 'error', stage: 'rules', only: 'grpo', summary: 'reward function name the runtime does not know (from `conscience.rewards.reward_names()`)',
    check(ctx, emit) {
      const v = deref(pair(ctx, 'reward_funcs')?.value);
      if (!v) return;
      const names = ctx.schema.rewardNames;
      const items = v.kind === 'seq' ? v.items : v.kind === 'scalar' && v.tag === 'str' ? [v] : [];
      for (const it of items) {
        const n = deref(it);
        if (!n || n.kind !== 'scalar' || typeof n.value !== 'string' || names.includes(n.value)) continue;
        const sug = didYouMean(n.value, names);
        emit.range(it.start, it.end, `Unknown reward function '${n.value}': the runtime knows ${names.join(', ')}.${sug ? ` Did you mean '${sug}'?` : ''}`,
          sug ? [{ title: `Change to '${sug}'`, edits: [{ start: it.start, end: it.end, newText: sug }] }] : undefined);
      }
    },
  },
  { code: 'CC302', severity: 'error', stage: 'accelerate', summary: '`launch.accelerate_config` not found (relative to the recipe), or a folder; an empty value is no config, as the runtime reads it' },
  {
    code: 'CC303', severity: 'error', stage: 'rules', summary: 'local dataset (`./`, `../`, `/` or a `.jsonl/.json/.csv/.parquet` name) not found',
    check(ctx, emit) { missingFile(ctx, emit, 'dataset_name', 'Local dataset', looksLocal); },
  },
  {
    code: 'CC304', severity: 'error', stage: 'rules', alsoEval: true, summary: '`chat_template` that looks like a file (`*.jinja`, `*.j2`) not found',
    check(ctx, emit) { missingFile(ctx, emit, 'chat_template', 'Chat template file', looksLikeTemplateFile); },
  },
  {
    code: 'CC305', severity: 'error', also: 'info', stage: 'rules', summary: 'local `model_name_or_path` (`./`, `../`, `/`) not found; information only for a run output folder (`.conscience/outputs/...`) that an earlier stage writes',
    check(ctx, emit) { missingFile(ctx, emit, 'model_name_or_path', 'Local model folder', looksLikePath); },
  },
  {
    code: 'CC306', severity: 'error', stage: 'rules', summary: '`deepspeed` (a DeepSpeed JSON config, relative to the recipe, else to the folder runs start in: the workspace root, else the current folder) not found, a folder, or not valid JSON (transformers reads it with json.load)',
    check(ctx, emit) {
      const v = val(ctx, 'deepspeed');
      const p = pair(ctx, 'deepspeed');
      // a mapping, or a JSON/base64 string, is the config itself
      if (typeof v !== 'string' || !p || !v.trim() || v.trim().startsWith('{') || (!v.endsWith('.json') && base64JsonObject(v) !== undefined)) return;
      const r = readReferenced(ctx, v, 'DeepSpeed config', true);
      if (!r) return;
      if (r.problem) { emit.range(p.value.start, p.value.end, r.problem); return; }
      let parsed: unknown;
      try { parsed = JSON.parse(r.text!); } catch (e) {
        emit.range(p.value.start, p.value.end, `DeepSpeed config '${v}' (${r.full}) is not valid JSON${jsonWhere(r.text!, e)}: ${(e as Error).message}. transformers reads it with json.load, which refuses trailing commas and comments.`);
        return;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        emit.range(p.value.start, p.value.end, `DeepSpeed config '${v}' (${r.full}) must be a JSON object ({"zero_optimization": {...}, ...}).`);
      }
    },
  },
  {
    code: 'CC307', severity: 'error', stage: 'rules', summary: '`safety.eval_recipe` (relative to the recipe) not found, a folder, or not a `kind: eval` recipe: the first evaluation during training would fail',
    check(ctx, emit) {
      const v = sval(ctx, 'safety', 'eval_recipe');
      const p = sectionPair(ctx, 'safety', 'eval_recipe');
      if (typeof v !== 'string' || !p || !v) return;
      const r = readReferenced(ctx, v, 'Eval recipe');
      if (!r) return;
      if (r.problem) { emit.range(p.value.start, p.value.end, r.problem); return; }
      const root = deref(parseYaml(r.text!).root);
      const k = root && root.kind === 'map' ? deref(getPair(root, 'kind')?.value) : undefined;
      if (k && k.kind === 'scalar' && k.value === 'eval') return;
      const said = !root || root.kind !== 'map' ? 'is not a YAML mapping' : k && k.kind === 'scalar' && k.value !== null ? `is a \`kind: ${k.text}\` recipe` : 'has no `kind: eval`';
      emit.range(p.value.start, p.value.end, `Eval recipe '${v}' (${r.full}) ${said}: safety.eval_recipe must name an eval recipe (\`kind: eval\`, docs/eval.md), which conscience.eval loads at the first evaluation step.`);
    },
  },
  {
    code: 'CC308', severity: 'error', stage: 'rules', only: 'grpo', summary: '`safety.eval_recipe` with `safety.eval_steps` under ZeRO-3 (the accelerate config\'s `zero_stage: 3` or its `deepspeed_config_file`\'s stage 3, or the recipe\'s `deepspeed:` stage 3): evaluation during training generates on rank 0 alone, which would wait for the other ranks\' weight shards forever',
    check(ctx, emit) {
      const v = sval(ctx, 'safety', 'eval_recipe');
      const steps = sval(ctx, 'safety', 'eval_steps');
      if (typeof v !== 'string' || !v || typeof steps !== 'number' || steps <= 0) return;
      const why = ctx.acc?.zeroStage === 3 ? 'the accelerate config trains with ZeRO stage 3' : recipeDeepspeedStage(ctx) === 3 ? 'deepspeed: has zero_optimization.stage 3' : undefined;
      if (!why) return;
      const p = sectionPair(ctx, 'safety', 'eval_recipe')!;
      emit.range(p.value.start, p.value.end, `safety.eval_recipe: evaluation during training generates on rank 0 alone, which ZeRO-3 cannot do (${why}): each rank holds a shard of the weights, so rank 0 would wait for the others forever. Evaluate the saved checkpoints with \`conscience eval\` instead, train with ZeRO-2, or set safety.eval_steps: 0.`);
    },
  },
  // the accelerate config (accelerate.ts) and how the recipe agrees with it
  { code: 'CC400', severity: 'error', stage: 'accelerate', summary: 'the referenced accelerate config cannot be read (binary, not UTF-8, over 2 MB, not JSON when it ends in `.json`, a recipe rather than an accelerate config) or has errors' },
  { code: 'CC401', severity: 'error', also: 'warning', stage: 'accelerate', summary: 'accelerate config: unknown key (accelerate refuses them); unknown `deepspeed_config` key (warning)' },
  { code: 'CC402', severity: 'error', also: 'warning', stage: 'accelerate', summary: 'accelerate config: wrong type (a number where text is expected, e.g. `gpu_ids: 0`, is a warning: accelerate takes it as text)' },
  { code: 'CC403', severity: 'error', also: 'warning', stage: 'accelerate', summary: 'accelerate config: value not allowed (`distributed_type`, `mixed_precision`, `zero_stage`, offload devices, missing `distributed_type`)' },
  { code: 'CC404', severity: 'error', also: 'warning', stage: 'accelerate', summary: 'DeepSpeed settings inconsistent (DEEPSPEED without `deepspeed_config`, ZeRO-3 flags with another stage, nvme offload without a path); `deepspeed_config_file` not found (next to the accelerate config or in the folder runs start in: the workspace root, else the current folder), a folder, or not JSON' },
  {
    code: 'CC405', severity: 'warning', stage: 'rules', summary: '`launch:` and the accelerate config disagree on processes or machines',
    check(ctx, emit) {
      const acc = ctx.acc;
      if (!acc) return;
      const np = sval(ctx, 'launch', 'num_processes'), nm = sval(ctx, 'launch', 'num_machines');
      if (isInt(np) && isInt(acc.numProcesses) && acc.numProcesses > 0 && np !== acc.numProcesses) {
        emit.at([['launch', 'num_processes'], 'launch'], `launch.num_processes (${np}${sectionPair(ctx, 'launch', 'num_processes') ? '' : ', the default'}) overrides num_processes (${acc.numProcesses}) in ${acc.path}: the launcher passes --num_processes ${np} and the batch rules use ${np}. Set launch.num_processes to the number you mean.`);
      }
      if (isInt(nm) && isInt(acc.numMachines) && nm !== acc.numMachines) {
        emit.at([['launch', 'num_machines']], `launch.num_machines (${nm}) differs from num_machines (${acc.numMachines}) in ${acc.path}; launch: wins.`);
      }
    },
  },
  {
    code: 'CC406', severity: 'warning', stage: 'rules', summary: "recipe `bf16`/`fp16` differs from the accelerate config's `mixed_precision`",
    check(ctx, emit) {
      const mp = ctx.acc?.mixedPrecision;
      if (!ctx.acc) return;
      if (val(ctx, 'bf16') === true && (mp === 'fp16')) emit.at(['bf16'], `bf16: true but the accelerate config sets mixed_precision: ${mp}. Use the same precision in both.`);
      if (val(ctx, 'fp16') === true && (mp === 'bf16')) emit.at(['fp16'], `fp16: true but the accelerate config sets mixed_precision: ${mp}. Use the same precision in both.`);
    },
  },
];

/** Every code's default severity and summary (docs/recipes.md lists them). */
export const CODES: Record<string, { severity: Severity; summary: string }> = Object.fromEntries(RULES.map((r) => [r.code, { severity: r.severity, summary: r.summary }]));

/** Run the cross-field rules (those `which` picks), in table order, on a walked recipe. */
export function runRules(ctx: Ctx, which: (r: Rule) => boolean = () => true): void {
  // One emitter for the whole run, pointed at the current rule (no closures per rule: this runs
  // on every keystroke).
  let rule: Rule = RULES[0]!;
  const emit: Emit = {
    at(at, message, fixes, severity) { report(ctx, at, severity ?? rule.severity, rule.code, message, fixes); },
    range(start, end, message, fixes, severity) { ctx.out.push(diag(ctx.text, start, end, severity ?? rule.severity, rule.code, message, fixes)); },
  };
  const sft = ctx.schema.kind === 'sft';
  for (const r of RULES) {
    if (!r.check || (sft && r.only === 'grpo') || !which(r)) continue;
    rule = r;
    r.check(ctx, emit);
  }
}

/** The rule table of docs/recipes.md, generated from RULES. */
export function rulesMarkdown(): string {
  const stage: Record<Stage, string> = { read: 'reading the file', yaml: 'YAML', keys: 'keys and values', rules: 'cross-field rule', accelerate: 'accelerate config' };
  const rows = RULES.map((r) => `| ${r.code} | ${r.severity}${r.also ? `/${r.also}` : ''} | ${stage[r.stage]} | ${r.summary.replace(/\|/g, '\\|')} |`);
  return ['| Code | Severity | Found by | What |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}

/** Python's repr of a str, as a message quotes a value: single quotes unless the text has one and no double. */
function pyRepr(v: string): string {
  const q = v.includes("'") && !v.includes('"') ? '"' : "'";
  return q + v.replace(/\\/g, '\\\\').replace(new RegExp(q, 'g'), `\\${q}`) + q;
}

/** Whether a wording has a `{budget}` field (str.format's field name `budget`, any spec or conversion; `{{budget}}` is text). */
function hasBudgetField(wording: string): boolean {
  const plain = wording.replace(/\{\{|\}\}/g, '');
  for (const m of plain.matchAll(/\{([^{}:!]*)(?:[:!][^{}]*)?\}/g)) if (m[1] === 'budget') return true;
  return false;
}
