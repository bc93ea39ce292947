// One budget everywhere: the budget that training would assign a prompt, as the runtime's
// prompt_sets.assign_budgets does it (the recipe's `safety:` budget source, per-label defaults
// and max_budget clip, the recipe's `allocator:` policy), so inline hints and the inspector show
// what the dashboard will show, and say which settings produced it. Mirrored from
// runtime/conscience/prompt_sets.py and recipe.py (SafetyConfig); tested against them
// (extension/test/allocator/training.test.ts runs the Python side).
import { dirname, join, resolve } from 'node:path';
import { deref, getPair, lineOf, parseYaml, toPlain, type YNode } from '../recipe/yaml';
import { decide, FloatLiteral, isBudgetKey, type Decision, type Policy } from './policy';

export type BudgetSource = 'auto' | 'dataset' | 'allocator' | 'label';

/** The recipe settings that decide a training budget (defaults: runtime/conscience/recipe.py SafetyConfig). */
export interface BudgetSettings {
  /** Where they come from ("recipes/demo/tiny-cpu.yaml"), or null for the runtime's defaults. */
  recipe: string | null;
  budgetSource: BudgetSource;
  budgetHarmful: number;
  budgetBorderline: number;
  budgetBenign: number;
  maxBudget: number;
  /** `allocator.enabled` (default true). */
  allocatorEnabled: boolean;
  /** The recipe's `allocator:` section (policy overrides), if any. */
  allocator: Record<string, unknown> | undefined;
  /** `dataset_name`, to match a prompt set with the recipe that trains on it. */
  dataset: string | undefined;
}

export const RUNTIME_DEFAULTS: BudgetSettings = {
  recipe: null, budgetSource: 'auto', budgetHarmful: 48, budgetBorderline: 32, budgetBenign: 0, maxBudget: 1024,
  allocatorEnabled: true, allocator: undefined, dataset: undefined,
};

/**
 * A recipe's `allocator:` section (parsed with the recipe reader's PyYAML rules: `1e2` is a
 * string there, as in PyYAML), with each number written as a float (`768.0`) a FloatLiteral, so
 * parsePolicy refuses a float budget as the trainer (AllocatorConfig) does and the validator
 * reports (CC101). Undefined when the recipe has no mapping there.
 */
export function recipeAllocatorSection(root: YNode | undefined): Record<string, unknown> | undefined {
  const r = deref(root);
  const sec = r && r.kind === 'map' ? deref(getPair(r, 'allocator')?.value) : undefined;
  if (!sec || sec.kind !== 'map') return undefined;
  let plain: unknown;
  try {
    plain = toPlain(sec);
  } catch {
    return undefined;
  }
  const out = { ...(plain as Record<string, unknown>) };
  for (const p of sec.items) {
    const k = deref(p.key);
    const v = deref(p.value);
    if (!k || k.kind !== 'scalar') continue;
    const key = String(k.value);
    // the last of a duplicated key is the value (getPair, toPlain), so only its tag counts
    if (getPair(sec, k.text) !== p) continue;
    if (v && v.kind === 'scalar' && v.tag === 'float' && typeof v.value === 'number') out[key] = new FloatLiteral(v.value, v.text);
  }
  return out;
}

/**
 * The budgets of a recipe's `allocator:` section written as floats (`budget_deep: 768.0`), with
 * their 1-based lines: PyYAML reads a float there, which the trainer refuses and the validator
 * reports (CC101). The gateway's --recipe refuses them at load naming FILE:LINE.
 */
export function allocatorFloatBudgets(text: string): Array<{ key: string; value: FloatLiteral; line: number }> {
  const root = deref(parseYaml(text).root);
  const sec = root && root.kind === 'map' ? deref(getPair(root, 'allocator')?.value) : undefined;
  if (!sec || sec.kind !== 'map') return [];
  const out: Array<{ key: string; value: FloatLiteral; line: number }> = [];
  for (const p of sec.items) {
    const k = deref(p.key);
    const v = deref(p.value);
    if (!k || k.kind !== 'scalar' || !isBudgetKey(k.text) || getPair(sec, k.text) !== p) continue;
    if (v && v.kind === 'scalar' && v.tag === 'float' && typeof v.value === 'number') {
      out.push({ key: k.text, value: new FloatLiteral(v.value, v.text), line: lineOf(text, p.value.start) });
    }
  }
  return out;
}

const int = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : d);

/** The budget settings of a recipe's text (unset or invalid values take the runtime's defaults; the validator reports them). */
export function budgetSettings(text: string, recipe: string): BudgetSettings {
  const parsed = parseYaml(text);
  let plain: unknown;
  try {
    plain = parsed.root ? toPlain(parsed.root) : undefined;
  } catch {
    plain = undefined;
  }
  const r = plain && typeof plain === 'object' && !Array.isArray(plain) ? (plain as Record<string, unknown>) : {};
  const s = r.safety && typeof r.safety === 'object' && !Array.isArray(r.safety) ? (r.safety as Record<string, unknown>) : {};
  const a = recipeAllocatorSection(parsed.root);
  const source = typeof s.budget_source === 'string' && ['auto', 'dataset', 'allocator', 'label'].includes(s.budget_source) ? (s.budget_source as BudgetSource) : 'auto';
  const enabled = a?.enabled !== false;
  if (a) delete a.enabled;
  return {
    recipe,
    budgetSource: source,
    budgetHarmful: int(s.budget_harmful, RUNTIME_DEFAULTS.budgetHarmful),
    budgetBorderline: int(s.budget_borderline, RUNTIME_DEFAULTS.budgetBorderline),
    budgetBenign: int(s.budget_benign, RUNTIME_DEFAULTS.budgetBenign),
    maxBudget: int(s.max_budget, RUNTIME_DEFAULTS.maxBudget),
    allocatorEnabled: enabled,
    allocator: a && Object.keys(a).length ? a : undefined,
    dataset: typeof r.dataset_name === 'string' ? r.dataset_name : undefined,
  };
}

export interface TrainingBudget {
  /** Tokens training would give the prompt. */
  budget: number;
  /** Where it came from. */
  from: 'dataset' | 'allocator' | 'label default';
  /** The value before the max_budget clip, when the clip changed it. */
  clippedFrom?: number;
  /** The allocator's decision (tier, table row), when it scored the prompt. */
  decision?: Decision;
  /** Which score decided the tier. */
  driver?: 'risk' | 'ambiguity' | 'script' | 'both low';
  /** The settings that produced it, in words ("recipes/x.yaml: safety.max_budget 16 clipped 512"). */
  why: string;
}

/** The score that decided the allocator's tier (the first matching row of the policy table). */
export function driverOf(d: Decision): 'risk' | 'ambiguity' | 'script' | 'both low' {
  return d.tier === 'none' ? 'both low' : d.reason.startsWith('ambiguity') ? 'ambiguity' : d.reason.startsWith('risk') ? 'risk' : 'script';
}

/**
 * The budget training assigns one prompt set row: assign_budgets' order (a row budget under
 * `auto`/`dataset`, the allocator under `auto`/`allocator`, else the label's default), clipped to
 * [0, max_budget]. `scores` are the allocator's for this prompt (null when it is off).
 */
export function trainingBudget(
  row: { budget?: number | null; label?: string | null },
  scores: { risk: number; ambiguity: number; unfamiliar?: boolean } | null,
  policy: Policy,
  s: BudgetSettings,
): TrainingBudget {
  const where = s.recipe ?? 'runtime defaults (no recipe trains on this prompt set)';
  const clip = (v: number) => Math.max(0, Math.min(s.maxBudget, Math.round(v)));
  const done = (raw: number, from: TrainingBudget['from'], why: string, decision?: Decision): TrainingBudget => {
    const budget = clip(raw);
    const clipped = budget !== raw;
    return {
      budget, from, decision, driver: decision ? driverOf(decision) : undefined, ...(clipped ? { clippedFrom: raw } : {}),
      why: `${where}: ${why}${clipped ? `, clipped ${raw} → ${budget} by safety.max_budget ${s.maxBudget}` : ''}`,
    };
  };
  const hasOwn = typeof row.budget === 'number' && Number.isFinite(row.budget);
  if (hasOwn && (s.budgetSource === 'auto' || s.budgetSource === 'dataset')) return done(row.budget!, 'dataset', `the row's own budget (safety.budget_source ${s.budgetSource})`);
  const useAllocator = s.allocatorEnabled && scores && (s.budgetSource === 'allocator' || s.budgetSource === 'auto');
  if (useAllocator) {
    const d = decide(scores.risk, scores.ambiguity, policy, scores.unfamiliar ?? false);
    return done(d.budget, 'allocator', `allocator tier ${d.tier}${s.allocator ? ` (policy: the recipe's allocator: section)` : ''}, safety.budget_source ${s.budgetSource}`, d);
  }
  const label = row.label === 'harmful' || row.label === 'benign' || row.label === 'borderline' ? row.label : 'borderline';
  const v = label === 'harmful' ? s.budgetHarmful : label === 'benign' ? s.budgetBenign : s.budgetBorderline;
  const because = !s.allocatorEnabled ? 'allocator.enabled false' : s.budgetSource === 'label' || s.budgetSource === 'dataset' ? `safety.budget_source ${s.budgetSource}` : 'the allocator did not score it';
  return done(v, 'label default', `safety.budget_${label} (${because}${row.label ? '' : '; no label: borderline'})`);
}

/** "risk 12% · ambiguity 71%": both scores against the thresholds that decide the tier, for the inspector. */
export function tierExplanation(risk: number, ambiguity: number, p: Policy): string {
  const pc = (x: number) => `${Math.round(x * 100)}%`;
  const cmp = (x: number, t: number) => (x >= t ? '≥' : '<');
  return `ambiguity ${pc(ambiguity)} ${cmp(ambiguity, p.ambiguity_deep)} ${p.ambiguity_deep} (deep) and ${cmp(ambiguity, p.ambiguity_standard)} ${p.ambiguity_standard} (standard); ` +
    `risk ${pc(risk)} ${cmp(risk, p.risk_harmful)} ${p.risk_harmful} (brief) and ${cmp(risk, p.risk_standard)} ${p.risk_standard} (standard)`;
}

/**
 * "ambiguity 71% → deep · 16 tok (clipped)": the inline hint, naming the driver. Kept within
 * VS Code's inlay hint length (editor.inlayHints.maximumLength, 43): the value before the clip
 * and the settings are in the tooltip (TrainingBudget.why).
 */
export function trainingHint(t: TrainingBudget, scores: { risk: number; ambiguity: number }, truncated = false): string {
  const pc = (x: number) => `${Math.round(x * 100)}%`;
  const tail = `${t.budget} tok${t.clippedFrom !== undefined ? ' (clipped)' : ''}${truncated ? ' · truncated' : ''}`;
  if (!t.decision) {
    const full = `${t.from === 'dataset' ? 'row budget' : 'label default'} · ${tail}`;
    return full.length <= HINT_MAX_LENGTH ? full : tail;
  }
  const tier = t.decision.tier;
  const lead = t.driver === 'ambiguity' ? `ambiguity ${pc(scores.ambiguity)} → ${tier}` : t.driver === 'risk' ? `risk ${pc(scores.risk)} → ${tier}`
    : t.driver === 'script' ? `unfamiliar script → ${tier}` : `risk ${pc(scores.risk)}, ambiguity ${pc(scores.ambiguity)} → ${tier}`;
  // VS Code cuts a longer hint off with "…" (editor.inlayHints.maximumLength): the score that
  // drove the tier goes first, the tier and budget stay (the tooltip has all of it)
  const full = `${lead} · ${tail}`;
  return full.length <= HINT_MAX_LENGTH ? full : `${tier} · ${tail}`;
}

/** VS Code's default editor.inlayHints.maximumLength: longer hints are cut off with "…". */
export const HINT_MAX_LENGTH = 43;

/**
 * The files a recipe's `dataset_name` can name, as absolute paths: relative to the recipe's
 * folder or the workspace; `conscience/x` is the runtime's bundled x.jsonl, the workspace's own
 * runtime/ where it has one (as in this repository), else the one the extension ships and
 * launches (`extension`: the extension's folder).
 */
export function datasetFiles(dataset: string, recipe: string, workspace: string, extension: string): string[] {
  const files = [resolve(workspace, dirname(recipe), dataset), resolve(workspace, dataset)];
  const bundled = /^conscience\/([A-Za-z0-9_-]+)$/.exec(dataset);
  if (bundled) for (const base of [workspace, extension]) files.push(join(base, 'runtime', 'conscience', 'data', `${bundled[1]}.jsonl`));
  return files;
}
