/**
 * The one prompt template: how a policy is told its safety budget. The TypeScript twin of
 * `runtime/conscience/template.py`, reading the same `runtime/conscience/template.json`;
 * both are checked against `runtime/tests/data/template_cases.json`. Serving and the editor
 * render prompts with this module, so a deployed policy sees exactly what it trained on.
 */
import defaults from '../../../runtime/conscience/template.json';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface PromptTemplateSpec {
  openTag: string;
  closeTag: string;
  budgetInstruction: string;
  zeroBudgetInstruction: string;
  /** The recipe's `system_prompt`; the instruction follows it after a blank line. */
  systemPrompt?: string | null;
}

export const DEFAULT_TEMPLATE: Readonly<PromptTemplateSpec> = Object.freeze({
  openTag: defaults.open_tag,
  closeTag: defaults.close_tag,
  budgetInstruction: defaults.budget_instruction,
  zeroBudgetInstruction: defaults.zero_budget_instruction,
  systemPrompt: null,
});

/** The placeholders a wording may use, each as a plain `{name}`. */
export const PLACEHOLDERS = ['budget', 'open_tag', 'close_tag'] as const;

/** The end (exclusive) of the replacement field opening at `i`: its matching `}`, as Python's parser finds it; -1 if none. */
function fieldEnd(s: string, i: number): number {
  let depth = 1;
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '{') depth++;
    else if (s[j] === '}' && --depth === 0) return j + 1;
  }
  return -1;
}

/**
 * The first replacement field of `wording` that is not a plain `{budget}`, `{open_tag}` or
 * `{close_tag}` (`{budget:d}`, `{budget!s}`, `{open_tag[0]}`), as written; undefined if every
 * field is plain (`conscience.template.unsupported_field`). Python would render such a field;
 * this module does not, so the runtime and the validator (CC227) refuse it.
 */
export function unsupportedField(wording: string): string | undefined {
  for (let i = 0; i < wording.length; i++) {
    const c = wording[i];
    if ((c === '{' || c === '}') && wording[i + 1] === c) { i++; continue; }
    if (c !== '{') continue;
    const end = fieldEnd(wording, i);
    if (end < 0) return undefined; // a lone '{': str.format's own error (the validator's formatError)
    if (!(PLACEHOLDERS as readonly string[]).includes(wording.slice(i + 1, end - 1))) return wording.slice(i, end);
    i = end - 1;
  }
  return undefined;
}

/**
 * Python's `str.format` for the three named fields the wording may use, each plain ({{ and }}
 * escape braces). Anything Python would render differently or refuse is an error, never a
 * silent literal: an unknown name, a format spec, conversion or index (`{budget:d}`), a lone brace.
 */
function format(wording: string, fields: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < wording.length; i++) {
    const c = wording[i]!;
    if ((c === '{' || c === '}') && wording[i + 1] === c) { out += c; i++; continue; }
    if (c === '}') throw new Error(`prompt template: single '}' in ${JSON.stringify(wording)}`);
    if (c !== '{') { out += c; continue; }
    const end = fieldEnd(wording, i);
    if (end < 0) throw new Error(`prompt template: single '{' in ${JSON.stringify(wording)}`);
    const name = wording.slice(i + 1, end - 1);
    if (!Object.prototype.hasOwnProperty.call(fields, name)) {
      const m = wording.slice(i, end);
      throw new Error(/^\w+$/.test(name)
        ? `prompt template: unknown placeholder ${m} in ${JSON.stringify(wording)}`
        : `prompt template: ${m} has a format spec, conversion or index; only plain {budget}, {open_tag} and {close_tag} are filled in (${JSON.stringify(wording)})`);
    }
    out += fields[name];
    i = end - 1;
  }
  return out;
}

export function instruction(t: PromptTemplateSpec, budget: number): string {
  const b = Math.trunc(budget);
  const wording = b <= 0 ? t.zeroBudgetInstruction : t.budgetInstruction;
  return format(wording, { budget: String(b), open_tag: t.openTag, close_tag: t.closeTag });
}

export function systemMessage(t: PromptTemplateSpec, budget: number): string {
  const text = instruction(t, budget);
  return t.systemPrompt ? pyRstrip(t.systemPrompt) + defaults.system_separator + text : text;
}

/** The conversational prompt the policy was trained on: system (with the budget), then user. */
export function renderMessages(t: PromptTemplateSpec, prompt: string, budget: number): ChatMessage[] {
  return [
    { role: 'system', content: systemMessage(t, budget) },
    { role: 'user', content: prompt },
  ];
}

/**
 * Python's str.strip(): Unicode whitespace as `str.isspace` sees it. Not JS's \s: Python adds
 * U+001C-U+001F and U+0085, and does not count U+FEFF.
 */
export const PY_SPACE = '\\t-\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEAD = new RegExp(`^[${PY_SPACE}]+`, 'u');
const SPACE = new RegExp(`[${PY_SPACE}]`, 'u');
/** Python's str.rstrip(), in linear time (a `[…]+$` regex retries from every space of a long inner run: quadratic) */
function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && SPACE.test(s[end - 1]!)) end--;
  return s.slice(0, end);
}
const pyStrip = (s: string): string => pyRstrip(s.replace(LEAD, ''));

export interface SplitCompletion {
  /** Text inside the first safety block ('' when there is none; up to the end when unclosed). */
  safety: string;
  /** Text after the first closed block; the whole text when there is no block. */
  answer: string;
  /** The open tag occurs and a close tag follows it. */
  closed: boolean;
  /** The open tag occurs at all. */
  hasBlock: boolean;
}

/** Split a completion into safety block and answer, by the rewards' own rule (`parse_safety`). */
export function splitCompletion(t: Pick<PromptTemplateSpec, 'openTag' | 'closeTag'>, text: string): SplitCompletion {
  const s = text ?? '';
  const start = s.indexOf(t.openTag);
  if (start < 0) return { safety: '', answer: pyStrip(s), closed: false, hasBlock: false };
  const bodyStart = start + t.openTag.length;
  const end = s.indexOf(t.closeTag, bodyStart);
  if (end < 0) return { safety: pyStrip(s.slice(bodyStart)), answer: '', closed: false, hasBlock: true };
  return { safety: pyStrip(s.slice(bodyStart, end)), answer: pyStrip(s.slice(end + t.closeTag.length)), closed: true, hasBlock: true };
}
