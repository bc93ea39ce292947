/**
 * Reading an upstream's answer as it passes through the gateway: each choice's text is split
 * into safety block and answer (core/serve/split.ts, the rewards' own rule) and the completion
 * tokens are counted. Three shapes: chat completions and completions (`choices`, streamed as
 * SSE chunks of `choices` deltas), and the Responses API (`output` items, streamed as typed
 * events). vscode-free, no I/O.
 */
import type { PromptTemplateSpec } from '../template';
import { contentText } from './messages';
import { SafetySplitter, safetyTokens, splitWhole, type StreamSplit } from './split';

/** an answer larger than this is not parsed (it is still passed through whole) */
const PARSE_LIMIT = 8 * 1024 * 1024;
/** the most choices a request may ask for (OpenAI's limit on `n`), and the most split and counted per answer */
export const MAX_CHOICES = 128;
/** the most distinct choice indices past MAX_CHOICES a stream's accounting tells apart (memory bound) */
const DROPPED_INDICES = 65_536;

/** What reads an answer: its bytes as they pass (decoded), then its accounting (null: not readable). */
export interface AnswerParser {
  push(c: Buffer): void;
  end(): AnswerStats | null;
}

/** One choice of an answer: its split and its share of the completion tokens. */
export interface ChoiceStats { index: number; split: StreamSplit; completionTokens: number; safetyTokens: number }
/**
 * An answer's accounting: per choice (the first MAX_CHOICES), and for the request
 * (`completionTokens` is usage's own figure when it came, else the sum over every choice;
 * `safetyTokens` the sum over the choices kept). `dropped`: choices past MAX_CHOICES, not split.
 */
export interface AnswerStats { choices: ChoiceStats[]; dropped: number; completionTokens: number; safetyTokens: number; tokenSource: 'usage' | 'deltas' | 'chars' }
/** A choice as read: its split, its content characters, and its own count (content deltas, or characters / 4). */
interface ChoicePart { index: number; split: StreamSplit; chars: number; own: number }
/** The choices past MAX_CHOICES: how many, their content characters and their own counts. */
interface Dropped { count: number; chars: number; own: number }

/** `total` shared out in proportion to `weights` (largest remainder: the shares sum to `total`; equal shares when every weight is 0). */
export function shareOut(total: number, weights: number[]): number[] {
  if (weights.length === 0) return [];
  const sum = weights.reduce((x, y) => x + y, 0);
  const exact = weights.map((w) => (sum > 0 ? (total * w) / sum : total / weights.length));
  const out = exact.map(Math.floor);
  let left = total - out.reduce((x, y) => x + y, 0);
  const order = exact.map((x, i) => [x - out[i]!, i] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) out[order[k]![1]]!++;
  return out;
}

/** The upstream's usage.completion_tokens when it is a count (a negative or fractional figure is not used). */
const usageCount = (u: unknown): number | null => (typeof u === 'number' && Number.isInteger(u) && u >= 0 ? u : null);

/**
 * The accounting of an answer's choices. usage.completion_tokens counts every choice together:
 * it is shared among them by the characters of their safety text and answer (as each choice's
 * tokens are then shared between the two); without usage each choice's own count (`own`:
 * content deltas, or characters / 4) is used.
 */
function account(parts: ChoicePart[], usage: number | null, fallback: 'deltas' | 'chars', dropped: Dropped): AnswerStats {
  parts.sort((p, q) => p.index - q.index);
  // usage counts the dropped choices too: the kept ones share only their part of it (by content
  // characters, or by number when there are none)
  let kept = usage;
  if (usage !== null && dropped.count > 0) {
    const keptChars = parts.reduce((x, p) => x + p.chars, 0);
    const total = keptChars + dropped.chars;
    kept = Math.round(total > 0 ? (usage * keptChars) / total : (usage * parts.length) / (parts.length + dropped.count));
  }
  const tokens = kept !== null ? shareOut(kept, parts.map((p) => p.split.safetyChars + p.split.answerChars)) : parts.map((p) => p.own);
  const choices = parts.map((p, i) => ({ index: p.index, split: p.split, completionTokens: tokens[i]!, safetyTokens: safetyTokens(p.split, tokens[i]!) }));
  return {
    choices,
    dropped: dropped.count,
    completionTokens: usage ?? tokens.reduce((x, y) => x + y, 0) + dropped.own,
    safetyTokens: choices.reduce((x, c) => x + c.safetyTokens, 0),
    tokenSource: usage !== null ? 'usage' : fallback,
  };
}

/**
 * A choice's `index`: absent or null is its position in `choices` (a single-choice server may
 * leave it out: 0); anything but a whole number is not a choice.
 */
const choiceIndex = (i: unknown, pos: number): number | null => (i === undefined || i === null ? pos : typeof i === 'number' && Number.isInteger(i) && i >= 0 ? i : null);

/** A choice's text: a chat completion's message content (a stream's delta content), a completion's text. */
export type ChoiceShape = 'chat' | 'completion';
function choiceText(shape: ChoiceShape, c: unknown, stream: boolean): string {
  if (!c || typeof c !== 'object') return '';
  const o = c as { text?: unknown; message?: { content?: unknown } | null; delta?: { content?: unknown } | null };
  if (shape === 'completion') return typeof o.text === 'string' ? o.text : '';
  if (stream) return typeof o.delta?.content === 'string' ? o.delta.content : '';
  return contentText(o.message?.content) ?? '';
}

/** Collects a JSON chat.completion or text_completion (bounded) and splits each of its choices. */
/** A JSON answer's bytes as they pass, kept up to PARSE_LIMIT; parsed at its end (undefined: too large). */
class JsonBody {
  private chunks: Buffer[] = [];
  private size = 0;
  push(c: Buffer): void {
    this.size += c.length;
    if (this.size <= PARSE_LIMIT) this.chunks.push(c);
  }
  /** throws on bad JSON */
  parse(): unknown {
    return this.size > PARSE_LIMIT ? undefined : JSON.parse(Buffer.concat(this.chunks).toString('utf8'));
  }
}

export class JsonAnswer implements AnswerParser {
  private readonly body = new JsonBody();
  constructor(private readonly t: PromptTemplateSpec, private readonly shape: ChoiceShape = 'chat') {}
  push(c: Buffer): void { this.body.push(c); }
  end(): AnswerStats | null {
    try {
      const parsed = this.body.parse();
      if (parsed === undefined) return null;
      const j = parsed as { choices?: unknown; usage?: { completion_tokens?: unknown } | null };
      const parts: ChoicePart[] = [];
      const dropped: Dropped = { count: 0, chars: 0, own: 0 };
      const seen = new Set<number>();
      for (const [pos, c] of (Array.isArray(j.choices) ? j.choices as Array<{ index?: unknown } | null> : []).entries()) {
        const index = choiceIndex(c?.index, pos);
        if (index === null || seen.has(index)) continue;
        seen.add(index);
        const text = choiceText(this.shape, c, false);
        if (parts.length >= MAX_CHOICES) {
          dropped.count++;
          dropped.chars += text.length;
          dropped.own += Math.ceil(text.length / 4);
        } else parts.push({ index, split: splitWhole(this.t, text), chars: text.length, own: Math.ceil(text.length / 4) });
      }
      return account(parts, usageCount(j.usage?.completion_tokens), 'chars', dropped);
    } catch {
      return null;
    }
  }
}

/** Server-sent events as they pass: each event's joined `data:` lines, and its `event:` name. */
class SseReader {
  private readonly decoder = new TextDecoder('utf-8');
  private line = '';
  private data: string[] = [];
  private event = '';
  broken = false;
  constructor(private readonly onEvent: (data: string, event: string) => void) {}
  push(c: Buffer): void {
    if (this.broken) return;
    const text = this.line + this.decoder.decode(c, { stream: true });
    const lines = text.split('\n');
    this.line = lines.pop()!;
    if (this.line.length > PARSE_LIMIT) { this.broken = true; return; }
    for (const raw of lines) this.onLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  }
  private onLine(l: string): void {
    if (l === '') { this.dispatch(); return; }
    if (l.startsWith('data:')) this.data.push(l.slice(l[5] === ' ' ? 6 : 5));
    else if (l.startsWith('event:')) this.event = l.slice(l[6] === ' ' ? 7 : 6);
  }
  private dispatch(): void {
    const d = this.data.join('\n');
    const e = this.event;
    this.data = [];
    this.event = '';
    if (d) this.onEvent(d, e);
  }
  /** the stream's end: a last event without its blank line (a server that closes early) is read too */
  end(): void {
    if (this.broken) return;
    if (this.line) { this.onLine(this.line); this.line = ''; }
    this.dispatch();
  }
}

/** Reads an SSE chat or completion stream as it passes: each choice's deltas go through its own incremental splitter. */
export class SseAnswer implements AnswerParser {
  private readonly reader = new SseReader((d) => this.dispatch(d));
  /** per choice index (at most MAX_CHOICES) */
  private readonly choices = new Map<number, { splitter: SafetySplitter; deltas: number; chars: number }>();
  /** the indices of choices past MAX_CHOICES (counted up to DROPPED_INDICES), their content characters and deltas */
  private readonly droppedIndices = new Set<number>();
  private readonly dropped: Dropped = { count: 0, chars: 0, own: 0 };
  private usage: number | null = null;
  /** `keep`: characters of each part held for the log (the counts are exact whatever it is) */
  constructor(private readonly t: PromptTemplateSpec, private readonly keep: number, private readonly shape: ChoiceShape = 'chat') {}

  push(c: Buffer): void { this.reader.push(c); }

  private dispatch(d: string): void {
    if (d === '[DONE]') return;
    try {
      const j = JSON.parse(d) as { choices?: unknown; usage?: { completion_tokens?: unknown } | null };
      // with n > 1 a chunk carries a delta of one choice (or of several), each named by its index
      for (const [pos, c] of (Array.isArray(j.choices) ? j.choices as Array<{ index?: unknown } | null> : []).entries()) {
        const index = choiceIndex(c?.index, pos);
        if (index === null) continue;
        const text = choiceText(this.shape, c, true);
        let ch = this.choices.get(index);
        if (!ch) {
          if (this.choices.size >= MAX_CHOICES) {
            if (!this.droppedIndices.has(index) && this.droppedIndices.size < DROPPED_INDICES) { this.droppedIndices.add(index); this.dropped.count++; }
            if (text) { this.dropped.chars += text.length; this.dropped.own++; }
            continue;
          }
          this.choices.set(index, ch = { splitter: new SafetySplitter(this.t, this.keep), deltas: 0, chars: 0 });
        }
        if (text) { ch.splitter.feed(text); ch.deltas++; ch.chars += text.length; }
      }
      const u = usageCount(j.usage?.completion_tokens);
      if (u !== null) this.usage = u;
    } catch { /* a non-JSON event: not ours to judge */ }
  }

  end(): AnswerStats | null {
    this.reader.end();
    if (this.reader.broken) return null;
    const parts = [...this.choices].map(([index, ch]) => ({ index, split: ch.splitter.end(), chars: ch.chars, own: ch.deltas }));
    return account(parts, this.usage, 'deltas', this.dropped);
  }
}

/** A Responses API answer's text: its `message` output items' `output_text` parts, joined. */
function outputText(output: unknown): string {
  const parts: string[] = [];
  for (const item of Array.isArray(output) ? output : []) {
    if (!item || typeof item !== 'object' || (item as { type?: unknown }).type !== 'message') continue;
    const content = (item as { content?: unknown }).content;
    for (const p of Array.isArray(content) ? content : []) {
      if (p && typeof p === 'object' && (p as { type?: unknown }).type === 'output_text' && typeof (p as { text?: unknown }).text === 'string') parts.push((p as { text: string }).text);
    }
  }
  return parts.join('');
}

/** Collects a JSON Responses API `response` (bounded) and splits its output text: one choice. */
export class ResponseJsonAnswer implements AnswerParser {
  private readonly body = new JsonBody();
  /** the answer's first bytes, until its leading `"id"` member is read (the servers write it first) */
  private head = '';
  private idSeen = false;
  /**
   * `seen`: told the response's `id` (a continuation names it as previous_response_id): from
   * the answer's first member as it arrives, else from the parsed whole (an answer too large to
   * parse still tells it when `id` comes first, as vLLM and transformers serve write it)
   */
  constructor(private readonly t: PromptTemplateSpec, private readonly seen?: (id: string) => void) {}
  push(c: Buffer): void {
    if (!this.idSeen && this.seen && this.head.length < 4096) {
      this.head += c.toString('latin1', 0, Math.min(c.length, 4096));
      const m = /^\s*\{\s*"id"\s*:\s*"([^"\\]{1,256})"/.exec(this.head);
      if (m) this.tell(m[1]!);
    }
    this.body.push(c);
  }
  private tell(id: string): void {
    this.idSeen = true;
    this.seen?.(id);
  }
  end(): AnswerStats | null {
    try {
      const parsed = this.body.parse();
      if (parsed === undefined) return null;
      const j = parsed as { id?: unknown; output?: unknown; usage?: { output_tokens?: unknown } | null };
      if (!this.idSeen && typeof j.id === 'string') this.tell(j.id);
      const text = outputText(j.output);
      return account([{ index: 0, split: splitWhole(this.t, text), chars: text.length, own: Math.ceil(text.length / 4) }], usageCount(j.usage?.output_tokens), 'chars', { count: 0, chars: 0, own: 0 });
    } catch {
      return null;
    }
  }
}

/**
 * Reads a Responses API event stream as it passes: the `response.output_text.delta` events'
 * text goes through one incremental splitter; the usage is the last `response.completed` (or
 * `response.incomplete`) event's `response.usage.output_tokens`. An event's type is its JSON
 * `type` (the SSE `event:` line when that is missing). `seen` is told the response's id from
 * the first event that carries it (`response.created`), before the answer ends.
 */
export class ResponseSseAnswer implements AnswerParser {
  private readonly reader = new SseReader((d, e) => this.dispatch(d, e));
  private readonly splitter: SafetySplitter;
  private deltas = 0;
  private chars = 0;
  private usage: number | null = null;
  private idSeen = false;
  constructor(t: PromptTemplateSpec, keep: number, private readonly seen?: (id: string) => void) { this.splitter = new SafetySplitter(t, keep); }

  push(c: Buffer): void { this.reader.push(c); }

  private dispatch(d: string, event: string): void {
    try {
      const j = JSON.parse(d) as { type?: unknown; delta?: unknown; response?: { id?: unknown; usage?: { output_tokens?: unknown } | null } | null };
      const type = typeof j.type === 'string' ? j.type : event;
      if (!this.idSeen && typeof j.response?.id === 'string') {
        this.idSeen = true;
        this.seen?.(j.response.id);
      }
      if (type === 'response.output_text.delta' && typeof j.delta === 'string' && j.delta) {
        this.splitter.feed(j.delta);
        this.deltas++;
        this.chars += j.delta.length;
      } else if (type === 'response.completed' || type === 'response.incomplete') {
        const u = usageCount(j.response?.usage?.output_tokens);
        if (u !== null) this.usage = u;
      }
    } catch { /* a non-JSON event: not ours to judge */ }
  }

  end(): AnswerStats | null {
    this.reader.end();
    if (this.reader.broken) return null;
    return account([{ index: 0, split: this.splitter.end(), chars: this.chars, own: this.deltas }], this.usage, 'deltas', { count: 0, chars: 0, own: 0 });
  }
}
