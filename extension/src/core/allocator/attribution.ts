// Occlusion attribution: drop each word of the prompt in turn, rescore every variant in one
// batched call, and report how much the risk fell (positive delta = the word pushes risk up).
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
    })),
  };
}

/** The words that move the risk most, strongest first. */
export function topDrivers(words: Attribution[], n = 8): Attribution[] {
  return [...words].sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta)).slice(0, n);
}
