/**
 * What the gateway remembers of the Responses API conversations it scored, so that a
 * continuation (`previous_response_id`: the upstream holds the history, the request carries
 * only the new items) is scored on the conversation and not on its last item alone. A request
 * that sends only tool outputs after a `brief` (clearly harmful) answer was forwarded uncapped;
 * one whose new message is "go on" was scored on that message alone.
 *
 * For each response id it answered (the upstream's, or the gateway's own refusal), the
 * assessments of the conversation's last `context_turns` scored texts, oldest first. Bounded:
 * the least recently used ids are forgotten first. vscode-free, no I/O.
 */
import type { Assessment } from '../allocator';

/** the most response ids remembered (each holds at most context_turns assessments) */
export const CONTINUATIONS_LIMIT = 20_000;
/** a response id longer than this is not remembered (ids are tens of characters) */
const MAX_ID = 256;

export class Continuations {
  private readonly ids = new Map<string, readonly Assessment[]>();
  constructor(private readonly limit = CONTINUATIONS_LIMIT) {}

  /** remembers the assessments that answered `id` (the last context_turns of them) */
  remember(id: string, window: readonly Assessment[]): void {
    if (id === '' || id.length > MAX_ID || window.length === 0) return;
    this.ids.delete(id);
    this.ids.set(id, window);
    if (this.ids.size > this.limit) this.ids.delete(this.ids.keys().next().value as string);
  }

  /** the assessments remembered for `id`, undefined when the gateway did not answer it (or forgot it) */
  recall(id: string): readonly Assessment[] | undefined {
    const w = this.ids.get(id);
    if (w !== undefined) {
      this.ids.delete(id);
      this.ids.set(id, w);
    }
    return w;
  }

  get size(): number { return this.ids.size; }
}
