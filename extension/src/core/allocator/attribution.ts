// Occlusion attribution: drop each word of the prompt in turn, rescore every variant in one
// batched call, and report how much the risk fell (positive delta = the word pushes risk up).
// Drivers are ranked by the change in log-odds: on a prompt the model is sure of (risk 0.999)
// every word moves the probability by a fraction of a point, but the log-odds still tell which
// words carry the decision.
// Only words the model actually reads (inside maxLength) are occluded, capped at maxWords.

export interface WordSpan {
  word: string;
  /** UTF-16 offsets into the prompt */
  start: number;
  end: number;
}

export interface Attribution extends WordSpan {
  /** base risk minus risk without this word */
  delta: number;
  /** base ambiguity minus ambiguity without this word */
  ambiguityDelta: number;
  /** log-odds of risk minus log-odds without this word (what drivers are ranked by) */
  logitDelta: number;
}

const EPS = 1e-7;
/** log(p / (1 - p)), with p kept inside (0, 1) so saturated scores stay finite. */
export function logit(p: number): number {
  const q = Math.min(1 - EPS, Math.max(EPS, Number.isFinite(p) ? p : 0.5));
  return Math.log(q / (1 - q));
}

export function splitWords(text: string): WordSpan[] {
  const out: WordSpan[] = [];
  for (const m of text.matchAll(/\S+/g)) out.push({ word: m[0], start: m.index!, end: m.index! + m[0].length });
  return out;
}

export interface RiskScorer {
  score(texts: string[]): Promise<Array<{ risk: number; ambiguity: number }>>;
}

/**
 * Scores `text` and every one-word-removed variant in one batch. `readChars` limits occlusion to
 * the part of the prompt the model reads (words past truncation cannot move the score).
 */
export async function occlusion(
  scorer: RiskScorer,
  text: string,
  opts: { maxWords?: number; readChars?: number } = {},
): Promise<{ risk: number; ambiguity: number; words: Attribution[]; occludedAll: boolean }> {
  const maxWords = opts.maxWords ?? 128;
  const all = splitWords(text);
  const readable = opts.readChars === undefined ? all : all.filter((w) => w.start < opts.readChars!);
  const words = readable.slice(0, maxWords);
  const variants = words.map((w) => text.slice(0, w.start) + text.slice(w.end));
  const scores = await scorer.score([text, ...variants]);
  const base = scores[0]!;
  return {
    risk: base.risk,
    ambiguity: base.ambiguity,
    occludedAll: words.length === all.length,
    words: words.map((w, i) => ({
      ...w,
      delta: base.risk - scores[i + 1]!.risk,
      ambiguityDelta: base.ambiguity - scores[i + 1]!.ambiguity,
      logitDelta: logit(base.risk) - logit(scores[i + 1]!.risk),
    })),
  };
}

/** The words that move the risk most (in log-odds), strongest first. */
export function topDrivers(words: Attribution[], n = 8): Attribution[] {
  return [...words].sort((a, b) => Math.abs(b.logitDelta) - Math.abs(a.logitDelta)).slice(0, n);
}
