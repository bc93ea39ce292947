// Where the prompts are in a document, for editor hints and hovers: prompt strings in YAML
// recipes (values of prompt-like keys such as system_prompt, found with js-yaml's event parser
// and its source ranges), one prompt per JSONL line, one per CSV record. Pure: no vscode.
import { parse as parseCsvSync } from 'csv-parse/sync';
import { EVENT_ID, getScalarValue, load as loadYaml, parseEvents, type ScalarEvent } from 'js-yaml';
import { csvPromptColumn, parsePromptLine } from './read';

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
  if (!lineText.trimStart().startsWith('{')) return undefined;
  const item = parsePromptLine(lineText, line + 1);
  return item?.kind === 'prompt' ? { prompt: item.prompt, line } : undefined;
}

/**
 * Prompts of a CSV document (header row naming a prompt column), each at the line its record
 * ends on. The text is parsed whole: callers cache the result per document version.
 */
export function csvPrompts(text: string): FoundPrompt[] {
  let rows: Array<{ record: string[]; info: { lines: number } }>;
  try {
    rows = parseCsvSync(text, { relax_column_count: true, info: true, skip_empty_lines: true, bom: true, relax_quotes: true }) as never;
  } catch {
    return [];
  }
  if (!rows.length) return [];
  const col = csvPromptColumn(rows[0]!.record);
  if (col < 0) return [];
  const out: FoundPrompt[] = [];
  for (let i = 1; i < rows.length; i++) {
    const p = rows[i]!.record[col];
    if (p && p.trim()) out.push({ prompt: p, line: rows[i]!.info.lines - 1 });
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

/** A recipe's `allocator:` section (policy overrides for its own prompts), if it has one. */
export function yamlAllocatorSection(text: string): Record<string, unknown> | undefined {
  try {
    const doc = loadYaml(text) as Record<string, unknown> | null;
    const sec = doc && typeof doc === 'object' ? doc.allocator : undefined;
    return sec && typeof sec === 'object' && !Array.isArray(sec) ? (sec as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
