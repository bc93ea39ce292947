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

/**
 * Where a prefix may be cut: BERT_WHITESPACE, and before a character BERT always makes a token of
 * its own, so the word before it ends there whatever follows: ASCII punctuation (split off by the
 * pre-tokenizer) and the CJK ideographs of the Basic Multilingual Plane (spaced by the
 * normalizer). Fixed sets, unlike Unicode's punctuation category, whose tables differ between the
 * Rust tokenizer and this engine. Without them a 1 MB Chinese prompt, which has no whitespace,
 * was tokenized whole. score.py's BERT_CUT is the same set.
 */
export const BERT_CUT = /[\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000!-\/:-@[-`{-~\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/;

// CJK ideographs outside the Basic Multilingual Plane (Extensions B-F and the compatibility
// supplement): BERT's normalizer makes each one a word of its own, but the JavaScript port
// checks one UTF-16 unit at a time and misses these (surrogate pairs), so they are spaced here.
const CJK_ASTRAL = /([\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B920}-\u{2CEAF}\u{2F800}-\u{2FA1F}])/gu;


/**
 * Code points the Rust tokenizer (Python's reference) treats otherwise than this JavaScript
 * port, because the Rust library's Unicode tables are older than the JavaScript engine's (the
 * characters were added or recategorised since): by what Rust does with them, as ranges of hex
 * code points. Derived once by tokenizing "a<c>b" and "<c>" for every code point up to U+3FFFF
 * and the tags plane on both sides; extension/test/allocator/tokenizer.test.ts derives the table
 * again from the Python side and fails when it changes (a new Node or tokenizers release).
 * - `word`: a letter to Rust (unknown to its tables: not a mark to strip, not punctuation, not a
 *   control), so the word holding it is [UNK]; this port strips it as a mark, deletes it as a
 *   format character or splits it off as punctuation (U+1DFA, U+0C3C, U+0890, U+2E4F...).
 * - `punct`: punctuation to Rust (a word of its own); a letter or a mark here (U+166D, U+111C9).
 * - `strip`: a non-spacing mark to Rust, stripped with the accents; a spacing mark here (U+1734, U+1171E).
 */
export const RUST_UNICODE = {
  word:
  '61d 7fd 890-891 897-89f 8ca-8e2 9fd-9fe a76 afa-aff b55 c04 c3c c77 c84 d00 d3b-d3c d81 ' +
  'eba ece 180f 1885-1886 1abf-1add 1ae0-1aeb 1b4e-1b4f 1b7d-1b7f 1df6-1dfb 2e43-2e4f ' +
  '2e52-2e5d a82c a8c5 a8ff a9bd 10d24-10d27 10d69-10d6e 10eab-10ead 10ed0 10efa-10eff ' +
  '10f46-10f50 10f55-10f59 10f82-10f89 11070 11073-11074 110c2 110cd 111cf 1123e 11241 1133b ' +
  '113bb-113c0 113ce 113d0 113d2 113d4-113d5 113d7-113d8 113e1-113e2 11438-1143f 11442-11444 ' +
  '11446 1144b-1144f 1145a-1145b 1145d-1145e 11660-1166c 116b9 1182f-11837 11839-1183b ' +
  '1193b-1193c 1193e 11943-11946 119d4-119d7 119da-119db 119e0 119e2 11a01-11a0a 11a33-11a38 ' +
  '11a3b-11a47 11a51-11a56 11a59-11a5b 11a8a-11a96 11a98-11a9c 11a9e-11aa2 11b00-11b09 11b60 ' +
  '11b62-11b64 11b66 11be1 11c30-11c36 11c38-11c3d 11c3f 11c41-11c45 11c70-11c71 11c92-11ca7 ' +
  '11caa-11cb0 11cb2-11cb3 11cb5-11cb6 11d31-11d36 11d3a 11d3c-11d3d 11d3f-11d45 11d47 ' +
  '11d90-11d91 11d95 11d97 11ef3-11ef4 11ef7-11ef8 11f00-11f01 11f36-11f3a 11f40 11f42-11f4f ' +
  '11f5a 11fff 12ff1-12ff2 13430-13440 13447-13455 1611e-16129 1612d-1612f 16d6d-16d6f ' +
  '16e97-16e9a 16f4f 16fe2 16fe4 1cf00-1cf2d 1cf30-1cf46 1e000-1e006 1e008-1e018 1e01b-1e021 ' +
  '1e023-1e024 1e026-1e02a 1e08f 1e130-1e136 1e2ae 1e2ec-1e2ef 1e4ec-1e4ef 1e5ee-1e5ef 1e5ff ' +
  '1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 1e944-1e94a 1e95e-1e95f',
  punct: '166d 111c9',
  strip: '1734 1171e',
} as const;

/** A letter both sides keep in a word and no vocabulary has (VAI SYLLABLE EE): a word holding it is [UNK], as Rust makes a word holding a `word` character. */
const UNKNOWN_LETTER = '\ua500';

const rangeSet = (spec: string): Array<[number, number]> => spec.trim().split(/\s+/).map((r) => {
  const [a, b] = r.split('-').map((h) => parseInt(h, 16));
  return [a!, b ?? a!];
});
const rustClass = new Map<number, 'word' | 'punct' | 'strip'>();
for (const k of ['word', 'punct', 'strip'] as const) for (const [a, b] of rangeSet(RUST_UNICODE[k])) for (let c = a; c <= b; c++) rustClass.set(c, k);
const RUST_DIFF = new RegExp(`[${[...rustClass.keys()].map((c) => `\\u{${c.toString(16)}}`).join('')}]`, 'u');
const RUST_DIFF_ALL = new RegExp(RUST_DIFF.source, 'gu');

/**
 * The text as the Rust tokenizer (Python's reference) normalizes it, where the JavaScript port
 * differs: Rust lowercases character by character, so a word-final capital sigma becomes σ,
 * while String.prototype.toLowerCase gives ς (a different token); the astral CJK above; and the
 * characters of RUST_UNICODE, each written as something this port treats as Rust treats it (a
 * `word` character as an unknown letter, a `punct` one as an unknown letter between spaces, a
 * `strip` one deleted). All give the ids Rust gives. `rustUnicode` false leaves RUST_UNICODE
 * out (the test that derives the table again).
 */
export function matchRustNormalizer(text: string, rustUnicode = true): string {
  let t = text.includes('\u03a3') ? text.replaceAll('\u03a3', '\u03c3') : text;
  if (/[\ud840-\ud87e]/.test(t)) t = t.replace(CJK_ASTRAL, ' $1 ');
  if (rustUnicode && RUST_DIFF.test(t)) {
    t = t.replace(RUST_DIFF_ALL, (c) => {
      const k = rustClass.get(c.codePointAt(0)!);
      return k === 'strip' ? '' : k === 'punct' ? ` ${UNKNOWN_LETTER} ` : UNKNOWN_LETTER;
    });
  }
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
   * cost a 1 MB tokenization, so a long prompt is tokenized through a prefix cut at whitespace,
   * ASCII punctuation or a CJK ideograph (BERT words never span them, so the prefix's first
   * tokens are the whole text's: BERT_CUT),
   * widened x4 until it yields more than fits. runtime/conscience/allocator/score.py does the same.
   */
  encode(text: string): Encoded {
    const room = this.maxLength - 2;
    let ids: number[] | undefined;
    for (let window = room * CHARS_PER_TOKEN_WINDOW; ids === undefined; window *= 4) {
      let cut = window;
      while (cut < text.length && !BERT_CUT.test(text[cut]!)) cut++;
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
