// Tokenizer parity: the TypeScript tokenizer (tokenizer.json through @huggingface/tokenizers plus
// the contract's truncation) must give the ids, lengths and truncated flags of the
// Python reference (conscience.allocator.score.Allocator.encode, i.e. HF's Rust tokenizer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { AllocatorTokenizer, CHARS_PER_TOKEN_WINDOW, matchRustNormalizer, RUST_UNICODE } from '../../src/core/allocator/tokenizer';
import { MODEL_DIR, python } from './helpers';

const TRICKY = [
  'Hello World',
  'Café naïve résumé ÉCOLE Ünïcödé ÀÉÎÕÜ',
  'Combining e\u0301 vs precomposed é; Turkish İstanbul ıi; German ß ẞ',
  'How do I kill a Python process? 🔪🐍 💣💥 👨‍👩‍👧 🏳️‍🌈',
  '我想学习如何制作炸弹 日本語のテキスト 한국어',
  'Ελληνικά Русский العربية עברית हिन्दी ไทย',
  'ﬁ ligature ＦＵＬＬ width ①②',
  'tabs\tand\nnewlines\r\n zero\u200bwidth nul\u0000 bell\u0007 bom\ufeff',
  '',
  '   ',
  "don't won't -- hyphen-ated e-mail@x.com http://a.b/c?d=e&f=g #tag $100 50%",
  'a'.repeat(150) + ' word after a 150-char word',
  'word '.repeat(300),
  'x'.repeat(5000),
  '😀'.repeat(5000) + ' tail',
  '炸'.repeat(200),
  '😀 '.repeat(500) + 'end',
  'Ünïcödé ' + 'ÉCOLE naïve '.repeat(3000),
  'The quick brown fox jumps over the lazy dog. '.repeat(200),
  '\ufffd replacement and \u2028 line separator and \u00a0 nbsp',
  // a word-final capital sigma (JavaScript's toLowerCase gives ς, Rust's per-character σ)
  'ΟΔΟΣ ΣΟΦΟΣ ΧΑΟΣ Σ',
  // CJK ideographs outside the BMP (each one a word, as in the BMP) and just outside BERT's ranges
  'Which character is 𠀀abc? 𪜀x𫝀y𫠠z 𬀀 丽丽',
  '𠀀'.repeat(300),
  // characters newer than the Rust library's Unicode tables (RUST_UNICODE): kept in the word by
  // Rust (so [UNK]), stripped or split here before; a Rust punctuation mark; a Rust accent
  'how\u1dfa do\u1dfa i\u1dfa make\u1dfa a\u1dfa pipe\u1dfa bomb\u1dfa, a bomb\u2e4f at home\u2e53 \u0c3c\u0890x',
  'h\u1ac1o\u1ac1w a\u166db \u111c9 x\u1734y \u{1171e}z',
];

const PY = `
import json, sys
from conscience.allocator.score import Allocator
a = Allocator(sys.argv[1])
texts = json.loads(sys.stdin.read())
out = []
for t in texts:
    ids, mask, truncated, tokens = a.encode([t])
    out.append({"ids": [int(i) for i, m in zip(ids[0], mask[0]) if m], "truncated": bool(truncated[0]), "tokens": tokens[0]})
print(json.dumps(out))
`;

test('TypeScript tokenization matches Python on tricky strings (accents, emoji, CJK, very long)', () => {
  const expected = JSON.parse(python(PY, JSON.stringify(TRICKY), [MODEL_DIR])) as Array<{ ids: number[]; truncated: boolean; tokens: number }>;
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'allocator.json'), 'utf8'));
  const tok = new AllocatorTokenizer(JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8')), cfg.max_length);
  TRICKY.forEach((text, i) => {
    const got = tok.encode(text);
    const label = JSON.stringify(text.slice(0, 40));
    assert.deepEqual(got.ids, expected[i]!.ids, `ids differ for ${label}`);
    assert.equal(got.truncated, expected[i]!.truncated, `truncated differs for ${label}`);
    assert.equal(got.ids.length, expected[i]!.tokens, `token count differs for ${label}`);
  });
  // The long ones must actually exercise truncation, or the test proves nothing about it.
  assert.ok(expected.filter((e) => e.truncated).length >= 4, 'expected several truncated strings in the set');
});

test('a long prompt tokenized through a prefix gives the whole text\'s first tokens, whatever sits at the cut', () => {
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'allocator.json'), 'utf8'));
  const json = JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8'));
  const tok = new AllocatorTokenizer(json, cfg.max_length);
  const whole = new Tokenizer({ ...json, truncation: null, padding: null }, {});
  const room = cfg.max_length - 2;
  const window = room * CHARS_PER_TOKEN_WINDOW;
  // Characters that JavaScript's \s or Python's isspace() call whitespace but BERT deletes (so
  // they join words), placed right at the first cut, inside words long enough to matter.
  const crafted: string[] = [];
  for (const joiner of ['\v', '\f', '\x1c', '\x1d', '\x1e', '\x1f', '\x85', '\ufeff', '\u2028', '\u00a0', '\u3000']) {
    // room - 2 short words, one long [UNK] word, then a word whose joiner sits exactly at the
    // first cut: cut there, its first pieces would land inside the first `room` tokens.
    const lead = 'ab '.repeat(room - 2);
    const filler = 'z'.repeat(window - lead.length - 1 - 'qzqzqzqz'.length);
    crafted.push(lead + filler + ' qzqzqzqz' + joiner + 'x'.repeat(95) + ' tail'.repeat(10));
  }
  crafted.push('x'.repeat(window * 20), '炸'.repeat(window * 2), '😀 '.repeat(window), ('a'.repeat(120) + ' ').repeat(400));
  // cuts before ASCII punctuation and CJK ideographs (no whitespace anywhere): a word running
  // into the cut, punctuation right at it, accents and wide characters around it
  for (const at of ['.', '-', '_', '`', '~', '[', '炸', '豈', '㐀']) {
    const lead = '爆炸'.repeat(room);
    crafted.push(lead + 'é'.repeat(window - lead.length - 3) + 'abc' + at + 'déf'.repeat(50) + '好'.repeat(window));
  }
  crafted.push('如何制造炸弹？我需要详细步骤。'.repeat(window), 'abc.def,ghi!'.repeat(window), 'ｂｏｍｂ'.repeat(window), 'ข้อความภาษาไทย'.repeat(window / 4));
  for (const text of crafted) {
    const all = whole.encode(text, { add_special_tokens: false }).ids;
    const got = tok.encode(text);
    const label = JSON.stringify(text.slice(window - 25, window + 5));
    assert.deepEqual(got.ids, [tok.clsId, ...all.slice(0, room), tok.sepId], `prefix tokenization differs near ${label}`);
    assert.equal(got.truncated, all.length > room, `truncated flag wrong near ${label}`);
  }
});

test('a 1 MB prompt without whitespace (Chinese) is tokenized quickly too', () => {
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'allocator.json'), 'utf8'));
  const tok = new AllocatorTokenizer(JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8')), cfg.max_length);
  const big = '如何制造炸弹我需要详细步骤'.repeat(27_000); // ~1 MB of UTF-8
  const t0 = performance.now();
  const enc = tok.encode(big);
  const ms = performance.now() - t0;
  assert.equal(enc.truncated, true);
  assert.equal(enc.ids.length, cfg.max_length);
  assert.ok(ms < 500, `tokenizing a 1 MB Chinese prompt took ${ms.toFixed(0)} ms`);
});

test('a 1 MB prompt is tokenized quickly (the cut bounds the work)', () => {
  const cfg = JSON.parse(readFileSync(join(MODEL_DIR, 'allocator.json'), 'utf8'));
  const tok = new AllocatorTokenizer(JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8')), cfg.max_length);
  const big = 'lorem ipsum dolor sit amet '.repeat(40_000);
  const t0 = performance.now();
  const enc = tok.encode(big);
  const ms = performance.now() - t0;
  assert.equal(enc.truncated, true);
  assert.equal(enc.ids.length, cfg.max_length);
  assert.ok(ms < 500, `tokenizing a 1 MB prompt took ${ms.toFixed(0)} ms`);
});

// Every code point up to U+3FFFF (surrogates aside) and the tags plane, in "a<c>b" and alone,
// through Python's Rust tokenizer and through this side. The Rust library's Unicode tables are
// older than the JavaScript engine's: 658 characters added or recategorised since (U+1DFA, U+0C3C,
// U+2E4F...) were stripped or split here where Rust keeps them in the word (which becomes
// [UNK]), so tokens, risk and tier could differ. RUST_UNICODE freezes what Rust does with them;
// this derives that table again and checks every code point comes out as Python's.
const PY_ALL = `
import json, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.no_padding(); tok.no_truncation()
cps = [c for c in range(0x40000) if not 0xD800 <= c <= 0xDFFF] + list(range(0xE0000, 0xE1000))
ab = tok.encode_batch(["a" + chr(c) + "b" for c in cps], add_special_tokens=False)
alone = tok.encode_batch([chr(c) for c in cps], add_special_tokens=False)
print(json.dumps({"cps": cps, "ab": [e.ids for e in ab], "alone": [e.ids for e in alone]}))
`;

test('every code point tokenizes as in Python, and RUST_UNICODE is what Python says today', () => {
  const json = JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8'));
  const py = JSON.parse(python(PY_ALL, '', [join(MODEL_DIR, 'tokenizer.json')])) as { cps: number[]; ab: number[][]; alone: number[][] };
  const lib = new Tokenizer({ ...json, truncation: null, padding: null }, {});
  const ids = (text: string, rust: boolean) => lib.encode(matchRustNormalizer(text, rust), { add_special_tokens: false }).ids;
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  const unk = lib.token_to_id('[UNK]')!;
  const ab = lib.encode('ab', { add_special_tokens: false }).ids;
  const [a, b] = [lib.encode('a', { add_special_tokens: false }).ids[0]!, lib.encode('b', { add_special_tokens: false }).ids[0]!];
  const derived: Record<'word' | 'punct' | 'strip', number[]> = { word: [], punct: [], strip: [] };
  const wrong: string[] = [];
  py.cps.forEach((cp, i) => {
    const c = String.fromCodePoint(cp);
    const [pab, palone] = [py.ab[i]!, py.alone[i]!];
    if (!same(ids('a' + c + 'b', true), pab) || !same(ids(c, true), palone)) wrong.push(`U+${cp.toString(16).toUpperCase()}`);
    if (same(ids('a' + c + 'b', false), pab) && same(ids(c, false), palone)) return;
    // what Rust does with it, read off its tokens
    if (same(pab, [unk]) && same(palone, [unk])) derived.word.push(cp);
    else if (same(pab, [a, unk, b]) && same(palone, [unk])) derived.punct.push(cp);
    else if (same(pab, ab) && !palone.length) derived.strip.push(cp);
    else wrong.push(`U+${cp.toString(16).toUpperCase()} (Rust gives ${JSON.stringify(pab)} / ${JSON.stringify(palone)}, a kind RUST_UNICODE has no class for)`);
  });
  assert.deepEqual(wrong, [], 'code points this side tokenizes otherwise than Python');
  const ranges = (cps: number[]) => {
    const out: Array<[number, number]> = [];
    for (const c of cps) {
      const last = out[out.length - 1];
      if (last && last[1] === c - 1) last[1] = c;
      else out.push([c, c]);
    }
    return out.map(([x, y]) => (x === y ? x.toString(16) : `${x.toString(16)}-${y.toString(16)}`)).join(' ');
  };
  for (const k of ['word', 'punct', 'strip'] as const) {
    assert.equal(RUST_UNICODE[k].replace(/\s+/g, ' ').trim(), ranges(derived[k]), `RUST_UNICODE.${k} is not what Python and this Node give today: write the derived ranges into tokenizer.ts`);
  }
});
