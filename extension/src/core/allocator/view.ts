// Explanation (core) -> InspectorView (webview protocol): the one place that shapes what the
// inspector shows, so the editor adapter stays thin and the shape is unit-testable.
import type { InspectorView } from '../protocol/inspector';
import type { Explanation } from './index';

const clamp01 = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

export function toInspectorView(e: Explanation, modelDir: string, maxTokens: number): InspectorView {
  return {
    prompt: e.prompt,
    risk: clamp01(e.risk),
    ambiguity: clamp01(e.ambiguity),
    tier: e.tier,
    budget: e.budget,
    reason: e.reason,
    truncated: e.truncated,
    unfamiliar: e.unfamiliar,
    tokens: e.tokens,
    maxTokens,
    categories: Object.entries(e.categories)
      .map(([name, p]) => ({ name, p: clamp01(p) }))
      .sort((a, b) => b.p - a.p),
    thresholds: {
      risk_harmful: e.policy.risk_harmful,
      ambiguity_deep: e.policy.ambiguity_deep,
      risk_standard: e.policy.risk_standard,
      ambiguity_standard: e.policy.ambiguity_standard,
    },
    rows: e.rows,
    words: e.words.map((w) => ({ word: w.word, start: w.start, end: w.end, delta: Math.max(-1, Math.min(1, w.delta)), logitDelta: Math.max(-40, Math.min(40, w.logitDelta)) })),
    occludedAll: e.occludedAll,
    modelVersion: e.modelVersion,
    modelDir,
  };
}

