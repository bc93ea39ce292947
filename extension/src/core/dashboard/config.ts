// The config diff of compared runs: each run's recipe flattened to dotted keys
// (`safety.max_budget`), and one row per key whose values differ between the runs.
import { parseYaml, toPlain } from '../recipe/yaml';
import type { ConfigRow } from '../protocol/dashboard';

/** `{a: {b: 1}, c: [1, 2]}` → `{ 'a.b': '1', c: '[1,2]' }` (lists stay one value). */
export function flattenConfig(v: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flattenConfig(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof v === 'string' ? v : JSON.stringify(v) ?? 'null';
  }
  return out;
}

/** Rows for the keys whose values differ (a missing key is null), sorted by key; `keys` counts every key seen. */
export function configDiff(configs: (Record<string, string> | null)[]): { rows: ConfigRow[]; keys: number } {
  const all = new Set<string>();
  for (const c of configs) if (c) for (const k of Object.keys(c)) all.add(k);
  const rows: ConfigRow[] = [];
  for (const key of [...all].sort()) {
    const values = configs.map((c) => (c && Object.hasOwn(c, key) ? c[key]!.slice(0, 2000) : null));
    if (new Set(values).size > 1) rows.push({ key: key.slice(0, 500), values });
  }
  return { rows, keys: all.size };
}

/** A recipe's YAML text as flat keys, or an error naming the file. */
export function recipeConfig(text: string, file: string): Record<string, string> {
  const parsed = parseYaml(text);
  if (!parsed.root) throw new Error(`${file}: not a YAML mapping`);
  const plain = toPlain(parsed.root);
  if (!plain || typeof plain !== 'object' || Array.isArray(plain)) throw new Error(`${file}: not a YAML mapping`);
  return flattenConfig(plain);
}
