// The field reference of docs/events.md as data: every event field the readers (run store,
// monitor, Runs view, dashboard, CLI) use, with its type. `checkEvent` applies it to one parsed
// line; the reader (events.ts) reports an event that fails it, with its file and seq, and
// skips it. Fields the table does not name are kept and not checked (docs/events.md allows
// extra fields); a field the table names has the documented type or the event is rejected.
// extension/test/hardening/events-doc.test.ts checks this table and docs/events.md agree.

/**
 * The statuses a `run_finished` event may carry. The ONE list the reader accepts: a status not
 * in it makes the event invalid (reported and skipped), so a run can never be left in a state
 * nobody knows. To let the trainer report a new outcome (e.g. `timeout`, `out_of_memory`), add
 * it here, to RunState in store.ts and to docs/events.md; the reader then accepts it.
 */
export const RUN_FINISHED_STATUSES = ['completed', 'failed', 'cancelled'] as const;
export type RunFinishedStatus = (typeof RUN_FINISHED_STATUSES)[number];

export const EVENT_TYPES = ['run_started', 'metrics', 'samples', 'checkpoint', 'heartbeat', 'run_finished'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** A field's check: undefined when the value is fine, else what is wrong ("must be ..."). */
type Check = (v: unknown) => string | undefined;

export interface FieldSpec {
  /** Must be present. Optional fields are checked only when present. */
  required: boolean;
  /** How docs/events.md names the type, for messages and the doc cross-check. */
  type: string;
  check: Check;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const describe = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v === 'object' ? 'an object' : typeof v;
};
const must = (ok: boolean, what: string, v: unknown) => (ok ? undefined : `must be ${what}, got ${describe(v)}`);

const integer: Check = (v) => must(typeof v === 'number' && Number.isSafeInteger(v), 'an integer', v);
const nonNegInt: Check = (v) => must(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, 'an integer >= 0', v);
const finiteNum: Check = (v) => must(typeof v === 'number' && Number.isFinite(v), 'a number', v);
const str: Check = (v) => must(typeof v === 'string', 'a string', v);
const strOrNull: Check = (v) => must(v === null || typeof v === 'string', 'a string or null', v);
const numOrNull: Check = (v) => must(v === null || (typeof v === 'number' && Number.isFinite(v)), 'a number or null', v);
const nonNegIntOrNull: Check = (v) => must(v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0), 'an integer >= 0 or null', v);
const posInt: Check = (v) => must(typeof v === 'number' && Number.isSafeInteger(v) && v > 0, 'an integer > 0', v);
const oneOf = (values: readonly string[]): Check => (v) => must(typeof v === 'string' && values.includes(v), `one of ${values.join(', ')}`, v);

/** An object whose every value passes `each` (names the first bad key). */
const mapOf = (each: Check, what: string): Check => (v) => {
  if (!isObj(v)) return `must be an object of ${what}, got ${describe(v)}`;
  for (const [k, x] of Object.entries(v)) {
    const bad = each(x);
    if (bad) return `.${k} ${bad}`;
  }
  return undefined;
};
const listOf = (each: Check, what: string): Check => (v) => {
  if (!Array.isArray(v)) return `must be a list of ${what}, got ${describe(v)}`;
  for (let i = 0; i < v.length; i++) {
    const bad = each(v[i]);
    if (bad) return `[${i}]${bad.startsWith('.') || bad.startsWith('[') ? '' : ' '}${bad}`;
  }
  return undefined;
};

/** A samples row: {prompt, completion, rewards: {name: number|null}, budget?, label?}. */
const SAMPLE_ROW: Record<string, FieldSpec> = {
  prompt: { required: true, type: 'string', check: str },
  completion: { required: true, type: 'string', check: str },
  rewards: { required: true, type: 'object of number or null', check: mapOf(numOrNull, 'numbers or null') },
  budget: { required: false, type: 'number or null', check: numOrNull },
  // the dataset's label column as it is (a class name, or 0/1)
  label: { required: false, type: 'string, number, boolean or null', check: (v) => must(v === null || ['string', 'number', 'boolean'].includes(typeof v), 'a string, number, boolean or null', v) },
  safety: { required: false, type: 'string or null', check: strOrNull },
  answer: { required: false, type: 'string', check: str },
  safety_tokens: { required: false, type: 'integer >= 0 or null', check: nonNegIntOrNull },
};

const fieldsCheck = (spec: Record<string, FieldSpec>): Check => (v) => {
  if (!isObj(v)) return `must be an object, got ${describe(v)}`;
  const bad = checkFields(v, spec);
  return bad ? `.${bad}` : undefined;
};

/** Fields every event has. */
export const COMMON_FIELDS: Record<string, FieldSpec> = {
  type: { required: true, type: EVENT_TYPES.join(' | '), check: oneOf(EVENT_TYPES) },
  seq: { required: true, type: 'integer >= 0', check: nonNegInt },
  time: { required: true, type: 'number', check: finiteNum },
  run_id: { required: false, type: 'string', check: str },
};

/** The extra fields of each type. */
export const TYPE_FIELDS: Record<EventType, Record<string, FieldSpec>> = {
  run_started: {
    recipe_hash: { required: false, type: 'string', check: str },
    world_size: { required: false, type: 'integer > 0', check: posInt },
    versions: { required: false, type: 'object of strings', check: mapOf(str, 'strings') },
    resumed_from: { required: false, type: 'string or null', check: strOrNull },
    reward_funcs: { required: false, type: 'list of strings', check: listOf(str, 'strings') },
    max_steps: { required: false, type: 'integer >= 0 or null', check: nonNegIntOrNull },
    kind: { required: false, type: 'grpo | sft | eval', check: oneOf(['grpo', 'sft', 'eval']) },
    budgets: { required: false, type: 'object or null', check: (v) => must(v === null || isObj(v), 'an object or null', v) },
    init_from: { required: false, type: 'object with run_id (string) or null', check: (v) => must(v === null || (isObj(v) && typeof v.run_id === 'string'), 'an object with run_id or null', v) },
  },
  metrics: {
    step: { required: true, type: 'integer >= 0', check: nonNegInt },
    values: { required: true, type: 'object of number or null', check: mapOf(numOrNull, 'numbers or null') },
  },
  samples: {
    step: { required: true, type: 'integer >= 0', check: nonNegInt },
    rows: { required: true, type: 'list of rows', check: listOf(fieldsCheck(SAMPLE_ROW), 'rows') },
  },
  checkpoint: {
    step: { required: true, type: 'integer >= 0', check: nonNegInt },
    path: { required: true, type: 'string', check: str },
  },
  heartbeat: {
    step: { required: false, type: 'integer >= 0', check: nonNegInt },
  },
  run_finished: {
    status: { required: true, type: RUN_FINISHED_STATUSES.join(' | '), check: oneOf(RUN_FINISHED_STATUSES) },
    exit_code: { required: true, type: 'integer', check: integer },
    error: { required: false, type: 'string or null', check: strOrNull },
  },
};

export const SAMPLE_ROW_FIELDS = SAMPLE_ROW;

function checkFields(o: Record<string, unknown>, spec: Record<string, FieldSpec>): string | undefined {
  for (const [name, f] of Object.entries(spec)) {
    if (!Object.prototype.hasOwnProperty.call(o, name) || o[name] === undefined) {
      if (f.required) return `${name} is missing (${f.type})`;
      continue;
    }
    const bad = f.check(o[name]);
    if (bad) return `${name}${bad.startsWith('.') || bad.startsWith('[') ? '' : ' '}${bad}`;
  }
  return undefined;
}

/**
 * Checks one parsed line against the field reference. Returns undefined when it is a valid
 * event, else the first problem, naming the field ("values.reward must be a number or null, got
 * the string \"high\"").
 */
export function checkEvent(v: unknown): string | undefined {
  if (!isObj(v)) return `not an event: a JSON ${describe(v)} instead of an object`;
  const common = checkFields(v, COMMON_FIELDS);
  if (common) return common;
  return checkFields(v, TYPE_FIELDS[v.type as EventType]);
}
