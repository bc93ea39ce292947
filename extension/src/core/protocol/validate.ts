// Webview protocols, declared once. Each message is described by checks built from the helpers
// below; its TypeScript type is inferred from the same checks (`Infer<typeof check>`), so the
// runtime validation and the compile-time type cannot drift apart. Host and webview both
// validate every message they receive, so a malformed or hostile message is rejected with a
// path-named reason instead of being half-used. No dependencies, no DOM, no node: it is bundled
// into the extension host and into each webview.
//
// Names: "host" in this product means the training machine (core/launch/host.ts); the other
// end of a webview is the extension (VS Code's extension host), hence ToWebview / ToExtension.
//
// A panel's protocol (see dashboard.ts, inspector.ts):
//   export const myPanel = protocol({
//     toWebview: { show: { text: str(1000) }, error: { message: str(4096) } },
//     toExtension: { ready: {}, pick: { index: int(0) } },
//   });
//   export type ToWebview = Infer<typeof myPanel.toWebview>;  // { type: 'show'; text: string } | …
//   export type ToExtension = Infer<typeof myPanel.toExtension>;
//   myPanel.parseToExtension(raw)  // { ok: true, value: ToExtension } | { ok: false, error: 'message.index: …' }

/** Returns null when `v` conforms, else a message naming the first offending path. `T` is what it accepts. */
export interface Check<T = unknown> {
  (v: unknown, path: string): string | null;
  /** Type-level only: the type of the values this check accepts (never set at run time). */
  readonly __type?: T;
}
/** A field check that may be left out of an object. */
export interface OptionalCheck<T> extends Check<T | undefined> {
  readonly optional: true;
}

/** The type a check accepts. */
export type Infer<C> = C extends Check<infer T> ? T : never;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type Fields = Record<string, Check<any>>;
/** The object type of a set of field checks (optional checks make optional keys). */
export type ObjOf<F extends Fields> = Simplify<
  { [K in keyof F as F[K] extends OptionalCheck<any> ? never : K]: Infer<F[K]> } & {
    [K in keyof F as F[K] extends OptionalCheck<any> ? K : never]?: Exclude<Infer<F[K]>, undefined>;
  }
>;

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : ArrayBuffer.isView(v) ? v.constructor.name : typeof v;

export const str = (maxLen = 1_000_000): Check<string> => (v, p) =>
  typeof v !== 'string' ? `${p}: expected string, got ${describe(v)}` : v.length > maxLen ? `${p}: string longer than ${maxLen}` : null;

/** A finite number (optionally within [min, max]). */
export const num = (min = -Infinity, max = Infinity): Check<number> => (v, p) =>
  typeof v !== 'number' || !Number.isFinite(v)
    ? `${p}: expected finite number, got ${describe(v)}`
    : v < min || v > max
      ? `${p}: ${v} outside [${min}, ${max}]`
      : null;

export const int = (min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Check<number> => (v, p) =>
  !Number.isInteger(v) ? `${p}: expected integer, got ${describe(v)}` : num(min, max)(v, p);

export const bool: Check<boolean> = (v, p) => (typeof v === 'boolean' ? null : `${p}: expected boolean, got ${describe(v)}`);

/** A number, or null (non-finite values travel as null). */
export const numOrNull: Check<number | null> = (v, p) => (v === null ? null : num()(v, p));

export const literal = <const L extends readonly (string | number | boolean | null)[]>(...values: L): Check<L[number]> => (v, p) =>
  values.includes(v as string) ? null : `${p}: expected one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;

/** A field that may be absent (undefined). */
export const optional = <T>(c: Check<T>): OptionalCheck<T> =>
  Object.assign((v: unknown, p: string) => (v === undefined ? null : c(v, p)), { optional: true as const });
export const nullable = <T>(c: Check<T>): Check<T | null> => (v, p) => (v === null ? null : c(v, p));

/** `c`, then a further test on the value it accepted (a pattern, an order between fields). */
export const refine = <T>(c: Check<T>, test: (v: T, path: string) => string | null): Check<T> => (v, p) => c(v, p) ?? test(v as T, p);

export const arr = <T>(item: Check<T>, maxLen = 1_000_000): Check<T[]> => (v, p) => {
  if (!Array.isArray(v)) return `${p}: expected array, got ${describe(v)}`;
  if (v.length > maxLen) return `${p}: more than ${maxLen} items`;
  for (let i = 0; i < v.length; i++) {
    const e = item(v[i], `${p}[${i}]`);
    if (e) return e;
  }
  return null;
};

/** A fixed-length tuple. */
export const tuple = <const C extends readonly Check<any>[]>(...items: C): Check<{ -readonly [K in keyof C]: Infer<C[K]> }> => (v, p) => {
  if (!Array.isArray(v) || v.length !== items.length) return `${p}: expected array of ${items.length}`;
  for (let i = 0; i < items.length; i++) {
    const e = items[i]!(v[i], `${p}[${i}]`);
    if (e) return e;
  }
  return null;
};

/**
 * A Float64Array (the efficient form VS Code ≥1.57 recreates in the webview), or a plain
 * array of numbers/nulls (what a JSON round trip yields). Use `toF64` on receipt.
 */
export const f64 = (maxLen = 50_000_000): Check<Float64Array | (number | null)[]> => (v, p) => {
  if (v instanceof Float64Array) return v.length > maxLen ? `${p}: more than ${maxLen} values` : null;
  if (!Array.isArray(v)) return `${p}: expected Float64Array, got ${describe(v)}`;
  if (v.length > maxLen) return `${p}: more than ${maxLen} values`;
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== null && typeof v[i] !== 'number') return `${p}[${i}]: expected number or null`;
  }
  return null;
};

/** Converts what `f64` accepted into a Float64Array (null → NaN). */
export function toF64(v: Float64Array | readonly (number | null)[]): Float64Array {
  if (v instanceof Float64Array) return v;
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] ?? NaN;
  return out;
}

/** An object with string keys whose values all pass `value`. */
export const record = <T>(value: Check<T>, maxKeys = 10_000): Check<Record<string, T>> => (v, p) => {
  if (!isPlainObject(v)) return `${p}: expected object, got ${describe(v)}`;
  const keys = Object.keys(v);
  if (keys.length > maxKeys) return `${p}: more than ${maxKeys} keys`;
  for (const k of keys) {
    const e = value((v as Record<string, unknown>)[k], `${p}[${JSON.stringify(k)}]`);
    if (e) return e;
  }
  return null;
};

/** An object with the given fields (unknown extra fields are rejected). */
export const obj = <F extends Fields>(fields: F): Check<ObjOf<F>> => (v, p) => {
  if (!isPlainObject(v)) return `${p}: expected object, got ${describe(v)}`;
  // own fields only: `k in fields` would take what every object inherits (constructor, toString, __proto__) as known
  for (const k of Object.keys(v)) if (!Object.prototype.hasOwnProperty.call(fields, k)) return `${p}.${k}: unexpected field`;
  for (const [k, c] of Object.entries(fields)) {
    const e = c((v as Record<string, unknown>)[k], `${p}.${k}`);
    if (e) return e;
  }
  return null;
};

/** A discriminated union on `tag`: each variant's check sees the whole object. */
export const union = <V extends Record<string, Check<any>>>(tag: string, variants: V): Check<Infer<V[keyof V]>> => (v, p) => {
  if (!isPlainObject(v)) return `${p}: expected object, got ${describe(v)}`;
  const t = (v as Record<string, unknown>)[tag];
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(variants, t)) {
    return `${p}.${tag}: unknown message type ${JSON.stringify(t)?.slice(0, 80)}`;
  }
  return variants[t]!(v, p);
};

/** The messages of one direction, by `type`: `{ layout: { title: str() } }` is `{ type: 'layout'; title: string }`. */
export type MessagesOf<V extends Record<string, Fields | Check<any>>> = {
  [K in keyof V & string]: V[K] extends Check<infer T> ? T : V[K] extends Fields ? Simplify<{ type: K } & ObjOf<V[K]>> : never;
}[keyof V & string];

/**
 * One direction of a protocol: each key is a message `type` and its fields (the `type` field is
 * added), or a whole check (an `obj` or a `refine` of one) that must include `type: literal(key)`.
 */
export function messages<V extends Record<string, Fields | Check<any>>>(variants: V): Check<MessagesOf<V>> {
  const checks: Record<string, Check<any>> = {};
  for (const [type, v] of Object.entries(variants)) checks[type] = typeof v === 'function' ? v : obj({ type: literal(type), ...v });
  return union('type', checks) as Check<MessagesOf<V>>;
}

/** Runs `check` and types the result with what the check accepts. */
export function parse<T>(check: Check<T>, v: unknown, name = 'message'): Parsed<T> {
  const error = check(v, name);
  return error ? { ok: false, error } : { ok: true, value: v as T };
}

/**
 * A webview panel's protocol, declared once: the messages each way. Returns the two checks
 * (their types via `Infer`) and the parsers the extension and the webview call on every message received.
 */
export function protocol<W extends Record<string, Fields | Check<any>>, H extends Record<string, Fields | Check<any>>>(p: { toWebview: W; toExtension: H }) {
  const toWebview = messages(p.toWebview);
  const toExtension = messages(p.toExtension);
  return {
    toWebview,
    toExtension,
    parseToWebview: (msg: unknown): Parsed<MessagesOf<W>> => parse(toWebview, msg),
    parseToExtension: (msg: unknown): Parsed<MessagesOf<H>> => parse(toExtension, msg),
  };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** `s` as text of at most `n` characters (a cut one ends in "…"): how a host bounds a string to a protocol's `str(n)`. */
export const clip = (s: unknown, n: number): string => {
  const t = typeof s === 'string' ? s : s == null ? '' : String(s);
  return t.length > n ? t.slice(0, n - 1) + '…' : t;
};
