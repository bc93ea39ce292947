// Hostile and broken input: a clear diagnostic, never an exception or a hang; and a seeded
// property test over random mutations of the shipped recipes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBytes, validateText, type Diagnostic } from '../../src/core/recipe';
import { nodeFiles } from '../../src/core/recipe/node-files';
import { REPO } from './helpers';
import { rng } from '../rng';

function assertRanges(text: string, diags: Diagnostic[]): void {
  const lines = text.split('\n');
  for (const d of diags) {
    assert.ok(d.start >= 0 && d.start <= d.end && d.end <= text.length, `range ${d.start}-${d.end} inside 0-${text.length} (${d.code})`);
    assert.ok(d.line >= 0 && d.line < Math.max(1, lines.length), `line ${d.line} exists (${d.code})`);
    assert.ok(d.endLine >= d.line && d.endLine < Math.max(1, lines.length), `endLine ${d.endLine} exists (${d.code})`);
    assert.ok(d.column >= 0 && d.column <= lines[d.line]!.length, `column ${d.column} inside line ${d.line} (${d.code})`);
    assert.ok(d.endColumn >= 0 && d.endColumn <= lines[d.endLine]!.length, `endColumn inside line (${d.code})`);
    for (const f of d.fixes ?? []) for (const e of f.edits) assert.ok(e.start >= 0 && e.start <= e.end && e.end <= text.length, `fix edit inside the document (${d.code})`);
  }
}

function laughs(levels: number, width: number, use: string): string {
  const lines = [`a: &a [${Array(width).fill('"lol"').join(',')}]`];
  for (let i = 1; i < levels; i++) {
    const p = String.fromCharCode(96 + i), q = String.fromCharCode(97 + i);
    lines.push(`${q}: &${q} [${Array(width).fill('*' + p).join(',')}]`);
  }
  lines.push(`reward_funcs: *${use}`);
  return lines.join('\n') + '\n';
}

test('billion laughs: more than 100 aliases are refused with a clear diagnostic', () => {
  const text = laughs(12, 10, 'l'); // 10^12 strings if expanded, 111 aliases
  const diags = validateText(text);
  const d = diags.find((x) => x.code === 'CC004');
  assert.ok(d, 'alias limit reported');
  assert.match(d.message, /alias/);
  assertRanges(text, diags);
});

test('a smaller alias bomb under the cap is checked without expanding it', () => {
  const text = laughs(8, 8, 'h'); // 8^8 = 16.7M strings if expanded
  const diags = validateText(text);
  // reward_funcs items are lists, not names: a type error, found without expansion.
  assert.ok(diags.some((x) => x.code === 'CC101' && /reward_funcs\[0\]/.test(x.message)), diags.map((x) => x.code).join(','));
  assertRanges(text, diags);
});

test('a 5 MB YAML file is refused with a size diagnostic, not parsed', () => {
  const text = 'model_name_or_path: x\nsystem_prompt: |\n' + '  lorem ipsum dolor sit amet consectetur\n'.repeat(130_000);
  assert.ok(text.length > 5_000_000);
  const diags = validateText(text);
  assert.equal(diags.length, 1);
  assert.equal(diags[0]!.code, 'CC007');
  assert.match(diags[0]!.message, /5\.\d MB/);
});

test('binary bytes, non-UTF-8 bytes and an empty file get their own codes', () => {
  const bin = decodeBytes(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00]));
  assert.ok('diagnostic' in bin && bin.diagnostic.code === 'CC005');
  const latin1 = decodeBytes(new Uint8Array([...Buffer.from('beta: 0.1\nsystem_prompt: caf'), 0xe9, 0x0a]));
  assert.ok('diagnostic' in latin1 && latin1.diagnostic.code === 'CC006');
  assert.equal(latin1.diagnostic.line, 1);
  assert.equal(latin1.diagnostic.column, 18);
  assert.equal(validateText('')[0]!.code, 'CC008');
  assert.equal(validateText('# only a comment\n')[0]!.code, 'CC008');
});

test('deep nesting, stray tabs and control characters do not throw', () => {
  const cases = ['['.repeat(5000), 'a:\n' + '  '.repeat(200) + 'b: 1\n', 'launch:\n  num_processes:\t2\n\tx: 1\n', 'beta: "\u0000\u0007"\n', '{'.repeat(100) + '}'.repeat(100), '? [a]\n: b\n', '&a a: *a\n', '*x\n', '!!binary x: 1\n'];
  for (const t of cases) {
    const diags = validateText(t);
    assertRanges(t, diags);
    assert.ok(diags.length > 0, `some diagnostic for ${JSON.stringify(t.slice(0, 20))}`);
  }
});

const PIECES = ['\t', ':', ': ', '-', '- ', '[', ']', '{', '}', '&a ', '*a', '"', "'", '#', '\n', '  ', '0', '7', '-1', '1e-6', 'no', 'null', '!!str ', '? ', '|\n', '%', '@', '\u00e9', '\ud83d\ude00', ',', '---\n', 'launch:', 'num_generations: ', 'reward_funcs: [', 'x'.repeat(50)];

function mutate(text: string, r: () => number): string {
  let t = text;
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n; k++) {
    const pos = Math.floor(r() * (t.length + 1));
    const op = Math.floor(r() * 6);
    if (op === 0) t = t.slice(0, pos) + t.slice(pos + 1 + Math.floor(r() * 10));
    else if (op === 1) t = t.slice(0, pos) + PIECES[Math.floor(r() * PIECES.length)] + t.slice(pos);
    else if (op === 2) { const lines = t.split('\n'); const i = Math.floor(r() * lines.length); lines.splice(i, 0, lines[Math.floor(r() * lines.length)]!); t = lines.join('\n'); }
    else if (op === 3) { const lines = t.split('\n'); const i = Math.floor(r() * lines.length); lines.splice(i, 1); t = lines.join('\n'); }
    else if (op === 4) t = t.replace(/\d+/, () => String(Math.floor(r() * 40) - 5));
    else t = t.slice(0, pos) + t.slice(pos).replace(/^ +/, (m) => (r() < 0.5 ? m + ' ' : m.slice(1)));
  }
  return t;
}

test('property: random mutations of the shipped recipes never throw and keep every range inside the document', () => {
  const sources = ['recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml', 'recipes/demo/tiny-cpu.yaml', 'recipes/accelerate/zero3.yaml'].map((p) => join(REPO, p));
  const r = rng(20261124);
  let withDiags = 0;
  for (const file of sources) {
    const base = readFileSync(file, 'utf8');
    for (let i = 0; i < 400; i++) {
      const text = mutate(base, r);
      let diags: Diagnostic[];
      try {
        diags = validateText(text, { file, files: nodeFiles });
      } catch (err) {
        assert.fail(`iteration ${i} of ${file} threw ${(err as Error).stack}\n--- input ---\n${text}`);
      }
      const own = diags.filter((d) => !d.file);
      assertRanges(text, own);
      if (own.length) withDiags++;
    }
  }
  assert.ok(withDiags > 100, `mutations produce diagnostics (${withDiags})`);
});

test('CRLF line endings and a UTF-8 BOM are read like LF files', () => {
  const file = join(REPO, 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml');
  const lf = readFileSync(file, 'utf8');
  const crlf = lf.replace(/\n/g, '\r\n');
  assert.deepEqual(validateText(crlf, { file, files: nodeFiles }).filter((d) => d.severity !== 'info'), []);
  const broken = crlf.replace('num_generations: 8', 'num_generations: 7');
  const d = validateText(broken, { file, files: nodeFiles }).find((x) => x.code === 'CC204');
  assert.ok(d);
  assert.equal(broken.split('\r\n')[d.line], 'num_generations: 7');
  assert.equal(d.column, 'num_generations: '.length);
  assert.equal(d.end - d.start, 1, 'the range covers the value, not the \\r');
  const bom = decodeBytes(new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from(lf)]));
  assert.ok('text' in bom && bom.text === lf);
});

test('CR-only line endings: lines end at \\r as in PyYAML, for positions and for the removal fix', () => {
  const file = join(REPO, 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml');
  const lf = readFileSync(file, 'utf8').replace('num_generations: 8', 'num_generations: 7') + 'seed: 1\nsedd: 2\n';
  const cr = lf.replace(/\n/g, '\r');
  const pick = (ds: Diagnostic[]) => ds.filter((d) => d.code === 'CC204' || d.code === 'CC100').map((d) => [d.code, d.line, d.column, d.endLine, d.endColumn]);
  const want = pick(validateText(lf, { file, files: nodeFiles }));
  assert.equal(want.length, 2);
  assert.deepEqual(pick(validateText(cr, { file, files: nodeFiles })), want);
  assert.ok((want[0]![1] as number) > 0, 'not everything on line 1');
  const d = validateText(cr, { file, files: nodeFiles }).find((x) => x.code === 'CC100')!;
  const fixed = d.fixes![0]!.edits.reduce((t, e) => t.slice(0, e.start) + e.newText + t.slice(e.end), cr);
  assert.equal(fixed, cr.replace('sedd: 2\r', ''), 'the removal takes the one line');
});

test('a flow collection closed at column 0 is read as PyYAML reads it, with every range in the original text', () => {
  const base = 'model_name_or_path: m\nreward_funcs: [refusal, safety_format]\n';
  for (const t of [base + 'reward_weights: [\n  1.0,\n  x\n]\nseed: 1.5\n', base + 'reward_weights: {\n  a: 1\n}\nseed: 1.5\n']) {
    const diags = validateText(t);
    assertRanges(t, diags);
    assert.ok(!diags.some((d) => d.code === 'CC001'), diags.map((d) => d.message).join('\n'));
    const seed = diags.find((d) => d.message.startsWith('seed expects'))!;
    assert.equal(t.slice(seed.start, seed.end), '1.5');
  }
  const d = validateText(base + 'reward_weights: [\n  1.0,\n  x\n]\n').find((x) => x.code === 'CC101')!;
  assert.deepEqual([d.line, d.column], [4, 2]);
  // a quoted scalar continued at column 0 too; a document marker inside a flow collection is still an error
  assert.deepEqual(validateText('model_name_or_path: "a\nb"\nreward_funcs: [refusal]\n').filter((x) => x.severity === 'error'), []);
  assert.equal(validateText('reward_funcs: [\n---\n]\n')[0]!.code, 'CC001');
});

test('only the parser\'s tab message is CC002: %YAML 2.0 and a control character are CC001 with the reason', () => {
  const v = validateText('%YAML 2.0\n---\nmodel_name_or_path: m\n');
  assert.deepEqual(v.map((d) => d.code), ['CC001']);
  assert.match(v[0]!.message, /unacceptable YAML version/);
  const bel = validateText('model_name_or_path: a\u0007b\n');
  assert.deepEqual(bel.map((d) => d.code), ['CC001']);
  assert.match(bel[0]!.message, /non-printable/);
  assert.deepEqual(validateText('launch:\n\tnum_processes: 2\n').map((d) => d.code), ['CC002']);
});

test('what js-yaml accepts but yaml.safe_load refuses is CC001: an undefined alias, a tag safe_load cannot build, a tab between tokens', () => {
  const base = 'model_name_or_path: m\nreward_funcs: [refusal]\n';
  const cases: Array<[string, string, RegExp]> = [
    ['seed: *nope\n', '*nope', /found undefined alias 'nope'/],
    ['seed: !foo 5\n', '!foo', /constructor for the tag '!foo'/],
    ['seed: !!python/int 5\n', '!!python/int', /constructor for the tag 'tag:yaml\.org,2002:python\/int'/],
    ['seed:\t5\n', '\t', /found character '\\t' that cannot start any token/],
    ['seed\t: 5\n', '\t', /found character '\\t'/],
  ];
  for (const [extra, at, msg] of cases) {
    const text = base + extra;
    const d = validateText(text).filter((x) => x.code === 'CC001');
    assert.equal(d.length, 1, extra);
    assert.equal(text.slice(d[0]!.start, d[0]!.end), at, extra);
    assert.match(d[0]!.message, msg);
  }
  // what safe_load reads: standard tags, a defined alias, tabs in quoted or block scalars and comments
  for (const extra of ['seed: !!int "5"\n', 'x_seed: &s 5\n', 'system_prompt: "a\tb"  # c\td\n', 'system_prompt: |\n  a\tb\n']) {
    assert.deepEqual(validateText(base + extra).filter((x) => x.code === 'CC001'), [], extra);
  }
});

test('the tab check is linear: 100k quoted tabs on one line, and 40k lines with a tab in a quoted value and a comment', () => {
  // it walked the quoted ranges (and back to the line start) for every tab: 60 s for the first file
  const oneLine = 'model_name_or_path: m\nreward_funcs: [refusal]\nsystem_prompt: [' + Array(100_000).fill('"\t"').join(', ') + ']\n';
  const lines = 'model_name_or_path: m\nreward_funcs: [refusal]\nsystem_prompt:\n' + '  - "\t" # a\tb\n'.repeat(40_000);
  for (const text of [oneLine, lines]) {
    const t0 = performance.now();
    const ds = validateText(text);
    const ms = performance.now() - t0;
    assert.ok(ms < 8000, `${Math.round(ms)} ms`);
    assert.deepEqual(ds.filter((d) => d.code === 'CC001'), []);
  }
  // the first tab outside quotes and comments is still found, after 100k that are fine
  const bad = oneLine + 'seed:\t5\n';
  const d = validateText(bad).filter((x) => x.code === 'CC001');
  assert.equal(d.length, 1);
  assert.equal(bad[d[0]!.start], '\t');
});

test('nesting: 64 mappings or lists are read, the 65th is CC001 at its line (as the runtime\'s _check_depth counts)', () => {
  const block = (n: number) => Array.from({ length: n }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n') + ' 1\n';
  const flow = (n: number) => 'env: ' + '{a: '.repeat(n - 1) + '1' + '}'.repeat(n - 1) + '\n';
  const seqs = (n: number) => 'env: {a: ' + '['.repeat(n - 2) + '1' + ']'.repeat(n - 2) + '}\n';
  for (const make of [block, flow, seqs]) {
    const deep = (t: string) => validateText(t).filter((d) => d.code === 'CC001');
    assert.deepEqual(deep(make(64)), [], make(3));
    const d = deep(make(65));
    assert.equal(d.length, 1, make(3));
    assert.match(d[0]!.message, /nested more than 64 levels deep/);
    assert.equal(d[0]!.line + 1, make === block ? 65 : 1);
  }
});

test('what PyYAML reads apart from js-yaml is CC001 where it is: NEL/LS/PS outside quotes, a control character in a comment, an anchor defined twice', () => {
  const base = 'model_name_or_path: m\nreward_funcs: [refusal]\n';
  const cases: Array<[string, string, RegExp]> = [
    ['# was: \u2028beta: 0.9\n', '\u2028', /unusual line terminator U\+2028 \(LINE SEPARATOR\)/],
    ['seed: 1 # \u0085x: 1\n', '\u0085', /U\+0085 \(NEXT LINE\)/],
    ['run_name: a\u2029b\n', '\u2029', /U\+2029 \(PARAGRAPH SEPARATOR\)/],
    ['# bell \u0007\n', '\u0007', /non-printable character U\+0007: PyYAML refuses special characters anywhere in a recipe, comments included/],
    ['# \ufffe\n', '\ufffe', /non-printable character U\+FFFE/],
    ['seed: &n 1\nrun_name: &n x\n', '&n', /found duplicate anchor 'n' \(first on line 3\)/],
    ['run_name: =\n', '=', /constructor for the tag 'tag:yaml\.org,2002:value'/],
    ['max_steps: 0b_\n', '0b_', /cannot read '0b_' as an integer/],
  ];
  for (const [extra, at, msg] of cases) {
    const text = base + extra;
    const d = validateText(text).filter((x) => x.code === 'CC001');
    assert.equal(d.length, 1, `${JSON.stringify(extra)}: ${d.map((x) => x.message).join('; ')}`);
    assert.equal(text.slice(d[0]!.start, d[0]!.end), at, extra);
    assert.match(d[0]!.message, msg);
  }
  // the same characters inside quotes are text to both
  for (const extra of ['run_name: "a\u2028b"\n', "run_name: 'a\u0085b'\n"]) {
    assert.deepEqual(validateText(base + extra).filter((x) => x.code === 'CC001'), [], extra);
  }
});
