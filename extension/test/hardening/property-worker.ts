// The work of bounded.test.ts's property test, run in a child process so that a regression to
// unbounded work is a timeout of that child, never a hang of the test runner. For each random
// input it runs the real code paths (validate, launch's readers and file walk, the prompt-set
// readers, the event reader) and prints one JSON line per input: {kind, seed, ms, outcome}.
//   node --import tsx property-worker.ts SEED COUNT
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { readCsv, readJsonl } from '../../src/core/allocator/read';
import { readRecipeInfo } from '../../src/core/launch/scripts';
import { collectFiles, SyncSource } from '../../src/core/launch/sync';
import { validateText } from '../../src/core/recipe';
import { readEventsFrom } from '../../src/core/runs/events';
import { rng } from '../rng';
import { aliasBomb } from './bomb';

const REPO = resolve(__dirname, '..', '..', '..');
const seed = Number(process.argv[2] ?? 1);
const count = Number(process.argv[3] ?? 50);
const r = rng(seed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** A random recipe: valid keys, junk, anchors and aliases, merge keys, nesting, odd scalars. */
function recipe(): string {
  const parts: string[] = ['model_name_or_path: conscience/tiny', 'dataset_name: prompts.jsonl', 'max_steps: 4'];
  const n = int(1, 8);
  for (let i = 0; i < n; i++) {
    switch (int(0, 9)) {
      case 0: parts.push(aliasBomb(int(2, 9), int(2, 10), `bomb${i}_`)); break;
      case 1: { // merge keys over merge keys: each level merges the one before several times
        const levels = int(2, 9);
        parts.push(`m${i}_0: &m${i}_0 {a: 1, b: [x, y]}`);
        for (let l = 1; l <= levels; l++) parts.push(`m${i}_${l}: &m${i}_${l} {<<: [${Array(int(1, 9)).fill(`*m${i}_${l - 1}`).join(', ')}], k${l}: *m${i}_${l - 1}}`);
        break;
      }
      case 2: parts.push(`deep${i}: ${'['.repeat(int(1, 300))}${r() < 0.5 ? ']'.repeat(int(1, 300)) : ''}`); break;
      case 3: parts.push(`deepmap${i}:` + Array.from({ length: int(1, 150) }, (_, d) => '\n' + ' '.repeat(d + 1) + `k${d}:`).join('') + ' v'); break;
      case 4: parts.push(`long${i}: "${'x'.repeat(int(1, 200_000))}"`); break;
      case 5: parts.push(pick(['learning_rate: 1e400', 'max_steps: -1', 'max_steps: 99999999999999999999', 'beta: .nan', 'x: !!binary AAAA', 'y: \t tab', 'dup: 1\ndup: 2', '? [a, b]\n: c', 'z: "\\uD800"', '--- \n---'])); break;
      case 6: parts.push(`list${i}: [${Array.from({ length: int(1, 5000) }, () => pick(['a', '1', 'null', '"s"', '{}', '[]'])).join(', ')}]`); break;
      case 7: parts.push(`reward_funcs: [${Array.from({ length: int(1, 50) }, () => pick(['safety_format', 'refusal', 'nope', '*a0'])).join(', ')}]`); break;
      case 8: parts.push(`launch: {num_processes: ${pick(['2', '0', '"x"', '1e9', '[1]'])}, cpu: true}`); break;
      default: parts.push(`${pick(['output_dir', 'safety', 'allocator', 'bogus_key'])}: ${pick(['runtime', 'prompts.jsonl', '{open_tag: "<s>"}', '[../../etc/passwd]', '/'])}`);
    }
  }
  let text = parts.join('\n') + '\n';
  if (r() < 0.1) text = text.slice(0, int(0, text.length)); // cut anywhere
  return text;
}

/** A random prompt file line: good rows, deep nesting, huge numbers, lone surrogates, junk. */
function promptLine(): string {
  switch (int(0, 7)) {
    case 0: return JSON.stringify({ id: int(0, 1e6), prompt: 'How do I store bleach?', budget: int(0, 512) });
    case 1: return '['.repeat(int(1000, 200_000)) + ']'.repeat(r() < 0.5 ? 0 : 1000);
    case 2: return '{"prompt": "p", "budget": 1e400}';
    case 3: return '{"prompt": "lone \\uD800 surrogate"}';
    case 4: return '{"prompt": ' + '{"a":'.repeat(int(100, 50_000)) + '1' + '}'.repeat(int(0, 50_000)) + '}';
    case 5: return '"' + 'x'.repeat(int(1, 1_000_000));
    case 6: return JSON.stringify({ prompt: [{ role: 'user', content: 'x'.repeat(int(1, 100_000)) }] });
    default: return pick(['', 'null', '[]', '{}', '{"prompt": 5}', '\u0000\u0001', 'nan']);
  }
}

function csvText(): string {
  const rows = ['id,prompt'];
  for (let i = 0; i < int(1, 50); i++) rows.push(pick([`${i},plain`, `${i},"quoted, with comma"`, `${i},"unclosed`, `${i},"a""b"`, `${i}`, `${i},x,y,z`, '"' + 'q'.repeat(int(1, 100_000))]));
  return rows.join(pick(['\n', '\r\n', '\r']));
}

async function main(): Promise<void> {
  const ws = mkdtempSync(join(tmpdir(), 'prop-'));
  mkdirSync(join(ws, 'sub'));
  writeFileSync(join(ws, 'prompts.jsonl'), '{"prompt":"hi"}\n');
  const src = new SyncSource(ws, REPO);
  const time = async (kind: string, i: number, fn: () => Promise<string> | string) => {
    const t0 = process.hrtime.bigint();
    let outcome: string;
    try {
      outcome = await fn();
    } catch (err) {
      outcome = `error: ${String((err as Error).message).split('\n')[0]!.slice(0, 160)}`;
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(JSON.stringify({ kind, seed, i, ms, outcome }) + '\n');
  };
  for (let i = 0; i < count; i++) {
    const text = recipe();
    const file = join(ws, 'recipe.yaml');
    writeFileSync(file, text);
    await time('validate', i, () => `${validateText(text, { file }).length} diagnostics`);
    await time('launch-info', i, async () => JSON.stringify((await readRecipeInfo(file)).maxSteps ?? null));
    await time('launch-files', i, async () => `${(await collectFiles(src, 'recipe.yaml')).length} files`);
    const lines = Array.from({ length: int(1, 12) }, promptLine).join('\n') + '\n';
    await time('prompts-jsonl', i, async () => {
      let n = 0;
      let lastErr = '';
      for await (const it of readJsonl(Readable.from([Buffer.from(lines)]))) {
        n++;
        if (it.kind === 'error') {
          if (!Number.isInteger(it.line) || it.line < 1) throw new Error(`an error without a line: ${JSON.stringify(it)}`);
          lastErr = it.message;
        }
      }
      return `${n} items${lastErr ? ', last error ' + lastErr.slice(0, 60) : ''}`;
    });
    const csv = csvText();
    await time('prompts-csv', i, async () => {
      let n = 0;
      for await (const it of readCsv(Readable.from([Buffer.from(csv)]))) {
        n++;
        if (it.kind === 'error' && (!Number.isInteger(it.line) || it.line < 0)) throw new Error(`an error without a line: ${JSON.stringify(it)}`);
      }
      return `${n} items`;
    });
    const evFile = join(ws, 'events.jsonl');
    writeFileSync(evFile, lines.replace(/"prompt"/g, '"type":"metrics","seq":1,"time":1,"step":1,"values"'));
    await time('events', i, async () => {
      const res = await readEventsFrom(evFile, 0);
      return `${res.events.length} events, ${res.problems.length} problems`;
    });
  }
}

void main();
