// Where the prompts are in a document, for editor hints and hovers: prompt strings in YAML
// recipes (values of prompt-like keys such as system_prompt, found with js-yaml's event parser
// and its source ranges), one prompt per JSONL line, one per CSV record. Pure: no vscode.
import { parse as parseCsvSync } from 'csv-parse/sync';
import { EVENT_ID, getScalarValue, parseEvents, type ScalarEvent } from 'js-yaml';
import { parseYaml } from '../recipe/yaml';
import { CsvLines, csvPromptColumn, parsePromptLine } from './read';
import { recipeAllocatorSection } from './training';

export interface FoundPrompt {
  prompt: string;
  /** zero-based line where the hint goes (the end of this line) */
  line: number;
  /** UTF-16 offsets of the value in the document, when known */
  start?: number;
  end?: number;
  key?: string;
}

/** Keys whose string values are prompts: prompt, system_prompt, user_prompt, question, … */
export const PROMPT_KEY = /^(prompts?|[a-z0-9]+_prompts?|question|instruction|query)$/i;

const lineStarts = (text: string): number[] => {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
};

export const lineOf = (starts: number[], offset: number): number => {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
};

interface Frame { kind: 'map' | 'seq' | 'doc'; expectKey: boolean; key?: string; promptish: boolean }

/** Prompt strings in a YAML document (values of PROMPT_KEY keys, or items of such a list). */
export function yamlPrompts(text: string, isPromptKey: (k: string) => boolean = (k) => PROMPT_KEY.test(k)): FoundPrompt[] {
  let events;
  try {
    events = parseEvents(text, { maxDepth: 64 });
  } catch {
    return []; // a broken recipe gets its diagnostics from the recipe feature, not here
  }
  const starts = lineStarts(text);
  const out: FoundPrompt[] = [];
  const stack: Frame[] = [];
  const emit = (ev: ScalarEvent, key: string | undefined): void => {
    const prompt = getScalarValue(text, ev);
    if (!prompt.trim()) return;
    out.push({ prompt, line: lineOf(starts, Math.max(ev.valueStart, 0)), start: ev.valueStart, end: ev.valueEnd, key });
  };
  /** A value is about to be consumed in the top frame; returns the key it belongs to. */
  const takeValue = (): { key?: string; promptish: boolean } => {
    const top = stack[stack.length - 1];
    if (!top) return { promptish: false };
    if (top.kind === 'map') {
      const key = top.key;
      top.expectKey = true;
      top.key = undefined;
      return { key, promptish: key !== undefined && isPromptKey(key) };
    }
    return { key: top.key, promptish: top.promptish };
  };
  for (const ev of events) {
    const top = stack[stack.length - 1];
    switch (ev.type) {
      case EVENT_ID.DOCUMENT:
        stack.push({ kind: 'doc', expectKey: false, promptish: false });
        break;
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE: {
        let ctx: { key?: string; promptish: boolean } = { promptish: false };
        if (top?.kind === 'map' && top.expectKey) top.expectKey = false; // complex key: ignored
        else ctx = takeValue();
        stack.push(ev.type === EVENT_ID.MAPPING
          ? { kind: 'map', expectKey: true, promptish: false }
          : { kind: 'seq', expectKey: false, key: ctx.key, promptish: ctx.promptish });
        break;
      }
      case EVENT_ID.SCALAR:
        if (top?.kind === 'map' && top.expectKey) {
          top.key = getScalarValue(text, ev);
          top.expectKey = false;
        } else {
          const ctx = takeValue();
          if (ctx.promptish) emit(ev, ctx.key);
        }
        break;
      case EVENT_ID.ALIAS:
        if (top?.kind === 'map' && top.expectKey) top.expectKey = false;
        else takeValue();
        break;
      case EVENT_ID.POP:
        stack.pop();
        break;
    }
  }
  return out;
}

/** The prompt of one JSONL line, or undefined (blank, malformed, no prompt). */
export function jsonlLinePrompt(lineText: string, line: number): FoundPrompt | undefined {
  // a byte-order mark on the first line is dropped, as the readers drop it (read.ts, Python's)
  const text = line === 0 && lineText.charCodeAt(0) === 0xfeff ? lineText.slice(1) : lineText;
  if (!text.trimStart().startsWith('{')) return undefined;
  const item = parsePromptLine(text, line + 1);
  return item?.kind === 'prompt' ? { prompt: item.prompt, line } : undefined;
}

/**
 * Prompts of a CSV document (header row naming a prompt column), each at the line its record
 * ends on (zero-based; counted by read.ts CsvLines, as `conscience inspect` counts them). The
 * text is parsed whole: callers cache the result per document version.
 */
export function csvPrompts(text: string): FoundPrompt[] {
  const bytes = Buffer.from(text, 'utf8');
  let rows: Array<{ record: string[]; info: { bytes: number } }>;
  try {
    rows = parseCsvSync(bytes, { relax_column_count: true, info: true, skip_empty_lines: true, bom: true, relax_quotes: true }) as never;
  } catch {
    return [];
  }
  if (!rows.length) return [];
  const lines = new CsvLines();
  lines.push(bytes);
  const ends = rows.map((r) => lines.recordEnd(r.info.bytes) - 1);
  const col = csvPromptColumn(rows[0]!.record);
  if (col < 0) return [];
  const out: FoundPrompt[] = [];
  for (let i = 1; i < rows.length; i++) {
    const p = rows[i]!.record[col];
    if (p && p.trim()) out.push({ prompt: p, line: ends[i]! });
  }
  return out;
}

/**
 * Prompts of CSV records that start within `lines` (a window of a big document, zero-based
 * `firstLine`), parsed with the document's header row. A quoted field that crosses the
 * window's first line is misread at that edge only; used when parsing the whole file on every
 * edit would stall the editor.
 */
export function csvPromptsInWindow(header: string, lines: string[], firstLine: number): FoundPrompt[] {
  if (firstLine === 0) return csvPrompts(lines.join('\n'));
  return csvPrompts([header, ...lines].join('\n')).map((p) => ({ ...p, line: p.line - 1 + firstLine }));
}

/**
 * A recipe's `allocator:` section (policy overrides for its own prompts), if it has one: read as
 * the trainer reads it (PyYAML rules: `1e2` is a string, `768.0` a float that parsePolicy
 * refuses as a budget; training.ts recipeAllocatorSection), so the editor takes what training takes.
 */
export function yamlAllocatorSection(text: string): Record<string, unknown> | undefined {
  try {
    return recipeAllocatorSection(parseYaml(text).root);
  } catch {
    return undefined;
  }
}
