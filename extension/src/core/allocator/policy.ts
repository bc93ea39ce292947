// The budget policy: (risk, ambiguity) -> tier and token budget. Mirrors
// runtime/conscience/allocator/policy.py (decide, AllocatorConfig) exactly: same keys, same
// defaults, same validation, same first-match-wins table. The model's defaults come from
// allocator.json's "policy"; user overrides (setting conscience.allocator.policy, the
// recipe's allocator: section) go on top. extension/test/allocator/policy.test.ts checks the
// table against the Python implementation.

import { jsonNumberMembers } from './json';

export const TIERS = ['none', 'brief', 'standard', 'deep'] as const;
export type Tier = (typeof TIERS)[number];

export interface Policy {
  risk_harmful: number;
  ambiguity_deep: number;
  risk_standard: number;
  ambiguity_standard: number;
  budget_none: number;
  budget_brief: number;
  budget_standard: number;
  budget_deep: number;
}

export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze({
  risk_harmful: 0.75,
  ambiguity_deep: 0.5,
  risk_standard: 0.1,
  ambiguity_standard: 0.2,
  budget_none: 0,
  budget_brief: 64,
  budget_standard: 192,
  budget_deep: 512,
});

const THRESHOLDS = ['risk_harmful', 'ambiguity_deep', 'risk_standard', 'ambiguity_standard'] as const;
const BUDGETS = ['budget_none', 'budget_brief', 'budget_standard', 'budget_deep'] as const;
/** Keys of the allocator: section that are not policy: validated here as Python validates them (AllocatorConfig), used by the callers that load a model. */
const NON_POLICY_KEYS = new Set(['enabled', 'model']);

/**
 * A number its source wrote as a float (`768.0`, `1e3`; in a YAML recipe also `1_000.0`).
 * JSON.parse and the YAML readers give the number 768, but Python's json and PyYAML read a
 * float, and AllocatorConfig refuses a float budget ("must be a non-negative integer, got
 * 768.0"; the recipe validator reports CC101). The readers that see how a number was written
 * (withFloatLiterals for JSON, recipeAllocatorSection in training.ts for recipes) hand such a
 * value to parsePolicy as this, so that a budget written so is refused here too, and the trainer,
 * the validator, the gateway, the editor and `conscience inspect --policy` agree. A threshold
 * takes it as its number, as Python takes a float threshold.
 */
export class FloatLiteral {
  constructor(readonly value: number, readonly source: string) {}
  toJSON(): number {
    return this.value;
  }
}

const show = (v: unknown): string => (v instanceof FloatLiteral ? v.source : JSON.stringify(v) ?? String(v));

/** The error for a budget written as a float (parsePolicy's, and the gateway's with FILE:LINE). */
export function floatBudgetMessage(key: string, f: FloatLiteral): string {
  const whole = Number.isInteger(f.value) && f.value >= 0;
  return `allocator.${key} must be a non-negative integer, got ${f.source}${whole ? ` (a float to Python, which the trainer refuses: write ${f.value})` : ''}`;
}

/** Whether `k` is one of the four budget keys. */
export const isBudgetKey = (k: string): boolean => (BUDGETS as readonly string[]).includes(k);

/**
 * Overlays `overrides` on `base` and validates the result. `where` names the source in errors
 * (e.g. "allocator.json: policy" or "setting conscience.allocator.policy"). `enabled` and
 * `model` are validated as AllocatorConfig validates them (a boolean, a string) and not part of
 * the result: policyModel() reads `model`.
 */
export function parsePolicy(overrides: unknown, where: string, base: Readonly<Policy> = DEFAULT_POLICY): Policy {
  const out: Policy = { ...base };
  if (overrides === undefined || overrides === null) return out;
  if (typeof overrides !== 'object' || Array.isArray(overrides) || overrides instanceof FloatLiteral) throw new Error(`${where}: must be an object`);
  const known = [...THRESHOLDS, ...BUDGETS] as string[];
  for (const [k, v] of Object.entries(overrides as Record<string, unknown>)) {
    if (k === 'enabled') {
      if (typeof v !== 'boolean') throw new Error(`${where}: allocator.enabled must be true or false, got ${show(v)}`);
      continue;
    }
    if (k === 'model') {
      if (typeof v !== 'string') throw new Error(`${where}: allocator.model must be a string path, got ${show(v)}`);
      continue;
    }
    if (!known.includes(k)) throw new Error(`${where}: unknown allocator setting '${k}'; known: ${[...known, ...NON_POLICY_KEYS].sort().join(', ')}`);
    (out as unknown as Record<string, unknown>)[k] = v;
  }
  for (const k of THRESHOLDS) {
    let v = out[k] as unknown;
    if (v instanceof FloatLiteral) v = out[k] = v.value;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
      throw new Error(`${where}: allocator.${k} must be a number in [0, 1], got ${show(v)}`);
    }
  }
  for (const k of BUDGETS) {
    const v = out[k] as unknown;
    if (v instanceof FloatLiteral) throw new Error(`${where}: ${floatBudgetMessage(k, v)}`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new Error(`${where}: allocator.${k} must be a non-negative integer, got ${show(v)}`);
    }
  }
  return out;
}

/**
 * The model folder an allocator: section or `--policy` object names (`model`), or undefined
 * when it names none or the empty string (the default folder), as Python's load_config reads it.
 * Not validated here: parsePolicy refuses a `model` that is not a string.
 */
export function policyModel(overrides: unknown): string | undefined {
  if (!overrides || typeof overrides !== 'object' || Array.isArray(overrides)) return undefined;
  const m = (overrides as Record<string, unknown>).model;
  return typeof m === 'string' && m ? m : undefined;
}

/**
 * `parsed` (JSON.parse of `text`) with the float-written numbers of the object at `path`
 * (written with a `.`, `e` or `E`) as FloatLiteral, so parsePolicy refuses a budget written `768.0` or `1e3`
 * as Python's json and AllocatorConfig do. The object at `path` is copied; `parsed` is not changed.
 */
export function withFloatLiterals(parsed: unknown, text: string, path: readonly string[] = []): unknown {
  const get = (v: unknown, d: number): unknown => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
    if (d === path.length) {
      const floats = [...jsonNumberMembers(text, path)].filter(([, src]) => /[.eE]/.test(src));
      if (!floats.length) return v;
      const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      for (const [k, src] of floats) if (typeof copy[k] === 'number') copy[k] = new FloatLiteral(copy[k] as number, src);
      return copy;
    }
    const o = v as Record<string, unknown>;
    const key = path[d]!;
    if (!Object.prototype.hasOwnProperty.call(o, key)) return v;
    return { ...o, [key]: get(o[key], d + 1) };
  };
  return get(parsed, 0);
}

/** The rows of the decision table (policyRows), in match order: `script` is the unfamiliar-script row. */
export type PolicyRow = 'deep' | 'brief' | 'standard' | 'script' | 'none';

export interface Decision {
  tier: Tier;
  budget: number;
  /** which row of the table matched, in words */
  reason: string;
  /** which row of the table matched */
  row: PolicyRow;
}

export const budgetOf = (policy: Policy, tier: Tier): number => policy[`budget_${tier}`];

/**
 * First matching row wins (docs/allocator.md, "Budget policy"). `unfamiliar`: the prompt is
 * written mostly in a script the model did not learn both labels in (unfamiliar.ts).
 */
export function decide(risk: number, ambiguity: number, policy: Policy = DEFAULT_POLICY, unfamiliar = false): Decision {
  let tier: Tier;
  let reason: string;
  let row: PolicyRow;
  if (ambiguity >= policy.ambiguity_deep) {
    tier = row = 'deep';
    reason = `ambiguity ${fmt(ambiguity)} ≥ ${policy.ambiguity_deep}: looks risky but may be benign`;
  } else if (risk >= policy.risk_harmful) {
    tier = row = 'brief';
    reason = `risk ${fmt(risk)} ≥ ${policy.risk_harmful}: clearly harmful, a short firm rationale`;
  } else if (risk >= policy.risk_standard || ambiguity >= policy.ambiguity_standard) {
    tier = row = 'standard';
    reason = risk >= policy.risk_standard
      ? `risk ${fmt(risk)} ≥ ${policy.risk_standard}: some risk signal`
      : `ambiguity ${fmt(ambiguity)} ≥ ${policy.ambiguity_standard}: some doubt`;
  } else if (unfamiliar) {
    tier = 'standard';
    row = 'script';
    reason = 'written mostly in a script the allocator did not learn both harmful and benign prompts in: its scores there are not to be trusted';
  } else {
    tier = row = 'none';
    reason = `risk ${fmt(risk)} < ${policy.risk_standard} and ambiguity ${fmt(ambiguity)} < ${policy.ambiguity_standard}: clearly benign`;
  }
  return { tier, budget: budgetOf(policy, tier), reason, row };
}

const fmt = (x: number): string => x.toFixed(3);

/** The table as rows, in match order, for the inspector and hover (`scripts`: the model has the unfamiliar-script row). */
export function policyRows(policy: Policy, scripts = false, matched?: PolicyRow): Array<{ tier: Tier; budget: number; rule: string; matched: boolean }> {
  const rows: Array<{ row: PolicyRow; tier: Tier; budget: number; rule: string }> = [
    { row: 'deep', tier: 'deep', budget: policy.budget_deep, rule: `ambiguity ≥ ${policy.ambiguity_deep}` },
    { row: 'brief', tier: 'brief', budget: policy.budget_brief, rule: `risk ≥ ${policy.risk_harmful}` },
    { row: 'standard', tier: 'standard', budget: policy.budget_standard, rule: `risk ≥ ${policy.risk_standard} or ambiguity ≥ ${policy.ambiguity_standard}` },
    ...(scripts ? [{ row: 'script' as const, tier: 'standard' as const, budget: policy.budget_standard, rule: 'written in a script the model did not learn' }] : []),
    { row: 'none', tier: 'none', budget: policy.budget_none, rule: 'otherwise' },
  ];
  return rows.map(({ row, ...r }) => ({ ...r, matched: row === matched }));
}
