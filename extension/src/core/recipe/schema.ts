// The generated recipe schema (schemas/recipe.schema.json, from `python -m conscience.schema`)
// indexed for fast lookups. esbuild bundles the JSON into dist/, so the CLI and the
// extension need no file access to find it.
import schemaJson from '../../../../schemas/recipe.schema.json';

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
  default?: unknown; description?: string; 'x-source'?: string;
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
  if ('default' in p) s.default = p.default;
  if (p.description) s.description = p.description;
  if (p['x-source']) s.source = p['x-source'];
  return s;
}

export function indexSchema(json: unknown): RecipeSchema {
  const j = json as { properties: Record<string, RawProp>; 'x-conscience': Record<string, unknown> };
  const meta = j['x-conscience'] as {
    trl_version: string; transformers_version: string; sections: string[]; reward_names: string[];
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
/** The schema committed in schemas/recipe.schema.json (bundled). */
export function defaultSchema(): RecipeSchema {
  return (cached ??= indexSchema(schemaJson));
}
