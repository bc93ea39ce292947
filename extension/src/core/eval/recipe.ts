// Validation of an eval recipe (`kind: eval`, run by `python -m conscience.eval`): its own keys
// from the generated schemas/eval.schema.json (EvalConfig and its sections in
// runtime/conscience/eval.py), checked with core/recipe's YAML tree and value checks, plus the
// rules EvalConfig.__post_init__ and load_eval_recipe apply. Diagnostics sit at the key or value.
// Values are converted as the runtime's _coerce does (`allocator:` not at all); the `safety:` and
// `allocator:` sections are a training recipe's, so their keys and the training rules marked
// `alsoEval` (rules.ts) apply as there.
import schemaJson from '../../../../schemas/eval.schema.json';
import { type Ctx, type FileAccess, renameOrRemoveFix } from '../recipe/context';
import { type Diagnostic, diag } from '../recipe/diagnostics';
import { missingFile, runRules } from '../recipe/rules';
import { defaultSchema, type FieldSpec } from '../recipe/schema';
import { checkValue, type Coercion, didYouMean, headEnd, sectionCoercion } from '../recipe/values';
import { deref, getPair, parseYaml, type YMap, type YNode } from '../recipe/yaml';

/** Codes of the eval-specific rules (the shared CC100-CC103 cover keys, types, enums, ranges). */
export const EVAL_CODES = {
  CC500: 'unknown budget arm (allocator, label, fixed:N, none)',
  CC501: 'budget arm listed twice',
  CC502: 'engine openai needs endpoint.base_url and endpoint.model',
  CC503: 'judge kind llm needs judge.base_url and judge.model',
  CC504: 'no model to evaluate (model_name_or_path or endpoint.base_url; engine transformers and vllm need model_name_or_path)',
  CC505: 'arms is empty',
  CC506: 'an eval runs in one process (launch.num_processes and num_machines 1)',
  CC507: 'policy_recipe not found (relative to the recipe)',
} as const;

type RawProp = {
  type?: string | string[]; enum?: unknown[]; items?: { type?: string | string[]; enum?: unknown[] }; default?: unknown; description?: string; const?: unknown;
  minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number; properties?: Record<string, RawProp>;
};

function spec(name: string, p: RawProp): FieldSpec {
  const types = p.type === undefined ? (p.const !== undefined ? ['string'] : []) : Array.isArray(p.type) ? p.type : [p.type];
  const s: FieldSpec = { name, types };
  const e = p.enum ?? (p.const !== undefined ? [p.const] : undefined);
  if (e) s.enum = e;
  if (p.items) s.items = { type: p.items.type };
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const) if (p[k] !== undefined) s[k] = p[k];
  if ('default' in p) s.default = p.default;
  if (p.description) s.description = p.description;
  return s;
}

export interface EvalSchema {
  fields: Map<string, FieldSpec>;
  /** Sections with their keys; null = free-form (allocator:). */
  sections: Map<string, Map<string, FieldSpec> | null>;
}

let cached: EvalSchema | undefined;
export function evalSchema(): EvalSchema {
  if (cached) return cached;
  const props = (schemaJson as { properties: Record<string, RawProp> }).properties;
  const fields = new Map<string, FieldSpec>();
  const sections = new Map<string, Map<string, FieldSpec> | null>();
  for (const [k, p] of Object.entries(props)) {
    const types = Array.isArray(p.type) ? p.type : [p.type];
    if (types.includes('object')) {
      sections.set(k, p.properties ? new Map(Object.entries(p.properties).map(([n, q]) => [n, spec(n, q)])) : null);
    } else fields.set(k, spec(k, p));
  }
  return (cached = { fields, sections });
}

/** True when a parsed recipe's top level says `kind: eval`. */
export function isEvalRoot(root: YNode | undefined): boolean {
  const r = deref(root);
  if (!r || r.kind !== 'map') return false;
  const v = deref(getPair(r, 'kind')?.value);
  return !!v && v.kind === 'scalar' && v.value === 'eval';
}

const ARM_RE = /^(allocator|label|none|fixed:\d+)$/;

function scalarText(n: YNode | undefined): string | undefined {
  const d = deref(n);
  return d && d.kind === 'scalar' && d.tag !== 'null' ? String(d.value) : undefined;
}

/** Diagnostics of an eval recipe's mapping (after YAML parsing); `file` and `files` resolve the files it names. */
export function validateEvalRoot(text: string, root: YMap, opts: { file?: string; files?: FileAccess } = {}): Diagnostic[] {
  const out: Diagnostic[] = [];
  const schema = evalSchema();
  // `allocator:` is free-form in eval.schema.json; its keys are the training recipe's (AllocatorConfig)
  const train = defaultSchema();
  const vals = new Map<string, unknown>();
  const sectionVals = new Map<string, Map<string, unknown>>();
  const checkMap = (map: YMap, known: Map<string, FieldSpec>, prefix: string, allowSections: boolean, mode: Coercion, store: Map<string, unknown>) => {
    for (const p of map.items) {
      const k = deref(p.key);
      if (!k || k.kind !== 'scalar') continue;
      const name = String(k.value);
      if (allowSections && schema.sections.has(name)) {
        const sec = schema.sections.get(name) ?? train.sections.get(name);
        const v = deref(p.value);
        if (!v || (v.kind === 'scalar' && v.tag === 'null')) continue;
        if (v.kind !== 'map') {
          out.push(diag(text, p.value.start, headEnd(text, p.value), 'error', 'CC101', `The \`${name}:\` section must be a mapping of settings, got ${v.kind === 'seq' ? 'a list' : 'a single value'}.`));
          continue;
        }
        const m = new Map<string, unknown>();
        sectionVals.set(name, m);
        if (sec) checkMap(v, sec, `${name}.`, false, sectionCoercion(name), m);
        continue;
      }
      const f = known.get(name);
      if (!f) {
        const options = allowSections ? [...known.keys(), ...schema.sections.keys()] : [...known.keys()];
        const sug = didYouMean(name, options);
        const fix = sug ? renameOrRemoveFix(text, map, p, name, sug) : undefined;
        out.push(diag(text, p.key.start, p.key.end, 'error', 'CC100',
          `Unknown key \`${prefix}${name}\` in an eval recipe.${sug ? ` Did you mean '${sug}'?` : ''}`,
          fix ? [fix] : undefined));
        continue;
      }
      const r = checkValue(text, f, p.value, `\`${prefix}${name}\``, out, undefined, mode);
      if (r.ok && r.value !== undefined) store.set(name, r.value);
    }
  };
  // load_eval_recipe converts every key with conscience.recipe._coerce
  checkMap(root, schema.fields, '', true, 'dataclass', vals);
  // the training rules about the keys an eval recipe shares (safety: tags and instructions, the chat template file)
  const ctx: Ctx = { text, out, schema: train, choice: { schema: train, source: 'default', approximate: false }, v1: false, root, file: opts.file, files: opts.files, vals, sectionVals };
  runRules(ctx, (r) => !!r.alsoEval);
  missingFile(ctx, {
    at() { /* missingFile reports at the value's range */ },
    range(start, end, message, fixes, severity) { out.push(diag(text, start, end, severity ?? 'error', 'CC507', message, fixes)); },
  }, 'policy_recipe', 'Policy recipe', () => true);

  // arms: each allocator | label | fixed:N | none, once
  const arms = getPair(root, 'arms');
  const av = deref(arms?.value);
  // one arm without a list (`arms: label`) is a one-element list, as conscience.eval reads it
  const armItems = av && av.kind === 'seq' ? av.items : av && av.kind === 'scalar' && av.tag === 'str' ? [arms!.value] : undefined;
  if (arms && av && armItems) {
    if (armItems.length === 0) out.push(diag(text, arms.value.start, arms.value.end, 'error', 'CC505', '`arms` is empty: name at least one of allocator, label, fixed:N, none.'));
    const seen = new Set<string>();
    for (const it of armItems) {
      const s = scalarText(it);
      if (s === undefined) continue;
      if (!ARM_RE.test(s)) {
        const sug = didYouMean(s, ['allocator', 'label', 'none']);
        out.push(diag(text, it.start, it.end, 'error', 'CC500', `Unknown arm '${s}': use allocator, label, fixed:N (N >= 0 tokens) or none.${sug ? ` Did you mean '${sug}'?` : ''}`,
          sug ? [{ title: `Change to '${sug}'`, edits: [{ start: it.start, end: it.end, newText: sug }] }] : undefined));
      } else {
        const same = s.replace(/^fixed:0+(?=\d)/, 'fixed:'); // fixed:064 is fixed:64, as the runtime reads it
        if (seen.has(same)) out.push(diag(text, it.start, it.end, 'warning', 'CC501', `Arm '${s}' is listed twice${same !== s ? ` (as ${same})` : ''}; it runs once.`));
        seen.add(same);
      }
    }
  }
  const section = (name: string) => { const v = deref(getPair(root, name)?.value); return v && v.kind === 'map' ? v : undefined; };
  const endpoint = section('endpoint');
  const judge = section('judge');
  const engine = getPair(root, 'engine');
  if (engine && scalarText(engine.value) === 'openai' && (!scalarText(endpoint && getPair(endpoint, 'base_url')?.value) || !scalarText(endpoint && getPair(endpoint, 'model')?.value)))
    out.push(diag(text, engine.value.start, engine.value.end, 'error', 'CC502', 'engine openai needs `endpoint:` with `base_url` (up to /v1) and `model` (the served model name).'));
  const jk = judge && getPair(judge, 'kind');
  if (jk && scalarText(jk.value) === 'llm' && (!scalarText(getPair(judge!, 'base_url')?.value) || !scalarText(getPair(judge!, 'model')?.value)))
    out.push(diag(text, jk.value.start, jk.value.end, 'error', 'CC503', 'judge kind llm needs `judge.base_url` (an OpenAI-compatible endpoint) and `judge.model`.'));
  const launch = section('launch');
  for (const key of ['num_processes', 'num_machines']) {
    const p = launch && getPair(launch, key);
    const n = sectionVals.get('launch')?.get(key);
    if (p && typeof n === 'number' && Number.isInteger(n) && n > 1) {
      out.push(diag(text, p.value.start, p.value.end, 'error', 'CC506', `An eval runs in one process, not ${n}: every process would evaluate every prompt. \`engine: vllm\` with \`tensor_parallel_size\` spreads one model over several GPUs.`));
    }
  }
  const model = scalarText(getPair(root, 'model_name_or_path')?.value);
  const eng = engine ? scalarText(engine.value) : undefined;
  if (engine && !model && (eng === 'transformers' || eng === 'vllm')) {
    out.push(diag(text, engine.value.start, engine.value.end, 'error', 'CC504', `engine ${eng} loads the model itself: set \`model_name_or_path\` (a model or checkpoint to load); \`endpoint.base_url\` is read by engine openai only.`));
  } else if (!model && !scalarText(endpoint && getPair(endpoint, 'base_url')?.value)) {
    const k = getPair(root, 'kind')!;
    out.push(diag(text, k.key.start, k.value.end, 'error', 'CC504', 'Nothing to evaluate: set `model_name_or_path` (a model or checkpoint to load) or `endpoint.base_url` (a served model).'));
  }
  return out;
}

/** Validate the text of an eval recipe (syntax, keys, values, rules). */
export function validateEvalText(text: string, opts: { file?: string; files?: FileAccess } = {}): Diagnostic[] {
  const parsed = parseYaml(text);
  const out = parsed.diagnostics.slice();
  const root = deref(parsed.root);
  if (!root || root.kind !== 'map') return out;
  out.push(...validateEvalRoot(text, root, opts));
  return out.sort((a, b) => a.start - b.start || a.code.localeCompare(b.code));
}
