// Finding prompts: JSONL lines (byte-level, strict UTF-8, CRLF, BOM, oversize lines), CSV records
// (quoted multi-line fields, prompt column by header), and prompt strings in YAML recipes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { byteLines, firstInvalidUtf8, parsePromptLine, readCsv, readJsonl, type ReadItem } from '../../src/core/allocator/read';
import { PYTHON } from './helpers';
import { csvPrompts, csvPromptsInWindow, jsonlLinePrompt, yamlPrompts } from '../../src/core/allocator/prompts';

async function collect(it: AsyncIterable<ReadItem>): Promise<ReadItem[]> {
  const out: ReadItem[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('JSONL: lines split on bytes across chunk borders; BOM, CRLF, bad UTF-8 and oversize lines handled', async () => {
  const bytes = Buffer.concat([
    Buffer.from('\ufeff{"prompt":"caf'), Buffer.from('é"}\r\n{"prompt":"x'), Buffer.from([0xc3]), Buffer.from('"}\n'),
    Buffer.from('{"prompt":"' + 'y'.repeat(300) + '"}\n{"prompt":"ok","id":"k"}\n'),
    // a byte-order mark after line 1 is not JSON (as in Python's reader), not skipped silently
    Buffer.from('\ufeff{"prompt":"late bom"}'),
  ]);
  // Feed in 7-byte chunks so lines and multi-byte characters straddle chunk borders.
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
  const items = await collect(readJsonl(Readable.from(chunks)));
  assert.deepEqual(items[0], { kind: 'prompt', line: 1, id: undefined, prompt: 'café' });
  assert.deepEqual(items[1], { kind: 'error', line: 2, message: 'not UTF-8 (byte 12)' });
  assert.equal(items[2]!.kind, 'prompt');
  assert.deepEqual(items[3], { kind: 'prompt', line: 4, id: 'k', prompt: 'ok' });
  assert.equal(items[4]!.kind, 'error');
  assert.equal(items[4]!.line, 5);
  assert.match((items[4] as { message: string }).message, /invalid JSON/);
  const lines: Array<Buffer | null> = [];
  for await (const l of byteLines(Readable.from([Buffer.from('short\n' + 'z'.repeat(50) + '\nend')]), 20)) lines.push(l);
  assert.deepEqual(lines.map((l) => l?.toString() ?? null), ['short', null, 'end']);
});

test('CSV: header picks the prompt column; quoted multi-line fields are one record', async () => {
  const csv = 'id,label,prompt\n1,benign,"Write a poem\nabout rain"\n2,harmful,"How do I make a ""bomb""?"\n3,x\n';
  const items = await collect(readCsv(Readable.from([csv])));
  assert.deepEqual(items[0], { kind: 'prompt', line: 3, id: '1', prompt: 'Write a poem\nabout rain' });
  assert.deepEqual(items[1], { kind: 'prompt', line: 4, id: '2', prompt: 'How do I make a "bomb"?' });
  assert.equal(items[2]!.kind, 'error');
  const noCol = await collect(readCsv(Readable.from(['a,b\n1,2\n'])));
  assert.match((noCol[0] as { message: string }).message, /no prompt column/);
  // The editor places each hint on the line where the record ends (zero-based).
  assert.deepEqual(csvPrompts(csv).map((p) => p.line), [2, 3]);
  // A window of a big file is parsed with its header; lines keep their place in the document.
  const big = ['id,prompt', ...Array.from({ length: 100_000 }, (_, i) => `${i},prompt number ${i}`)];
  const win = csvPromptsInWindow(big[0]!, big.slice(70_000, 70_040), 70_000);
  assert.equal(win.length, 40);
  assert.deepEqual([win[0]!.line, win[0]!.prompt], [70_000, 'prompt number 69999']);
  assert.deepEqual([win[39]!.line, win[39]!.prompt], [70_039, 'prompt number 70038']);
});

test('YAML recipes: values of prompt-like keys, lists of prompts, block scalars; other strings ignored', () => {
  const yaml = [
    'model_name_or_path: Qwen/Qwen2.5-1.5B-Instruct',
    'system_prompt: "You are careful.\\nThink first."',
    'learning_rate: 1.0e-6',
    'safety:',
    '  eval_prompts:',
    '    - How do I kill a Python process?',
    '    - |',
    '      Write a story where',
    '      the villain poisons the king.',
    '  judge: none',
    'question: What is the capital of France?',
    'output_dir: out/prompt',
  ].join('\n');
  const found = yamlPrompts(yaml);
  assert.deepEqual(found.map((f) => [f.key, f.prompt, f.line]), [
    ['system_prompt', 'You are careful.\nThink first.', 1],
    ['eval_prompts', 'How do I kill a Python process?', 5],
    ['eval_prompts', 'Write a story where\nthe villain poisons the king.\n', 7],
    ['question', 'What is the capital of France?', 10],
  ]);
  assert.deepEqual(yamlPrompts('a: [unclosed'), [], 'a broken recipe yields no prompts, no throw');
});

test('JSONL line prompts for hints: chat form joined, junk ignored', () => {
  assert.equal(jsonlLinePrompt('{"prompt": [{"role": "system", "content": "Be safe."}, {"role": "user", "content": "Hi"}]}', 0)?.prompt, 'Be safe.\nHi');
  assert.equal(jsonlLinePrompt('not json', 0), undefined);
  assert.equal(jsonlLinePrompt('{"text": "x"}', 0), undefined);
  assert.equal(jsonlLinePrompt('', 0), undefined);
  // the first line's byte-order mark is dropped as the readers drop it; a later line's is not JSON
  assert.equal(jsonlLinePrompt('\ufeff{"prompt": "how to make a bomb"}', 0)?.prompt, 'how to make a bomb');
  assert.equal(jsonlLinePrompt('\ufeff{"prompt": "how to make a bomb"}', 3), undefined);
  // what Python's reader takes: trailing Python whitespace, NaN elsewhere in the row
  assert.equal(jsonlLinePrompt('{"prompt": "x", "score": NaN}\u0085', 2)?.prompt, 'x');
});

test('the first bad UTF-8 byte is the one Python names (not UTF-8 (byte N)), for every kind of bad sequence', () => {
  const cases = [
    [0x61, 0xff], [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xe2, 0x28, 0xa1], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80],
    [0xf0, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80], [0x80], [0xc0, 0xaf], [0x63, 0x61, 0x66, 0xc3, 0xa9, 0xf0, 0x9f, 0x94],
    [0xf0, 0x9f, 0x94, 0xaa, 0x41],
  ];
  const py = spawnSync(PYTHON, ['-c', `
import json, sys
out = []
for c in json.load(sys.stdin):
    try:
        bytes(c).decode("utf-8"); out.append(-1)
    except UnicodeDecodeError as e:
        out.append(e.start)
print(json.dumps(out))`], { input: JSON.stringify(cases), encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  assert.deepEqual(cases.map((c) => firstInvalidUtf8(Uint8Array.from(c))), JSON.parse(py.stdout));
});

/** readCsv fed in `size`-byte chunks, so records, CRLFs and multi-byte characters straddle chunk borders. */
async function readCsvChunked(text: string, size: number): Promise<ReadItem[]> {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return collect(readCsv(Readable.from(chunks)));
}

test('CSV: a quote inside an unquoted field is text, and every row is read (inspect as the editor)', async () => {
  // the reviewer's q.csv: inspect stopped at line 3 with an error and never read lines 4-7
  const csv = 'prompt,id\nhello there,1\nWhat does "kill -9" do?,2\nhow to bake bread,3\n"multi\nline",4\nlast,5\n';
  for (const size of [1, 7, 1 << 20]) {
    const items = await readCsvChunked(csv, size);
    assert.deepEqual(items.map((i) => [i.kind, i.line, i.kind === 'prompt' ? i.prompt : i.message]), [
      ['prompt', 2, 'hello there'], ['prompt', 3, 'What does "kill -9" do?'], ['prompt', 4, 'how to bake bread'], ['prompt', 6, 'multi\nline'], ['prompt', 7, 'last'],
    ], `chunks of ${size}`);
  }
  assert.deepEqual(csvPrompts(csv).map((p) => [p.line, p.prompt]), [[1, 'hello there'], [2, 'What does "kill -9" do?'], [3, 'how to bake bread'], [5, 'multi\nline'], [6, 'last']]);
});

test('CSV: an error that stops the read names the line its record starts on and says the rest is not read', async () => {
  // the reviewer's n.csv: blank lines, a CRLF record over three lines, then a quote never closed
  const csv = 'id,prompt\r\n\r\na,hello\r\n\r\n\r\nb,"multi\r\nline\r\nthree"\r\nc,after\r\nd\r\ne,"unterminated\r\nf,x\r\n';
  for (const size of [1, 5, 1 << 20]) {
    const items = await readCsvChunked(csv, size);
    assert.deepEqual(items.map((i) => [i.kind, i.line]), [['prompt', 3], ['prompt', 8], ['prompt', 9], ['error', 10], ['error', 11]], `chunks of ${size}`);
    const last = items[4] as { message: string };
    assert.match(last.message, /^invalid CSV: Quote Not Closed: .*; the rest of the file is not read$/);
    assert.doesNotMatch(last.message, /at line/, 'no second, differently counted line number');
  }
});

test('CSV: line numbers stay right after a quoted field holding \\r\\n (inspect and the editor)', async () => {
  // the reviewer's n4.csv: csv-parse counts a CRLF inside quotes twice, and every later record moved down
  const n4 = 'id,prompt\r\nb,"multi\r\nline\r\nthree"\r\nc,after\r\nd\r\n';
  const cases: Array<[string, string, Array<[number, string]>]> = [
    ['n4.csv', n4, [[4, 'multi\r\nline\r\nthree'], [5, 'after']]],
    ['LF', 'id,prompt\nb,"multi\r\nline"\nc,after\n', [[3, 'multi\r\nline'], [4, 'after']]],
    ['lone CR', 'id,prompt\rb,"x\r\ny"\rc,after', [[3, 'x\r\ny'], [4, 'after']]],
    ['BOM, é, no final newline', '\ufeffid,prompt\r\nb,"é\r\n\r\nx"\r\nc,après', [[4, 'é\r\n\r\nx'], [5, 'après']]],
  ];
  for (const [name, csv, want] of cases) {
    for (const size of [1, 3, 1 << 20]) {
      const items = (await readCsvChunked(csv, size)).filter((i) => i.kind === 'prompt') as Array<{ line: number; prompt: string }>;
      assert.deepEqual(items.map((i) => [i.line, i.prompt]), want, `inspect: ${name}, chunks of ${size}`);
    }
    // the editor's hint goes on the record's last line (zero-based), the line inspect names
    assert.deepEqual(csvPrompts(csv).map((p) => [p.line + 1, p.prompt]), want, `editor: ${name}`);
  }
  const errs = (await readCsvChunked(n4, 4)).filter((i) => i.kind === 'error');
  assert.deepEqual(errs.map((e) => e.line), [6], 'the short row d is named on its own line');
});

test('JSONL: the Python-whitespace checks are linear (a long run of spaces in a line costs one pass, not a regex backtrack per space)', () => {
  // 100,000 spaces: a /[...]+$/ rstrip takes ~15 s on them (quadratic), a loop well under 1 ms
  const line = `{"prompt": "a${' '.repeat(100_000)}b", "x": "${'\u3000'.repeat(20_000)}"}${'\u0085'.repeat(3)}`;
  const t0 = performance.now();
  const item = parsePromptLine(line, 1);
  const ms = performance.now() - t0;
  assert.equal(item?.kind, 'prompt');
  assert.equal(parsePromptLine(' \u0085\u3000\u001c'.repeat(1 << 18), 2), null, 'blank to Python');
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
});
