// JSON as Python's json module reads it, where JSON.parse differs, for the readers that must
// agree with the Python side line for line (read.ts, `conscience inspect` against `python -m
// conscience.allocator score`) and for the policy overrides (policy.ts). Pure: no node modules.

/** Whether a UTF-16 unit is a character Python's str.isspace() takes (str.strip() strips them): \t-\r, \x1c-\x1f, space, \x85, \xa0 and the Unicode spaces; not \ufeff, which JavaScript's trim() strips. */
export function isPySpace(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** `not text.strip()` in Python. A loop, not a regex: a 16 MB line costs one pass. */
export function isPyBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (!isPySpace(text.charCodeAt(i))) return false;
  return true;
}

/** Python's text.rstrip() (a loop: `/[...]+$/` is quadratic on a long run of spaces inside the line). */
export function pyRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && isPySpace(text.charCodeAt(end - 1))) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** JSON nesting the readers accept (runtime/conscience/prompt_sets.py MAX_DEPTH; a prompt row needs 2). */
export const MAX_DEPTH = 64;

/**
 * True if brackets outside strings nest deeper than `limit`: prompt_sets.too_deep, the same
 * scan (checked before parsing, on both sides, so both refuse the same lines).
 */
export function tooDeep(text: string, limit = MAX_DEPTH): boolean {
  let opens = 0;
  for (let i = 0; i < text.length && opens <= limit; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) opens++;
  }
  if (opens <= limit) return false;
  let depth = 0;
  let inStr = false;
  let esc = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inStr) {
      if (esc) esc = false;
      else if (ch === '\\') esc = true;
      else if (ch === '"') inStr = false;
    } else if (ch === '"') {
      inStr = true;
    } else if (ch === '[' || ch === '{') {
      if (++depth > limit) return true;
    } else if (ch === ']' || ch === '}') {
      depth--;
    }
  }
  return false;
}

/**
 * `text` with Python's non-standard literals NaN, Infinity and -Infinity (outside strings, where
 * a value may start) written as 1e999 / -1e999, which JSON.parse reads as ±Infinity; undefined
 * when there are none. Python's json.loads reads them (pandas writes NaN), so a line holding
 * one is a row to Python; a value that is not finite is then refused where Python refuses it
 * (a prompt that is not a string, an id it cannot write back).
 */
function nonFiniteAsJson(text: string): string | undefined {
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    const tok = text.startsWith('-Infinity', i) ? '-Infinity' : text.startsWith('Infinity', i) ? 'Infinity' : text.startsWith('NaN', i) ? 'NaN' : undefined;
    if (!tok) continue;
    if (i > 0 && !' \t\n\r[:,'.includes(text[i - 1]!)) continue; // 1NaN, -NaN: no value to Python either
    out += text.slice(last, i) + (tok === '-Infinity' ? '-1e999 ' : '1e999 '); // the space ends the token: NaN1 stays an error
    i += tok.length - 1;
    last = i + 1;
  }
  return last ? out + text.slice(last) : undefined;
}

/** JSON.parse, also taking the NaN / Infinity / -Infinity Python's json.loads takes (as ±Infinity). Throws JSON.parse's error. */
export function parsePyJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const alt = /NaN|Infinity/.test(text) ? nonFiniteAsJson(text) : undefined;
    if (alt === undefined) throw err;
    try {
      return JSON.parse(alt);
    } catch {
      throw err;
    }
  }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether a parsed JSON value can be written back as JSON in UTF-8: prompt_sets.json_writable
 * (no NaN or infinity, no lone surrogate in a string or key). A bigint is an integer id kept exact.
 */
export function jsonWritable(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v);
  if (typeof v === 'string') return !LONE_SURROGATE.test(v);
  if (Array.isArray(v)) return v.every(jsonWritable);
  if (v && typeof v === 'object') return Object.entries(v).every(([k, x]) => !LONE_SURROGATE.test(k) && jsonWritable(x));
  return true;
}

/**
 * The number members of the JSON object at `path` (keys from the root; [] = the root object),
 * by key, as `text` writes them ("768.0", "1e3", "12345678901234567890"); the last of a
 * duplicated key counts, as in JSON.parse and Python's json. JSON.parse loses how a number was
 * written, which Python keeps (an int or a float, an int of any size). `text` must be JSON that
 * JSON.parse (or parsePyJson) read.
 */
export function jsonNumberMembers(text: string, path: readonly string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  const stack: Array<{ obj: boolean; expectKey: boolean; key?: string }> = [];
  const target = (): string | undefined => {
    if (stack.length !== path.length + 1) return undefined;
    for (let d = 0; d < path.length; d++) if (!stack[d]!.obj || stack[d]!.key !== path[d]) return undefined;
    const top = stack[stack.length - 1]!;
    return top.obj ? top.key : undefined;
  };
  const other = (): void => {
    const k = target();
    if (k !== undefined) out.delete(k);
  };
  const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.obj && top.expectKey) {
        top.key = JSON.parse(text.slice(i, j + 1)) as string;
        top.expectKey = false;
      } else {
        other();
      }
      i = j + 1;
    } else if (c === '{' || c === '[') {
      other();
      stack.push({ obj: c === '{', expectKey: c === '{' });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      if (top?.obj) top.expectKey = true;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      NUM.lastIndex = i;
      const tok = NUM.exec(text)?.[0];
      if (!tok) { // -Infinity
        other();
        i++;
        continue;
      }
      const k = target();
      if (k !== undefined) out.set(k, tok);
      i += tok.length;
    } else if (c === 't' || c === 'f' || c === 'n' || c === 'N' || c === 'I') {
      other(); // true, false, null, NaN, Infinity
      i += c === 'f' ? 5 : c === 'N' ? 3 : c === 'I' ? 8 : 4;
    } else {
      i++;
    }
  }
  return out;
}
