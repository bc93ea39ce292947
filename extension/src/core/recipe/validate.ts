// The recipe validator: one engine for the editor, the CLI and the launcher.
//   validateText(text, {file, files, trl}) -> diagnostics for that text (and, with `file` set on
//   them, for the accelerate config it references).
// Order: bytes (decode.ts) -> YAML tree (yaml.ts) -> the schema of the recipe's TRL line
// (launch.trl, the target's TRL, else the default; kind: sft has its own) -> the walk below: keys, types, enums
// and ranges -> the referenced accelerate config (accelerate.ts) -> the cross-field rules, one
// entry per code in rules.ts.
import { type Ctx, type FileAccess, removeFix, renameFix, renameOrRemoveFix, assumed } from './context';
import { dsConfigFile, loadAccelerate, validateAccelerate } from './accelerate';
import { type Diagnostic, type QuickFix, diag } from './diagnostics';
import { runRules } from './rules';
import { type FieldSpec, type RecipeSchema, type SchemaChoice, schemaForVersion } from './schema';
import { type Coercion, checkValue, describeNode, describeTypes, didYouMean, headEnd, sectionCoercion } from './values';
import { deref, getPair, LIMITS, parseYaml, type YNode, type YPair } from './yaml';
import { isEvalRoot, validateEvalRoot } from '../eval/recipe';

export type { FileAccess } from './context';
export { decodeBytes } from './decode';
export { validateAccelerate } from './accelerate';

export interface ValidateOptions {
  /** Path of the file being validated; relative references resolve against its folder. */
  file?: string;
  files?: FileAccess;
  schema?: RecipeSchema;
  /**
   * The TRL the recipe's target runs: the stack its requirements install, or what its newest run
   * recorded (run_started.versions.trl); see recorded.ts. Used when the recipe has no `launch.trl`.
   */
  trl?: string;
  /** Force the kind instead of detecting it from the keys. */
  kind?: 'recipe' | 'accelerate';
}

export type FileKind = 'recipe' | 'accelerate' | 'other';

/** Top-level keys that make a YAML file a recipe (the editor's pre-filter, core/editor-checks.ts, reads them too). */
export const RECIPE_MARKERS = ['kind', 'reward_funcs', 'model_name_or_path', 'num_generations', 'launch', 'safety', 'use_vllm', 'per_device_train_batch_size'];
const ACCELERATE_MARKERS = ['distributed_type', 'compute_environment', 'deepspeed_config', 'mixed_precision'];

/** Decide from the top-level keys whether a YAML text is a recipe or an accelerate config. */
export function detectKind(root: YNode | undefined): FileKind {
  const r = deref(root);
  if (!r || r.kind !== 'map') return 'other';
  const keys: string[] = [];
  for (const p of r.items) if (p.key.kind === 'scalar') keys.push(p.key.text);
  return kindOfKeys(keys);
}

function kindOfKeys(keys: string[]): FileKind {
  let recipe = 0, acc = 0;
  for (const k of keys) {
    if (RECIPE_MARKERS.includes(k)) recipe++;
    if (ACCELERATE_MARKERS.includes(k)) acc++;
  }
  if (acc > 0 && acc >= recipe) return 'accelerate';
  return recipe > 0 ? 'recipe' : 'other';
}

/**
 * The one answer to "is this a recipe?" (or an accelerate config, or neither), for the editor,
 * the launcher's CodeLens and the CLI: the top-level keys of the YAML. While the YAML does not
 * parse (mid-edit), the top-level `key:` lines decide, so a recipe with a syntax error is still
 * a recipe and gets its diagnostics.
 */
export function recipeKind(text: string): FileKind {
  if (text.length > LIMITS.maxBytes) return 'other';
  const parsed = parseYaml(text);
  if (parsed.root !== undefined) return detectKind(parsed.root);
  const keys = [...text.slice(0, 65536).matchAll(/^([A-Za-z_][\w-]*)[ \t]*:/gm)].map((m) => m[1]!);
  return kindOfKeys(keys);
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
  if (opts.kind === undefined && isEvalRoot(root)) return out.concat(validateEvalRoot(text, root, { file: opts.file, files: opts.files })).sort((a, b) => a.start - b.start || a.code.localeCompare(b.code));
  const choice = opts.schema ? { schema: opts.schema, source: 'recipe' as const, approximate: false } : chooseSchema(root, opts.trl);
  const schema = choice.schema;
  const kind = opts.kind ?? (detectKind(root) === 'accelerate' ? 'accelerate' : 'recipe');
  if (kind === 'accelerate') {
    validateAccelerate(text, root, schema, out);
    // its deepspeed_config_file, as a recipe naming this config checks it (CC404): the file's own
    // diagnostics are where the editor shows it
    if (opts.file && opts.files) dsConfigFile(text, root, opts.file, opts.files, out);
    return out;
  }
  const ctx: Ctx = { text, out, schema, choice, v1: Number(schema.trlVersion.split('.')[0]) >= 1, root, file: opts.file, files: opts.files, vals: new Map(), sectionVals: new Map() };
  checkVersion(ctx);
  checkKeys(ctx);
  ctx.acc = loadAccelerate(ctx);
  runRules(ctx);
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

/**
 * The schema a recipe is checked against: its `launch.trl`, else the host's recorded TRL, else the
 * default; of the SFT schemas (one per TRL line) for a `kind: sft` recipe.
 */
export function chooseSchema(root: YNode | undefined, hostTrl?: string): SchemaChoice {
  const r = deref(root);
  const k = r && r.kind === 'map' ? deref(getPair(r, 'kind')?.value) : undefined;
  const kind = k && k.kind === 'scalar' && k.value === 'sft' ? 'sft' : 'grpo';
  const own = recipeTrlVersion(root);
  if (own) return schemaForVersion(own.value, 'recipe', kind);
  if (hostTrl) return schemaForVersion(hostTrl, 'host', kind);
  return schemaForVersion(undefined, 'recipe', kind);
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
// the walk: keys, types, enums, ranges

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
        // with `to` set already, a rename would duplicate it: only the removal is offered
        const fixes = [to && !getPair(root, to) ? renameFix(p, to) : undefined, removeFix(text, p, name)].filter((f): f is QuickFix => !!f);
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC104',
          `'${name}' was removed in TRL ${changed.removed_in ?? ''}; this recipe is checked against ${assumed(ctx)}. ${changed.note}${to ? (getPair(root, to) ? ` '${to}' is set already: remove this key.` : ` Rename it to '${to}'.`) : ' Remove this key.'}`,
          fixes));
      } else if (changed?.status === 'newer') {
        const to = changed.replacement;
        const fix = to ? renameOrRemoveFix(text, root, p, name, to) : undefined;
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC106',
          `'${name}' is not a field of ${assumed(ctx)}. ${changed.note}${to ? ` Rename it to '${to}'` : ''}${ctx.choice.source === 'default' ? (to ? ', or set launch.trl to the TRL you run.' : ' Set launch.trl to the TRL you run.') : '.'}`, fix ? [fix] : undefined));
      } else {
        const sug = didYouMean(name, [...schema.fields.keys(), ...schema.sections.keys()]);
        const unfit = sug ? misfit(text, p.value, schema.fields.get(sug), schema.sections.has(sug), 'argparse') : undefined;
        const fix = sug && !unfit ? renameOrRemoveFix(text, root, p, name, sug) : undefined;
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC100',
          `Unknown key '${name}': not a field of TRL ${schema.trlVersion}'s ${schema.kind === 'sft' ? 'SFTConfig' : 'GRPOConfig'}/ModelConfig or our script arguments (TRL 0.18 would silently ignore it, later TRL rejects it).${sug ? ` Did you mean '${sug}'?${unfit ?? ''}` : ' Remove it or check the spelling.'}`,
          fix ? [fix] : undefined));
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

/**
 * Why the suggested key would not take this value (renamed, `k16: 16` as `bf16` is a CC101), in
 * words; undefined when it takes it. Then the suggestion is a question without a quick fix.
 */
function misfit(text: string, value: YNode, spec: FieldSpec | undefined, section: boolean, mode: Coercion): string | undefined {
  const n = deref(value);
  if (!n) return undefined;
  if (section) return n.kind === 'map' || (n.kind === 'scalar' && n.tag === 'null') ? undefined : ` That is a section (a mapping of settings), not ${describeNode(n)}: check the key and the value.`;
  if (!spec) return undefined;
  const scratch: Diagnostic[] = [];
  checkValue(text, spec, value, 'x', scratch, undefined, mode);
  return scratch.some((d) => d.severity === 'error') ? ` It takes ${describeTypes(spec.types)}, not ${describeNode(n)}: check the key and the value.` : undefined;
}

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
      const unfit = sug ? misfit(text, q.value, specs.get(sug), false, sectionCoercion(name)) : undefined;
      const fix = sug && !unfit ? renameOrRemoveFix(text, v, q, k.text, sug) : undefined;
      out.push(diag(text, q.key.start, q.key.end, 'error', 'CC100',
        `Unknown key '${k.text}' in the ${name}: section.${sug ? ` Did you mean '${sug}'?${unfit ?? ''}` : ` Known keys: ${[...specs.keys()].join(', ')}.`}`,
        fix ? [fix] : undefined));
      continue;
    }
    const r = checkValue(text, spec, q.value, `${name}.${k.text}`, out, undefined, sectionCoercion(name));
    if (r.ok && r.value !== undefined) vals.set(k.text, r.value);
  }
}
