// The budget policy: (risk, ambiguity) -> tier and token budget. Mirrors
// runtime/conscience/allocator/policy.py (decide, AllocatorConfig) exactly: same keys, same
// defaults, same validation, same first-match-wins table. The model's defaults come from
// allocator.json's "policy"; user overrides (setting conscience.allocator.policy, the
// recipe's allocator: section) go on top. extension/test/allocator/policy.test.ts checks the
// table against the Python implementation.

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
/** Recipe keys of the allocator: section that are not policy (ignored here, valid there). */
const NON_POLICY_KEYS = new Set(['enabled', 'model']);

/**
 * Overlays `overrides` on `base` and validates the result. `where` names the source in errors
 * (e.g. "allocator.json: policy" or "setting conscience.allocator.policy").
 */
export function parsePolicy(overrides: unknown, where: string, base: Readonly<Policy> = DEFAULT_POLICY): Policy {
  const out: Policy = { ...base };
  if (overrides === undefined || overrides === null) return out;
  if (typeof overrides !== 'object' || Array.isArray(overrides)) throw new Error(`${where}: must be an object`);
  const known = [...THRESHOLDS, ...BUDGETS] as string[];
  for (const [k, v] of Object.entries(overrides as Record<string, unknown>)) {
    if (NON_POLICY_KEYS.has(k)) continue;
    if (!known.includes(k)) throw new Error(`${where}: unknown allocator setting '${k}'; known: ${[...known, ...NON_POLICY_KEYS].sort().join(', ')}`);
    (out as unknown as Record<string, unknown>)[k] = v;
  }
  for (const k of THRESHOLDS) {
    const v = out[k] as unknown;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
      throw new Error(`${where}: allocator.${k} must be a number in [0, 1], got ${JSON.stringify(v)}`);
    }
  }
  for (const k of BUDGETS) {
    const v = out[k] as unknown;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new Error(`${where}: allocator.${k} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
  }
  return out;
}

export interface Decision {
  tier: Tier;
  budget: number;
  /** which row of the table matched, in words */
  reason: string;
}

export const budgetOf = (policy: Policy, tier: Tier): number => policy[`budget_${tier}`];

/**
 * First matching row wins (docs/allocator.md, "Budget policy"). `unfamiliar`: the prompt is
 * written mostly in a script the model did not learn both labels in (unfamiliar.ts).
 */
export function decide(risk: number, ambiguity: number, policy: Policy = DEFAULT_POLICY, unfamiliar = false): Decision {
  let tier: Tier;
  let reason: string;
  if (ambiguity >= policy.ambiguity_deep) {
    tier = 'deep';
    reason = `ambiguity ${fmt(ambiguity)} ≥ ${policy.ambiguity_deep}: looks risky but may be benign`;
  } else if (risk >= policy.risk_harmful) {
    tier = 'brief';
    reason = `risk ${fmt(risk)} ≥ ${policy.risk_harmful}: clearly harmful, a short firm rationale`;
  } else if (risk >= policy.risk_standard || ambiguity >= policy.ambiguity_standard) {
    tier = 'standard';
    reason = risk >= policy.risk_standard
      ? `risk ${fmt(risk)} ≥ ${policy.risk_standard}: some risk signal`
      : `ambiguity ${fmt(ambiguity)} ≥ ${policy.ambiguity_standard}: some doubt`;
  } else if (unfamiliar) {
    tier = 'standard';
    reason = 'written mostly in a script the allocator did not learn both harmful and benign prompts in: its scores there are not to be trusted';
  } else {
    tier = 'none';
    reason = `risk ${fmt(risk)} < ${policy.risk_standard} and ambiguity ${fmt(ambiguity)} < ${policy.ambiguity_standard}: clearly benign`;
  }
  return { tier, budget: budgetOf(policy, tier), reason };
}

const fmt = (x: number): string => x.toFixed(3);

/** The table as rows, in match order, for the inspector and hover (`scripts`: the model has the unfamiliar-script row). */
export function policyRows(policy: Policy, scripts = false): Array<{ tier: Tier; budget: number; rule: string }> {
  return [
    { tier: 'deep', budget: policy.budget_deep, rule: `ambiguity ≥ ${policy.ambiguity_deep}` },
    { tier: 'brief', budget: policy.budget_brief, rule: `risk ≥ ${policy.risk_harmful}` },
    { tier: 'standard', budget: policy.budget_standard, rule: `risk ≥ ${policy.risk_standard} or ambiguity ≥ ${policy.ambiguity_standard}` },
    ...(scripts ? [{ tier: 'standard' as const, budget: policy.budget_standard, rule: 'written in a script the model did not learn' }] : []),
    { tier: 'none', budget: policy.budget_none, rule: 'otherwise' },
  ];
}
