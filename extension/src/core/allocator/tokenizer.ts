// BERT WordPiece tokenization for the allocator, read from the tokenizer.json that ships next
// to the model. @huggingface/tokenizers reproduces the Rust fast tokenizer's ids (normalizer:
// lowercase + accent stripping + CJK splitting; WordPiece with [UNK] for words > 100 chars);
// extension/test/allocator/tokenizer.test.ts checks that against Python on tricky strings.
// The library does not truncate, so truncation to `maxLength` tokens (keep the head, like the
// Rust tokenizer on one sequence) and padding to the batch's longest row are done here.
import { Tokenizer } from '@huggingface/tokenizers';

export interface Encoded {
  /** token ids including [CLS] ... [SEP], at most maxLength long */
  ids: number[];
  /** true when the prompt had more tokens than fit and its tail was dropped */
  truncated: boolean;
}

export interface Batch {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  tokenTypeIds: BigInt64Array;
  batchSize: number;
  seqLen: number;
}

/** Characters of prompt text tokenized at first for a long prompt, per token of maxLength. */
export const CHARS_PER_TOKEN_WINDOW = 16;

/**
 * Where BERT's normalizer sees whitespace: \t \n \r and the Unicode White_Space characters that
 * are not control characters (controls such as \v, \f, \x1c-\x1f, \x85 and format characters
 * such as \ufeff are deleted, so they join the letters around them into one word). JavaScript's
 * \s and Python's str.isspace() both differ from this set; cutting only here is what makes a
 * prefix's tokens equal the whole text's.
 */
export const BERT_WHITESPACE = /[\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

// CJK ideographs outside the Basic Multilingual Plane (Extensions B-F and the compatibility
// supplement): BERT's normalizer makes each one a word of its own, but the JavaScript port
// checks one UTF-16 unit at a time and misses these (surrogate pairs), so they are spaced here.
const CJK_ASTRAL = /([\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B920}-\u{2CEAF}\u{2F800}-\u{2FA1F}])/gu;

/**
 * The text as the Rust tokenizer (Python's reference) normalizes it, where the JavaScript port
 * differs: Rust lowercases character by character, so a word-final capital sigma becomes σ,
 * while String.prototype.toLowerCase gives ς (a different token); and the astral CJK above.
 * Both changes are what the Rust normalizer does anyway, so ids stay equal to Python's.
 */
export function matchRustNormalizer(text: string): string {
  let t = text.includes('\u03a3') ? text.replaceAll('\u03a3', '\u03c3') : text;
  if (/[\ud840-\ud87e]/.test(t)) t = t.replace(CJK_ASTRAL, ' $1 ');
  return t;
}

export class AllocatorTokenizer {
  private readonly tok: Tokenizer;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;

  constructor(tokenizerJson: unknown, readonly maxLength: number, tokenizerConfig: unknown = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object') throw new Error('tokenizer.json is not a JSON object');
    if (!Number.isInteger(maxLength) || maxLength < 3) throw new Error(`max length must be an integer >= 3, got ${maxLength}`);
    const json = tokenizerJson as Record<string, unknown>;
    // Truncation and padding are applied here, per batch; the library ignores them anyway.
    this.tok = new Tokenizer({ ...json, truncation: null, padding: null }, tokenizerConfig as object);
    const id = (t: string): number => {
      const v = this.tok.token_to_id(t);
      if (v === undefined) throw new Error(`tokenizer.json has no ${t} token`);
      return v;
    };
    this.clsId = id('[CLS]');
    this.sepId = id('[SEP]');
    this.padId = id('[PAD]');
  }

  /** Content token ids (no special tokens) of a piece of text. */
  private content(text: string): number[] {
    return this.tok.encode(matchRustNormalizer(text), { add_special_tokens: false }).ids;
  }

  /**
   * [CLS] + the first maxLength - 2 content tokens + [SEP], and whether more followed: the same
   * result as tokenizing the whole prompt and truncating on the right. A 1 MB prompt must not
   * cost a 1 MB tokenization, so a long prompt is tokenized through a prefix cut at whitespace
   * (BERT words never span whitespace, so the prefix's first tokens are the whole text's),
   * widened x4 until it yields more than fits. runtime/conscience/allocator/score.py does the same.
   */
  encode(text: string): Encoded {
    const room = this.maxLength - 2;
    let ids: number[] | undefined;
    for (let window = room * CHARS_PER_TOKEN_WINDOW; ids === undefined; window *= 4) {
      let cut = window;
      while (cut < text.length && !BERT_WHITESPACE.test(text[cut]!)) cut++;
      if (cut >= text.length) {
        ids = this.content(text);
        break;
      }
      const head = this.content(text.slice(0, cut));
      if (head.length > room) ids = head;
    }
    const truncated = ids.length > room;
    if (truncated) ids = ids.slice(0, room);
    return { ids: [this.clsId, ...ids, this.sepId], truncated };
  }

  /** Right-padded int64 tensors for a batch, padded to the longest row (not to maxLength). */
  batch(rows: Encoded[]): Batch {
    const batchSize = rows.length;
    const seqLen = Math.max(2, ...rows.map((r) => r.ids.length));
    const inputIds = new BigInt64Array(batchSize * seqLen).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(batchSize * seqLen);
    const tokenTypeIds = new BigInt64Array(batchSize * seqLen);
    rows.forEach((r, b) => {
      const base = b * seqLen;
      for (let i = 0; i < r.ids.length; i++) {
        inputIds[base + i] = BigInt(r.ids[i]!);
        attentionMask[base + i] = 1n;
      }
    });
    return { inputIds, attentionMask, tokenTypeIds, batchSize, seqLen };
  }
}
