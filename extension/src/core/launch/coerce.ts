// A recipe value as the runtime's conscience.recipe._coerce converts it into a section field
// (`launch:` read by conscience.launch, conscience.train and the validator alike): booleans
// from true/false or the text "true"/"false" (any case), integers from a YAML integer or text
// of -?[0-9]+ (surrounding spaces allowed), numbers as Python's float() reads them (digits
// grouped with '_', inf, nan), strings from any scalar but a boolean. The launcher reads
// `launch:` with it, so it plans what the trainer will do: `vllm_server: 'true'` is a server,
// `num_processes: "2"` two processes.
import { DC_INT_RE, pyFloat, pyFloatRepr } from '../recipe/values';
import { deref, type YNode } from '../recipe/yaml';

export type FieldType = 'bool' | 'int' | 'float' | 'str';

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
      if (typeof value === 'string' && DC_INT_RE.test(value.trim())) return { ok: true, value: Number.parseInt(value.trim(), 10) };
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
      if (typeof value === 'number') return { ok: true, value: Number.isInteger(value) && !yamlFloat ? String(value) : pyFloatRepr(value) };
      return { ok: false };
  }
}
