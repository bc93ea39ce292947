/**
 * A chat request's `messages` checked and given the budget instruction, exactly as the policy
 * was trained: the system message becomes `systemMessage(template with that system prompt,
 * budget)` (core/template.ts, twin of conscience.template.PromptTemplate.system), and a request
 * without one gets the system message `PromptTemplate(system_prompt).messages` would put first.
 */
import { systemMessage, type PromptTemplateSpec } from '../template';

export class RequestError extends Error {
  constructor(message: string, readonly param: string | null = null, readonly status = 400, readonly code: string | null = null) {
    super(message);
  }
}

type Msg = Record<string, unknown>;

/**
 * The text of a message's content: a string, or the text of a content array's parts, joined by
 * newlines as vLLM joins them: plain strings, parts of type `text`, `input_text` and
 * `output_text` (their `text`; transformers serve and vLLM render all three), `refusal` (its
 * `refusal`) and `thinking` (its `thinking`), which vLLM renders too. Other parts (images,
 * audio, unknown types) carry no text.
 */
export function contentText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const parts: string[] = [];
    for (const p of content) {
      if (typeof p === 'string') { parts.push(p); continue; }
      if (!p || typeof p !== 'object') continue;
      const type = (p as Msg).type;
      const field = type === 'text' || type === 'input_text' || type === 'output_text' ? 'text' : type === 'refusal' ? 'refusal' : type === 'thinking' ? 'thinking' : null;
      const text = field ? (p as Msg)[field] : undefined;
      if (typeof text === 'string') parts.push(text);
    }
    return parts.join('\n');
  }
  return null;
}

/**
 * Roles whose text is not a request: the model's own turns (`model`: Gemma's name for them),
 * tool results (`ipython`: Llama 3's tool role), and the system texts, scored apart. Any other
 * role is one the servers pass to the chat template, which renders it to the model
 * (`<|im_start|>human`): its text is scored too.
 */
const NOT_USER_ROLES = new Set(['assistant', 'model', 'tool', 'function', 'ipython', 'system', 'developer']);
export const isOtherRole = (role: string): boolean => role !== 'user' && !NOT_USER_ROLES.has(role);

/**
 * The most texts of one request scored besides its user turns (more is a 400
 * `too_many_prompts`: each costs a score): the system and developer texts of a request without
 * user text; else the texts in unknown roles and the system and developer texts after the
 * first user message, together.
 */
export const MAX_SYSTEM_TEXTS = 64;

/**
 * A conversation's texts: each user message's, in order; `others`, the texts in roles the
 * servers do not know (isOtherRole) after the last user message (or all of them without one),
 * scored besides the last user messages; each system or developer text (`systems`), and those
 * of them after the first user message (`later`: scored besides the user turns, as a prompt put
 * there reaches the model after the operator's leading system prompt); `pinned`, user text
 * scored whatever context_turns says (a Responses list read as one user message).
 */
export interface ConversationTexts { users: string[]; others: string[]; systems: string[]; later: string[]; pinned?: string[] }

/**
 * Validates `body.messages` (OpenAI's shape) and returns its texts (ConversationTexts).
 */
export function userTexts(body: Record<string, unknown>): ConversationTexts {
  const messages = body.messages;
  if (messages === undefined) throw new RequestError("'messages' is a required property", 'messages');
  if (!Array.isArray(messages)) throw new RequestError(`'messages' must be an array, got ${typeName(messages)}`, 'messages');
  if (messages.length === 0) throw new RequestError("'messages' must contain at least one message", 'messages');
  const users: string[] = [];
  let others: string[] = [];
  const systems: string[] = [];
  const later: string[] = [];
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object' || Array.isArray(m)) throw new RequestError(`messages[${i}] must be an object, got ${typeName(m)}`, `messages[${i}]`);
    const role = (m as Msg).role;
    if (typeof role !== 'string' || !role) throw new RequestError(`messages[${i}].role must be a non-empty string`, `messages[${i}].role`);
    if (role === 'user') {
      const text = contentText((m as Msg).content);
      if (text === null) throw new RequestError(`messages[${i}].content must be a string or an array of content parts`, `messages[${i}].content`);
      users.push(text);
      others = [];
    } else if (isOtherRole(role)) {
      const text = contentText((m as Msg).content);
      if (text !== null && text.trim() !== '') others.push(text);
    } else if (role === 'system' || role === 'developer') {
      const text = contentText((m as Msg).content);
      if (text !== null && text.trim() !== '') {
        systems.push(text);
        if (users.length > 0) later.push(text);
      }
    }
  });
  return { users, others, systems, later };
}

/**
 * The text to score of a chat request (`body.messages` validated): the last user message's;
 * with no user message (a system prompt alone, or with an assistant prefill: servers accept
 * it), the last system or developer message's, so that a request cannot carry its prompt there
 * past the policy; null when there is neither.
 */
export function lastUserText(body: Record<string, unknown>): string | null {
  const { users, others, systems } = userTexts(body);
  return users.at(-1) ?? others.at(-1) ?? systems.at(-1) ?? null;
}

/**
 * The messages the upstream receives: the first message, when it is the system message, gets
 * the instruction after its text; otherwise a system message carrying the instruction (after
 * the configured system prompt, if any) is put first. Every other message is left as sent.
 */
export function withBudget(messages: Msg[], template: PromptTemplateSpec, budget: number): Msg[] {
  const first = messages[0];
  if (first && first.role === 'system') {
    const text = contentText(first.content);
    if (text !== null) {
      return [{ ...first, content: systemMessage({ ...template, systemPrompt: text }, budget) }, ...messages.slice(1)];
    }
  }
  return [{ role: 'system', content: systemMessage(template, budget) }, ...messages];
}

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
