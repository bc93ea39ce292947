/**
 * Incremental safety-block splitter for streamed answers: fed the content deltas of a stream
 * one by one, it ends with the same (safety, answer) split as `splitCompletion` gives for the
 * whole text (core/template.ts, the rewards' own rule), while holding at most `keep` characters
 * of each part however long the stream runs (the lengths are still counted exactly).
 */
import { PY_SPACE, splitCompletion, type PromptTemplateSpec, type SplitCompletion } from '../template';

type Phase = 'before' | 'safety' | 'answer';

export interface StreamSplit extends SplitCompletion {
  /** characters of the stripped safety text / answer text (exact, even past `keep`) */
  safetyChars: number;
  answerChars: number;
  /** a part was longer than `keep` and only its start is in `safety` / `answer` */
  clipped: boolean;
}

/** a run of whitespace as Python's str.strip() sees it (as splitCompletion strips); compiled once, lastIndex reset per scan */
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');

/** A part being collected: the stripped text's first `keep` chars, exact stripped length. */
class Part {
  private text = '';
  private started = false;
  /** whitespace seen since the last non-space character (counted only once more text follows) */
  private pendingSpace = '';
  private pendingLen = 0;
  length = 0;
  clipped = false;
  constructor(private readonly keep: number) {}

  push(s: string): void {
    // whitespace runs found by one regex scan (not a test per character: streams can be long)
    const space = SPACE_RUN;
    space.lastIndex = 0;
    let i = 0;
    for (let m = space.exec(s); m !== null; m = space.exec(s)) {
      if (m.index > i) this.word(s.slice(i, m.index));
      if (this.started) {
        this.pendingLen += m[0].length;
        if (this.pendingSpace.length < this.keep) this.pendingSpace += m[0].slice(0, this.keep - this.pendingSpace.length);
      }
      i = m.index + m[0].length;
    }
    if (i < s.length) this.word(s.slice(i));
  }

  private word(run: string): void {
    this.append(this.pendingSpace, this.pendingLen);
    this.append(run, run.length);
    this.pendingSpace = '';
    this.pendingLen = 0;
    this.started = true;
  }

  /** `s` is the first characters of a run of `len` (a long space run is held clipped). */
  private append(s: string, len: number): void {
    if (len === 0) return;
    this.length += len;
    const room = this.keep - this.text.length;
    if (room >= len) this.text += s;
    else {
      if (room > 0) this.text += s.slice(0, room);
      this.clipped = true;
    }
  }

  get value(): string { return this.text; }
}

export class SafetySplitter {
  private phase: Phase = 'before';
  /** text not yet classified because it may be the start of a tag */
  private carry = '';
  private readonly before: Part;
  private readonly safety: Part;
  private readonly answer: Part;
  private raw = 0;

  constructor(private readonly t: Pick<PromptTemplateSpec, 'openTag' | 'closeTag'>, private readonly keep = 64 * 1024) {
    this.before = new Part(keep);
    this.safety = new Part(keep);
    this.answer = new Part(keep);
  }

  /** characters fed so far */
  get chars(): number { return this.raw; }

  feed(delta: string): void {
    if (!delta) return;
    this.raw += delta.length;
    let s = this.carry + delta;
    this.carry = '';
    for (;;) {
      if (this.phase === 'answer') { this.answer.push(s); return; }
      const tag = this.phase === 'before' ? this.t.openTag : this.t.closeTag;
      const sink = this.phase === 'before' ? this.before : this.safety;
      const at = s.indexOf(tag);
      if (at >= 0) {
        sink.push(s.slice(0, at));
        s = s.slice(at + tag.length);
        this.phase = this.phase === 'before' ? 'safety' : 'answer';
        continue;
      }
      // hold back the longest suffix that could begin the tag
      let hold = Math.min(tag.length - 1, s.length);
      while (hold > 0 && !tag.startsWith(s.slice(s.length - hold))) hold--;
      sink.push(s.slice(0, s.length - hold));
      this.carry = s.slice(s.length - hold);
      return;
    }
  }

  /** The split of everything fed, as splitCompletion would give for the whole text. */
  end(): StreamSplit {
    const tail = this.carry;
    this.carry = '';
    if (this.phase === 'before') this.before.push(tail);
    else if (this.phase === 'safety') this.safety.push(tail);
    else this.answer.push(tail);
    const clipped = this.before.clipped || this.safety.clipped || this.answer.clipped;
    if (this.phase === 'before') {
      return { safety: '', answer: this.before.value, closed: false, hasBlock: false, safetyChars: 0, answerChars: this.before.length, clipped };
    }
    if (this.phase === 'safety') {
      return { safety: this.safety.value, answer: '', closed: false, hasBlock: true, safetyChars: this.safety.length, answerChars: 0, clipped };
    }
    return {
      safety: this.safety.value,
      answer: this.answer.value,
      closed: true,
      hasBlock: true,
      safetyChars: this.safety.length,
      answerChars: this.answer.length,
      clipped,
    };
  }
}

/** The whole-text split with the lengths the stream splitter reports. */
export function splitWhole(t: Pick<PromptTemplateSpec, 'openTag' | 'closeTag'>, text: string): StreamSplit {
  const s = splitCompletion(t, text);
  return { ...s, safetyChars: s.safety.length, answerChars: s.answer.length, clipped: false };
}

/**
 * Tokens of the safety block, estimated: the answer's completion tokens (the upstream's
 * `usage.completion_tokens`, or the stream's content-delta count, or chars/4) shared out in
 * proportion to the characters of the safety text and the answer text.
 */
export function safetyTokens(split: Pick<StreamSplit, 'safetyChars' | 'answerChars'>, completionTokens: number): number {
  const total = split.safetyChars + split.answerChars;
  if (total <= 0 || completionTokens <= 0) return 0;
  return Math.round((completionTokens * split.safetyChars) / total);
}
