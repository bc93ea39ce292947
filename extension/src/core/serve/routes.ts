/**
 * The routes the gateway scores, one adapter each: what text a request is scored on, where its
 * budget instruction goes, which fields limit its tokens, how many choices it asks for, what a
 * refusal looks like in its shape, and how its answer is read. The gateway's flow (read, score,
 * refuse or cap, forward, count) is the same for all three; only these differ.
 *
 * - `/v1/chat/completions`: the last user message; the budget goes into the system message.
 * - `/v1/responses` (the Responses API): the last user input item (or a string `input`); the
 *   budget goes into `instructions` (or the leading system item), which both vLLM and
 *   `transformers serve` put first as the system message.
 * - `/v1/completions`: the raw `prompt` text, each of a list. The prompt is text the client has
 *   already templated, with no system message to hold the budget instruction: it is scored,
 *   refused and capped by tier, and forwarded without a budget.
 *
 * vscode-free, no I/O.
 */
import { randomUUID } from 'node:crypto';
import { systemMessage, type PromptTemplateSpec } from '../template';
import { JsonAnswer, MAX_CHOICES, ResponseJsonAnswer, ResponseSseAnswer, SseAnswer, type AnswerParser } from './answer';
import { contentText, isOtherRole, MAX_SYSTEM_TEXTS, RequestError, userTexts, withBudget, type ConversationTexts } from './messages';

export type ScoredRoute = '/v1/chat/completions' | '/v1/completions' | '/v1/responses';
type Body = Record<string, unknown>;

/** the most prompts of one /v1/completions request the gateway scores (a longer list is refused: split it) */
export const MAX_PROMPTS = 1024;
/** the most completions (n × prompts) one /v1/completions request may ask for: a refusal holds that many */
export const MAX_COMPLETION_CHOICES = 4096;

/** Why a request has nothing to score: its header value and its log text. */
export interface Unscored { header: 'no-user-message' | 'no-text' | 'token-ids'; reason: string }
export const NO_USER_MESSAGE: Unscored = { header: 'no-user-message', reason: 'no user message' };
const NO_TEXT: Unscored = { header: 'no-text', reason: 'no text in the last user message' };

/**
 * A request's text to score (each of `texts` is scored; the request takes the strictest), or why
 * there is none. `fromSystems`: the texts are the system and developer texts scored because no
 * user message has text (they are not turns of the conversation).
 */
export type Prompts = { texts: string[]; unscored: null; fromSystems?: boolean } | { texts: []; unscored: Unscored };

/** A refusal in the route's shape; `id`: the response id a continuation would name (Responses API) */
export interface Refusal { contentType: string; body: string; id?: string }

export interface RouteAdapter {
  readonly route: ScoredRoute;
  /** the log record's `msg` */
  readonly logName: 'chat' | 'completion' | 'response';
  /** whether the request is given the budget instruction (false: scored, refused and capped only) */
  readonly givesBudget: boolean;
  /** the fields that limit the answer's tokens, in the order the upstreams read them; the last is added when none is sent */
  readonly limitKeys: readonly string[];
  /** a limit of 0 is a limit (completions: the prompt's logprobs only, with echo) rather than "no limit" (chat: vLLM reads `max_completion_tokens or max_tokens`) */
  readonly zeroIsALimit: boolean;
  /** the upstreams' own limit when none is sent (completions: 16, OpenAI's and vLLM's default): a cap added then is at most this */
  readonly defaultLimit?: number;
  /**
   * The texts to score; `turns`: how many of the last user messages a conversation is scored
   * on (the policy's context_turns). Throws RequestError for a body the upstream would refuse.
   */
  prompts(body: Body, turns: number): Prompts;
  /** the top-level members that carry the budget instruction (givesBudget routes) */
  budget(body: Body, template: PromptTemplateSpec, budget: number): Body;
  /** the choices the request asks for (the refusal has as many; at most MAX_CHOICES) */
  choices(body: Body): number;
  refusal(body: Body, stream: boolean, n: number, text: string): Refusal;
  /**
   * reads the upstream's successful answer; `keep`: characters of each part held for the log;
   * `seen`: told the answer's response id (Responses API: a continuation names it)
   */
  parser(template: PromptTemplateSpec, sse: boolean, keep: number, seen?: (id: string) => void): AnswerParser;
  /**
   * What a request continues whose earlier turns the upstream holds (Responses API: the stored
   * response `previous_response_id` names, the stored `conversation` object), else null
   */
  continues(body: Body): Continued | null;
}

/**
 * The choices a request asks for: its `n` (a whole number, at most MAX_CHOICES, or a string
 * of digits, which vLLM coerces to one), else 1.
 */
export function choicesAsked(body: Body): number {
  return Math.min(choicesRequested(body), MAX_CHOICES);
}

/** The request's `n` as the upstream reads it (a whole number or a string of digits), uncapped; else 1. */
function choicesRequested(body: Body): number {
  const n = typeof body.n === 'string' && /^\s*\d{1,15}\s*$/.test(body.n) ? Number(body.n) : body.n;
  return typeof n === 'number' && Number.isInteger(n) && n > 1 ? n : 1;
}

const includeUsage = (body: Body): boolean => (body.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true;
const modelOf = (body: Body): string => (typeof body.model === 'string' ? body.model : 'conscience-gateway');
const sse = (events: string[]): Refusal => ({ contentType: 'text/event-stream', body: events.join('') });
const json = (v: unknown): Refusal => ({ contentType: 'application/json', body: JSON.stringify(v) });
const ZERO_USAGE = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

/**
 * A refusal of `n` choices in the shape of chat or completions: one object whose choices are
 * `whole(index)`, or, streamed, one chunk per piece of each choice (`pieces(index)`), a usage
 * chunk without choices when stream_options.include_usage asks (every chunk then has
 * `"usage": null`), and `data: [DONE]`.
 */
function choicesRefusal(body: Body, stream: boolean, n: number, shape: { id: string; object: string; chunkObject: string; whole: (index: number) => Body; pieces: (index: number) => Body[] }): Refusal {
  const { id } = shape;
  const created = Math.floor(Date.now() / 1000);
  const model = modelOf(body);
  const indices = Array.from({ length: n }, (_, i) => i);
  if (!stream) return json({ id, object: shape.object, created, model, choices: indices.map(shape.whole), usage: ZERO_USAGE });
  const withUsage = includeUsage(body);
  const event = (choices: unknown[], u?: unknown): string =>
    `data: ${JSON.stringify({ id, object: shape.chunkObject, created, model, choices, ...(withUsage ? { usage: u ?? null } : {}) })}\n\n`;
  return sse([
    ...indices.map((i) => shape.pieces(i).map((piece) => event([piece])).join('')),
    withUsage ? event([], ZERO_USAGE) : '',
    'data: [DONE]\n\n',
  ]);
}

export const CHAT: RouteAdapter = {
  route: '/v1/chat/completions',
  logName: 'chat',
  givesBudget: true,
  limitKeys: ['max_completion_tokens', 'max_tokens'],
  zeroIsALimit: false,
  prompts(body, turns) {
    return conversation(userTexts(body), turns, 'messages');
  },
  budget(body, template, budget) {
    return { messages: withBudget(body.messages as Body[], template, budget) };
  },
  choices: choicesAsked,
  refusal(body, stream, n, text) {
    // a request for structured output (a JSON schema) is refused in OpenAI's refusal member, so
    // that the SDKs' parse helpers report a refusal (parsed: null) instead of failing to parse
    // the text as JSON; any other request gets the text as its content
    const member = asksForSchema((body.response_format as Body | null | undefined)?.type) ? 'refusal' : 'content';
    return choicesRefusal(body, stream, n, {
      id: `chatcmpl-conscience-${randomUUID()}`, object: 'chat.completion', chunkObject: 'chat.completion.chunk',
      whole: (index) => ({ index, message: { role: 'assistant', content: member === 'content' ? text : null, ...(member === 'refusal' ? { refusal: text } : {}) }, finish_reason: 'stop' }),
      pieces: (index) => [
        { index, delta: { role: 'assistant' }, finish_reason: null },
        { index, delta: { [member]: text }, finish_reason: null },
        { index, delta: {}, finish_reason: 'stop' },
      ],
    });
  },
  parser(template, isSse, keep) {
    return isSse ? new SseAnswer(template, keep, 'chat') : new JsonAnswer(template, 'chat');
  },
  continues: () => null,
};

/**
 * The texts a conversation is scored on (the request is handled by the strictest): its last
 * `turns` user messages that have text, the texts in unknown roles after them, and the system
 * and developer texts after the first user message; without user text, each system or
 * developer text. Nothing to score: no user message and no such text, or no text in those
 * turns. `field`: the member holding the conversation, named by a 400.
 */
function conversation({ users, others, systems, later, pinned = [] }: ConversationTexts, turns: number, field: string): Prompts {
  // the last user messages (and user text always read: `pinned`), any text in a role the
  // servers do not know after them (the chat template renders it to the model: a request there
  // would otherwise pass unread), and system or developer text after the first user message (a
  // prompt put there reaches the model too; the leading system prompt is the operator's: not
  // scored beside a user text, or a safety policy written there would refuse every request)
  const turnTexts = [...pinned, ...users.slice(-turns), ...others].filter((t) => t.trim() !== '');
  if (turnTexts.length > 0) {
    if (others.length + later.length > MAX_SYSTEM_TEXTS) {
      throw new RequestError(`'${field}' holds ${others.length + later.length} texts scored besides the user turns (in roles the server does not know, or system and developer texts after the first user message); the gateway scores at most ${MAX_SYSTEM_TEXTS} of them per request`, field, 400, 'too_many_prompts');
    }
    return { texts: [...turnTexts, ...later], unscored: null };
  }
  // no user text (none, or only images or blanks): what the model reads is the system and
  // developer texts, so a prompt put there is scored (each, the strictest wins)
  if (systems.length > MAX_SYSTEM_TEXTS) {
    throw new RequestError(`the request has no user text and ${systems.length} system and developer texts; the gateway scores at most ${MAX_SYSTEM_TEXTS} of them`, field, 400, 'too_many_prompts');
  }
  if (systems.length > 0) return { texts: systems, unscored: null, fromSystems: true };
  return { texts: [], unscored: users.length + pinned.length === 0 ? NO_USER_MESSAGE : NO_TEXT };
}

/** A token-id prompt: an integer, or a list of them (vLLM and OpenAI take `prompt` as token ids too). */
const isTokens = (v: unknown): boolean => (typeof v === 'number' && Number.isInteger(v)) || (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'number' && Number.isInteger(t)));

/** The prompts of a /v1/completions request: a string, or a list of strings (one completion each). */
function completionPrompts(body: Body): string[] | 'tokens' {
  const p = body.prompt;
  // embeddings go to the model beside any text prompt (vLLM's documented form is prompt "" plus prompt_embeds)
  if (body.prompt_embeds !== undefined && body.prompt_embeds !== null) return 'tokens';
  if (p === undefined || p === null) throw new RequestError("'prompt' is a required property", 'prompt');
  if (typeof p === 'string') return [p];
  if (isTokens(p)) return 'tokens';
  if (Array.isArray(p)) {
    if (p.length === 0) throw new RequestError("'prompt' must not be an empty list", 'prompt');
    if (p.every((x) => typeof x === 'string')) {
      if (p.length > MAX_PROMPTS) throw new RequestError(`'prompt' holds ${p.length} prompts; the gateway scores at most ${MAX_PROMPTS} per request: send them in several requests`, 'prompt', 400, 'too_many_prompts');
      return p as string[];
    }
    if (p.every(isTokens)) return 'tokens';
  }
  throw new RequestError("'prompt' must be a string, a list of strings, or token ids", 'prompt');
}

export const COMPLETIONS: RouteAdapter = {
  route: '/v1/completions',
  logName: 'completion',
  givesBudget: false,
  limitKeys: ['max_tokens'],
  zeroIsALimit: true,
  defaultLimit: 16,
  prompts(body) {
    const p = completionPrompts(body);
    const n = choicesRequested(body) * (Array.isArray(body.prompt) && p !== 'tokens' ? p.length : 1);
    if (n > MAX_COMPLETION_CHOICES) throw new RequestError(`the request asks for ${n} completions (n × prompts); the gateway answers at most ${MAX_COMPLETION_CHOICES} per request: send the prompts in several requests`, 'n', 400, 'too_many_choices');
    if (p === 'tokens') return { texts: [], unscored: { header: 'token-ids', reason: 'a prompt of token ids or embeddings' } };
    const texts = p.filter((t) => t.trim() !== '');
    if (texts.length === 0) return { texts: [], unscored: { header: 'no-text', reason: 'no text in the prompt' } };
    return { texts, unscored: null };
  },
  budget() {
    return {};
  },
  choices(body) {
    // n completions of each prompt (vLLM numbers them prompt by prompt); a list of strings or of
    // token lists is several prompts, a flat list of token ids one
    const p = body.prompt;
    const prompts = Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || Array.isArray(x)) ? p.length : 1;
    return Math.min(MAX_COMPLETION_CHOICES, choicesAsked(body) * prompts);
  },
  refusal(body, stream, n, text) {
    return choicesRefusal(body, stream, n, {
      id: `cmpl-conscience-${randomUUID()}`, object: 'text_completion', chunkObject: 'text_completion',
      whole: (index) => ({ index, text, logprobs: null, finish_reason: 'stop' }),
      pieces: (index) => [
        { index, text, logprobs: null, finish_reason: null },
        { index, text: '', logprobs: null, finish_reason: 'stop' },
      ],
    });
  },
  parser(template, isSse, keep) {
    return isSse ? new SseAnswer(template, keep, 'completion') : new JsonAnswer(template, 'completion');
  },
  continues: () => null,
};

/** whether a `response_format.type` / `text.format.type` asks for structured output (a JSON schema) */
const asksForSchema = (type: unknown): boolean => type === 'json_schema';

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
/** an item without a role: transformers serve then reads the whole `input` list as the content parts of one user message */
const roleless = (v: unknown): boolean => !!v && typeof v === 'object' && !Array.isArray(v) && !('role' in v);

/**
 * The user texts of a Responses API request: a string `input`; a list of content parts (one
 * user message); or the user messages of a list of items (`{role, content}` or
 * `{type: "message", role, content}`; tool calls and their outputs carry no prompt). And the
 * last system or developer text (an item, else `instructions`), scored when there is no user
 * message, as for chat.
 */
function responseTexts(body: Body): ConversationTexts {
  const input = body.input;
  const ins = body.instructions;
  if (ins !== undefined && ins !== null && typeof ins !== 'string') throw new RequestError(`'instructions' must be a string, got ${typeName(ins)}`, 'instructions');
  const systems = typeof ins === 'string' && ins.trim() !== '' ? [ins] : [];
  if (input === undefined || input === null) return { users: [], others: [], systems, later: [] };
  if (typeof input === 'string') return { users: [input], others: [], systems, later: [] };
  if (!Array.isArray(input)) throw new RequestError(`'input' must be a string or a list, got ${typeName(input)}`, 'input');
  const users: string[] = [];
  let others: string[] = [];
  const later: string[] = [];
  // a list whose first item has no role is one user message of content parts to transformers
  // serve (text, input_text, output_text, ... parts: contentText's), whatever vLLM makes of it:
  // its text is always scored, whatever context_turns leaves of the user items after it
  const pinned = input.length > 0 && roleless(input[0]) ? [contentText(input) ?? ''] : [];
  input.forEach((it, i) => {
    if (!it || typeof it !== 'object' || Array.isArray(it)) throw new RequestError(`input[${i}] must be an object, got ${typeName(it)}`, `input[${i}]`);
    const role = (it as Body).role;
    if (role === undefined) return; // function_call, function_call_output, reasoning, ...
    if (typeof role !== 'string' || role === '') throw new RequestError(`input[${i}].role must be a non-empty string`, `input[${i}].role`);
    if (role === 'user') {
      const text = contentText((it as Body).content);
      if (text === null) throw new RequestError(`input[${i}].content must be a string or a list of content parts`, `input[${i}].content`);
      users.push(text);
      others = [];
    } else if (isOtherRole(role)) {
      // a role the server does not know reaches the model through its chat template
      const text = contentText((it as Body).content);
      if (text !== null && text.trim() !== '') others.push(text);
    } else if (role === 'system' || role === 'developer') {
      const text = contentText((it as Body).content);
      if (text !== null && text.trim() !== '') {
        systems.push(text);
        // after the first user message (a role-less first item is one): scored beside the user turns
        if (users.length + pinned.length > 0) later.push(text);
      }
    }
  });
  return { users, others, systems, later, pinned };
}

export const RESPONSES: RouteAdapter = {
  route: '/v1/responses',
  logName: 'response',
  givesBudget: true,
  limitKeys: ['max_output_tokens'],
  zeroIsALimit: false,
  prompts(body, turns) {
    return conversation(responseTexts(body), turns, 'input');
  },
  budget(body, template, budget) {
    // `instructions` is the system message both upstreams put first; without it, a leading
    // system item is (as in chat); else `instructions` is added to carry the instruction
    if (typeof body.instructions === 'string' && body.instructions !== '') {
      return { instructions: systemMessage({ ...template, systemPrompt: body.instructions }, budget) };
    }
    const input = body.input;
    if (Array.isArray(input) && input.length > 0 && !roleless(input[0])) {
      const first = input[0] as Body;
      if (first && typeof first === 'object' && first.role === 'system' && contentText(first.content) !== null) {
        return { input: withBudget(input as Body[], template, budget) };
      }
    }
    return { instructions: systemMessage(template, budget) };
  },
  choices: () => 1,
  refusal(body, stream, _n, text) {
    const id = `resp_conscience_${randomUUID().replace(/-/g, '')}`;
    const msgId = `msg_conscience_${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    // structured output asked (text.format a JSON schema): a refusal part, as OpenAI answers
    // then, so that the SDKs' parse helpers report a refusal instead of failing on the text
    const refusing = asksForSchema(((body.text as Body | null | undefined)?.format as Body | null | undefined)?.type);
    const part = refusing ? { type: 'refusal', refusal: text } : { type: 'output_text', text, annotations: [] };
    const message = { type: 'message', id: msgId, status: 'completed', role: 'assistant', content: [part] };
    const usage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
    const response = (status: string, output: unknown[], u: unknown) => ({
      id, object: 'response', created_at: created, status, model: modelOf(body), output, usage: u,
      ...(typeof body.instructions === 'string' ? { instructions: body.instructions } : {}),
    });
    if (!stream) return { ...json(response('completed', [message], usage)), id };
    let seq = 0;
    const event = (type: string, fields: Body): string => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...fields })}\n\n`;
    return { ...sse([
      event('response.created', { response: response('in_progress', [], null) }),
      event('response.in_progress', { response: response('in_progress', [], null) }),
      event('response.output_item.added', { output_index: 0, item: { ...message, status: 'in_progress', content: [] } }),
      event('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: refusing ? { ...part, refusal: '' } : { ...part, text: '' } }),
      ...(refusing ? [
        event('response.refusal.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: text }),
        event('response.refusal.done', { item_id: msgId, output_index: 0, content_index: 0, refusal: text }),
      ] : [
        event('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: text }),
        event('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text }),
      ]),
      event('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part }),
      event('response.output_item.done', { output_index: 0, item: message }),
      event('response.completed', { response: response('completed', [message], usage) }),
    ]), id };
  },
  parser(template, isSse, keep, seen) {
    return isSse ? new ResponseSseAnswer(template, keep, seen) : new ResponseJsonAnswer(template, seen);
  },
  continues(body) {
    const p = body.previous_response_id;
    if (p !== undefined && p !== null && typeof p !== 'string') throw new RequestError(`'previous_response_id' must be a string, got ${typeName(p)}`, 'previous_response_id');
    // OpenAI's `conversation`: its id, or an object with one
    const c = body.conversation;
    const obj = c !== null && typeof c === 'object' && !Array.isArray(c);
    const conv = obj ? (c as Body).id : c;
    if (c !== undefined && c !== null && typeof conv !== 'string') {
      const got = !obj ? typeName(c) : conv === undefined || conv === null ? 'an object without one' : typeName(c);
      throw new RequestError(`'conversation' must be a conversation id (a string) or an object with a string 'id', got ${got}`, 'conversation');
    }
    // input items that name stored items by id (`item_reference`): context the request does not carry
    const refs = Array.isArray(body.input) && body.input.some((x) => x !== null && typeof x === 'object' && (x as Body).type === 'item_reference');
    const out: Continued = { ...(typeof p === 'string' ? { response: p } : {}), ...(typeof conv === 'string' ? { conversation: conv } : {}), ...(refs ? { references: true } : {}) };
    return out.response !== undefined || out.conversation !== undefined || out.references ? out : null;
  },
};

/** The stored context a Responses request continues: a response it names, a conversation it belongs to, or both. */
export interface Continued {
  response?: string;
  conversation?: string;
  /** the input names stored items by id (`item_reference`), which the gateway has not read */
  references?: boolean;
}

/** The adapter of a canonical path, for POST requests; undefined for every other route (passed through). */
export function scoredRoute(path: string): RouteAdapter | undefined {
  return path === CHAT.route ? CHAT : path === COMPLETIONS.route ? COMPLETIONS : path === RESPONSES.route ? RESPONSES : undefined;
}
