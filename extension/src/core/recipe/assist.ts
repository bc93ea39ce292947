// Hover text and completions for recipes, from the generated schema. Line-based on purpose:
// it must work while the user is mid-edit and the YAML does not parse.
import { type FieldSpec, type RecipeSchema, schemaForVersion } from './schema';
import { describeRange, describeTypes } from './values';

/**
 * The schema of the TRL line a recipe text is written for: `launch.trl` (found line by line, so
 * it works while the YAML does not parse), else the host's recorded TRL, else the default; the
 * SFT schema for a `kind: sft` recipe.
 */
export function schemaForText(text: string, hostTrl?: string): RecipeSchema {
  const kind = /^kind:[ \t]*['"]?sft['"]?[ \t]*(?:#.*)?$/m.test(text) ? 'sft' : 'grpo';
  const m = /^launch:[^\n]*\n(?:(?:[ \t]+[^\n]*|[ \t]*(?:#[^\n]*)?)\n)*?[ \t]+trl:[ \t]*['"]?([^\s'"#]+)/m.exec(text);
  if (m) return schemaForVersion(m[1]!, 'recipe', kind).schema;
  return schemaForVersion(hostTrl, 'host', kind).schema;
}

export interface Completion {
  label: string;
  kind: 'key' | 'value' | 'section';
  detail?: string;
  documentation?: string;
  insertText: string;
}

interface LineInfo { text: string; start: number }

function lineAt(text: string, offset: number): LineInfo {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const nl = text.indexOf('\n', offset);
  return { text: text.slice(start, nl < 0 ? text.length : nl), start };
}

/** The section (launch/safety/allocator) a line at `indent` sits in, by scanning upward. */
function enclosingKey(text: string, lineStart: number, indent: number): string | undefined {
  let end = lineStart - 1;
  while (end > 0) {
    const s = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(s, end);
    end = s - 1;
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const ind = line.length - line.trimStart().length;
    if (ind < indent) {
      const m = /^\s*([A-Za-z_][\w.-]*)\s*:/.exec(line);
      return m?.[1];
    }
    if (end < 0) break;
  }
  return undefined;
}

/** The key owning a block list item at `indent` (`key:` above it, at the same or a smaller indent). */
function listParent(text: string, lineStart: number, indent: number): string | undefined {
  let end = lineStart - 1;
  while (end > 0) {
    const s = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(s, end);
    end = s - 1;
    const t = line.trimStart();
    if (!t || t.startsWith('#')) continue;
    const ind = line.length - t.length;
    if (t.startsWith('-') && ind >= indent) continue;
    if (ind > indent) continue;
    return /^([A-Za-z_][\w.-]*)\s*:\s*$/.exec(t)?.[1];
  }
  return undefined;
}

function specFor(schema: RecipeSchema, section: string | undefined, key: string): FieldSpec | undefined {
  if (section) return schema.sections.get(section)?.get(key) ?? undefined;
  return schema.fields.get(key);
}

export function fieldMarkdown(schema: RecipeSchema, spec: FieldSpec, qualified: string): string {
  const parts = [`**${qualified}** — ${describeTypes(spec.types)}`];
  if ('default' in spec) parts.push(`default: \`${JSON.stringify(spec.default)}\``);
  const range = describeRange(spec);
  if (range) parts.push(`range: ${range}`);
  if (spec.enum) parts.push(`one of: ${spec.enum.filter((e) => e !== null).map((e) => `\`${String(e)}\``).join(', ')}`);
  let md = parts.join(' · ') + '\n\n' + (spec.description ?? '');
  const ch = schema.changed.get(spec.name);
  if (ch && !qualified.includes('.')) md += `\n\n_${ch.note}_`;
  md += `\n\n_${spec.source ?? 'schema'}, TRL ${schema.trlVersion}_`;
  return md;
}

/** Hover markdown for the key under `offset`, if it is one the schema knows. */
export function hoverAt(text: string, offset: number, schema: RecipeSchema = schemaForText(text)): { markdown: string; start: number; end: number } | undefined {
  const line = lineAt(text, offset);
  const m = /^(\s*)(?:-\s+)?([A-Za-z_][\w-]*)\s*:/.exec(line.text);
  if (!m) return undefined;
  const indent = m[1]!.length;
  const key = m[2]!;
  const keyStart = line.start + line.text.indexOf(key, indent);
  if (offset < keyStart || offset > keyStart + key.length) return undefined;
  if (indent === 0) {
    if (schema.sections.has(key)) {
      return { markdown: `**${key}:** section\n\n${schema.sectionDocs.get(key) ?? ''}`, start: keyStart, end: keyStart + key.length };
    }
    const spec = schema.fields.get(key);
    if (spec) return { markdown: fieldMarkdown(schema, spec, key), start: keyStart, end: keyStart + key.length };
    const ch = schema.changed.get(key);
    if (ch) return { markdown: `**${key}** — not a field of TRL ${schema.trlVersion}\n\n${ch.note}`, start: keyStart, end: keyStart + key.length };
    return undefined;
  }
  const section = enclosingKey(text, line.start, indent);
  if (!section) return undefined;
  const spec = specFor(schema, section, key);
  return spec ? { markdown: fieldMarkdown(schema, spec, `${section}.${key}`), start: keyStart, end: keyStart + key.length } : undefined;
}

function presentKeys(text: string, section: string | undefined): Set<string> {
  const keys = new Set<string>();
  const re = section ? /^(\s+)([A-Za-z_][\w-]*)\s*:/gm : /^([A-Za-z_][\w-]*)\s*:/gm;
  if (!section) {
    for (const m of text.matchAll(re)) keys.add(m[1]!);
  }
  return keys;
}

function valueCompletions(schema: RecipeSchema, spec: FieldSpec | undefined, key: string): Completion[] {
  if (key === 'reward_funcs') return schema.rewardNames.map((n) => ({ label: n, kind: 'value', detail: 'reward function', insertText: n }));
  if (!spec) return [];
  const values: unknown[] = spec.enum ? spec.enum.filter((e) => e !== null) : spec.types.includes('boolean') ? [true, false] : [];
  return values.map((v) => {
    // YAML 1.1 reads no/yes/on/off as booleans: quote such enum strings.
    const s = String(v);
    const needsQuote = typeof v === 'string' && /^(y|n|yes|no|on|off|true|false|null|~)$/i.test(s);
    return { label: s, kind: 'value' as const, detail: spec.source, insertText: needsQuote ? `'${s}'` : s };
  });
}

/** Completions at `offset`: keys at the start of a line, values after `key: `, reward names in lists. */
export function completionsAt(text: string, offset: number, schema: RecipeSchema = schemaForText(text)): Completion[] {
  const line = lineAt(text, offset);
  const before = line.text.slice(0, offset - line.start);
  // list item under a key (reward_funcs:\n- ...)
  let m = /^(\s*)-\s*([\w-]*)$/.exec(before);
  if (m) {
    const parent = listParent(text, line.start, m[1]!.length) ?? '';
    return parent === 'reward_funcs' ? valueCompletions(schema, schema.fields.get(parent), parent) : [];
  }
  // flow list: reward_funcs: [a, b
  m = /^(\s*)([A-Za-z_][\w-]*)\s*:\s*\[[^\]]*$/.exec(before);
  if (m) return m[2] === 'reward_funcs' ? valueCompletions(schema, undefined, 'reward_funcs') : [];
  // value after `key: `
  m = /^(\s*)([A-Za-z_][\w-]*)\s*:\s*[\w.'"-]*$/.exec(before);
  if (m) {
    const indent = m[1]!.length;
    const section = indent > 0 ? enclosingKey(text, line.start, indent) : undefined;
    return valueCompletions(schema, specFor(schema, section, m[2]!), m[2]!);
  }
  // key at the start of a line
  m = /^(\s*)([A-Za-z_][\w-]*)?$/.exec(before);
  if (m) {
    const indent = m[1]!.length;
    if (indent === 0) {
      const present = presentKeys(text, undefined);
      const out: Completion[] = [];
      for (const [name, spec] of schema.fields) {
        if (present.has(name)) continue;
        out.push({ label: name, kind: 'key', detail: `${describeTypes(spec.types)} · ${spec.source ?? ''} · TRL ${schema.trlVersion}`, documentation: spec.description, insertText: `${name}: ` });
      }
      for (const s of schema.sections.keys()) if (!present.has(s)) out.push({ label: s, kind: 'section', detail: 'section', documentation: schema.sectionDocs.get(s), insertText: `${s}:\n  ` });
      return out;
    }
    const section = enclosingKey(text, line.start, indent);
    const specs = section ? schema.sections.get(section) : undefined;
    if (!specs) return [];
    return [...specs.values()].map((spec) => ({ label: spec.name, kind: 'key' as const, detail: `${describeTypes(spec.types)} · ${section}`, documentation: spec.description, insertText: `${spec.name}: ` }));
  }
  return [];
}
