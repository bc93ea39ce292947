/**
 * `conscience serve --recipe FILE`: serve a policy the way its recipe trained it. From the
 * recipe the gateway takes what shapes the prompt and the budget, exactly as the trainer reads
 * them (runtime/conscience/recipe.py):
 *   safety.open_tag / close_tag / budget_instruction / zero_budget_instruction  the template
 *   system_prompt                    the system prompt when a request brings none
 *   allocator:                       budget-policy overrides (and `model`, the allocator folder)
 *   safety.max_budget                budgets are clipped to it (SafetyConfig.clip_budget)
 * Errors name FILE:LINE.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { DEFAULT_TEMPLATE, unsupportedField, type PromptTemplateSpec } from '../template';
import { floatBudgetMessage } from '../allocator/policy';
import { allocatorFloatBudgets } from '../allocator/training';
import { validateText } from '../recipe/validate';
import { decodeBytes } from '../recipe/decode';
import { parseYaml, toPlain } from '../recipe/yaml';

/** The recipe's sections the gateway serves from: their mistakes refuse the recipe as the trainer would. */
const SERVED_SECTIONS = new Set(['safety', 'allocator', 'system_prompt']);

/**
 * The validator's first error in a section the gateway serves from (or one that makes the file
 * unreadable), as `FILE:LINE: message (CODE)`: the trainer refuses the same recipe at load
 * (allocator.enabled: 5, safety.budget_harmful: -5, allocator.budget_deep: "512", an unknown
 * allocator key), which the gateway served or refused without a line.
 */
function servedSectionError(file: string, text: string): string | undefined {
  // the top-level pair each diagnostic lies in, from the validator's own parse (flow style,
  // quoted keys and an indented document included)
  const root = parseYaml(text).root;
  const pairs = root?.kind === 'map' ? root.items : [];
  const owner = (at: number): string | undefined => {
    const p = pairs.find((x) => x.key.start <= at && at <= Math.max(x.value.end, x.key.end));
    return p && p.key.kind === 'scalar' ? String(p.key.value) : undefined;
  };
  const d = validateText(text).find((x) => x.severity === 'error' && !x.file && (/^CC00\d$/.test(x.code) || SERVED_SECTIONS.has(owner(x.start) ?? '')));
  return d ? `${file}:${d.line + 1}: ${d.message} (${d.code})` : undefined;
}

export interface ServeRecipe {
  template: PromptTemplateSpec;
  /** the allocator: section's policy keys (other keys dropped) */
  allocatorPolicy: Record<string, unknown>;
  /** allocator.model resolved against the recipe's folder */
  allocatorDir?: string;
  maxBudget?: number;
}

const TEMPLATE_KEYS = { open_tag: 'openTag', close_tag: 'closeTag', budget_instruction: 'budgetInstruction', zero_budget_instruction: 'zeroBudgetInstruction' } as const;

/** 1-based line of `key:` at the given indentation depth's first occurrence (best effort). */
function lineOf(text: string, key: string, nested = false): number {
  const re = new RegExp(`^${nested ? '\\s+' : ''}${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*:`);
  const i = text.split('\n').findIndex((l) => re.test(l));
  return i < 0 ? 1 : i + 1;
}

export function readServeRecipe(file: string): ServeRecipe {
  let bytes: Buffer;
  try { bytes = readFileSync(file); } catch (err) { throw new Error(`${file}: cannot read the recipe: ${(err as Error).message}`); }
  // not UTF-8 (or binary): refused as the trainer refuses it, not served with U+FFFD in its tags
  const decoded = decodeBytes(bytes);
  if ('diagnostic' in decoded) throw new Error(`${file}:${decoded.diagnostic.line + 1}: ${decoded.diagnostic.message} (${decoded.diagnostic.code})`);
  const text = decoded.text;
  // the validator's own reading (PyYAML's resolver and merge order): `system_prompt: y` is the
  // text "y" to the trainer, not the boolean js-yaml's YAML 1.1 schema made of it
  const parsed = parseYaml(text);
  const broken = parsed.diagnostics.find((d) => d.severity === 'error');
  if (broken) throw new Error(`${file}:${broken.line + 1}: invalid YAML: ${broken.message} (${broken.code})`);
  let raw: unknown;
  try {
    raw = toPlain(parsed.root);
  } catch (err) {
    throw new Error(`${file}:1: invalid YAML: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file}:1: a recipe is a YAML mapping`);
  const r = raw as Record<string, unknown>;
  const template: PromptTemplateSpec = { ...DEFAULT_TEMPLATE };
  const safety = r.safety ?? {};
  if (typeof safety !== 'object' || Array.isArray(safety) || safety === null) throw new Error(`${file}:${lineOf(text, 'safety')}: safety: must be a mapping`);
  const s = safety as Record<string, unknown>;
  for (const [k, field] of Object.entries(TEMPLATE_KEYS)) {
    if (s[k] === undefined || s[k] === null) continue;
    if (typeof s[k] !== 'string' || !(s[k] as string)) throw new Error(`${file}:${lineOf(text, k, true)}: safety.${k} must be a non-empty string`);
    // what the trainer refuses at load (CC227), refused here at load too, not on each request
    const bad = k.endsWith('instruction') ? unsupportedField(s[k] as string) : undefined;
    if (bad) throw new Error(`${file}:${lineOf(text, k, true)}: safety.${k}: ${bad} is not a plain {budget}, {open_tag} or {close_tag} (no format spec, conversion or index)`);
    template[field] = s[k] as string;
  }
  if (template.openTag === template.closeTag) throw new Error(`${file}:${lineOf(text, 'close_tag', true)}: safety.open_tag and safety.close_tag must differ`);
  let maxBudget: number | undefined;
  if (s.max_budget !== undefined && s.max_budget !== null) {
    if (typeof s.max_budget !== 'number' || !Number.isInteger(s.max_budget) || s.max_budget < 0) throw new Error(`${file}:${lineOf(text, 'max_budget', true)}: safety.max_budget must be a non-negative integer`);
    maxBudget = s.max_budget;
  }
  const sp = r.system_prompt;
  if (sp !== undefined && sp !== null && typeof sp !== 'string') throw new Error(`${file}:${lineOf(text, 'system_prompt')}: system_prompt must be a string or null`);
  template.systemPrompt = typeof sp === 'string' ? sp : null;
  const alloc = r.allocator ?? {};
  if (typeof alloc !== 'object' || Array.isArray(alloc) || alloc === null) throw new Error(`${file}:${lineOf(text, 'allocator')}: allocator: must be a mapping`);
  const { model, enabled: _enabled, ...policy } = alloc as Record<string, unknown>;
  // A budget written as a float (`budget_deep: 768.0`) is a float to PyYAML, which the trainer
  // refuses (AllocatorConfig) and the validator reports (CC101): refused here too, not served as 768.
  const floatBudget = allocatorFloatBudgets(text)[0];
  if (floatBudget) throw new Error(`${file}:${floatBudget.line}: ${floatBudgetMessage(floatBudget.key, floatBudget.value)}`);
  const invalid = servedSectionError(file, text);
  if (invalid) throw new Error(invalid);
  let allocatorDir: string | undefined;
  if (model !== undefined && model !== null) {
    if (typeof model !== 'string') throw new Error(`${file}:${lineOf(text, 'model', true)}: allocator.model must be a folder path`);
    allocatorDir = isAbsolute(model) ? model : resolve(dirname(file), model);
  }
  return { template, allocatorPolicy: policy, allocatorDir, maxBudget };
}
