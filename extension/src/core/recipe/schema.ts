// The generated recipe schemas, one per supported TRL line (from `python -m conscience.schema`
// run in each line's environment), indexed for fast lookups:
//   schemas/recipe.schema.json       TRL 0.18.2, the open-r1 stack (.venv) - the default
//   schemas/recipe.trl1.schema.json  TRL 1.x, the current stack (.venv-trl1)
//   schemas/recipe.sft.schema.json       a `kind: sft` recipe (SFTConfig; TRL 0.18.2, .venv)
//   schemas/recipe.sft.trl1.schema.json  a `kind: sft` recipe for TRL 1.x (.venv-trl1, `--kind sft`)
// esbuild bundles the JSON into dist/, so the CLI and the extension need no file access.
import schemaJson from '../../../../schemas/recipe.schema.json';
import trl1SchemaJson from '../../../../schemas/recipe.trl1.schema.json';
import sftSchemaJson from '../../../../schemas/recipe.sft.schema.json';
import sftTrl1SchemaJson from '../../../../schemas/recipe.sft.trl1.schema.json';

export interface FieldSpec {
  name: string;
  /** JSON Schema types: string, integer, number, boolean, null, array, object. */
  types: string[];
  enum?: unknown[];
  items?: { type?: string | string[]; enum?: unknown[] };
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  /** `.inf` is in range (x-allow-infinity: `max_grad_norm: .inf` never clips); NaN and -inf never are. */
  allowInfinity?: boolean;
  /** a list key that takes one string as well (x-list-or-string: `reward_funcs`, `lora_target_modules`): a number or boolean is no value of it */
  listOrString?: boolean;
  default?: unknown;
  description?: string;
  source?: string;
}

export interface ChangedField {
  status: 'removed' | 'future' | 'newer';
  replacement: string | null;
  note: string;
  deprecated_in?: string;
  removed_in?: string;
}

export interface AccelerateMeta {
  accelerate_version: string;
  fields: Record<string, FieldSpec & { type: string | string[]; required?: boolean }>;
  distributed_types: string[];
  mixed_precision: string[];
  compute_environments: string[];
  deepspeed_config: Record<string, { type: string; enum?: unknown[]; description?: string }>;
  legacy_keys: string[];
}

export interface RecipeSchema {
  json: unknown;
  /** The recipe kind whose flat keys these are: grpo (GRPOConfig) or sft (SFTConfig). */
  kind: string;
  trlVersion: string;
  transformersVersion: string;
  fields: Map<string, FieldSpec>;
  sections: Map<string, Map<string, FieldSpec> | null>;
  sectionDocs: Map<string, string>;
  changed: Map<string, ChangedField>;
  rewardNames: string[];
  accelerate: AccelerateMeta;
  accelerateFields: Map<string, FieldSpec>;
  deepspeedFields: Map<string, FieldSpec>;
}

type RawProp = {
  type?: string | string[];
  enum?: unknown[];
  items?: { type?: string | string[]; enum?: unknown[] };
  minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number;
  default?: unknown; description?: string; 'x-source'?: string; 'x-allow-infinity'?: boolean; 'x-list-or-string'?: string;
  properties?: Record<string, RawProp>;
};

function toSpec(name: string, p: RawProp): FieldSpec {
  const types = p.type === undefined ? [] : Array.isArray(p.type) ? p.type : [p.type];
  const s: FieldSpec = { name, types };
  if (p.enum) s.enum = p.enum;
  if (p.items) s.items = p.items;
  if (p.minimum !== undefined) s.minimum = p.minimum;
  if (p.maximum !== undefined) s.maximum = p.maximum;
  if (p.exclusiveMinimum !== undefined) s.exclusiveMinimum = p.exclusiveMinimum;
  if (p.exclusiveMaximum !== undefined) s.exclusiveMaximum = p.exclusiveMaximum;
  if (p['x-allow-infinity']) s.allowInfinity = true;
  if (p['x-list-or-string']) s.listOrString = true;
  if ('default' in p) s.default = p.default;
  if (p.description) s.description = p.description;
  if (p['x-source']) s.source = p['x-source'];
  return s;
}

export function indexSchema(json: unknown): RecipeSchema {
  const j = json as { properties: Record<string, RawProp>; 'x-conscience': Record<string, unknown> };
  const meta = j['x-conscience'] as {
    trl_version: string; transformers_version: string; sections: string[]; reward_names: string[]; kind?: string;
    changed_fields: Record<string, ChangedField>; accelerate: AccelerateMeta;
  };
  const sectionNames = new Set(meta.sections);
  const fields = new Map<string, FieldSpec>();
  const sections = new Map<string, Map<string, FieldSpec> | null>();
  const sectionDocs = new Map<string, string>();
  for (const [name, p] of Object.entries(j.properties)) {
    if (sectionNames.has(name)) {
      sectionDocs.set(name, p.description ?? '');
      if (p.properties) {
        const m = new Map<string, FieldSpec>();
        for (const [k, v] of Object.entries(p.properties)) m.set(k, toSpec(k, v));
        sections.set(name, m);
      } else sections.set(name, null);
      continue;
    }
    fields.set(name, toSpec(name, p));
  }
  const accelerateFields = new Map<string, FieldSpec>();
  for (const [k, v] of Object.entries(meta.accelerate.fields)) accelerateFields.set(k, toSpec(k, v as RawProp));
  const deepspeedFields = new Map<string, FieldSpec>();
  for (const [k, v] of Object.entries(meta.accelerate.deepspeed_config)) deepspeedFields.set(k, toSpec(k, v as RawProp));
  return {
    json,
    kind: meta.kind ?? 'grpo',
    trlVersion: meta.trl_version,
    transformersVersion: meta.transformers_version,
    fields,
    sections,
    sectionDocs,
    changed: new Map(Object.entries(meta.changed_fields)),
    rewardNames: meta.reward_names,
    accelerate: meta.accelerate,
    accelerateFields,
    deepspeedFields,
  };
}

let cached: RecipeSchema | undefined;
let cachedTrl1: RecipeSchema | undefined;
let cachedSft: RecipeSchema | undefined;
let cachedSftTrl1: RecipeSchema | undefined;
/** The default schema of a `kind: sft` recipe (TRL 0.18.2); schemaForVersion(v, source, 'sft') picks by version. */
export function sftSchema(): RecipeSchema {
  return (cachedSft ??= indexSchema(sftSchemaJson));
}
/** The default schema (TRL 0.18.2, the open-r1 stack), schemas/recipe.schema.json (bundled). */
export function defaultSchema(): RecipeSchema {
  return (cached ??= indexSchema(schemaJson));
}

/** Every supported TRL line's schema of a recipe kind (GRPO unless `sft`), the default first. */
export function supportedSchemas(kind: 'grpo' | 'sft' = 'grpo'): RecipeSchema[] {
  if (kind === 'sft') return [sftSchema(), (cachedSftTrl1 ??= indexSchema(sftTrl1SchemaJson))];
  return [defaultSchema(), (cachedTrl1 ??= indexSchema(trl1SchemaJson))];
}

function parts(v: string): number[] {
  return v.trim().replace(/^v/i, '').split(/[.+-]/).slice(0, 3).map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
}

export interface SchemaChoice {
  schema: RecipeSchema;
  /** Where the version came from. */
  source: 'recipe' | 'host' | 'default';
  /** The version asked for (launch.trl or the host's), when there was one. */
  asked?: string;
  /** True when `asked` is not a supported line, so the nearest supported one is used. */
  approximate: boolean;
}

/**
 * The schema for a TRL version: the supported line with the same major version (0.x lines
 * before 0.19 are the 0.18 schema; 0.19-0.29 changed GRPOConfig step by step and have no
 * schema of their own, so they get the nearest: 0.18 up to 0.23, 1.x from 0.24 on).
 */
export function schemaForVersion(version: string | undefined, source: 'recipe' | 'host' = 'recipe', kind: 'grpo' | 'sft' = 'grpo'): SchemaChoice {
  const all = supportedSchemas(kind);
  if (version === undefined || version.trim() === '') return { schema: all[0]!, source: 'default', approximate: false };
  const [maj, min] = parts(version);
  if (maj === undefined || Number.isNaN(maj)) return { schema: all[0]!, source, asked: version, approximate: true };
  const exact = all.find((s) => s.trlVersion === version.trim() || s.trlVersion.startsWith(version.trim() + '.'));
  if (exact) return { schema: exact, source, asked: version, approximate: false };
  const line = all.find((s) => parts(s.trlVersion)[0] === maj && (maj >= 1 || parts(s.trlVersion)[1] === min));
  if (line) return { schema: line, source, asked: version, approximate: maj === 0 };
  const newer = maj >= 1 || (maj === 0 && min !== undefined && min >= 24);
  return { schema: newer ? all.at(-1)! : all[0]!, source, asked: version, approximate: true };
}
