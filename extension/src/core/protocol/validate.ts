// A small validation helper for webview messages. Host and webview both validate every
// message they receive against the same description, so a malformed or hostile message is
// rejected with a path-named reason instead of being half-used. No dependencies, no DOM, no
// node: it is bundled into the extension host and into each webview.
//
// Pattern for a panel's protocol (see dashboard.ts): describe each message with `obj({...})`,
// put them in a `union('type', {...})`, and export `parseXxx(msg)` that returns
// `{ ok: true, value }` or `{ ok: false, error }`.

/** Returns null when `v` conforms, else a message naming the first offending path. */
export type Check = (v: unknown, path: string) => string | null;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : ArrayBuffer.isView(v) ? v.constructor.name : typeof v;

export const str = (maxLen = 1_000_000): Check => (v, p) =>
  typeof v !== 'string' ? `${p}: expected string, got ${describe(v)}` : v.length > maxLen ? `${p}: string longer than ${maxLen}` : null;

/** A finite number (optionally within [min, max]). */
export const num = (min = -Infinity, max = Infinity): Check => (v, p) =>
  typeof v !== 'number' || !Number.isFinite(v)
    ? `${p}: expected finite number, got ${describe(v)}`
    : v < min || v > max
      ? `${p}: ${v} outside [${min}, ${max}]`
      : null;

export const int = (min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Check => (v, p) =>
  !Number.isInteger(v) ? `${p}: expected integer, got ${describe(v)}` : num(min, max)(v, p);

export const bool: Check = (v, p) => (typeof v === 'boolean' ? null : `${p}: expected boolean, got ${describe(v)}`);

/** A number, or null (non-finite values travel as null). */
export const numOrNull: Check = (v, p) => (v === null ? null : num()(v, p));

export const literal = (...values: readonly (string | number | boolean | null)[]): Check => (v, p) =>
  values.includes(v as string) ? null : `${p}: expected one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;

export const optional = (c: Check): Check => (v, p) => (v === undefined ? null : c(v, p));
export const nullable = (c: Check): Check => (v, p) => (v === null ? null : c(v, p));

export const arr = (item: Check, maxLen = 1_000_000): Check => (v, p) => {
  if (!Array.isArray(v)) return `${p}: expected array, got ${describe(v)}`;
  if (v.length > maxLen) return `${p}: more than ${maxLen} items`;
  for (let i = 0; i < v.length; i++) {
    const e = item(v[i], `${p}[${i}]`);
    if (e) return e;
  }
  return null;
};

/** A fixed-length tuple. */
export const tuple = (...items: Check[]): Check => (v, p) => {
  if (!Array.isArray(v) || v.length !== items.length) return `${p}: expected array of ${items.length}`;
  for (let i = 0; i < items.length; i++) {
    const e = items[i](v[i], `${p}[${i}]`);
    if (e) return e;
  }
  return null;
};

/**
 * A Float64Array (the efficient form VS Code ≥1.57 recreates in the webview), or a plain
 * array of numbers/nulls (what a JSON round trip yields). Use `toF64` on receipt.
 */
export const f64 = (maxLen = 50_000_000): Check => (v, p) => {
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
export const record = (value: Check, maxKeys = 10_000): Check => (v, p) => {
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
export const obj = (fields: Record<string, Check>): Check => (v, p) => {
  if (!isPlainObject(v)) return `${p}: expected object, got ${describe(v)}`;
  for (const k of Object.keys(v)) if (!(k in fields)) return `${p}.${k}: unexpected field`;
  for (const [k, c] of Object.entries(fields)) {
    const e = c((v as Record<string, unknown>)[k], `${p}.${k}`);
    if (e) return e;
  }
  return null;
};

/** A discriminated union on `tag`: each variant's check sees the whole object. */
export const union = (tag: string, variants: Record<string, Check>): Check => (v, p) => {
  if (!isPlainObject(v)) return `${p}: expected object, got ${describe(v)}`;
  const t = (v as Record<string, unknown>)[tag];
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(variants, t)) {
    return `${p}.${tag}: unknown message type ${JSON.stringify(t)?.slice(0, 80)}`;
  }
  return variants[t](v, p);
};

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Runs `check` and types the result. */
export function parseWith<T>(check: Check, v: unknown, name: string): Parsed<T> {
  const error = check(v, name);
  return error ? { ok: false, error } : { ok: true, value: v as T };
}
