// `conscience inspect FILE.jsonl|FILE.csv|- [--format json|text] [--model DIR] [--policy JSON]`
// Streams the file, scores prompts in batches and prints one result per input record, in input
// order: {"id", "line", "risk", "tier", "budget", "categories", "ambiguity"} (+ "truncated": true when the
// prompt was longer than the model reads, + "unfamiliar": true when it is written mostly in a script
// the model did not learn both labels in). A malformed line gets an error on stderr naming the
// file and line; every other line is still scored. Exit 0 all scored, 1 some lines bad, 2 usage.
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Allocator, defaultModelDir, policyModel, withFloatLiterals, type Assessment } from '../core/allocator';
import { parsePyJson } from '../core/allocator/json';
import { readCsv, readJsonl, type PromptRecord, type ReadItem } from '../core/allocator/read';
import { escapeControls } from '../core/escape';

const USAGE = 'usage: conscience inspect FILE.jsonl|FILE.csv|- [--format json|text] [--model DIR] [--policy JSON]';
/**
 * Prompts scored together at most: the model groups a call's prompts by token count, so a
 * window pads little (Python's `score` scores windows of 256 too). A window is also scored as
 * soon as the input stalls (the next line is not already read), so a line typed or piped into
 * stdin gets its result at once; and before each error, so output stays in input order.
 */
const WINDOW = 256;
/** ...or fewer, when their text passes this many characters (a line may hold 16 MiB). */
const WINDOW_CHARS = 1 << 24;

const STALLED = Symbol('stalled');

/** The promise's value if it settles before the event loop turns once more (data already read), else STALLED. */
function ifReady<T>(p: Promise<T>): Promise<T | typeof STALLED> {
  return Promise.race([p, new Promise<typeof STALLED>((resolve) => setImmediate(() => resolve(STALLED)))]);
}

interface Args { file: string; format: 'json' | 'text'; model?: string; policy?: unknown }

function parseArgs(argv: string[]): Args | string {
  let file: string | undefined;
  let format: 'json' | 'text' = 'json';
  let model: string | undefined;
  let policy: unknown;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => {
      const eq = a.indexOf('=');
      if (eq > 0) return a.slice(eq + 1);
      // `--model --format json`: the next option is not this one's value (`--model=--odd` passes one)
      if (argv[i + 1]?.startsWith('--')) return undefined;
      return argv[++i];
    };
    if (a === '--format' || a.startsWith('--format=')) {
      const v = value();
      if (v === undefined) return '--format needs a value: json or text';
      if (v !== 'json' && v !== 'text') return `--format must be json or text, got ${JSON.stringify(v)}`;
      format = v;
    } else if (a === '--model' || a.startsWith('--model=')) {
      model = value();
      if (!model) return '--model needs a folder';
    } else if (a === '--policy' || a.startsWith('--policy=')) {
      const v = value();
      if (v === undefined) return '--policy needs a JSON object';
      // as Python's `score --policy`: '' is no overrides, anything but an object a usage error;
      // a budget written 768.0 or 1e3 is a float to Python's json, refused by parsePolicy as there
      // NaN / Infinity are read as Python's json reads them, then refused by key as Python's
      // `score --policy` refuses them: a usage error naming the setting, not "not a JSON object"
      let parsed: unknown;
      try { parsed = v ? parsePyJson(v) : {}; } catch { return `--policy must be a JSON object, got ${JSON.stringify(v)}`; }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return `--policy must be a JSON object, got ${JSON.stringify(v)}`;
      for (const [k, x] of Object.entries(parsed as Record<string, unknown>)) {
        if (typeof x === 'number' && !Number.isFinite(x)) return `--policy: ${escapeControls(k)} must be a finite number, got ${nonFiniteLiteral(v, k, x)}`;
      }
      policy = v ? withFloatLiterals(parsed, v) : parsed;
    } else if (a === '-h' || a === '--help') {
      return '';
    } else if (a !== '-' && a.startsWith('-')) {
      return `unknown option ${a}`;
    } else if (file === undefined) {
      file = a;
    } else {
      return `unexpected argument ${a}`;
    }
  }
  if (file === undefined) return 'no input file (use - for stdin)';
  return { file, format, model, policy };
}

/** How `text` wrote the non-finite value of top-level key `key` (NaN, Infinity, -Infinity), as Python's json.dumps writes it. */
function nonFiniteLiteral(text: string, key: string, value: number): string {
  const esc = JSON.stringify(key).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`${esc}\\s*:\\s*(NaN|-?Infinity)(?![\\w])`).exec(text);
  return m ? m[1]! : value > 0 ? 'Infinity' : '-Infinity';
}

/** The record's id written as JSON: as it came (null, a list, an exact big integer...), else its line number, as Python's `score`. */
function idJson(rec: PromptRecord): string {
  const id = rec.id === undefined ? rec.line : rec.id;
  return typeof id === 'bigint' ? id.toString() : JSON.stringify(id);
}

function render(rec: PromptRecord, a: Assessment, format: 'json' | 'text'): string {
  const round = (x: number): number => Math.round(x * 1e6) / 1e6;
  if (format === 'text') {
    const t = (a.truncated ? ' (truncated)' : '') + (a.unfamiliar ? ' (unfamiliar script)' : '');
    // escaped: an id holding "\u001b[2J" or a newline must not clear the terminal or forge a result row
    const id = escapeControls(typeof rec.id === 'string' ? rec.id : idJson(rec));
    return `${id.padEnd(8)} risk ${(a.risk * 100).toFixed(1).padStart(5)}%  ${a.tier.padEnd(8)} ${String(a.budget).padStart(4)} tok${t}\n`;
  }
  const categories: Record<string, number> = {};
  for (const [k, v] of Object.entries(a.categories)) categories[k] = round(v);
  const out: Record<string, unknown> = {
    line: rec.line,
    risk: round(a.risk),
    tier: a.tier,
    budget: a.budget,
    categories,
    ambiguity: round(a.ambiguity),
  };
  if (a.truncated) out.truncated = true;
  if (a.unfamiliar) out.unfamiliar = true;
  return `{"id":${idJson(rec)},${JSON.stringify(out).slice(1)}\n`;
}

/** Thrown by write() when stdout's reader has gone (`conscience inspect F | head -1`): stop quietly. */
class StdoutClosed extends Error {}

/** Set by inspect()'s stdout 'error' listener (EPIPE): the reader of stdout has gone. */
let stdoutGone = false;

async function write(text: string): Promise<void> {
  if (stdoutGone || process.stdout.destroyed) throw new StdoutClosed();
  if (!process.stdout.write(text)) {
    await new Promise<void>((resolve) => {
      const done = (): void => { process.stdout.off('drain', done); process.stdout.off('error', done); resolve(); };
      process.stdout.once('drain', done);
      process.stdout.once('error', done);
    });
    if (stdoutGone) throw new StdoutClosed();
  }
}

export async function inspect(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`${args ? `conscience inspect: ${args}\n` : ''}${USAGE}\n`);
    return args ? 2 : 0;
  }
  const name = args.file === '-' ? '<stdin>' : args.file;
  let source: Readable;
  if (args.file === '-') {
    source = process.stdin;
  } else {
    let st;
    try {
      st = await stat(args.file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      process.stderr.write(`conscience inspect: ${args.file}: ${code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : `cannot read: ${code ?? (err as Error).message}`}\n`);
      return 2;
    }
    if (!st.isFile()) {
      process.stderr.write(`conscience inspect: ${args.file}: not a file\n`);
      return 2;
    }
    // opened before the allocator loads, so an unreadable file is one line naming it, not a
    // stream error nobody listens to
    let fh;
    try {
      fh = await open(args.file, 'r');
    } catch (err) {
      process.stderr.write(`conscience inspect: ${args.file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
      return 2;
    }
    source = fh.createReadStream({ highWaterMark: 1 << 20 });
  }
  let allocator: Allocator;
  try {
    // --model replaces --policy's "model" (as Python's `score` sets cfg["model"]); else the folder
    // --policy names ({"model": DIR}) is the one read, as Python's load_config reads it
    const policy = args.model !== undefined && args.policy ? { ...(args.policy as Record<string, unknown>), model: args.model } : args.policy;
    allocator = await Allocator.load(args.model ?? policyModel(policy) ?? defaultModelDir(), { policy, policySource: '--policy', cacheSize: 0 });
  } catch (err) {
    process.stderr.write(`conscience inspect: cannot load the allocator: ${(err as Error).message}\n`);
    source.destroy();
    return 1;
  }
  const items: AsyncIterable<ReadItem> = /\.csv$/i.test(args.file) ? readCsv(source) : readJsonl(source);
  stdoutGone = false;
  const onStdoutError = (): void => { stdoutGone = true; };
  process.stdout.on('error', onStdoutError);
  let bad = 0;
  let pending: PromptRecord[] = [];
  let pendingChars = 0;
  const flush = async (): Promise<void> => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    pendingChars = 0;
    const scored = await allocator.assessUncached(batch.map((r) => r.prompt));
    let text = '';
    batch.forEach((r, i) => { text += render(r, scored[i]!, args.format); });
    await write(text);
  };
  const reader = items[Symbol.asyncIterator]();
  // the next item is read while a window is scored: a failing source rejects it then, with
  // nobody awaiting it yet (the loop's await still sees the error)
  const readNext = (): Promise<IteratorResult<ReadItem>> => {
    const p = reader.next();
    p.catch(() => undefined);
    return p;
  };
  let next = readNext();
  let finished = false;
  try {
    for (;;) {
      let got = await ifReady(next);
      if (got === STALLED) {
        await flush();
        got = await next;
      }
      if (got.done) {
        finished = true;
        break;
      }
      next = readNext();
      const item = got.value;
      if (item.kind === 'error') {
        bad++;
        // Results already read must come out before an error about a later line.
        await flush();
        process.stderr.write(escapeControls(`${name}:${item.line}: ${item.message}`) + '\n');
        continue;
      }
      if (!item.prompt.trim()) {
        await flush(); // as an error: after the results of the lines before it
        process.stderr.write(escapeControls(`${name}:${item.line}: warning: empty prompt (scored as is)`) + '\n');
      }
      pending.push(item);
      pendingChars += item.prompt.length;
      if (pending.length >= WINDOW || pendingChars >= WINDOW_CHARS) await flush();
    }
    await flush();
  } catch (err) {
    if (!(err instanceof StdoutClosed)) throw err;
    // the reader of stdout left (a pipe into `head`): nothing more to write
  } finally {
    // stopped early (stdout gone, the allocator failed): stop reading too, or an open stdin
    // (`tail -f log | conscience inspect -`) would keep the process waiting for input
    if (!finished) source.destroy();
    await allocator.dispose();
    if (stdoutGone) process.stdout.on('error', () => undefined); // later EPIPEs of the same pipe
    process.stdout.off('error', onStdoutError);
  }
  return bad ? 1 : 0;
}
