// The recipe validator: one engine for the editor and the CLI.
//   validateText(text, {file, host}) -> diagnostics for that text (and, with `file` set on
//   them, for the accelerate config it references).
// Order: bytes -> YAML tree -> keys/types/enums/ranges from the generated schema ->
// cross-field rules of TRL 0.18's GRPOConfig.__post_init__ / GRPOTrainer.__init__ and
// transformers' TrainingArguments -> reward names -> referenced files -> accelerate config.
import { type Diagnostic, type QuickFix, diag } from './diagnostics';
import { type FieldSpec, type RecipeSchema, type SchemaChoice, schemaForVersion } from './schema';
import { checkValue, didYouMean, headEnd, isNumber } from './values';
import { deref, getPair, parseYaml, toPlain, type YMap, type YNode, type YPair } from './yaml';
import { isEvalRoot, validateEvalRoot } from '../eval/recipe';

export interface Host {
  /** Whether a file or folder exists. */
  exists(path: string): boolean;
  /** Raw bytes of a file, or undefined when it cannot be read. */
  readBytes(path: string): Uint8Array | undefined;
  /** Folder of a path and joining, so core stays free of node:path for browser use. */
  resolve(baseFile: string, rel: string): string;
  /** A cheap change stamp (mtime and size) so referenced files are parsed once per change. */
  stamp?(path: string): string | undefined;
}

export interface ValidateOptions {
  /** Path of the file being validated; relative references resolve against its folder. */
  file?: string;
  host?: Host;
  schema?: RecipeSchema;
  /**
   * The TRL version installed on the recipe's target, as recorded at its last launch
   * (run_started.versions.trl). Used when the recipe has no `launch.trl`.
   */
  trl?: string;
  /** Force the kind instead of detecting it from the keys. */
  kind?: 'recipe' | 'accelerate';
}

export type FileKind = 'recipe' | 'accelerate' | 'other';

const RECIPE_MARKERS = ['reward_funcs', 'model_name_or_path', 'num_generations', 'launch', 'safety', 'use_vllm', 'per_device_train_batch_size'];
const ACCELERATE_MARKERS = ['distributed_type', 'compute_environment', 'deepspeed_config', 'mixed_precision'];

/** Decide from the top-level keys whether a YAML text is a recipe or an accelerate config. */
export function detectKind(root: YNode | undefined): FileKind {
  const r = deref(root);
  if (!r || r.kind !== 'map') return 'other';
  let recipe = 0, acc = 0;
  for (const p of r.items) {
    if (p.key.kind !== 'scalar') continue;
    if (RECIPE_MARKERS.includes(p.key.text)) recipe++;
    if (ACCELERATE_MARKERS.includes(p.key.text)) acc++;
  }
  if (acc > 0 && acc >= recipe) return 'accelerate';
  return recipe > 0 ? 'recipe' : 'other';
}

/** Decode file bytes: a diagnostic for binary or non-UTF-8 content, else the text. */
export function decodeBytes(bytes: Uint8Array): { text: string } | { diagnostic: Diagnostic } {
  const head = bytes.subarray(0, 8192);
  if (head.includes(0)) {
    return { diagnostic: { severity: 'error', code: 'CC005', message: 'This is a binary file, not YAML text (it contains NUL bytes). Point the validator at a .yaml recipe.', start: 0, end: 0, line: 0, column: 0, endLine: 0, endColumn: 0 } };
  }
  try {
    let text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { text };
  } catch {
    const loose = new TextDecoder('utf-8').decode(bytes);
    const at = Math.max(0, loose.indexOf('\ufffd'));
    const d = diag(loose, at, at + 1, 'error', 'CC006', 'The file is not valid UTF-8 (invalid byte here). Re-save it as UTF-8.');
    return { diagnostic: d };
  }
}

interface Ctx {
  text: string;
  out: Diagnostic[];
  schema: RecipeSchema;
  /** Which TRL line the schema is and why (launch.trl, the host's recorded TRL, the default). */
  choice: SchemaChoice;
  /** TRL 1.x or later: its GRPOConfig checks differ from 0.18's. */
  v1: boolean;
  root: YMap;
  file?: string;
  host?: Host;
  /** Values of flat keys after conversion (only valid ones). */
  vals: Map<string, unknown>;
  sectionVals: Map<string, Map<string, unknown>>;
}

/** Validate YAML text: a recipe, or an accelerate config (detected from its keys). */
export function validateText(text: string, opts: ValidateOptions = {}): Diagnostic[] {
  const parsed = parseYaml(text);
  const out = parsed.diagnostics.slice();
  if (parsed.root === undefined) {
    if (out.length === 0) {
      out.push(diag(text, 0, Math.min(text.length, text.indexOf('\n') < 0 ? text.length : text.indexOf('\n')), 'error', 'CC008',
        'The file is empty (no YAML content). A recipe needs at least model_name_or_path, reward_funcs and a launch: section.'));
    }
    return out;
  }
  const root = deref(parsed.root);
  if (!root || root.kind !== 'map') {
    out.push(diag(text, parsed.root.start, headEnd(text, parsed.root), 'error', 'CC009',
      'A recipe (or accelerate config) must be a YAML mapping of `key: value` lines, but this document is ' + (root?.kind === 'seq' ? 'a list.' : 'a single value.')));
    return out;
  }
  // an eval recipe (`kind: eval`) has its own keys: core/eval/recipe.ts
  if (opts.kind === undefined && isEvalRoot(root)) return out.concat(validateEvalRoot(text, root)).sort((a, b) => a.start - b.start || a.code.localeCompare(b.code));
  const choice = opts.schema ? { schema: opts.schema, source: 'recipe' as const, approximate: false } : chooseSchema(root, opts.trl);
  const schema = choice.schema;
  const kind = opts.kind ?? (detectKind(root) === 'accelerate' ? 'accelerate' : 'recipe');
  if (kind === 'accelerate') {
    validateAccelerate(text, root, schema, out);
    return out;
  }
  const ctx: Ctx = { text, out, schema, choice, v1: Number(schema.trlVersion.split('.')[0]) >= 1, root, file: opts.file, host: opts.host, vals: new Map(), sectionVals: new Map() };
  checkVersion(ctx);
  checkKeys(ctx);
  checkRules(ctx);
  checkRewards(ctx);
  checkFiles(ctx);
  // Position order per file (this file first, then referenced files), like an editor lists them.
  // A value merged (`<<: *base`) into two mappings is checked twice: report it once.
  return dedupe(out).sort((a, b) => (a.file ?? '').localeCompare(b.file ?? '') || a.start - b.start || a.code.localeCompare(b.code));
}

/** The `launch.trl` scalar of a recipe, if it has one. */
export function recipeTrlVersion(root: YNode | undefined): { value: string; node: YNode } | undefined {
  const r = deref(root);
  if (!r || r.kind !== 'map') return undefined;
  const l = deref(getPair(r, 'launch')?.value);
  if (!l || l.kind !== 'map') return undefined;
  const p = getPair(l, 'trl');
  const v = deref(p?.value);
  if (!p || !v || v.kind !== 'scalar' || v.value === null) return undefined;
  return { value: v.text, node: p.value };
}

/** The schema a recipe is checked against: its `launch.trl`, else the host's recorded TRL, else the default. */
export function chooseSchema(root: YNode | undefined, hostTrl?: string): SchemaChoice {
  const own = recipeTrlVersion(root);
  if (own) return schemaForVersion(own.value, 'recipe');
  if (hostTrl) return schemaForVersion(hostTrl, 'host');
  return schemaForVersion(undefined);
}

/** Which TRL the diagnostics assume, in words (for messages). */
function assumed(ctx: Ctx): string {
  const v = `TRL ${ctx.schema.trlVersion}`;
  if (ctx.choice.source === 'recipe') return `${v} (launch.trl)`;
  if (ctx.choice.source === 'host') return `${v} (installed on the target at its last launch)`;
  return `${v} (the default: the recipe does not set launch.trl)`;
}

function checkVersion(ctx: Ctx): void {
  const { choice } = ctx;
  if (!choice.approximate || choice.source !== 'recipe') return;
  const own = recipeTrlVersion(ctx.root)!;
  const lines = supportedLines();
  ctx.out.push(diag(ctx.text, own.node.start, own.node.end, 'warning', 'CC107',
    `launch.trl is ${own.value}, a TRL without a schema here (supported: ${lines.join(', ')}); the recipe is checked against TRL ${ctx.schema.trlVersion}, the nearest. Set launch.trl to one of the supported versions.`,
    lines.map((v) => ({ title: `Set launch.trl to ${v}`, edits: [{ start: own.node.start, end: own.node.end, newText: v }] }))));
}

function supportedLines(): string[] {
  return [schemaForVersion('0.18').schema.trlVersion, schemaForVersion('1').schema.trlVersion];
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => { const k = `${d.file ?? ''}\0${d.start}\0${d.end}\0${d.code}\0${d.message}`; if (seen.has(k)) return false; seen.add(k); return true; });
}

// ---------------------------------------------------------------------------------------
// keys, types, enums, ranges

function renameFix(p: YPair, to: string): QuickFix {
  return { title: `Rename to '${to}'`, edits: [{ start: p.key.start, end: p.key.end, newText: to }] };
}

function checkKeys(ctx: Ctx): void {
  const { text, out, schema, root } = ctx;
  for (const p of root.items) {
    const k = deref(p.key);
    if (!k || k.kind !== 'scalar') {
      out.push(diag(text, p.key.start, headEnd(text, p.key), 'error', 'CC100', 'Keys must be plain names; this key is a list or mapping.'));
      continue;
    }
    const name = k.text;
    if (schema.sections.has(name)) { checkSection(ctx, name, p); continue; }
    const spec = schema.fields.get(name);
    const changed = schema.changed.get(name);
    if (!spec) {
      if (changed?.status === 'removed') {
        const to = changed.replacement && schema.fields.has(changed.replacement) ? changed.replacement : undefined;
        const remove: QuickFix = { title: `Remove '${name}'`, edits: [{ start: lineStartOf(text, p.key.start), end: lineAfter(text, p.value.end), newText: '' }] };
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC104',
          `'${name}' was removed in TRL ${changed.removed_in ?? ''}; this recipe is checked against ${assumed(ctx)}. ${changed.note}${to ? ` Rename it to '${to}'.` : ' Remove this key.'}`,
          to ? [renameFix(p, to), remove] : [remove]));
      } else if (changed?.status === 'newer') {
        const to = changed.replacement;
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC106',
          `'${name}' is not a field of ${assumed(ctx)}. ${changed.note}${to ? ` Rename it to '${to}'` : ''}${ctx.choice.source === 'default' ? `${to ? ', or' : ''} set launch.trl to the TRL you run.` : '.'}`, to ? [renameFix(p, to)] : undefined));
      } else {
        const sug = didYouMean(name, [...schema.fields.keys(), ...schema.sections.keys()]);
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC100',
          `Unknown key '${name}': not a field of TRL ${schema.trlVersion}'s GRPOConfig/ModelConfig or our script arguments (TRL 0.18 would silently ignore it, later TRL rejects it).${sug ? ` Did you mean '${sug}'?` : ' Remove it or check the spelling.'}`,
          sug ? [renameFix(p, sug)] : undefined));
      }
      continue;
    }
    // Only while the recipe does not say which TRL it is for: once it does, the key is valid
    // for the TRL it runs with, and the note stays in the hover.
    if (changed?.status === 'future' && ctx.choice.source === 'default') {
      out.push(diag(text, p.key.start, p.key.end, 'info', 'CC105',
        `'${name}' works in ${assumed(ctx)} but is deprecated in ${changed.deprecated_in} and removed in ${changed.removed_in}. ${changed.note} Set launch.trl to the TRL you run.`));
    }
    if (name === 'env') {
      const v = deref(p.value);
      if (v && v.kind !== 'map' && !(v.kind === 'scalar' && v.tag === 'null')) out.push(diag(text, p.value.start, headEnd(text, p.value), 'error', 'CC101', '`env` field should be a dict in the YAML file (TrlParser): write `env:` followed by `NAME: value` lines.'));
      continue;
    }
    // num_generations < 2 is GRPOConfig's own check (C3, CC203) with TRL's message; skip the generic range.
    const s = RULE_OWNED.has(name) ? { ...spec, minimum: undefined } : spec;
    const r = checkValue(text, s, p.value, name, out);
    if (r.ok && r.value !== undefined) ctx.vals.set(name, r.value);
  }
}

const RULE_OWNED = new Set(['num_generations']);

function checkSection(ctx: Ctx, name: string, p: YPair): void {
  const { text, out, schema } = ctx;
  const v = deref(p.value);
  const vals = new Map<string, unknown>();
  ctx.sectionVals.set(name, vals);
  if (!v || (v.kind === 'scalar' && v.tag === 'null')) return;
  if (v.kind !== 'map') {
    out.push(diag(text, p.value.start, headEnd(text, p.value), 'error', 'CC101', `The \`${name}:\` section must be a mapping of settings, got ${v.kind === 'seq' ? 'a list' : 'a single value'}.`));
    return;
  }
  const specs = schema.sections.get(name);
  if (!specs) return; // free-form section
  for (const q of v.items) {
    const k = deref(q.key);
    if (!k || k.kind !== 'scalar') continue;
    const spec = specs.get(k.text);
    if (!spec) {
      const sug = didYouMean(k.text, specs.keys());
      out.push(diag(text, q.key.start, q.key.end, 'error', 'CC100',
        `Unknown key '${k.text}' in the ${name}: section.${sug ? ` Did you mean '${sug}'?` : ` Known keys: ${[...specs.keys()].join(', ')}.`}`,
        sug ? [renameFix(q, sug)] : undefined));
      continue;
    }
    const r = checkValue(text, spec, q.value, `${name}.${k.text}`, out);
    if (r.ok && r.value !== undefined) vals.set(k.text, r.value);
  }
}

// ---------------------------------------------------------------------------------------
// helpers to read effective values and anchor diagnostics

function pair(ctx: Ctx, name: string): YPair | undefined { return getPair(ctx.root, name); }
function sectionPair(ctx: Ctx, section: string, name: string): YPair | undefined {
  const s = deref(pair(ctx, section)?.value);
  return s && s.kind === 'map' ? getPair(s, name) : undefined;
}
/** Effective value: the recipe's valid value, else the schema default. `invalid` when set but unusable. */
function val(ctx: Ctx, name: string): unknown {
  if (ctx.vals.has(name)) return ctx.vals.get(name);
  if (pair(ctx, name)) return INVALID;
  return ctx.schema.fields.get(name)?.default;
}
function sval(ctx: Ctx, section: string, name: string): unknown {
  const m = ctx.sectionVals.get(section);
  if (m?.has(name)) return m.get(name);
  if (sectionPair(ctx, section, name)) return INVALID;
  return (ctx.schema.sections.get(section)?.get(name) as FieldSpec | undefined)?.default;
}
const INVALID = Symbol('invalid');
function isInt(v: unknown): v is number { return isNumber(v) && Number.isInteger(v); }

function lineStartOf(text: string, pos: number): number { return text.lastIndexOf('\n', pos - 1) + 1; }
function lineAfter(text: string, pos: number): number { const nl = text.indexOf('\n', pos); return nl < 0 ? text.length : nl + 1; }

/** Where to put a diagnostic about a key: its value if present, else the first present fallback, else line 1. */
function anchorRange(ctx: Ctx, names: Array<string | [string, string]>): { start: number; end: number } {
  for (const n of names) {
    const p = typeof n === 'string' ? pair(ctx, n) : sectionPair(ctx, n[0], n[1]);
    if (p) return { start: p.value.start === p.value.end ? p.key.start : p.value.start, end: p.value.start === p.value.end ? p.key.end : headEnd(ctx.text, p.value) };
  }
  const first = ctx.root.items[0];
  if (first) return { start: first.key.start, end: first.key.end };
  return { start: 0, end: 0 };
}

function report(ctx: Ctx, names: Array<string | [string, string]>, severity: Diagnostic['severity'], code: string, message: string, fixes?: QuickFix[]): void {
  const r = anchorRange(ctx, names);
  ctx.out.push(diag(ctx.text, r.start, r.end, severity, code, message, fixes));
}

function divisors(n: number): number[] {
  const out: number[] = [];
  if (!Number.isFinite(n) || n > 1e7) return out;
  for (let d = 2; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

function setValueFix(ctx: Ctx, name: string, value: number | string): QuickFix {
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
function valueFixes(ctx: Ctx, name: string, values: number[], target: number, limit = 12): QuickFix[] | undefined {
  const first = nearest(values, target);
  if (first === undefined) return undefined;
  const rest = values.filter((v) => v !== first).sort((a, b) => Math.abs(a - target) - Math.abs(b - target) || a - b).slice(0, limit - 1).sort((a, b) => a - b);
  return [first, ...rest].map((v) => setValueFix(ctx, name, v));
}

/** Nearest valid value, preferring the smaller one on ties. */
function nearest(values: number[], target: number): number | undefined {
  let best: number | undefined;
  for (const v of values) if (best === undefined || Math.abs(v - target) < Math.abs(best - target)) best = v;
  return best;
}

// ---------------------------------------------------------------------------------------
// processes

interface Procs { P: number; source: string; machines: number }

/**
 * World size P. The runtime launcher (conscience.launch) always passes
 * `--num_processes launch.num_processes` (default 1), which overrides the accelerate config.
 */
function processes(ctx: Ctx): Procs | undefined {
  const np = sval(ctx, 'launch', 'num_processes');
  const nm = sval(ctx, 'launch', 'num_machines');
  if (np === INVALID || nm === INVALID || !isInt(np)) return undefined;
  const explicit = sectionPair(ctx, 'launch', 'num_processes') !== undefined;
  return { P: np, source: `launch.num_processes = ${np}${explicit ? '' : ' (default)'}`, machines: isInt(nm) ? nm : 1 };
}

// ---------------------------------------------------------------------------------------
// cross-field rules

function checkRules(ctx: Ctx): void {
  const acc = loadAccelerate(ctx);
  const procs = processes(ctx);
  const B = val(ctx, 'per_device_train_batch_size');
  const GA = val(ctx, 'gradient_accumulation_steps');
  const G = val(ctx, 'num_generations');
  const gbs0 = val(ctx, 'generation_batch_size');
  const spg0 = val(ctx, 'steps_per_generation');
  const Be = val(ctx, 'per_device_eval_batch_size');
  const evalStrategy = val(ctx, 'eval_strategy');

  // C1
  const set = (v: unknown) => v !== null && v !== undefined;
  const c1 = set(gbs0) && set(spg0) && gbs0 !== INVALID && spg0 !== INVALID;
  if (c1) {
    report(ctx, ['steps_per_generation'], 'error', 'CC201',
      "'generation_batch_size' and 'steps_per_generation' can not be both configured at the same time (GRPOConfig). Remove one of them.");
  }
  if (!c1 && procs && isInt(B) && isInt(GA) && isInt(G) && B > 0 && GA > 0 && (gbs0 === null || gbs0 === undefined || isInt(gbs0)) && (spg0 === null || spg0 === undefined || isInt(spg0))) {
    const P = procs.P;
    const spg = isInt(spg0) ? spg0 : GA;
    const gbs = isInt(gbs0) ? gbs0 : B * P * spg;
    // C2, with 0.18's operator precedence: (gbs % B) * P != 0; TRL 1.x checks gbs % (B * P).
    if (isInt(gbs0) && (ctx.v1 ? gbs % (B * P) : (gbs % B) * P) !== 0) {
      report(ctx, ['generation_batch_size'], 'error', 'CC202',
        `generation_batch_size (${gbs}) must be divisible by the global batch size (${B * P}). (${ctx.v1 ? `GRPOConfig checks generation_batch_size % (per_device_train_batch_size x processes)` : `GRPOConfig 0.18 checks (generation_batch_size % per_device_train_batch_size) * processes`}; ${procs.source}) Use a multiple of ${B * P}, e.g. ${B * P * Math.max(1, Math.round(gbs / (B * P)))}.`);
    } else {
      const steps = Math.floor(gbs / (B * P));
      // C3
      if (G < 2) {
        report(ctx, ['num_generations'], 'error', 'CC203',
          `GRPO requires at least 2 generations per prompt to calculate the advantages. You provided ${G}, which is less than the minimum required. Set num_generations to 2 or more.`,
          valueFixes(ctx, 'num_generations', divisors(gbs), 2));
      } else {
        // C4
        const possible = divisors(gbs);
        if (!possible.includes(G)) {
          const v = nearest(possible, G);
          report(ctx, ['num_generations', 'per_device_train_batch_size', 'gradient_accumulation_steps', ['launch', 'num_processes']], 'error', 'CC204', (ctx.v1
            ? `generation_batch_size (${gbs}) must be divisible by num_generations (${G}). The generation batch is ${P} processes x ${B} per device x ${steps} steps_per_generation; the valid values for the number of generations are: [${possible.join(', ')}]. (processes from ${procs.source})`
            : `The effective train batch size (${P} x ${B} x ${steps}) must be evenly divisible by the number of generations per prompt (${G}). Given the current effective train batch size, the valid values for the number of generations are: [${possible.join(', ')}]. (processes from ${procs.source}; per_device_train_batch_size ${B}; steps_per_generation ${steps})` +
              '') + (v ? ` Set num_generations to ${v}, or change the batch so that it divides.` : ' Increase the batch size.'),
            valueFixes(ctx, 'num_generations', possible, G));
        }
        // C5 (TRL 1.x: with num_generations_eval when set)
        const Ge0 = ctx.v1 ? val(ctx, 'num_generations_eval') : undefined;
        const Ge = isInt(Ge0) && Ge0 > 0 ? Ge0 : G;
        if (evalStrategy !== 'no' && evalStrategy !== INVALID && isInt(Be)) {
          const geb = Be * P;
          const pe = divisors(geb);
          if (!pe.includes(Ge) && ctx.v1) {
            const fixKey = Ge === G ? 'num_generations' : 'num_generations_eval';
            report(ctx, [fixKey, 'per_device_eval_batch_size', 'eval_strategy'], 'error', 'CC205',
              `The global eval batch size (${Be} * ${P}) must be divisible by the number of generations used for evaluation (${Ge}). The valid values are: [${pe.join(', ')}]. (evaluation is on: eval_strategy ${String(evalStrategy)}; processes from ${procs.source}) Change per_device_eval_batch_size so that ${P} x it is divisible by ${Ge}, or set num_generations_eval.`,
              valueFixes(ctx, fixKey, fixKey === 'num_generations' ? pe.filter((x) => possible.includes(x)) : pe, Ge));
          } else if (!pe.includes(G)) {
            const v = nearest(pe.filter((x) => possible.includes(x)), G);
            report(ctx, ['num_generations', 'per_device_eval_batch_size', 'eval_strategy'], 'error', 'CC205',
              `The global eval batch size (${P} x ${Be}) must be evenly divisible by the number of generations per prompt (${G}). Given the current global eval batch size, the valid values for the number of generations are: [${pe.join(', ')}]. (evaluation is on: eval_strategy ${String(evalStrategy)}) Change per_device_eval_batch_size so that ${P} x it is divisible by ${G}` + (v ? `, or set num_generations to ${v}.` : '.'),
              valueFixes(ctx, 'num_generations', pe.filter((x) => possible.includes(x)), G));
          }
        }
      }
    }
  }
  if (pair(ctx, 'num_generations') && G === null) {
    report(ctx, ['num_generations'], 'error', 'CC203', 'num_generations cannot be null: GRPO requires at least 2 generations per prompt to calculate the advantages (GRPOConfig compares it with 2 and fails). Set a number.');
  }
  // C6
  const delta = val(ctx, 'delta');
  if (isNumber(delta) && val(ctx, 'use_liger_loss') === true) {
    report(ctx, ['delta', 'use_liger_loss'], 'error', 'CC206', 'Liger loss does not support two-sided GRPO loss yet. Remove `delta` or set use_liger_loss: false.');
  }
  // reward_weights length (GRPOTrainer.__init__)
  const rw = val(ctx, 'reward_weights');
  const rf = val(ctx, 'reward_funcs');
  const rwPair = pair(ctx, 'reward_weights');
  if (Array.isArray(rw) && Array.isArray(rf) && rw.length !== rf.length && rwPair) {
    const fixed = rf.map((_, i) => (isNumber(rw[i]) ? formatWeight(rw[i] as number) : '1.0'));
    report(ctx, ['reward_weights'], 'error', 'CC207',
      `Number of reward weights (${rw.length}) must match number of reward functions (${rf.length}) (GRPOTrainer). Give one weight per entry of reward_funcs, in the same order.`,
      [{ title: `Use ${rf.length} weights: [${fixed.join(', ')}]`, edits: [{ start: rwPair.value.start, end: rwPair.value.end, newText: `[${fixed.join(', ')}]` }] }]);
  }
  // vLLM
  const useVllm = val(ctx, 'use_vllm') === true;
  const mode = val(ctx, 'vllm_mode');
  if (useVllm && typeof mode === 'string' && mode !== 'server' && mode !== 'colocate') {
    const sug = didYouMean(mode, ['server', 'colocate']);
    report(ctx, ['vllm_mode'], 'error', 'CC210', `vllm_mode must be 'server' or 'colocate', got '${mode}' (TRL 0.18 does not check this and fails during generation).`,
      sug ? [setValueFix(ctx, 'vllm_mode', sug)] : undefined);
  }
  const tp = val(ctx, 'vllm_tensor_parallel_size');
  if (useVllm && mode === 'colocate' && procs && isInt(tp) && tp > 0 && procs.P % tp !== 0) {
    report(ctx, ['vllm_tensor_parallel_size'], 'error', 'CC208',
      `vllm_tensor_parallel_size (${tp}) must divide world size (${procs.P}) evenly (GRPOTrainer, colocate mode; ${procs.source}). Valid sizes: ${[1, ...divisors(procs.P)].join(', ')}.`);
  }
  if (useVllm && mode === 'colocate' && pair(ctx, 'max_prompt_length') && val(ctx, 'max_prompt_length') === null) {
    report(ctx, ['max_prompt_length'], 'error', 'CC220', 'vLLM colocate mode builds its engine with max_model_len = max_prompt_length + max_completion_length, so max_prompt_length cannot be null. Set a number.');
  }
  if (useVllm && mode === 'server' && sval(ctx, 'launch', 'vllm_server') !== true && !pair(ctx, 'vllm_server_base_url')) {
    report(ctx, ['use_vllm'], 'warning', 'CC219',
      `use_vllm with vllm_mode: server needs a running \`trl vllm-serve\`, but launch.vllm_server is not true, so none is started. The trainer will wait vllm_server_timeout seconds and fail unless you start one at vllm_server_host:vllm_server_port. Set launch.vllm_server: true or vllm_mode: colocate.`);
  }
  if (useVllm && acc?.zeroStage === 3 && val(ctx, 'ds3_gather_for_generation') === false) {
    report(ctx, ['ds3_gather_for_generation'], 'error', 'CC221', 'ds3_gather_for_generation: false is not compatible with vLLM generation under ZeRO-3 (the weights must be gathered to sync them to vLLM). Set it to true or turn use_vllm off.');
  }
  // loss type (GRPOTrainer, raised at the first step)
  const lt = val(ctx, 'loss_type');
  const losses = ctx.v1 ? ['grpo', 'dr_grpo', 'dapo', 'bnpo', 'cispo', 'sapo', 'luspo', 'vespo'] : ['grpo', 'bnpo', 'dr_grpo'];
  if (typeof lt === 'string' && !losses.includes(lt)) {
    const sug = didYouMean(lt, losses);
    report(ctx, ['loss_type'], 'error', 'CC209', `Unknown loss type: ${lt}. TRL ${ctx.schema.trlVersion} supports ${losses.slice(0, -1).join(', ')} and ${losses.at(-1)} (raised at the first training step).${sug ? ` Did you mean '${sug}'?` : ''}`,
      sug ? [setValueFix(ctx, 'loss_type', sug)] : undefined);
  }
  // Checks TRL 1.x's GRPOConfig added.
  if (ctx.v1 && val(ctx, 'auto_find_batch_size') === true) {
    report(ctx, ['auto_find_batch_size'], 'error', 'CC224', 'auto_find_batch_size is not supported by GRPO, because the generation batch must contain full prompt groups of num_generations completions (GRPOConfig, TRL 1.x). Set auto_find_batch_size: false and lower per_device_train_batch_size instead.');
  }
  if (ctx.v1 && typeof val(ctx, 'log_completions_hub_repo') === 'string' && val(ctx, 'log_completions') !== true) {
    report(ctx, ['log_completions_hub_repo'], 'error', 'CC225', 'log_completions_hub_repo is set, but log_completions is False. Enable log_completions to upload completions to the Hub, or unset log_completions_hub_repo (GRPOConfig, TRL 1.x).',
      [setValueFix(ctx, 'log_completions', 'true')]);
  }
  // ModelConfig
  if (val(ctx, 'load_in_8bit') === true && val(ctx, 'load_in_4bit') === true) {
    report(ctx, ['load_in_4bit', 'load_in_8bit'], 'error', 'CC211', "You can't use 8 bit and 4 bit precision at the same time (ModelConfig). Set one of load_in_8bit / load_in_4bit to false.");
  }
  // transformers: cosine_with_min_lr needs min_lr or min_lr_rate
  if (val(ctx, 'lr_scheduler_type') === 'cosine_with_min_lr') {
    let kw = val(ctx, 'lr_scheduler_kwargs');
    if (kw && typeof kw === 'object' && 'kind' in (kw as object)) kw = safePlain(kw as YNode);
    if (typeof kw === 'string') { try { kw = JSON.parse(kw); } catch { kw = undefined; } }
    const o = (kw && typeof kw === 'object' ? kw : {}) as Record<string, unknown>;
    const hasMin = o.min_lr !== undefined && o.min_lr !== null;
    const hasRate = o.min_lr_rate !== undefined && o.min_lr_rate !== null;
    if (hasMin && hasRate) report(ctx, ['lr_scheduler_kwargs'], 'error', 'CC212', 'Only one of min_lr or min_lr_rate should be set (transformers cosine_with_min_lr). Remove one.');
    else if (!hasMin && !hasRate) report(ctx, ['lr_scheduler_kwargs', 'lr_scheduler_type'], 'error', 'CC212', 'One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs` (lr_scheduler_type: cosine_with_min_lr). Add e.g. `lr_scheduler_kwargs: {min_lr_rate: 0.1}`.');
  }
  // TrainingArguments.__post_init__
  if (val(ctx, 'fp16') === true && val(ctx, 'bf16') === true) {
    report(ctx, ['fp16', 'bf16'], 'error', 'CC213', 'At most one of fp16 and bf16 can be True, but not both (TrainingArguments). Set one to false.');
  }
  const ls = val(ctx, 'logging_strategy'), lsteps = val(ctx, 'logging_steps');
  const es = val(ctx, 'eval_steps'), ss = val(ctx, 'save_strategy'), ssteps = val(ctx, 'save_steps');
  if (evalStrategy === 'steps' && (es === null || es === 0) && lsteps === 0) {
    report(ctx, ['eval_steps', 'eval_strategy'], 'error', 'CC214', 'evaluation strategy steps requires either non-zero --eval_steps or --logging_steps (TrainingArguments). Set eval_steps.');
  }
  if (ls === 'steps' && lsteps === 0) {
    report(ctx, ['logging_steps'], 'error', 'CC214', 'logging strategy steps requires non-zero --logging_steps (TrainingArguments). Set logging_steps to 1 or more.');
  }
  for (const [strategy, steps, name] of [[ls, lsteps, 'logging_steps'], [evalStrategy, es, 'eval_steps'], [ss, ssteps, 'save_steps']] as const) {
    if (strategy === 'steps' && isNumber(steps) && steps > 1 && !Number.isInteger(steps)) {
      report(ctx, [name], 'error', 'CC215', `--${name} must be an integer if bigger than 1: ${steps} (TrainingArguments). Use a whole number, or a ratio below 1.`);
    }
  }
  if (val(ctx, 'load_best_model_at_end') === true && ss !== 'best' && typeof evalStrategy === 'string' && typeof ss === 'string') {
    if (evalStrategy !== ss) {
      report(ctx, ['load_best_model_at_end'], 'error', 'CC216', `--load_best_model_at_end requires the save and eval strategy to match, but found eval_strategy ${evalStrategy} and save_strategy ${ss} (TrainingArguments).`);
    } else if (evalStrategy === 'steps') {
      const e = isNumber(es) && es > 0 ? es : lsteps;
      if (isInt(e) && isInt(ssteps) && e > 0 && ssteps % e !== 0) {
        report(ctx, ['save_steps', 'load_best_model_at_end'], 'error', 'CC216', `--load_best_model_at_end requires the saving steps to be a round multiple of the evaluation steps, but found ${ssteps}, which is not a round multiple of ${e} (TrainingArguments).`);
      }
    }
  }
  if (val(ctx, 'lr_scheduler_type') === 'reduce_lr_on_plateau' && evalStrategy === 'no') {
    report(ctx, ['lr_scheduler_type'], 'error', 'CC217', 'lr_scheduler_type reduce_lr_on_plateau requires an eval strategy (TrainingArguments). Set eval_strategy to steps or epoch, or pick another scheduler.');
  }
  // launch
  const np = sval(ctx, 'launch', 'num_processes'), nm = sval(ctx, 'launch', 'num_machines');
  if (isInt(np) && isInt(nm) && nm > 0 && np % nm !== 0 && sectionPair(ctx, 'launch', 'num_processes')) {
    report(ctx, [['launch', 'num_processes']], 'warning', 'CC218', `launch.num_processes (${np}) is the total over all machines, so it should be a multiple of launch.num_machines (${nm}); accelerate starts num_processes / num_machines per machine.`);
  }
  // conscience.train builds model_init_kwargs itself from the ModelConfig keys.
  if (pair(ctx, 'model_init_kwargs') && val(ctx, 'model_init_kwargs') !== null) {
    report(ctx, ['model_init_kwargs'], 'warning', 'CC223', 'model_init_kwargs is replaced by the trainer (conscience.train builds it from model_revision, trust_remote_code, attn_implementation and torch_dtype), so this value has no effect. Set those keys instead.');
  }
  // safety: (SafetyConfig.__post_init__)
  const open = sval(ctx, 'safety', 'open_tag'), close = sval(ctx, 'safety', 'close_tag');
  if (typeof open === 'string' && typeof close === 'string') {
    if (!open || !close) report(ctx, [['safety', open ? 'close_tag' : 'open_tag'], 'safety'], 'error', 'CC222', 'safety.open_tag and safety.close_tag must be non-empty (SafetyConfig). Use e.g. "<safety>" and "</safety>".');
    else if (open === close) report(ctx, [['safety', 'close_tag'], 'safety'], 'error', 'CC222', `safety.open_tag and safety.close_tag must differ (SafetyConfig); both are ${JSON.stringify(open)}. Use e.g. "<safety>" and "</safety>".`);
  }
  if (acc) crossCheckAccelerate(ctx, acc);
}

function formatWeight(x: number): string { return Number.isInteger(x) ? x.toFixed(1) : String(x); }

function safePlain(n: YNode): unknown {
  try { return toPlain(n); } catch { return undefined; }
}

// ---------------------------------------------------------------------------------------
// reward names

function checkRewards(ctx: Ctx): void {
  const p = pair(ctx, 'reward_funcs');
  const v = deref(p?.value);
  if (!p || !v) return;
  const names = ctx.schema.rewardNames;
  if (v.kind === 'seq' && v.items.length === 0) {
    ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC300', `reward_funcs is empty: GRPO needs at least one reward function. Add some of: ${names.join(', ')}.`));
    return;
  }
  const items = v.kind === 'seq' ? v.items : v.kind === 'scalar' && v.tag === 'str' ? [v] : [];
  for (const it of items) {
    const n = deref(it);
    if (!n || n.kind !== 'scalar' || typeof n.value !== 'string') continue;
    if (names.includes(n.value)) continue;
    const sug = didYouMean(n.value, names);
    ctx.out.push(diag(ctx.text, it.start, it.end, 'error', 'CC301',
      `Unknown reward function '${n.value}': the runtime knows ${names.join(', ')}.${sug ? ` Did you mean '${sug}'?` : ''}`,
      sug ? [{ title: `Change to '${sug}'`, edits: [{ start: it.start, end: it.end, newText: sug }] }] : undefined));
  }
}

// ---------------------------------------------------------------------------------------
// referenced files

function looksLocal(v: string): boolean {
  return v.startsWith('./') || v.startsWith('../') || v.startsWith('/') || v.startsWith('~/') || /\.(jsonl|json|csv|parquet|arrow|txt)$/i.test(v);
}

function checkFiles(ctx: Ctx): void {
  const { host, file } = ctx;
  if (!host || !file) return;
  const check = (name: string, code: string, what: string, cond: (v: string) => boolean) => {
    const v = val(ctx, name);
    const p = pair(ctx, name);
    if (typeof v !== 'string' || !p || !cond(v) || v.startsWith('~/')) return;
    const full = host.resolve(file, v);
    if (!host.exists(full)) {
      ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', code, `${what} '${v}' not found (resolved against the recipe's folder: ${full}). Fix the path or create the file.`));
    }
  };
  check('dataset_name', 'CC303', 'Local dataset', looksLocal);
  check('model_name_or_path', 'CC305', 'Local model folder', (v) => v.startsWith('./') || v.startsWith('../') || v.startsWith('/'));
  check('chat_template', 'CC304', 'Chat template file', (v) => !v.includes('{') && !v.includes('\n') && /\.(jinja2?|j2|tmpl)$/i.test(v));
}

// ---------------------------------------------------------------------------------------
// accelerate config

interface AccelerateInfo {
  path: string;
  numProcesses?: number;
  numMachines?: number;
  mixedPrecision?: string | null;
  distributedType?: string;
  zeroStage?: number;
}

function loadAccelerate(ctx: Ctx): AccelerateInfo | undefined {
  const rel = sval(ctx, 'launch', 'accelerate_config');
  const p = sectionPair(ctx, 'launch', 'accelerate_config');
  if (typeof rel !== 'string' || !p || !ctx.host || !ctx.file) return undefined;
  const full = ctx.host.resolve(ctx.file, rel);
  const stamp = ctx.host.stamp?.(full);
  let entry = stamp !== undefined ? accCache.get(full) : undefined;
  if (!entry || entry.stamp !== stamp || entry.schema !== ctx.schema) {
    const bytes = ctx.host.exists(full) ? ctx.host.readBytes(full) : undefined;
    if (!bytes) {
      ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC302',
        `Accelerate config '${rel}' not found (resolved against the recipe's folder: ${full}). Use e.g. ../accelerate/zero2.yaml or fix the path.`));
      return undefined;
    }
    entry = { stamp, schema: ctx.schema, ...readAccelerate(full, bytes, ctx.schema) };
    if (stamp !== undefined) {
      if (accCache.size > 64) accCache.clear();
      accCache.set(full, entry);
    }
  }
  const { info, accDiags, unreadable } = entry;
  for (const d of accDiags) ctx.out.push({ ...d, file: full });
  if (unreadable) {
    ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC400', `Accelerate config '${rel}' cannot be read: ${unreadable}`));
    return undefined;
  }
  const errors = accDiags.filter((d) => d.severity === 'error').length;
  if (errors) {
    ctx.out.push(diag(ctx.text, p.value.start, p.value.end, 'error', 'CC400', `Accelerate config '${rel}' has ${errors} error(s); see the diagnostics in that file.`));
  }
  return info;
}

interface AccEntry { stamp: string | undefined; schema: RecipeSchema; info: AccelerateInfo; accDiags: Diagnostic[]; unreadable?: string }
/** Parsed accelerate configs by path, reused while their stamp (mtime, size) is unchanged. */
const accCache = new Map<string, AccEntry>();

function readAccelerate(full: string, bytes: Uint8Array, schema: RecipeSchema): Omit<AccEntry, 'stamp' | 'schema'> {
  const info: AccelerateInfo = { path: full };
  const dec = decodeBytes(bytes);
  if ('diagnostic' in dec) return { info, accDiags: [dec.diagnostic], unreadable: dec.diagnostic.message };
  const accText = dec.text;
  const parsed = parseYaml(accText);
  const accDiags = parsed.diagnostics.slice();
  const root = deref(parsed.root);
  if (root && root.kind === 'map') Object.assign(info, validateAccelerate(accText, root, schema, accDiags));
  else if (!accDiags.length) accDiags.push(diag(accText, 0, 0, 'error', 'CC400', 'The accelerate config is empty or not a mapping.'));
  return { info, accDiags };
}

function crossCheckAccelerate(ctx: Ctx, acc: AccelerateInfo): void {
  const np = sval(ctx, 'launch', 'num_processes'), nm = sval(ctx, 'launch', 'num_machines');
  if (isInt(np) && isInt(acc.numProcesses) && acc.numProcesses > 0 && np !== acc.numProcesses) {
    report(ctx, [['launch', 'num_processes'], 'launch'], 'warning', 'CC405', `launch.num_processes (${np}${sectionPair(ctx, 'launch', 'num_processes') ? '' : ', the default'}) overrides num_processes (${acc.numProcesses}) in ${acc.path}: the launcher passes --num_processes ${np} and the batch rules use ${np}. Set launch.num_processes to the number you mean.`);
  }
  if (isInt(nm) && isInt(acc.numMachines) && nm !== acc.numMachines) {
    report(ctx, [['launch', 'num_machines']], 'warning', 'CC405', `launch.num_machines (${nm}) differs from num_machines (${acc.numMachines}) in ${acc.path}; launch: wins.`);
  }
  const mp = acc.mixedPrecision;
  if (val(ctx, 'bf16') === true && (mp === 'fp16')) report(ctx, ['bf16'], 'warning', 'CC406', `bf16: true but the accelerate config sets mixed_precision: ${mp}. Use the same precision in both.`);
  if (val(ctx, 'fp16') === true && (mp === 'bf16')) report(ctx, ['fp16'], 'warning', 'CC406', `fp16: true but the accelerate config sets mixed_precision: ${mp}. Use the same precision in both.`);
}

/** Validate an accelerate config mapping (ClusterConfig of the pinned accelerate). */
export function validateAccelerate(text: string, root: YMap, schema: RecipeSchema, out: Diagnostic[]): Omit<AccelerateInfo, 'path'> {
  const meta = schema.accelerate;
  const known = schema.accelerateFields;
  const vals = new Map<string, unknown>();
  for (const p of root.items) {
    const k = deref(p.key);
    if (!k || k.kind !== 'scalar') continue;
    const spec = known.get(k.text);
    if (!spec) {
      if (meta.legacy_keys.includes(k.text)) continue;
      const sug = didYouMean(k.text, known.keys());
      out.push(diag(text, p.key.start, p.key.end, 'error', 'CC401',
        `Unknown key '${k.text}' for accelerate ${meta.accelerate_version}: accelerate refuses config files with unknown keys.${sug ? ` Did you mean '${sug}'?` : ' Remove it.'}`,
        sug ? [renameFix(p, sug)] : undefined));
      continue;
    }
    const r = checkValue(text, spec, p.value, k.text, out, { type: 'CC402', enum: 'CC403', range: 'CC403' });
    if (r.ok) vals.set(k.text, r.value);
  }
  const dtPair = getPair(root, 'distributed_type');
  if (!dtPair) {
    out.push(diag(text, root.items[0]?.key.start ?? 0, root.items[0]?.key.end ?? 0, 'error', 'CC403', 'A `distributed_type` must be specified in the config file (accelerate). Add e.g. `distributed_type: MULTI_GPU` or `DEEPSPEED`.'));
  }
  const dt = vals.get('distributed_type') as string | undefined;
  const np = vals.get('num_processes');
  const nm = vals.get('num_machines');
  if (isInt(np) && np !== -1 && np < 1) {
    const p = getPair(root, 'num_processes')!;
    out.push(diag(text, p.value.start, p.value.end, 'error', 'CC403', `num_processes must be 1 or more (or -1 for all devices), got ${np}.`));
  }
  if (isInt(np) && isInt(nm) && nm > 0 && np > 0 && np % nm !== 0) {
    const p = getPair(root, 'num_processes')!;
    out.push(diag(text, p.value.start, p.value.end, 'warning', 'CC403', `num_processes (${np}) is the total over all machines and should be a multiple of num_machines (${nm}).`));
  }
  let zeroStage: number | undefined;
  const dsPair = getPair(root, 'deepspeed_config');
  const ds = deref(dsPair?.value);
  if (dt === 'DEEPSPEED') {
    if (!ds || ds.kind !== 'map' || ds.items.length === 0) {
      const r = dtPair!;
      out.push(diag(text, r.value.start, r.value.end, 'error', 'CC404', 'distributed_type: DEEPSPEED needs a deepspeed_config mapping with at least zero_stage (0-3) or deepspeed_config_file.'));
    }
  } else if (ds && ds.kind === 'map' && ds.items.length > 0 && dt) {
    out.push(diag(text, dsPair!.key.start, dsPair!.key.end, 'warning', 'CC404', `deepspeed_config is set but distributed_type is ${dt}, so accelerate ignores it. Set distributed_type: DEEPSPEED or remove deepspeed_config.`));
  }
  if (ds && ds.kind === 'map') {
    const dsVals = new Map<string, unknown>();
    for (const q of ds.items) {
      const k = deref(q.key);
      if (!k || k.kind !== 'scalar') continue;
      const spec = schema.deepspeedFields.get(k.text);
      if (!spec) {
        const sug = didYouMean(k.text, schema.deepspeedFields.keys());
        out.push(diag(text, q.key.start, q.key.end, 'warning', 'CC401', `Unknown deepspeed_config key '${k.text}': accelerate launch does not read it.${sug ? ` Did you mean '${sug}'?` : ''}`, sug ? [renameFix(q, sug)] : undefined));
        continue;
      }
      const r = checkValue(text, spec, q.value, `deepspeed_config.${k.text}`, out, { type: 'CC402', enum: 'CC403', range: 'CC403' });
      if (r.ok) dsVals.set(k.text, r.value);
    }
    const zs = dsVals.get('zero_stage');
    if (isInt(zs)) zeroStage = zs;
    if (dt === 'DEEPSPEED' && !getPair(ds, 'zero_stage') && !getPair(ds, 'deepspeed_config_file') && ds.items.length > 0) {
      out.push(diag(text, dsPair!.key.start, dsPair!.key.end, 'warning', 'CC404', 'deepspeed_config has no zero_stage; accelerate then uses ZeRO stage 2. Write zero_stage explicitly.'));
    }
    for (const flag of ['zero3_init_flag', 'zero3_save_16bit_model']) {
      if (dsVals.get(flag) === true && zeroStage !== undefined && zeroStage !== 3) {
        const q = getPair(ds, flag)!;
        out.push(diag(text, q.value.start, q.value.end, 'warning', 'CC404', `${flag}: true only applies to ZeRO stage 3, but zero_stage is ${zeroStage}. Set it to false or use zero_stage: 3.`));
      }
    }
    for (const dev of ['offload_optimizer_device', 'offload_param_device']) {
      if (dsVals.get(dev) === 'nvme' && !getPair(ds, dev.replace('_device', '_nvme_path'))) {
        const q = getPair(ds, dev)!;
        out.push(diag(text, q.value.start, q.value.end, 'error', 'CC404', `${dev}: nvme needs ${dev.replace('_device', '_nvme_path')}.`));
      }
    }
    if (dsVals.get('offload_param_device') !== undefined && dsVals.get('offload_param_device') !== 'none' && zeroStage !== undefined && zeroStage !== 3) {
      const q = getPair(ds, 'offload_param_device')!;
      out.push(diag(text, q.value.start, q.value.end, 'warning', 'CC404', `Parameter offload only exists in ZeRO stage 3, but zero_stage is ${zeroStage}.`));
    }
  }
  if (dt === 'DEEPSPEED' && zeroStage === undefined && ds && ds.kind === 'map' && !getPair(ds, 'deepspeed_config_file')) zeroStage = 2;
  return {
    numProcesses: isInt(np) ? np : undefined,
    numMachines: isInt(nm) ? nm : undefined,
    mixedPrecision: (vals.get('mixed_precision') as string | null | undefined),
    distributedType: dt,
    zeroStage,
  };
}
