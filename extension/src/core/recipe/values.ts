// Checking one YAML value against a field spec (type, enum, range) the way the runtime
// reads it: PyYAML (YAML 1.1) values, then HfArgumentParser/argparse, which converts a
// *string* default with the field's type (so `learning_rate: 1e-6`, a string in YAML 1.1,
// is fine) but leaves other values as they are (so `num_generations: 8.0` stays a float).
import { type Diagnostic, type QuickFix, diag, type Severity } from './diagnostics';
import type { FieldSpec } from './schema';
import { deref, headEnd, lineStart, plainScalar, type YNode } from './yaml';

const BOOL_STRINGS = new Set(['yes', 'no', 'true', 'false', 't', 'f', 'y', 'n', '1', '0']);
const INT_RE = /^[-+]?\d+$/;
const FLOAT_RE = /^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|infinity|nan)$/i;
// conscience.recipe._coerce: `s.strip().lstrip("-").isdigit()` for an int (no '+'), Python's
// float() for a number (digits may be grouped with '_'). The one copy: core/launch/coerce.ts
// reads `launch:` with these too.
export const DC_INT_RE = /^-?\d+$/;
const D = '\\d(?:_?\\d)*';
const DC_FLOAT_RE = new RegExp(`^[-+]?(?:(?:${D}(?:\\.(?:${D})?)?|\\.${D})(?:[eE][-+]?${D})?|inf|infinity|nan)$`, 'i');

/** A float as Python's repr writes it (3.0, 0.5, 1e-05, 1e+16, inf). */
export function pyFloatRepr(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

/** Python's float() of text, or undefined where it raises ValueError. */
export function pyFloat(text: string): number | undefined {
  const t = text.trim();
  return DC_FLOAT_RE.test(t) ? toNumber(t.replace(/_/g, '')) : undefined;
}

/**
 * How the runtime converts a YAML value into the field's type:
 *   argparse   HfArgumentParser (the flat keys of a training recipe): a string goes through the
 *              field's type, booleans accept yes/no/true/false/t/f/y/n/1/0
 *   dataclass  conscience.recipe._coerce (`launch:`, `safety:`, every key of an eval recipe): a
 *              boolean is true/false or the string true/false, an integer has no '+'
 *   strict     no conversion at all (`allocator:`, AllocatorConfig.from_mapping): the YAML type
 *              must be the field's (an integer is a number too)
 */
export type Coercion = 'argparse' | 'dataclass' | 'strict';

/** How the runtime converts a section's values: `allocator:` not at all, the others with _coerce. */
export function sectionCoercion(section: string): Coercion { return section === 'allocator' ? 'strict' : 'dataclass'; }

export function describeTypes(types: string[]): string {
  const words: Record<string, string> = { string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', null: 'null', array: 'a list', object: 'a mapping' };
  const ws = types.filter((t) => t !== 'null').map((t) => words[t] ?? t);
  if (types.includes('null')) ws.push('null');
  return ws.length <= 1 ? (ws[0] ?? 'a value') : `${ws.slice(0, -1).join(', ')} or ${ws.at(-1)}`;
}

export function describeNode(n: YNode): string {
  switch (n.kind) {
    case 'scalar':
      if (n.explicit) return `${n.explicit} ${n.text} (${n.tag === 'float' ? `the float ${yaml11Float(n.value as number)}` : n.tag === 'int' ? `the integer ${n.value}` : n.tag === 'timestamp' ? 'a date' : n.tag === 'binary' ? 'binary data' : String(n.value)})`;
      if (n.tag === 'timestamp') return `a date (YAML 1.1 reads \`${n.text}\` as a date)`;
      if (n.tag === 'null') return n.text === '' ? 'an empty value (null)' : `null (${n.text})`;
      if (n.tag === 'bool') return `${n.value} (YAML 1.1 reads \`${n.text}\` as a boolean)`;
      if (n.tag === 'int' || n.tag === 'float') return `the number ${n.text}`;
      return `the string ${JSON.stringify(n.text.length > 40 ? n.text.slice(0, 40) + '…' : n.text)}`;
    case 'map': return 'a mapping';
    case 'seq': return 'a list';
    default: return 'an alias';
  }
}

export interface Checked {
  /** The value as the runtime will see it after argparse conversion; undefined if invalid. */
  value: unknown;
  ok: boolean;
}

/** Convert a scalar to what the field will hold, or undefined when its type does not fit. */
function coerceScalar(types: string[], n: Extract<YNode, { kind: 'scalar' }>, mode: Coercion): { ok: boolean; value: unknown } {
  // types.includes inline: a closure here is re-created on every scalar (and named on every
  // call when run through tsx), a measurable share of validating a whole recipe
  switch (n.tag) {
    case 'null': return { ok: types.includes('null'), value: null };
    case 'bool': return { ok: types.includes('boolean'), value: n.value };
    case 'int': return { ok: types.includes('integer') || types.includes('number'), value: n.value };
    case 'float':
      if (types.includes('number')) return { ok: true, value: n.value };
      return { ok: false, value: n.value };
    // the runtime gets a datetime / bytes, which no setting takes (conscience.recipe._type_problem, _coerce)
    case 'timestamp':
    case 'binary':
      return { ok: false, value: n.value };
    default: {
      const s = n.text;
      if (types.includes('string')) return { ok: true, value: s };
      if (mode === 'strict') return { ok: false, value: s };
      const t = s.trim();
      if (mode === 'dataclass') {
        if (types.includes('integer') && DC_INT_RE.test(t)) return { ok: true, value: parseInt(t, 10) };
        const f = types.includes('number') ? pyFloat(t) : undefined;
        if (f !== undefined) return { ok: true, value: f };
        if (types.includes('boolean') && (s.toLowerCase() === 'true' || s.toLowerCase() === 'false')) return { ok: true, value: s.toLowerCase() === 'true' };
        return { ok: false, value: s };
      }
      if (types.includes('integer') && INT_RE.test(t)) return { ok: true, value: parseInt(s, 10) };
      if (types.includes('number') && FLOAT_RE.test(t)) return { ok: true, value: toNumber(t) };
      if (types.includes('boolean') && BOOL_STRINGS.has(t.toLowerCase())) return { ok: true, value: ['yes', 'true', 't', 'y', '1'].includes(t.toLowerCase()) };
      return { ok: false, value: s };
    }
  }
}

/** A number as YAML 1.1 (PyYAML) reads back a float: a decimal point, a signed exponent (1.0e-06). */
export function yaml11Float(x: number): string {
  const a = Math.abs(x);
  const [m, e] = (a !== 0 && (a < 1e-4 || a >= 1e16) ? x.toExponential() : String(x)).split('e') as [string, string | undefined];
  const mant = m.includes('.') ? m : `${m}.0`;
  return e === undefined ? mant : `${mant}e${/^[-+]/.test(e) ? e : `+${e}`}`;
}

function toNumber(t: string): number { return Number(t.replace(/^([-+]?)inf(inity)?$/i, '$1Infinity')); }

export function levenshtein(a: string, b: string, max = 99): number {
  if (a === b) return 0;
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = cur[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (cur[j]! < rowMin) rowMin = cur[j]!;
    }
    if (rowMin > max) return max + 1;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** The closest candidate, if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  const limit = Math.max(2, Math.floor(w.length / 3));
  for (const c of candidates) {
    const cl = c.toLowerCase();
    if (cl === w) return c;
    const d = levenshtein(w, cl, limit);
    if (d < bestD) { bestD = d; best = c; }
  }
  if (best !== undefined && bestD <= limit) return best;
  // An abbreviation: every letter of the word, in order, in a not-much-longer candidate
  // (`bf16` -> `bfloat16`).
  if (w.length >= 3) {
    for (const c of candidates) {
      const cl = c.toLowerCase();
      if (cl.length > w.length * 2.5 || cl[0] !== w[0]) continue;
      let j = 0;
      for (let i = 0; i < cl.length && j < w.length; i++) if (cl[i] === w[j]) j++;
      if (j === w.length) return c;
    }
  }
  // A missing or extra word part (`num_generation` vs `num_generations` is caught above;
  // `generations` vs `num_generations` here).
  for (const c of candidates) if (w.length >= 5 && (c.toLowerCase().endsWith(w) || c.toLowerCase().startsWith(w))) return c;
  return undefined;
}

export function isNumber(v: unknown): v is number { return typeof v === 'number' && Number.isFinite(v); }

/** Check `node` against `spec` (converted as `mode` says); push diagnostics; return the usable value. */
export function checkValue(text: string, spec: FieldSpec, node: YNode, where: string, out: Diagnostic[], codes = { type: 'CC101', enum: 'CC102', range: 'CC103' }, mode: Coercion = 'argparse'): Checked {
  const n = deref(node);
  if (!n) return { ok: true, value: undefined }; // unresolved alias: reported elsewhere
  const types = spec.types;
  if (types.length === 0) return { ok: true, value: undefined };
  let value: unknown;
  if (n.kind === 'scalar' && mode === 'dataclass' && n.tag === 'str' && types.includes('array') && !types.includes('string')) {
    // _parse_dataclass (conscience.eval) and EvalConfig.__post_init__: one string is a one-element list
    const itemTypes = spec.items?.type === undefined ? [] : Array.isArray(spec.items.type) ? spec.items.type : [spec.items.type];
    if (!itemTypes.length) return { ok: true, value: [n.value] };
    const r = checkValue(text, { name: `${spec.name}[0]`, types: itemTypes, enum: spec.items?.enum }, node, where, out, codes, mode);
    return { ok: r.ok, value: r.ok ? [r.value] : undefined };
  }
  if (n.kind === 'scalar') {
    const c = coerceScalar(types, n, mode);
    if (!c.ok) {
      const fixes: QuickFix[] = [];
      let hint = '';
      if (n.tag === 'bool' && types.includes('string') && spec.enum && !spec.enum.includes(n.text)) {
        // quoted, `off` would still not be a choice: offer the choice it most likely means
        const options = spec.enum.filter((e): e is string => typeof e === 'string');
        const sug = didYouMean(n.text, options) ?? (n.value === false && options.includes('no') ? 'no' : undefined);
        hint = ` It must be one of: ${options.join(', ')}${sug ? `; did you mean ${plainScalar(sug)}?` : '.'}`;
        if (sug) fixes.push({ title: `Change to ${plainScalar(sug)}`, edits: [{ start: node.start, end: node.end, newText: plainScalar(sug) }] });
      } else if ((n.tag === 'bool' || (n.tag === 'timestamp' && !n.explicit)) && types.includes('string')) {
        hint = ` Quote it to keep the text: '${n.text}'.`;
        fixes.push({ title: `Quote '${n.text}'`, edits: [{ start: node.start, end: node.end, newText: `'${n.text}'` }] });
      } else if (n.tag === 'float' && types.includes('integer') && Number.isInteger(n.value)) {
        hint = n.explicit ? ` Remove the tag: ${n.value}.` : ` Write it without a decimal point: ${n.value}.`;
        fixes.push({ title: `Write ${n.value}`, edits: [{ start: node.start, end: node.end, newText: String(n.value) }] });
      } else if (mode === 'strict' && /\]$/.test(spec.name) && n.tag === 'str' && types.includes('number') && FLOAT_RE.test(n.text.trim()) && Number.isFinite(toNumber(n.text.trim()))) {
        // a list item (or an allocator: value): argparse and from_mapping leave the string as it is
        const num = yaml11Spelling(n) ?? yaml11Float(toNumber(n.text.trim()));
        hint = ` A value inside a list is not converted (argparse converts only a top-level value), so it stays a string${n.quoted ? '' : ' (YAML 1.1 reads a number with an exponent but no decimal point as text)'}. Write ${num}.`;
        fixes.push({ title: `Write ${num}`, edits: [{ start: node.start, end: node.end, newText: num }] });
      } else if ((n.tag === 'int' || n.tag === 'float') && types.includes('string') && mode === 'strict' && /\]$/.test(spec.name)) {
        // a list item: nothing converts it, so the runtime gets (and refuses) a number
        hint = ` A value inside a list is not converted to text: the runtime refuses it. Write a name${types.length === 1 ? '' : ' (quoted if it is meant as text)'}.`;
      } else if ((n.tag === 'int' || n.tag === 'float') && types.includes('string')) {
        hint = ` Quote it if it is meant as text: '${n.text}'.`;
      } else if (types.includes('array') && n.tag !== 'null' && !text.slice(node.start, node.end).includes('\n')) {
        // the runtime refuses a single value for a list (conscience.recipe.check_flat_values)
        const src = text.slice(node.start, node.end);
        hint = ` Write it as a list: [${src}].`;
        fixes.push({ title: `Write [${src}]`, edits: [{ start: node.start, end: node.end, newText: `[${src}]` }] });
      }
      // a number where text is expected may be meant as text (a warning), but not for a key that
      // takes a list or one name: the runtime refuses `reward_funcs: 5` (conscience.recipe.check_flat_values)
      const severity: Severity = (n.tag === 'int' || n.tag === 'float') && types.includes('string') && mode !== 'strict' && !spec.listOrString ? 'warning' : 'error';
      const at = n.tag === 'null' && n.text === '' && node.start === node.end ? keyBefore(text, node.start) : node;
      out.push(diag(text, at.start, at.end, severity, codes.type, `${where} expects ${describeTypes(types)}, got ${describeNode(n)}.${hint}`, fixes));
      return { ok: false, value: undefined };
    }
    value = c.value;
  } else if (n.kind === 'map') {
    if (!types.includes('object')) {
      out.push(diag(text, node.start, headEnd(text, node), 'error', codes.type, `${where} expects ${describeTypes(types)}, got a mapping.`));
      return { ok: false, value: undefined };
    }
    if (mode === 'argparse') numberStrings(text, n, where, out, codes.type);
    return { ok: true, value: n };
  } else if (n.kind === 'seq') {
    if (!types.includes('array')) {
      out.push(diag(text, node.start, headEnd(text, node), 'error', codes.type, `${where} expects ${describeTypes(types)}, got a list.`));
      return { ok: false, value: undefined };
    }
    const itemTypes = spec.items?.type === undefined ? [] : Array.isArray(spec.items.type) ? spec.items.type : [spec.items.type];
    const values: unknown[] = [];
    let ok = true;
    n.items.forEach((it, i) => {
      if (!itemTypes.length) { values.push(undefined); return; }
      // argparse converts only a top-level string: a list item stays what YAML read (`2e-1` and
      // `"1.0"` stay strings, and GRPOTrainer's torch.tensor(reward_weights) fails on them)
      const r = checkValue(text, { name: `${spec.name}[${i}]`, types: itemTypes, enum: spec.items?.enum }, it, `${where}[${i}]`, out, codes, mode === 'argparse' ? 'strict' : mode);
      if (r.ok && typeof r.value === 'number' && !Number.isFinite(r.value)) {
        // `.nan` / `.inf` in reward_weights: every advantage would be NaN
        out.push(diag(text, it.start, it.end, 'error', codes.range, `${where}[${i}] = ${text.slice(it.start, it.end)} is not a finite number: the weighted rewards, and so every advantage, would be NaN or infinite. Write a finite number.`));
        ok = false;
        values.push(undefined);
        return;
      }
      ok &&= r.ok;
      values.push(r.value);
    });
    return { ok, value: ok ? values : undefined };
  } else {
    return { ok: true, value: undefined };
  }
  // enum
  if (spec.enum && value !== null && !spec.enum.includes(value)) {
    const options = spec.enum.filter((e) => e !== null).map(String);
    const sug = typeof value === 'string' ? didYouMean(value, options) : undefined;
    const fixes: QuickFix[] = sug ? [{ title: `Change to ${plainScalar(sug)}`, edits: [{ start: node.start, end: node.end, newText: plainScalar(sug) }] }] : [];
    const list = options.length > 12 ? options.slice(0, 12).join(', ') + ', …' : options.join(', ');
    out.push(diag(text, node.start, node.end, 'error', codes.enum,
      `${where} must be one of: ${list}; got ${JSON.stringify(value)}.${sug ? ` Did you mean '${sug}'?` : ''}`, fixes));
    return { ok: false, value: undefined };
  }
  // range: NaN and ±inf are outside every range (but +inf where the field allows it: max_grad_norm)
  if (typeof value === 'number' && (spec.minimum ?? spec.maximum ?? spec.exclusiveMinimum ?? spec.exclusiveMaximum) !== undefined) {
    if (value === Infinity && spec.allowInfinity) return { ok: true, value };
    if (!Number.isFinite(value)) {
      // conscience.recipe.check_flat_values says the same, at the same line
      out.push(diag(text, node.start, node.end, 'error', codes.range, `${where} = ${n.text} is not a finite number: it must be ${describeRange(spec)}${Number.isNaN(value) ? ' (NaN is not a number in any range)' : ''}.`));
      return { ok: false, value: undefined };
    }
    const bad =
      (spec.minimum !== undefined && value < spec.minimum) ||
      (spec.maximum !== undefined && value > spec.maximum) ||
      (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum) ||
      (spec.exclusiveMaximum !== undefined && value >= spec.exclusiveMaximum);
    if (bad) {
      out.push(diag(text, node.start, node.end, 'error', codes.range, `${where} = ${value} is out of range: it must be ${describeRange(spec)}.`));
      return { ok: false, value: undefined };
    }
  }
  return { ok: true, value };
}

const YAML12_NUMBER = /^[-+]?(?:\.\d+|\d+(?:\.\d*)?)(?:[eE][-+]?\d+)?$/;

/**
 * A plain scalar YAML 1.1 (PyYAML) reads as a string (`n.tag === 'str'`) though YAML 1.2 reads it
 * as a number (`1e8`, `1e-6`, `1.0e8`, `-.5`), spelled so PyYAML reads a number: a digit before
 * and after the dot, a signed exponent (`1.0e+8`, `1.0e-6`, `-0.5`); else undefined. The runtime's
 * conscience.recipe._yaml11_text_number gives the same.
 */
export function yaml11Spelling(n: YNode): string | undefined {
  if (n.kind !== 'scalar' || n.quoted) return undefined;
  const t = n.text.trim();
  // (PyYAML's float pattern allows a sign only before a digit, so `-.5` is text: yaml.ts resolvePlain)
  if (n.tag !== 'str') return undefined;
  const m = YAML12_NUMBER.test(t) ? /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?)(\d+))?$/.exec(t) : null;
  if (!m) return undefined;
  const [, sign, whole, frac, esign, exp] = m;
  return `${sign}${whole || '0'}.${frac || '0'}${exp ? `e${esign || '+'}${exp}` : ''}`;
}

/**
 * A number written as text anywhere inside a flat key's mapping, in a nested mapping or a list
 * (`lr_scheduler_kwargs: {min_lr: 1e-6}`, `fsdp_config: {min_num_params: 1e8}`,
 * `deepspeed: {zero_optimization: {reduce_bucket_size: 5e8}}`): argparse converts only top-level
 * values, so whatever reads the mapping gets the text and fails once the model is loaded. The
 * runtime (conscience.recipe._check_text_numbers) refuses the same values, at the item's line.
 */
function numberStrings(text: string, node: YNode, where: string, out: Diagnostic[], code: string, seen = new Set<YNode>(), depth = 0): void {
  const n = deref(node);
  if (!n || seen.has(n) || depth > 64) return;
  seen.add(n);
  const pairs: [string, YNode][] = n.kind === 'map'
    ? n.items.flatMap((p): [string, YNode][] => { const k = deref(p.key); return k && k.kind === 'scalar' ? [[`${where}.${k.text}`, p.value]] : []; })
    : n.kind === 'seq' ? n.items.map((it, i): [string, YNode] => [`${where}[${i}]`, it]) : [];
  for (const [at, item] of pairs) {
    const v = deref(item);
    if (!v) continue;
    const num = yaml11Spelling(v);
    if (num === undefined || v.kind !== 'scalar') { numberStrings(text, item, at, out, code, seen, depth + 1); continue; }
    out.push(diag(text, item.start, item.end, 'error', code,
      `${at} expects a number, got ${describeNode({ ...v, tag: 'str', value: v.text })}. YAML 1.1 (PyYAML) reads ${v.text.trim()} as text; write it as ${num}.`,
      [{ title: `Write ${num}`, edits: [{ start: item.start, end: item.end, newText: num }] }]));
  }
}

export function describeRange(s: FieldSpec): string {
  const lo = s.minimum !== undefined ? `>= ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '';
  const hi = s.maximum !== undefined ? `<= ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '';
  return [lo, hi].filter(Boolean).join(' and ');
}

/**
 * The key an empty value belongs to: an empty value is a zero-width node right after its key
 * (`warmup_ratio:`), so the key is the text between the line's indentation and that point.
 */
export function keyBefore(text: string, pos: number): { start: number; end: number } {
  const ls = lineStart(text, pos);
  const m = /^[ \t]*(?:-[ \t]+)?/.exec(text.slice(ls, pos));
  const start = ls + (m ? m[0].length : 0);
  return start < pos ? { start, end: pos } : { start: pos, end: pos };
}

export { headEnd };
