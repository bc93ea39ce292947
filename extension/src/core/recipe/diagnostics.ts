// Diagnostic type shared by the editor and the CLI. Positions are zero-based here (the CLI
// prints them one-based); `start`/`end` are offsets into the text, end-exclusive.

export type Severity = 'error' | 'warning' | 'info';

export interface TextEdit { start: number; end: number; newText: string }
export interface QuickFix { title: string; edits: TextEdit[] }

export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  start: number;
  end: number;
  /** zero-based */
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** Edits that fix the problem, offered as quick fixes in the editor. */
  fixes?: QuickFix[];
  /** File this diagnostic belongs to, when it is not the file being validated (e.g. the accelerate config). */
  file?: string;
}

/** Line starts of the last text seen (diagnostics come in bursts for one text). */
let cacheText: string | undefined;
let cacheStarts: number[] = [0];

function lineStarts(text: string): number[] {
  if (text === cacheText) return cacheStarts;
  // a line ends at \r\n, \r or \n (PyYAML and the editor count a lone \r as a line break too)
  const starts = [0];
  if (!text.includes('\r')) {
    for (let p = text.indexOf('\n'); p >= 0; p = text.indexOf('\n', p + 1)) starts.push(p + 1);
  } else {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      if (c === 10 || c === 13) starts.push(i + 1);
    }
  }
  cacheText = text;
  cacheStarts = starts;
  return starts;
}

export function positionAt(text: string, offset: number): { line: number; column: number } {
  const starts = lineStarts(text);
  const o = Math.max(0, Math.min(text.length, offset));
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= o) lo = mid; else hi = mid - 1;
  }
  return { line: lo, column: o - starts[lo]! };
}

export function offsetAt(text: string, line: number, column: number): number {
  const starts = lineStarts(text);
  if (line < 0) return 0;
  if (line >= starts.length) return text.length;
  return Math.min(text.length, starts[line]! + Math.max(0, column));
}

export function diag(text: string, start: number, end: number, severity: Severity, code: string, message: string, fixes?: QuickFix[]): Diagnostic {
  const s = Math.max(0, Math.min(text.length, start));
  const e = Math.max(s, Math.min(text.length, end));
  const a = positionAt(text, s);
  const b = positionAt(text, e);
  const d: Diagnostic = { severity, code, message, start: s, end: e, line: a.line, column: a.column, endLine: b.line, endColumn: b.column };
  if (fixes && fixes.length) d.fixes = fixes;
  return d;
}
