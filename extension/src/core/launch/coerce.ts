// A recipe value as the runtime's conscience.recipe._coerce converts it into a section field
// (`launch:` read by conscience.launch, conscience.train and the validator alike): booleans
// from true/false or the text "true"/"false" (any case), integers from a YAML integer or text
// of -?[0-9]+ (surrounding spaces allowed), numbers as Python's float() reads them (digits
// grouped with '_', inf, nan), strings from any scalar but a boolean. The launcher reads
// `launch:` with it, so it plans what the trainer will do: `vllm_server: 'true'` is a server,
// `num_processes: "2"` two processes.
import { deref, type YNode } from '../recipe/yaml';

export type FieldType = 'bool' | 'int' | 'float' | 'str';

const INT_TEXT = /^-?[0-9]+$/;
const D = '[0-9](?:_?[0-9])*';
// Python's float() of a str (after strip()): a sign, digits (with single '_' between them), an
// optional fraction and exponent, or inf / infinity / nan in any case
const FLOAT_TEXT = new RegExp(`^[-+]?(?:(?:${D}(?:\\.(?:${D})?)?|\\.${D})(?:[eE][-+]?${D})?|inf|infinity|nan)$`, 'i');

/** Python's str() of a float (repr): 3.0, 0.5, 1e-05, 1e+16, inf. */
function pyFloatText(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) return x.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

/** Python's float() of text, or undefined where it raises ValueError. */
export function pyFloat(text: string): number | undefined {
  const t = text.trim();
  if (!FLOAT_TEXT.test(t)) return undefined;
  const s = t.replace(/_/g, '');
  if (/^[-+]?inf(inity)?$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^[-+]?nan$/i.test(s)) return NaN;
  return Number(s);
}

/**
 * `value` (the plain value of `node`, the YAML scalar it was read from, when there is one) as
 * _coerce makes it a field of type `type`: `{ ok: true, value }`, or `{ ok: false }` where the
 * runtime raises RecipeError. null is null (every launch field that takes it is Optional; the
 * caller decides). A YAML float is no integer (`num_processes: 2.0` is refused, as by
 * isinstance(2.0, int)); a YAML integer is a number.
 */
export function coerceField(value: unknown, type: FieldType, node?: YNode): { ok: true; value: unknown } | { ok: false } {
  if (value === null || value === undefined) return { ok: true, value: null };
  const n = deref(node);
  const yamlFloat = n?.kind === 'scalar' && n.tag === 'float';
  switch (type) {
    case 'bool':
      if (typeof value === 'boolean') return { ok: true, value };
      if (typeof value === 'string' && /^(true|false)$/i.test(value)) return { ok: true, value: value.toLowerCase() === 'true' };
      return { ok: false };
    case 'int':
      if (typeof value === 'number') return Number.isInteger(value) && !yamlFloat ? { ok: true, value } : { ok: false };
      if (typeof value === 'string' && INT_TEXT.test(value.trim())) return { ok: true, value: Number.parseInt(value.trim(), 10) };
      return { ok: false };
    case 'float': {
      if (typeof value === 'number') return { ok: true, value };
      if (typeof value === 'string') {
        const f = pyFloat(value);
        return f === undefined ? { ok: false } : { ok: true, value: f };
      }
      return { ok: false };
    }
    case 'str':
      if (typeof value === 'string') return { ok: true, value };
      if (typeof value === 'number') return { ok: true, value: Number.isInteger(value) && !yamlFloat ? String(value) : pyFloatText(value) };
      return { ok: false };
  }
}
