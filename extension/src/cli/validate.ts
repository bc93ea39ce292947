// `conscience validate <files|folders> [--format json|text]`: the editor's engine on the
// command line. JSON output: an array of {file, line, column, endLine, endColumn, severity,
// code, message} with 1-based positions. Exit 1 when any error is found, else 0; 2 on usage.
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { decodeBytes, detectKind, parseYaml, validateText, type Diagnostic } from '../core/recipe';
import { nodeHost } from '../core/recipe/node-host';

export interface CliDiagnostic {
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  severity: Diagnostic['severity'];
  code: string;
  message: string;
}

const USAGE = 'usage: conscience validate <files|folders>... [--format json|text]';
const SKIP_DIRS = new Set(['node_modules', '.git', '.venv', 'dist', '__pycache__']);

function walk(dir: string, out: string[], depth = 0): void {
  if (depth > 32) return;
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return; }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) walk(join(dir, e.name), out, depth + 1);
    } else if (e.isFile() && /\.ya?ml$/i.test(e.name)) out.push(join(dir, e.name));
  }
}

/** Validate files (and folders, walked for *.yaml / *.yml). Returns 1-based diagnostics. */
export function validatePaths(paths: string[], cwd = process.cwd()): CliDiagnostic[] {
  const results: CliDiagnostic[] = [];
  const seen = new Set<string>();
  const show = (p: string) => { const r = relative(cwd, p); return r && !r.startsWith('..') ? r : p; };
  const push = (file: string, d: Diagnostic) => {
    const key = `${file}\0${d.code}\0${d.start}\0${d.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    results.push({ file: show(file), line: d.line + 1, column: d.column + 1, endLine: d.endLine + 1, endColumn: d.endColumn + 1, severity: d.severity, code: d.code, message: d.message });
  };
  const files: Array<{ path: string; walked: boolean }> = [];
  for (const p of paths) {
    const full = resolve(cwd, p);
    let st;
    try { st = statSync(full); } catch {
      results.push({ file: p, line: 1, column: 1, endLine: 1, endColumn: 1, severity: 'error', code: 'CC010', message: `Cannot read '${p}': no such file or folder.` });
      continue;
    }
    if (st.isDirectory()) { const found: string[] = []; walk(full, found); files.push(...found.map((f) => ({ path: f, walked: true }))); }
    else files.push({ path: full, walked: false });
  }
  for (const { path, walked } of files) {
    const bytes = nodeHost.readBytes(path);
    if (!bytes) { push(path, { severity: 'error', code: 'CC010', message: `Cannot read '${path}'.`, start: 0, end: 0, line: 0, column: 0, endLine: 0, endColumn: 0 }); continue; }
    const dec = decodeBytes(bytes);
    if ('diagnostic' in dec) { push(path, dec.diagnostic); continue; }
    if (walked) {
      // In folders, skip YAML that is neither a recipe nor an accelerate config (but not broken YAML).
      const parsed = parseYaml(dec.text);
      if (parsed.diagnostics.length === 0 && parsed.root && detectKind(parsed.root) === 'other') continue;
    }
    for (const d of validateText(dec.text, { file: path, host: nodeHost })) push(d.file ?? path, d);
  }
  return results;
}

export async function validate(argv: string[]): Promise<number> {
  let format = 'text';
  const paths: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') { process.stdout.write(USAGE + '\n'); return 0; }
    if (a === '--format') { format = argv[++i] ?? ''; continue; }
    if (a.startsWith('--format=')) { format = a.slice('--format='.length); continue; }
    if (a.startsWith('-') && a !== '-') { process.stderr.write(`conscience validate: unknown option '${a}'\n${USAGE}\n`); return 2; }
    paths.push(a);
  }
  if (format !== 'json' && format !== 'text') { process.stderr.write(`conscience validate: --format must be json or text, got '${format}'\n${USAGE}\n`); return 2; }
  if (paths.length === 0) { process.stderr.write(`${USAGE}\n`); return 2; }
  const diags = validatePaths(paths);
  const errors = diags.filter((d) => d.severity === 'error').length;
  if (format === 'json') {
    process.stdout.write(JSON.stringify(diags, null, 2) + '\n');
  } else {
    for (const d of diags) process.stdout.write(`${d.file}:${d.line}:${d.column}: ${d.severity} ${d.code}: ${d.message}\n`);
    const warnings = diags.filter((d) => d.severity === 'warning').length;
    process.stderr.write(`${errors} error(s), ${warnings} warning(s)\n`);
  }
  return errors > 0 ? 1 : 0;
}
