/**
 * The gateway's policy: `--policy key=value` pairs. Keys are either the allocator's budget
 * policy (risk_harmful, budget_standard, ... exactly as a recipe's `allocator:` section) or the
 * gateway's per-tier actions:
 *
 *   max_tokens.<tier>=N     cap max_tokens (and max_completion_tokens when sent) for that tier
 *   refuse=brief[,tier...]  answer these tiers with `refusal` without calling the upstream
 *   refusal=TEXT            the refusal answer (default below)
 *   fixed_budget=N          the fixed budget "tokens saved" is measured against (default budget_deep)
 *   system_prompt=TEXT      the recipe's system_prompt, used when a request brings no system message
 *   context_turns=N         score a conversation's last N user messages and take the strictest (default 1: the last)
 *   unknown_context=TIER    the least tier of a continuation whose earlier turns this gateway did not
 *                           see (a previous_response_id it did not answer, a conversation no request
 *                           of which came through it: another replica, a restart); default none
 *   long_prompt=TIER        the least tier of a prompt longer than the allocator reads (scored on its
 *                           start: a request after a long preamble is not read); default none
 */
import { TIERS, type Tier } from '../allocator';
import { parsePolicy } from '../allocator/policy';

export const DEFAULT_REFUSAL = "I can't help with that request.";

export interface GatewayPolicy {
  /** overrides of the allocator's budget policy (validated by parsePolicy when the allocator loads) */
  allocator: Record<string, number>;
  maxTokens: Partial<Record<Tier, number>>;
  refuse: Set<Tier>;
  refusal: string;
  fixedBudget?: number;
  systemPrompt?: string;
  /** the last user messages a conversation is scored on (1..MAX_CONTEXT_TURNS; default 1) */
  contextTurns?: number;
  /** the least tier of a continuation whose earlier turns the gateway did not see (default none: scored on what it brings) */
  unknownContext?: Tier;
  /** the least tier of a prompt longer than the allocator reads (default none: handled by its start) */
  longPrompt?: Tier;
}

export const MAX_CONTEXT_TURNS = 64;

const ALLOCATOR_KEYS = new Set([
  'risk_harmful', 'ambiguity_deep', 'risk_standard', 'ambiguity_standard',
  'budget_none', 'budget_brief', 'budget_standard', 'budget_deep',
]);

const isTier = (s: string): s is Tier => (TIERS as readonly string[]).includes(s);

function nonNegInt(key: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`--policy ${key}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** Parses the `--policy` pairs; throws an Error naming the bad pair. */
export function parseGatewayPolicy(pairs: string[]): GatewayPolicy {
  const out: GatewayPolicy = { allocator: {}, maxTokens: {}, refuse: new Set(), refusal: DEFAULT_REFUSAL };
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--policy expects key=value, got ${JSON.stringify(pair)}`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1);
    if (ALLOCATOR_KEYS.has(key)) {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`--policy ${key}: expected a number, got ${JSON.stringify(value)}`);
      out.allocator[key] = n;
    } else if (key.startsWith('max_tokens.')) {
      const tier = key.slice('max_tokens.'.length);
      if (!isTier(tier)) throw new Error(`--policy ${key}: unknown tier '${tier}'; tiers: ${TIERS.join(', ')}`);
      const n = nonNegInt(key, value);
      if (n < 1) throw new Error(`--policy ${key}: the cap must be at least 1`);
      out.maxTokens[tier] = n;
    } else if (key === 'refuse') {
      for (const t of value.split(',').map((s) => s.trim()).filter(Boolean)) {
        if (!isTier(t)) throw new Error(`--policy refuse: unknown tier '${t}'; tiers: ${TIERS.join(', ')}`);
        out.refuse.add(t);
      }
    } else if (key === 'refusal') {
      if (!value.trim()) throw new Error('--policy refusal: the refusal text is empty');
      out.refusal = value;
    } else if (key === 'fixed_budget') {
      out.fixedBudget = nonNegInt(key, value);
    } else if (key === 'system_prompt') {
      out.systemPrompt = value;
    } else if (key === 'context_turns') {
      const n = nonNegInt(key, value);
      if (n < 1 || n > MAX_CONTEXT_TURNS) throw new Error(`--policy context_turns: expected 1 to ${MAX_CONTEXT_TURNS} user messages, got ${n}`);
      out.contextTurns = n;
    } else if (key === 'unknown_context' || key === 'long_prompt') {
      const t = value.trim();
      if (!isTier(t)) throw new Error(`--policy ${key}: expected a tier (${TIERS.join(', ')}), got ${JSON.stringify(value)}`);
      if (key === 'unknown_context') out.unknownContext = t;
      else out.longPrompt = t;
    } else {
      throw new Error(
        `--policy: unknown key '${key}'; known: ${[...ALLOCATOR_KEYS].join(', ')}, max_tokens.<tier>, refuse, refusal, fixed_budget, system_prompt, context_turns, unknown_context, long_prompt`,
      );
    }
  }
  // the allocator's own ranges (thresholds in [0, 1], whole budgets), checked before the model loads
  parsePolicy(out.allocator, '--policy');
  return out;
}
