// `conscience validate <files|folders> [--format json|text]`: the editor's engine on the
// command line. JSON output: an array of {file, line, column, endLine, endColumn, severity,
// code, message} with 1-based positions. Exit 1 when any error is found, else 0; 2 on usage.
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { decodeBytes, detectKind, parseYaml, validateText, type Diagnostic } from '../core/recipe';
import { LIMITS, tooLargeMessage } from '../core/recipe/yaml';
import { nodeFiles } from '../core/recipe/node-files';
import { escapeControls } from '../core/escape';

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

/** What a folder walk could not take: a broken symlink, a folder too deep. */
interface WalkNote { path: string; kind: 'broken' | 'deep' | 'unreadable' }

/**
 * Collects *.yaml / *.yml under `dir`. Symlinks are followed like the files and folders they
 * name (a symlinked recipe is validated, issue #16 item 7); a folder is entered once by its
 * real path, so symlink loops end; a broken link and a folder past 32 levels are reported,
 * not skipped in silence.
 */
function walk(dir: string, out: string[], notes: WalkNote[], depth = 0, seen = new Set<string>()): void {
  if (depth > 32) {
    notes.push({ path: dir, kind: 'deep' }); // reported, not skipped in silence
    return;
  }
  try {
    const real = realpathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
  } catch {
    notes.push({ path: dir, kind: 'unreadable' });
    return;
  }
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch {
    notes.push({ path: dir, kind: 'unreadable' }); // (a folder without read permission) reported, not skipped
    return;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const full = join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = statSync(full);
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch {
        if (/\.ya?ml$/i.test(e.name)) notes.push({ path: full, kind: 'broken' });
        continue;
      }
    }
    if (isDir) {
      if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) walk(full, out, notes, depth + 1, seen);
    } else if (isFile && /\.ya?ml$/i.test(e.name)) out.push(full);
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
  const files: Array<{ path: string; walked: boolean; folder?: string }> = [];
  /** Recipes (and accelerate configs) validated per folder argument: none is a reported error. */
  const found = new Map<string, number>();
  for (const p of paths) {
    const full = resolve(cwd, p);
    let st;
    try { st = statSync(full); } catch {
      results.push({ file: p, line: 1, column: 1, endLine: 1, endColumn: 1, severity: 'error', code: 'CC010', message: `Cannot read '${p}': no such file or folder.` });
      continue;
    }
    if (st.isDirectory()) {
      const yamls: string[] = [];
      const notes: WalkNote[] = [];
      walk(full, yamls, notes);
      // (a folder it could not list, or a broken link in it, is reported already: that is the error)
      if (!notes.some((n) => n.kind !== 'deep')) found.set(p, found.get(p) ?? 0);
      files.push(...yamls.map((f) => ({ path: f, walked: true, folder: p })));
      for (const { path: b, kind } of notes) {
        results.push({ file: show(b), line: 1, column: 1, endLine: 1, endColumn: 1, severity: kind === 'deep' ? 'warning' : 'error', code: 'CC010',
          message: kind === 'deep' ? `Not walked: '${show(b)}' is more than 32 folders deep.`
            : kind === 'unreadable' ? `Cannot read folder '${show(b)}' (no permission to list it).`
            : `Cannot read '${show(b)}': a symbolic link to a missing file.` });
      }
    }
    else files.push({ path: full, walked: false });
  }
  for (const { path, walked, folder } of files) {
    if (folder !== undefined && found.has(folder)) found.set(folder, found.get(folder)! + 1);
    const size = nodeFiles.size?.(path);
    if (size !== undefined && size > LIMITS.maxBytes) {
      // its real size (the read below takes only the head of a huge file)
      push(path, { severity: 'error', code: 'CC007', message: tooLargeMessage(size), start: 0, end: 0, line: 0, column: 0, endLine: 0, endColumn: 0 });
      continue;
    }
    const bytes = nodeFiles.readBytes(path);
    if (!bytes) { push(path, { severity: 'error', code: 'CC010', message: `Cannot read '${path}'.`, start: 0, end: 0, line: 0, column: 0, endLine: 0, endColumn: 0 }); continue; }
    const dec = decodeBytes(bytes);
    if ('diagnostic' in dec) { push(path, dec.diagnostic); continue; }
    if (walked) {
      // In folders, skip YAML that is neither a recipe nor an accelerate config (but not broken YAML).
      const parsed = parseYaml(dec.text);
      if (parsed.diagnostics.length === 0 && parsed.root && detectKind(parsed.root) === 'other') {
        if (found.has(folder!)) found.set(folder!, found.get(folder!)! - 1);
        continue;
      }
    }
    for (const d of validateText(dec.text, { file: path, files: nodeFiles })) push(d.file ?? path, d);
  }
  for (const [folder, n] of found) {
    if (n > 0) continue;
    // a folder with nothing to check (a typo'd or wrong folder) is not a pass
    results.push({ file: folder, line: 1, column: 1, endLine: 1, endColumn: 1, severity: 'error', code: 'CC010',
      message: `No recipe found in folder '${folder}': no *.yaml or *.yml file in it (or its subfolders) is a recipe or an accelerate config. Check the folder name.` });
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
    // one diagnostic per line: a newline in a file name or message cannot forge another
    for (const d of diags) process.stdout.write(`${escapeControls(d.file)}:${d.line}:${d.column}: ${d.severity} ${d.code}: ${escapeControls(d.message)}\n`);
    const warnings = diags.filter((d) => d.severity === 'warning').length;
    const infos = diags.length - errors - warnings;
    process.stderr.write(`${errors} error(s), ${warnings} warning(s)${infos ? `, ${infos} info` : ''}\n`);
  }
  return errors > 0 ? 1 : 0;
}
