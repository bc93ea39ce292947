// The one shell-quoting function. Every value that reaches a shell string (paths, recipe and
// setting values, run ids) goes through shQuote; nothing user-supplied is interpolated raw.
// POSIX single quotes: everything inside is literal; a ' is written as '\'' (close, escaped
// quote, reopen). Newlines, $, `, \, ;, " need no escaping inside single quotes.

const SAFE = /^[A-Za-z0-9_\/.,:=@%+-]+$/;

/** Quotes one word for POSIX sh/bash. Throws on NUL, which no shell word can carry. */
export function shQuote(value: string | number): string {
  const s = String(value);
  if (s.includes('\0')) throw new Error('value contains a NUL byte and cannot be passed to a shell');
  if (s === '') return "''";
  if (SAFE.test(s)) return s;
  return "'" + s.replace(/'/g, "'\\''") + "'";
}

/** Quotes and joins an argv into one shell command line. */
export function shJoin(argv: ReadonlyArray<string | number>): string {
  return argv.map(shQuote).join(' ');
}

/** `export NAME=value` with the name checked and the value quoted. */
export function shExport(name: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid environment variable name '${name}'`);
  return `export ${name}=${shQuote(value)}`;
}
