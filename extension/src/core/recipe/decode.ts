// Bytes -> text for recipes and accelerate configs: binary and non-UTF-8 files are diagnostics
// (CC005, CC006), a BOM is dropped.
import { type Diagnostic, diag } from './diagnostics';

/** Decode file bytes: a diagnostic for binary or non-UTF-8 content, else the text. */
export function decodeBytes(bytes: Uint8Array): { text: string } | { diagnostic: Diagnostic } {
  const head = bytes.subarray(0, 8192);
  if (head.includes(0)) {
    return { diagnostic: { severity: 'error', code: 'CC005', message: 'This is a binary file, not YAML text (it contains NUL bytes). Point the validator at a .yaml recipe.', start: 0, end: 0, line: 0, column: 0, endLine: 0, endColumn: 0 } };
  }
  try {
    let text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { text };
  } catch {
    const loose = new TextDecoder('utf-8').decode(bytes);
    const at = Math.max(0, loose.indexOf('\ufffd'));
    const d = diag(loose, at, at + 1, 'error', 'CC006', 'The file is not valid UTF-8 (invalid byte here). Re-save it as UTF-8.');
    return { diagnostic: d };
  }
}
