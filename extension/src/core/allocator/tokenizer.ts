// BERT WordPiece tokenization for the allocator, read from the tokenizer.json that ships next
// to the model. @huggingface/tokenizers reproduces the Rust fast tokenizer's ids (normalizer:
// lowercase + accent stripping + CJK splitting; WordPiece with [UNK] for words > 100 chars);
// extension/test/allocator/tokenizer.test.ts checks that against Python on tricky strings.
// The library does not truncate, so the contract's cut to `maxChars` code points, truncation to
// `maxLength` tokens (keep the head, like the Rust tokenizer on one sequence) and padding to
// the batch's longest row are done here.
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

/**
 * The first `maxChars` Unicode code points of `text` (Python's text[:maxChars]; UTF-16 slicing
 * would split surrogate pairs and count differently), and whether anything was cut.
 */
export function cutCodePoints(text: string, maxChars: number): { text: string; cut: boolean } {
  if (text.length <= maxChars) return { text, cut: false }; // UTF-16 length >= code points
  let units = 0;
  for (let cps = 0; cps < maxChars && units < text.length; cps++) {
    const c = text.charCodeAt(units);
    units += c >= 0xd800 && c <= 0xdbff && units + 1 < text.length && (text.charCodeAt(units + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return units >= text.length ? { text, cut: false } : { text: text.slice(0, units), cut: true };
}

export class AllocatorTokenizer {
  private readonly tok: Tokenizer;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;

  constructor(tokenizerJson: unknown, readonly maxLength: number, readonly maxChars = 4096, tokenizerConfig: unknown = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object') throw new Error('tokenizer.json is not a JSON object');
    if (!Number.isInteger(maxLength) || maxLength < 3) throw new Error(`max length must be an integer >= 3, got ${maxLength}`);
    if (!Number.isInteger(maxChars) || maxChars < 1) throw new Error(`max chars must be a positive integer, got ${maxChars}`);
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
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * The allocator contract (docs/allocator.md, "Tokenization"): cut to maxChars code points,
   * encode with [CLS] ... [SEP], keep the first maxLength tokens (the [SEP] stays), and report
   * `truncated` when either step dropped something.
   */
  encode(text: string): Encoded {
    const { text: head, cut } = cutCodePoints(text, this.maxChars);
    let ids = this.content(head);
    const room = this.maxLength - 2;
    const overflow = ids.length > room;
    if (overflow) ids = ids.slice(0, room);
    return { ids: [this.clsId, ...ids, this.sepId], truncated: cut || overflow };
  }

  /** Word tokens (as the tokenizer sees them) for display, e.g. in attribution. */
  tokens(ids: number[]): string[] {
    return ids.map((i) => this.tok.id_to_token(i) ?? '[UNK]');
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
