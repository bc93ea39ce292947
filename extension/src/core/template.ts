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

type Piece = { text: string } | { field: string; raw: string } | { lone: '{' | '}' };

/** `wording` as Python's str.format parses it: literal text ({{ and }} unescaped), replacement
 * fields (`field` is what stands between the braces), and lone braces; nothing is read after a
 * `{` that no `}` closes. The one scanner of unsupportedField and format. */
function* pieces(wording: string): Generator<Piece> {
  let text = '';
  for (let i = 0; i < wording.length; i++) {
    const c = wording[i]!;
    if ((c === '{' || c === '}') && wording[i + 1] === c) { text += c; i++; continue; }
    if (c !== '{' && c !== '}') { text += c; continue; }
    if (text) { yield { text }; text = ''; }
    if (c === '}') { yield { lone: '}' }; continue; }
    const end = fieldEnd(wording, i);
    if (end < 0) { yield { lone: '{' }; return; }
    yield { field: wording.slice(i + 1, end - 1), raw: wording.slice(i, end) };
    i = end - 1;
  }
  if (text) yield { text };
}

/**
 * The first replacement field of `wording` that is not a plain `{budget}`, `{open_tag}` or
 * `{close_tag}` (`{budget:d}`, `{budget!s}`, `{open_tag[0]}`), as written; undefined if every
 * field is plain (`conscience.template.unsupported_field`). Python would render such a field;
 * this module does not, so the runtime and the validator (CC227) refuse it. (A lone `{` is
 * str.format's own error, the validator's formatError.)
 */
export function unsupportedField(wording: string): string | undefined {
  for (const p of pieces(wording)) {
    if ('field' in p && !(PLACEHOLDERS as readonly string[]).includes(p.field)) return p.raw;
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
  for (const p of pieces(wording)) {
    if ('text' in p) { out += p.text; continue; }
    if ('lone' in p) throw new Error(`prompt template: single '${p.lone}' in ${JSON.stringify(wording)}`);
    if (!Object.prototype.hasOwnProperty.call(fields, p.field)) {
      throw new Error(/^\w+$/.test(p.field)
        ? `prompt template: unknown placeholder ${p.raw} in ${JSON.stringify(wording)}`
        : `prompt template: ${p.raw} has a format spec, conversion or index; only plain {budget}, {open_tag} and {close_tag} are filled in (${JSON.stringify(wording)})`);
    }
    out += fields[p.field];
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
