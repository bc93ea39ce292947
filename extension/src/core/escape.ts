// Text that came from a file (a name, a line of an events file) shown on a terminal or in one
// line of output: control characters are written as escapes, so a newline cannot forge another
// diagnostic line and an ANSI sequence cannot rewrite the terminal.
export function escapeControls(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
