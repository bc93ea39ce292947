// Shared helpers for the recipe tests.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeBytes, validateText, type Diagnostic } from '../../src/core/recipe';
import { nodeFiles } from '../../src/core/recipe/node-files';

export const REPO = resolve(__dirname, '../../..');
export const FIXTURES = join(__dirname, 'fixtures');

/** Validate a file the way the CLI does (bytes -> text -> diagnostics). */
export function validateFile(path: string, trl?: string): { text: string; diags: Diagnostic[] } {
  const dec = decodeBytes(readFileSync(path));
  if ('diagnostic' in dec) return { text: '', diags: [dec.diagnostic] };
  return { text: dec.text, diags: validateText(dec.text, { file: path, files: nodeFiles, trl }) };
}

export function fmt(d: Diagnostic): string {
  return `${d.file ? d.file + ':' : ''}${d.line + 1}:${d.column + 1} ${d.severity} ${d.code} ${d.message}`;
}

export function applyEdits(text: string, edits: Array<{ start: number; end: number; newText: string }>): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.newText + out.slice(e.end);
  return out;
}
