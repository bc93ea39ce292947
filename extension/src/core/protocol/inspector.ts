// The prompt-budget inspector webview's message protocol, declared once (validate.ts): the
// checks validate every message on receipt and the types are inferred from them. Shared by the
// extension host (editor/allocator.ts) and the webview bundle (webview/src/inspector).
import { arr, bool, clip, int, literal, num, obj, optional, protocol, str, type Infer } from './validate';

export const TIERS = ['none', 'brief', 'standard', 'deep'] as const;
export type TierName = (typeof TIERS)[number];
const tier = literal(...TIERS);

/** The longest prompt a message carries (the inspector shows 100,000 characters of it at most). */
export const MAX_PROMPT = 2_000_000;
const unit = num(0, 1);

const word = obj({
  word: str(MAX_PROMPT),
  start: int(0),
  end: int(0),
  /** risk with the word minus risk without it */
  delta: num(-1, 1),
  /** the same in log-odds, which still separates words when the risk is near 0 or 1 */
  logitDelta: num(-40, 40),
});
export type InspectorWord = Infer<typeof word>;

const view = obj({
  prompt: str(MAX_PROMPT),
  risk: unit,
  ambiguity: unit,
  tier,
  budget: int(0),
  reason: str(2000),
  truncated: bool,
  /** written mostly in a script the model did not learn both labels in (core/allocator/unfamiliar.ts) */
  unfamiliar: bool,
  tokens: int(0),
  maxTokens: int(0),
  categories: arr(obj({ name: str(200), p: unit }), 1000),
  /** the policy's thresholds (same keys as the recipe's allocator: section) */
  thresholds: obj({ risk_harmful: unit, ambiguity_deep: unit, risk_standard: unit, ambiguity_standard: unit }),
  /** the decision table in match order; `matched`: the row that decided (at most one) */
  rows: arr(obj({ tier, budget: int(0), rule: str(500), matched: bool }), 16),
  words: arr(word, 10_000),
  occludedAll: bool,
  modelVersion: str(200),
  /** where the model was loaded from */
  modelDir: str(4096),
  /** the budget training would assign (core/allocator/training.ts) and the settings that produced it */
  training: optional(obj({
    budget: int(0),
    from: literal('dataset', 'allocator', 'label default'),
    why: str(4000),
    /** the tier explained by both scores against their thresholds */
    tierWhy: str(2000),
  })),
});
export type InspectorView = Infer<typeof view>;

/**
 * A view cut to what this protocol accepts, so that a long selection still shows its result
 * (the webview refused the whole message, "Ignored a malformed message"): the prompt past
 * MAX_PROMPT characters is cut and ends in "…" (the allocator scores its first tokens only:
 * `truncated` says so), the words past the cut are left out, and each text is cut to its limit.
 */
export function boundInspectorView(v: InspectorView): InspectorView {
  const cut = v.prompt.length > MAX_PROMPT;
  const prompt = clip(v.prompt, MAX_PROMPT);
  // a cut prompt keeps its first MAX_PROMPT - 1 characters
  const words = (cut ? v.words.filter((w) => w.end < MAX_PROMPT) : v.words).slice(0, 10_000);
  return {
    ...v,
    prompt,
    words,
    reason: clip(v.reason, 2000),
    modelVersion: clip(v.modelVersion, 200),
    modelDir: clip(v.modelDir, 4096),
    categories: v.categories.slice(0, 1000).map((c) => ({ ...c, name: clip(c.name, 200) })),
    rows: v.rows.slice(0, 16).map((r) => ({ ...r, rule: clip(r.rule, 500) })),
    ...(v.training ? { training: { ...v.training, why: clip(v.training.why, 4000), tierWhy: clip(v.training.tierWhy, 2000) } } : {}),
  };
}

export const inspectorProtocol = protocol({
  toWebview: {
    loading: { prompt: str(MAX_PROMPT) },
    show: { view },
    error: { message: str(10_000) },
  },
  toExtension: {
    ready: {},
    /** the user edited the prompt in the inspector and asked to score it again */
    rescore: { prompt: str(MAX_PROMPT) },
  },
});

export type ToWebview = Infer<typeof inspectorProtocol.toWebview>;
export type ToExtension = Infer<typeof inspectorProtocol.toExtension>;
export const parseToWebview = inspectorProtocol.parseToWebview;
export const parseToExtension = inspectorProtocol.parseToExtension;
