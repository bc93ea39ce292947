/**
 * What the gateway remembers of the Responses API conversations it scored, so that a
 * continuation (`previous_response_id`: the upstream holds the history, the request carries
 * only the new items) is scored on the conversation and not on its new items alone. A request
 * that sent only tool outputs after a `brief` (clearly harmful) answer was forwarded uncapped;
 * one whose new message is "go on" was scored on that message alone.
 *
 * For each response id it answered, the conversation's last `context_turns` scored user turns
 * (tier, budget, risk: what the strictest of them is chosen by), oldest first. Bounded twice:
 * by ids and by the turns they hold together (64 turns an id at most), the least recently used
 * id forgotten first. The gateway's own refusals are held apart, so that requests it refuses
 * without calling the upstream cannot push out the ids of answers the upstream stored.
 * A stored conversation (OpenAI's `conversation`) is held the same way, by its id, its window
 * moving on with each request in it. Ids past 128 characters are held by their SHA-256.
 * vscode-free, no I/O.
 */
import { createHash } from 'node:crypto';
import type { Assessment } from '../allocator';

/** What is kept of a scored turn: what the strictest is chosen by and what the request is handled by. */
export type Turn = Pick<Assessment, 'tier' | 'budget' | 'risk'>;

/** the most upstream response ids remembered */
export const CONTINUATIONS_LIMIT = 100_000;
/** the most turns they hold together (about 60 bytes each) */
export const CONTINUATION_TURNS_LIMIT = 400_000;
/** the most stored conversations remembered (apart from the response ids; 4 turns each on average) */
export const CONVERSATIONS_LIMIT = 100_000;
/** the most of the gateway's own refusal ids remembered */
export const REFUSALS_LIMIT = 20_000;
/** a response id longer than this is held by its SHA-256 (ids are tens of characters; a client may choose a longer one) */
const HASHED_PAST = 128;
/** short ids as they are, long ones by hash; the prefixes keep the two apart */
const key = (id: string): string => (id.length <= HASHED_PAST ? `=${id}` : `#${createHash('sha256').update(id).digest('hex')}`);

/** An LRU of id -> turns, bounded by ids and by turns held. */
class TurnsLru {
  private readonly ids = new Map<string, readonly Turn[]>();
  private held = 0;
  constructor(private readonly maxIds: number, private readonly maxTurns: number) {}

  get(id: string): readonly Turn[] | undefined {
    const w = this.ids.get(id);
    if (w !== undefined) {
      this.ids.delete(id);
      this.ids.set(id, w);
    }
    return w;
  }

  set(id: string, w: readonly Turn[]): void {
    const old = this.ids.get(id);
    if (old !== undefined) {
      this.held -= old.length;
      this.ids.delete(id);
    }
    this.ids.set(id, w);
    this.held += w.length;
    while (this.ids.size > this.maxIds || this.held > this.maxTurns) {
      const [first, turns] = this.ids.entries().next().value as [string, readonly Turn[]];
      this.ids.delete(first);
      this.held -= turns.length;
    }
  }

  get size(): number { return this.ids.size; }
  get turns(): number { return this.held; }
}

export class Continuations {
  private readonly answered: TurnsLru;
  private readonly refused: TurnsLru;
  /** stored conversations, apart: many conversations cannot push out the response ids */
  private readonly conversations: TurnsLru;
  /**
   * `stricter(a, b)`: whether turn a is handled more strictly than b (the gateway's order:
   * a refused tier, then `brief`, then the larger budget, then the higher risk)
   */
  constructor(private readonly stricter: (a: Turn, b: Turn) => boolean,
    limits: { ids?: number; turns?: number; refusals?: number; conversations?: number } = {}) {
    this.answered = new TurnsLru(limits.ids ?? CONTINUATIONS_LIMIT, limits.turns ?? CONTINUATION_TURNS_LIMIT);
    const refusals = limits.refusals ?? REFUSALS_LIMIT;
    this.refused = new TurnsLru(refusals, refusals * 64);
    this.conversations = new TurnsLru(limits.conversations ?? CONVERSATIONS_LIMIT, (limits.conversations ?? CONVERSATIONS_LIMIT) * 4);
  }

  /**
   * Remembers the turns that answered `id` (`refusal`: the gateway's own answer). An id seen
   * again (a client may choose it: vLLM's `request_id`) keeps the stricter of its two windows,
   * so a later benign request cannot wash out a harmful conversation under the same id.
   */
  remember(id: string, window: readonly Turn[], refusal = false): void {
    if (id === '' || window.length === 0) return;
    const slim = window.map(({ tier, budget, risk }) => ({ tier, budget, risk }));
    const store = refusal ? this.refused : this.answered;
    const k = key(id);
    const old = store.get(k);
    store.set(k, old !== undefined && !this.stricter(this.strictest(slim), this.strictest(old)) ? old : slim);
  }

  /** the turns remembered for `id`, undefined when the gateway did not answer it (or forgot it) */
  recall(id: string): readonly Turn[] | undefined {
    const k = key(id);
    return this.answered.get(k) ?? this.refused.get(k);
  }

  /**
   * Remembers a stored conversation's (OpenAI's `conversation`) last turns after a request in it:
   * the window moves on with the conversation (a later request replaces it, as a chat request's
   * last messages do). Called once the upstream answered the request (it stored the turn).
   * Held apart from the response ids, so that many conversations cannot push those out.
   */
  rememberConversation(id: string, window: readonly Turn[]): void {
    if (id === '' || window.length === 0) return;
    this.conversations.set(key(id), window.map(({ tier, budget, risk }) => ({ tier, budget, risk })));
  }

  /** the turns remembered for a conversation, undefined when no request in it came through this gateway (or it was forgotten) */
  recallConversation(id: string): readonly Turn[] | undefined {
    return this.conversations.get(key(id));
  }

  /** ids and turns held (upstream answers, then refusals, then conversations) */
  get size(): { ids: number; turns: number; refusals: number; conversations: number } {
    return { ids: this.answered.size, turns: this.answered.turns, refusals: this.refused.size, conversations: this.conversations.size };
  }

  /** the strictest turn of a window (windows held are never empty: remember keeps none) */
  private strictest(w: readonly Turn[]): Turn {
    return w.reduce((best, x) => (this.stricter(x, best) ? x : best));
  }
}
