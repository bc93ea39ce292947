// YAML -> a small tree with source ranges, built from js-yaml 5's event parser.
// Plain scalars are resolved with PyYAML's own YAML 1.1 patterns (resolvePlain) because the
// runtime reads recipes with PyYAML (yaml.safe_load), so `no` is false, `y` and `-.5` are text,
// `1e-6` is a string and `2024-05-01` a date, exactly as there.
// Aliases are never expanded into copies: an alias node points at its anchor's node, the
// number of aliases per document is capped, and plain-value conversion has a node budget,
// so alias bombs ("billion laughs") cost nothing.
import { parseEvents, getScalarValue, EVENT_ID, SCALAR_STYLE, COLLECTION_STYLE, type Event, type ScalarEvent } from 'js-yaml';
import { type Diagnostic, diag, positionAt } from './diagnostics';

export interface YBase { start: number; end: number }
export interface YScalar extends YBase {
  kind: 'scalar';
  /** Decoded text (without quotes / block indicators). */
  text: string;
  /** Resolved value, YAML 1.1 (PyYAML) rules for plain scalars; quoted/block scalars are strings.
   * A date (`timestamp`) or `!!binary` data keeps its text: the runtime gets a datetime / bytes. */
  value: string | number | boolean | null;
  quoted: boolean;
  /** Whether a plain scalar was resolved to something other than a string. */
  tag: 'str' | 'int' | 'float' | 'bool' | 'null' | 'timestamp' | 'binary';
  /** The explicit tag it was written with (`!!float`), when that tag decided its type. */
  explicit?: string;
  /** A plain `<<` or `=`: PyYAML's merge / value tag, which it cannot construct as a value. */
  pyTag?: 'merge' | 'value';
}
export interface YPair { key: YNode; value: YNode }
export interface YMap extends YBase { kind: 'map'; items: YPair[]; flow: boolean }
export interface YSeq extends YBase { kind: 'seq'; items: YNode[]; flow: boolean }
export interface YAlias extends YBase { kind: 'alias'; name: string; target: YNode | undefined }
export type YNode = YScalar | YMap | YSeq | YAlias;

export interface ParsedYaml {
  root: YNode | undefined;
  /** Syntax-level diagnostics (syntax errors, tabs, duplicate keys, alias limits, ...). */
  diagnostics: Diagnostic[];
  documents: number;
}

export const LIMITS = {
  /** Largest file parsed at all; recipes are a few KB. */
  maxBytes: 2 * 1024 * 1024,
  /** Aliases allowed in one document. */
  maxAliases: 100,
  /** Nodes visited when converting to plain values (aliases count again each time). */
  maxPlainNodes: 100_000,
  maxDepth: 64,
};

// PyYAML's timestamp pattern: the resolver's, and what construct_yaml_timestamp can read (`!!timestamp`)
const TIMESTAMP_RE = /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/;

// PyYAML's implicit resolvers (yaml/resolver.py), in its order: a plain scalar gets the first
// tag whose pattern matches the whole text, else str. js-yaml's YAML 1.1 schema differs: it reads
// `y`/`n` as booleans and `+.5`/`-.5` as floats, which PyYAML reads as text.
const PY_RESOLVERS: Array<[PlainTag, RegExp]> = [
  ['bool', /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/],
  ['float', /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/],
  ['int', /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/],
  ['merge', /^(?:<<)$/],
  ['null', /^(?:~|null|Null|NULL|)$/],
  ['timestamp', TIMESTAMP_RE],
  ['value', /^(?:=)$/],
];

type PlainTag = 'str' | 'int' | 'float' | 'bool' | 'null' | 'timestamp' | 'merge' | 'value';

/** The tag PyYAML's resolver gives a plain scalar written as `text`. */
export function resolvePlain(text: string): PlainTag {
  for (const [tag, re] of PY_RESOLVERS) if (re.test(text)) return tag;
  return 'str';
}

// Lines end at \r\n, \r or \n, as PyYAML and the editor count them. The one place the
// validator finds a line's start and end (values.ts and context.ts use these).

/** Offset of the start of the line holding `pos`. */
export function lineStart(text: string, pos: number): number {
  // a walk back over this line only: lastIndexOf('\r') in a file without one read back to its start
  let i = Math.min(pos, text.length) - 1;
  while (i >= 0) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) break;
    i--;
  }
  return i + 1;
}

/** Offset of the end of the line holding `pos` (its \r or \n, or the end of the text). */
export function lineEnd(text: string, pos: number): number {
  const re = /[\r\n]/g;
  re.lastIndex = pos;
  const m = re.exec(text);
  return m ? m.index : text.length;
}

/** End of the first line of a node, so a squiggle does not cover a whole block. */
export function headEnd(text: string, n: { start: number; end: number }): number {
  const nl = lineEnd(text, n.start);
  return nl >= text.length || nl > n.end ? n.end : Math.max(n.start + 1, nl);
}

/** CC007's words for a file of `size` bytes (the file's real size: a reader stats it before reading). */
export function tooLargeMessage(size: number): string {
  return `File is ${(size / 1048576).toFixed(1)} MB; a recipe is a small YAML file, so files over ${LIMITS.maxBytes / 1048576} MB are not parsed. Check that this is the right file.`;
}

// PyYAML's Reader.NON_PRINTABLE: what it accepts is TAB, LF, CR, printable ASCII, NEL, and the
// rest of Unicode but surrogates and U+FFFE / U+FFFF
const NON_PRINTABLE = /[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
/** js-yaml's own limit (it counts every node on the way down); far past where the TreeBuilder stops. */
const JS_MAX_DEPTH = 4 * LIMITS.maxDepth;

/** Parse `text` into a ranged tree. Never throws. */
export function parseYaml(text: string): ParsedYaml {
  const diagnostics: Diagnostic[] = [];
  if (text.length > LIMITS.maxBytes) {
    diagnostics.push(diag(text, 0, Math.min(lineEnd(text, 0), 200), 'error', 'CC007', tooLargeMessage(text.length)));
    return { root: undefined, diagnostics, documents: 0 };
  }
  // PyYAML's Reader checks the whole text before it parses anything, comments included
  const bad = NON_PRINTABLE.exec(text);
  if (bad) {
    const cp = bad[0].codePointAt(0)!;
    diagnostics.push(diag(text, bad.index, bad.index + bad[0].length, 'error', 'CC001',
      `YAML error: non-printable character U+${cp.toString(16).toUpperCase().padStart(4, '0')}: PyYAML refuses special characters anywhere in a recipe, comments included (the runtime's yaml.safe_load refuses it). Remove it.`));
    return { root: undefined, diagnostics, documents: 0 };
  }
  let events: Event[];
  const pad = new FlowPadding(text);
  for (;;) {
    try {
      // js-yaml counts nodes, not collections, and so would refuse fewer levels than the runtime:
      // the TreeBuilder counts collections as conscience.recipe._check_depth does
      events = parseEvents(pad.text, { maxDepth: JS_MAX_DEPTH });
      break;
    } catch (err) {
      const e = err as { reason?: string; message?: string; mark?: { position?: number } };
      const reason = e.reason ?? e.message ?? String(err);
      if (reason === 'deficient indentation' && pad.retry(e.mark?.position ?? 0)) continue;
      syntaxError(text, reason, pad.toOriginal(Math.max(0, Math.min(pad.text.length, e.mark?.position ?? 0))), diagnostics);
      return { root: undefined, diagnostics, documents: 0 };
    }
  }
  if (!pad.padded) return new TreeBuilder(text, events, diagnostics).build();
  // Built on the padded text; every range goes back to the recipe's own offsets.
  const built = new TreeBuilder(pad.text, events, []).build();
  pad.remapTree(built.root);
  for (const d of built.diagnostics) diagnostics.push(diag(text, pad.toOriginal(d.start), pad.toOriginal(d.end), d.severity, d.code, d.message, d.fixes));
  return { root: built.root, diagnostics, documents: built.documents };
}

/**
 * PyYAML ignores indentation inside a flow collection (`[`...`]`, `{`...`}`) and a quoted
 * scalar, so it loads a list closed at column 0:
 *     reward_weights: [
 *       1.0,
 *     ]
 * js-yaml stops there with "deficient indentation". Each such line is indented (a copy of the
 * text gets spaces at its start, never a line of its own, never a `---`/`...` marker or a tab)
 * until js-yaml reads it, and the tree's ranges are mapped back to the original offsets.
 */
class FlowPadding {
  text: string;
  /** Spaces added before the line that starts at an original offset. */
  private inserts = new Map<number, number>();
  private tries = 0;
  constructor(private readonly original: string) { this.text = original; }

  get padded(): boolean { return this.inserts.size > 0; }

  /** Indent the line of a "deficient indentation" at `position` (in this.text) more; false when it cannot be. */
  retry(position: number): boolean {
    if (++this.tries > 64) return false;
    const t = this.text;
    const ls = lineStart(t, Math.min(position, t.length));
    const line = t.slice(ls, lineEnd(t, ls));
    // a tab (js-yaml's other reason for this error; PyYAML refuses it too) or a document marker stays an error
    if (line.includes('\t') || /^[ ]*(?:---|\.\.\.)(?:[ \t]|$)/.test(line)) return false;
    const at = this.toOriginal(ls);
    const n = this.inserts.get(at) ?? 0;
    if (n >= 256) return false;
    this.inserts.set(at, n ? n * 2 : 1);
    this.rebuild();
    return true;
  }

  private rebuild(): void {
    let out = '';
    let last = 0;
    for (const [at, n] of [...this.inserts].sort((a, b) => a[0] - b[0])) {
      out += this.original.slice(last, at) + ' '.repeat(n);
      last = at;
    }
    this.text = out + this.original.slice(last);
  }

  /** An offset in this.text as an offset in the original text (inside added spaces: the line start). */
  toOriginal(pos: number): number {
    let shift = 0;
    for (const [at, n] of [...this.inserts].sort((a, b) => a[0] - b[0])) {
      const p = at + shift;
      if (pos < p) break;
      if (pos < p + n) return at;
      shift += n;
    }
    return pos - shift;
  }

  remapTree(root: YNode | undefined): void {
    const seen = new Set<YNode>();
    const visit = (n: YNode | undefined): void => {
      if (!n || seen.has(n)) return;
      seen.add(n);
      n.start = this.toOriginal(n.start);
      n.end = this.toOriginal(n.end);
      if (n.kind === 'map') for (const p of n.items) { visit(p.key); visit(p.value); }
      else if (n.kind === 'seq') for (const it of n.items) visit(it);
    };
    visit(root);
  }
}

const DEPTH_MESSAGE = `YAML error: nested more than ${LIMITS.maxDepth} levels deep (the runtime refuses deeper nesting). A recipe needs only a few levels: write the values out flatter.`;

/** CC002 for js-yaml's tab message, CC001 for any other syntax error, at `pos`. */
function syntaxError(text: string, reason: string, pos: number, diagnostics: Diagnostic[]): void {
  // Mark the rest of the offending line (at least one character when there is one).
  let end = lineEnd(text, pos);
  if (end <= pos) end = Math.min(text.length, pos + 1);
  // js-yaml's tab message only: a looser /tab/ matched "unacceptable" (%YAML 2.0) and
  // "non-printable" (a control character) too
  if (/^tab characters must not be used in indentation/.test(reason)) {
    // Point at the tab itself when we can find it on that line.
    const ls = lineStart(text, pos);
    const le = lineEnd(text, ls);
    const tab = text.slice(ls, le).indexOf('\t');
    const s = tab >= 0 ? ls + tab : pos;
    diagnostics.push(diag(text, s, s + 1, 'error', 'CC002', `Tab character in indentation: YAML indents with spaces only. Replace the tab with spaces.`));
  } else if (/^nesting exceeded maxDepth/.test(reason)) {
    diagnostics.push(diag(text, pos, end, 'error', 'CC001', DEPTH_MESSAGE));
  } else {
    diagnostics.push(diag(text, pos, end, 'error', 'CC001', `YAML syntax error: ${reason}. Fix the YAML at this position (check indentation, quotes and brackets).`));
  }
}

// The tags yaml.safe_load constructs (SafeConstructor); PyYAML refuses any other.
const SAFE_TAGS = new Set(['null', 'bool', 'int', 'float', 'binary', 'timestamp', 'omap', 'pairs', 'set', 'str', 'seq', 'map']);

/** PyYAML's error for an explicit tag safe_load cannot construct (`!foo`, `!!python/int`). */
function tagError(tag: string): string | undefined {
  if (tag === '!') return undefined; // the non-specific tag
  const m = /^!!(.+)$/.exec(tag) ?? /^!<tag:yaml\.org,2002:(.+)>$/.exec(tag);
  if (m && SAFE_TAGS.has(m[1]!)) return undefined;
  return `could not determine a constructor for the tag '${m ? `tag:yaml.org,2002:${m[1]}` : tag.replace(/^!<(.*)>$/, '$1')}'`;
}

const LINE_BREAK_NAMES: Record<number, string> = { 0x85: 'NEXT LINE', 0x2028: 'LINE SEPARATOR', 0x2029: 'PARAGRAPH SEPARATOR' };

/** A merge key: `<<` (PyYAML's resolver gives it the merge tag) or a key tagged `!!merge`. */
function isMergeKey(k: YNode): boolean { return k.kind === 'scalar' && k.pyTag === 'merge'; }

/** Whether `pos` is inside one of `ranges` ([start, end), sorted by start, apart). */
function inRanges(ranges: Array<[number, number]>, pos: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = ranges[mid]!;
    if (pos < a) hi = mid - 1;
    else if (pos >= b) lo = mid + 1;
    else return true;
  }
  return false;
}

class TreeBuilder {
  private i = 0;
  private anchors = new Map<string, YNode>();
  private aliases = 0;
  private aliasLimitReported = false;
  /** Mappings and lists open around the node being built (the runtime's _check_depth counts the same). */
  private depth = 0;
  private depthReported = false;
  /** The collections being built (an alias of one of them is a value that contains itself). */
  private open = new Set<YNode>();
  /** Ranges where PyYAML reads a tab as text: quoted and block scalars. */
  private tabOk: Array<[number, number]> = [];
  private readonly hasTab: boolean;
  /** Quoted scalars' ranges, where NEL / LS / PS are characters to PyYAML too. */
  private quotedRanges: Array<[number, number]> = [];
  private readonly hasBreak: boolean;
  constructor(private text: string, private events: Event[], private diagnostics: Diagnostic[]) {
    this.hasTab = text.includes('\t');
    this.hasBreak = /[\u0085\u2028\u2029]/.test(text);
  }

  /** What js-yaml accepts and yaml.safe_load refuses, as a syntax error at the place (CC001). */
  private pyyamlError(start: number, end: number, problem: string, hint: string): void {
    this.diagnostics.push(diag(this.text, start, end, 'error', 'CC001', `YAML error: ${problem} (the runtime's yaml.safe_load refuses it). ${hint}`));
  }

  /**
   * `: 5` (a value with no key and no `?`): js-yaml reads an empty key, PyYAML's parser refuses
   * it ("expected <block end>, but found ':'"). An explicit empty key (`?` then `: 5`) is fine.
   */
  private checkEmptyKey(key: YNode, value: YNode): void {
    if (key.kind !== 'scalar' || key.text !== '' || key.quoted || key.explicit || key.end > key.start || value.start <= 0) return;
    const t = this.text;
    let p = value.start - 1;
    while (p >= 0 && t[p] === ' ') p--;
    if (p < 0 || t[p] !== ':') return;
    let q = p - 1;
    while (q >= 0 && (t[q] === ' ' || t[q] === '\t' || t[q] === '\n' || t[q] === '\r')) q--;
    // the key has no text of its own: it sits at the `?`, or at the colon
    key.start = key.end = q >= 0 && t[q] === '?' ? q : p;
    if (q >= 0 && t[q] === '?') return;
    this.pyyamlError(p, p + 1, "found ':' with no key before it (expected <block end>, but found ':')", 'Write the key before the colon, or remove the line.');
  }

  /** A plain `<<` or `=` as a value: PyYAML resolves it to its merge / value tag and has no constructor for it. */
  private checkPyTag(n: YNode): void {
    if (n.kind !== 'scalar' || !n.pyTag) return;
    this.pyyamlError(n.start, n.end, `could not determine a constructor for the tag 'tag:yaml.org,2002:${n.pyTag}'`, `Quote it to keep the text: '${n.text}'.`);
  }

  /** This document's %TAG handles (`%TAG !e! tag:yaml.org,2002:`). */
  private handles = new Map<string, string>();

  /**
   * A tag as written, with its handle expanded as PyYAML does: `!!int` and `!e!int` (under
   * `%TAG !e! tag:yaml.org,2002:`) are both `!!int`; a tag outside the standard namespace is
   * returned whole (`!foo`, `tag:example.com,2000:x`).
   */
  private canonicalTag(written: string): string {
    if (!written) return '';
    let full = written;
    const verbatim = /^!<(.*)>$/.exec(written);
    if (verbatim) full = verbatim[1]!;
    else {
      const m = /^(!(?:[\w-]*!)?)(.*)$/.exec(written);
      if (m) {
        const prefix = this.handles.get(m[1]!) ?? (m[1] === '!!' ? 'tag:yaml.org,2002:' : m[1] === '!' ? '!' : undefined);
        if (prefix !== undefined) full = prefix + m[2]!;
      }
    }
    return full.startsWith('tag:yaml.org,2002:') ? `!!${full.slice('tag:yaml.org,2002:'.length)}` : full;
  }

  private checkTag(e: { tagStart: number; tagEnd: number }): void {
    if (e.tagStart < 0) return;
    const tag = this.canonicalTag(this.text.slice(e.tagStart, e.tagEnd));
    if (tag === '!!merge' || tag === '!!value') return; // `!!merge <<:` is a merge key; as a value: checkPyTag
    const err = tagError(tag);
    if (err) this.pyyamlError(e.tagStart, e.tagEnd, err, 'Remove the tag (a recipe needs plain values) or use a standard one such as !!str.');
  }

  /**
   * PyYAML separates tokens with spaces only: a tab anywhere but in a quoted or block scalar or a
   * comment (`key:\tvalue`, `key\t: value`, `a: [1,\t2]`) is "found character '\t' that cannot
   * start any token". (A tab in indentation is js-yaml's own CC002.)
   */
  private checkTabs(): void {
    const t = this.text;
    const ok = this.tabOk; // in document order, so sorted and apart: one pass, a binary search for a '#'
    let k = 0;
    let lineEndAt = -1; // the line of the last tab looked at: where it ends, and where its comment starts
    let comment = -1;
    for (let p = t.indexOf('\t'); p >= 0; p = t.indexOf('\t', p + 1)) {
      while (k < ok.length && ok[k]![1] <= p) k++;
      if (k < ok.length && ok[k]![0] <= p) continue;
      if (p >= lineEndAt) {
        const ls = lineStart(t, p);
        lineEndAt = lineEnd(t, p);
        comment = -1;
        for (let q = t.indexOf('#', ls); q >= 0 && q < lineEndAt; q = t.indexOf('#', q + 1)) {
          if ((q === ls || t[q - 1] === ' ' || t[q - 1] === '\t') && !inRanges(ok, q)) { comment = q; break; }
        }
      }
      if (comment >= 0 && comment < p) continue;
      this.pyyamlError(p, p + 1, "found character '\\t' that cannot start any token", 'YAML (as PyYAML reads it) separates with spaces only: replace the tab with a space.');
      return; // PyYAML stops at the first
    }
  }

  /**
   * PyYAML ends a line at NEL (U+0085), LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029)
   * too; js-yaml and the editor do not. After one in a comment, the rest of the line is live YAML
   * to the runtime (`# was: <LS>beta: 0.9` sets beta), and the lines are counted apart from there.
   * Outside a quoted scalar (where both read it as a character) it is a syntax error (CC001), as
   * the runtime's read_recipe_yaml refuses it.
   */
  private checkLineBreaks(): void {
    const t = this.text;
    const re = /[\u0085\u2028\u2029]/g;
    for (let m = re.exec(t); m; m = re.exec(t)) {
      if (inRanges(this.quotedRanges, m.index)) continue;
      const cp = m[0].charCodeAt(0);
      this.pyyamlError(m.index, m.index + 1, `unusual line terminator U+${cp.toString(16).toUpperCase().padStart(4, '0')} (${LINE_BREAK_NAMES[cp]}): PyYAML reads it as a new line, so what follows it is not where the editor shows it`,
        'Remove it, or put a real line break there.');
      return; // PyYAML stops at the first
    }
  }

  build(): ParsedYaml {
    const ev = this.events;
    let root: YNode | undefined;
    let documents = 0;
    while (this.i < ev.length) {
      const e = ev[this.i++]!;
      if (e.type !== EVENT_ID.DOCUMENT) continue;
      documents++;
      this.handles = new Map((e.directives ?? []).filter((d) => d.kind === 'tag').map((d) => [d.handle, d.prefix] as [string, string]));
      this.anchors.clear();
      this.anchorAt.clear();
      this.aliases = 0;
      let content: YNode | undefined;
      if (this.i < ev.length && ev[this.i]!.type !== EVENT_ID.POP) content = this.node();
      if (this.i < ev.length && ev[this.i]!.type === EVENT_ID.POP) this.i++;
      if (documents === 1) root = content;
      else if (documents === 2) {
        // at the `---` that starts the second document, where yaml.safe_load says "but found another document"
        const re = /^---(?=[ \t\r\n]|$)/gm;
        re.lastIndex = root ? root.end : 0;
        const m = re.exec(this.text);
        const empty = !content || (content.kind === 'scalar' && content.start === content.end);
        const at = m && (empty || m.index <= content!.start) ? m.index : empty ? undefined : content!.start;
        if (at !== undefined) {
          this.diagnostics.push(diag(this.text, at, lineEnd(this.text, at), 'error', 'CC009',
            'A recipe is one YAML document, but this file has several (`---`). The runtime (yaml.safe_load) rejects it: remove the extra documents.'));
        }
      }
    }
    if (this.hasTab) this.checkTabs();
    if (this.hasBreak) this.checkLineBreaks();
    return { root, diagnostics: this.diagnostics, documents };
  }

  private anchorName(e: { anchorStart: number; anchorEnd: number }): string | undefined {
    return e.anchorStart >= 0 ? this.text.slice(e.anchorStart, e.anchorEnd) : undefined;
  }

  /** Where each anchor of the document is defined (its `&`), for a second definition's message. */
  private anchorAt = new Map<string, number>();

  /** `&name` on a node: PyYAML's composer refuses a name defined twice in a document (js-yaml redefines it). */
  private defineAnchor(e: { anchorStart: number; anchorEnd: number }, n: YNode): void {
    const a = this.anchorName(e);
    if (!a) return;
    const first = this.anchorAt.get(a);
    if (first !== undefined) {
      this.pyyamlError(e.anchorStart - 1, e.anchorEnd, `found duplicate anchor '${a}' (first on line ${lineOf(this.text, first)})`,
        `Rename one of them, and the aliases (*${a}) that mean it.`);
    } else this.anchorAt.set(a, e.anchorStart - 1);
    this.anchors.set(a, n);
  }

  private node(): YNode {
    const e = this.events[this.i++]!;
    switch (e.type) {
      case EVENT_ID.SCALAR: {
        const n = this.scalar(e);
        this.defineAnchor(e, n);
        return n;
      }
      case EVENT_ID.ALIAS: {
        const name = this.text.slice(e.anchorStart, e.anchorEnd);
        this.aliases++;
        const start = Math.max(0, e.anchorStart - 1);
        if (this.aliases > LIMITS.maxAliases && !this.aliasLimitReported) {
          this.aliasLimitReported = true;
          this.diagnostics.push(diag(this.text, start, e.anchorEnd, 'error', 'CC004',
            `More than ${LIMITS.maxAliases} aliases in one document; aliases are not expanded beyond this limit (alias bombs). Write the values out instead of using *${name}.`));
        }
        const target = this.aliases > LIMITS.maxAliases ? undefined : this.anchors.get(name);
        if (!target && this.aliases <= LIMITS.maxAliases) {
          this.pyyamlError(start, e.anchorEnd, `found undefined alias '${name}'`, `Define the anchor (&${name}) before this alias, or write the value out.`);
        } else if (target && this.open.has(target)) {
          // `lr_scheduler_kwargs: &k {a: *k}`: PyYAML builds it, and transformers fails on it (conscience.recipe refuses it)
          this.diagnostics.push(diag(this.text, start, e.anchorEnd, 'error', 'CC001',
            `*${name} is an alias of a collection it is inside: a value that contains itself, which nothing in a recipe can use (transformers fails on it). Write the value out.`));
        }
        return { kind: 'alias', name, target, start, end: e.anchorEnd };
      }
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE: {
        const isMap = e.type === EVENT_ID.MAPPING;
        const flow = e.style === COLLECTION_STYLE.FLOW;
        this.checkTag(e);
        if (++this.depth > LIMITS.maxDepth && !this.depthReported) {
          this.depthReported = true;
          this.diagnostics.push(diag(this.text, e.start, Math.max(e.start + 1, lineEnd(this.text, e.start)), 'error', 'CC001', DEPTH_MESSAGE));
        }
        const start = e.anchorStart >= 0 ? Math.min(e.anchorStart - 1, e.start) : e.start;
        const n: YMap | YSeq = isMap
          ? { kind: 'map', items: [], flow, start: Math.max(0, start), end: e.start }
          : { kind: 'seq', items: [], flow, start: Math.max(0, start), end: e.start };
        this.defineAnchor(e, n);
        this.open.add(n);
        const seen = isMap ? new Map<string, YNode>() : undefined;
        while (this.i < this.events.length && this.events[this.i]!.type !== EVENT_ID.POP) {
          if (isMap) {
            const key = this.node();
            const value = this.i < this.events.length && this.events[this.i]!.type !== EVENT_ID.POP
              ? this.node()
              : ({ kind: 'scalar', text: '', value: null, quoted: false, tag: 'null', start: key.end, end: key.end } as YScalar);
            // An empty value (`warmup_ratio:`) has no text of its own: it sits right after its key,
            // so a diagnostic about it points at the key, not at the top of the file.
            if (value.kind === 'scalar' && value.tag === 'null' && value.text === '' && !value.quoted && value.start < key.end) {
              value.start = value.end = key.end;
            }
            (n as YMap).items.push({ key, value });
            this.checkPyTag(value);
            this.checkEmptyKey(key, value);
            if (isMergeKey(key)) continue; // merge keys: see merge()
            // an alias as a key (`*k : 9`) is its anchor's key
            const k = key.kind === 'alias' ? deref(key) : key;
            if (k?.kind === 'scalar') {
              const prev = seen!.get(k.text);
              if (prev) {
                const line = lineOf(this.text, prev.start);
                this.diagnostics.push(diag(this.text, key.start, key.end, 'error', 'CC003',
                  `Duplicate key '${k.text}' (first defined on line ${line}). PyYAML silently keeps the last value; remove one of them.`));
              } else seen!.set(k.text, key);
            }
          } else {
            const item = this.node();
            (n as YSeq).items.push(item);
            this.checkPyTag(item);
          }
        }
        this.i++; // POP
        this.depth--;
        this.open.delete(n);
        const last = isMap ? (n as YMap).items.at(-1)?.value : (n as YSeq).items.at(-1);
        if (isMap) this.merge(n as YMap);
        n.end = Math.max(n.end + (flow ? 1 : 0), last ? last.end : n.end);
        if (flow) n.end = this.closeBracket(n.end, isMap ? '}' : ']');
        return n;
      }
      default:
        // Should not happen for a well-formed event stream; keep going.
        return { kind: 'scalar', text: '', value: null, quoted: false, tag: 'null', start: 0, end: 0 };
    }
  }

  /**
   * YAML merge keys, as PyYAML's safe_load applies them: `<<: *base` (or `<<: [*a, *b]`) adds the
   * pairs of the aliased mappings that the mapping does not set itself (earlier sources win).
   * The merged pairs keep their source ranges, so a problem in a merged value is reported where
   * it is written. Bounded: a source mapping was merged when it was built, so each merge copies
   * at most one flat list of pairs per alias, and aliases per document are capped.
   */
  private merge(m: YMap): void {
    if (!m.items.some((p) => isMergeKey(p.key))) return;
    const own: YPair[] = [];
    const sources: YMap[] = [];
    for (const p of m.items) {
      if (!isMergeKey(p.key)) { own.push(p); continue; }
      const v = deref(p.value);
      const list = v?.kind === 'seq' ? v.items : [p.value];
      for (const it of list) {
        const src = deref(it);
        if (src === m) continue; // merged into itself: reported at the alias (a value that contains itself)
        if (src?.kind === 'map') { sources.push(src); continue; }
        if (it.kind === 'alias' && !it.target) continue; // unknown anchor or over the alias cap: reported already
        this.diagnostics.push(diag(this.text, it.start, headEnd(this.text, it), 'error', 'CC101',
          'A merge key (<<) takes an alias of a mapping (`<<: *base`) or a list of them (`<<: [*a, *b]`); PyYAML rejects anything else.'));
      }
    }
    const seen = new Set<string>();
    for (const p of own) if (p.key.kind === 'scalar') seen.add(p.key.text);
    const merged: YPair[] = [];
    for (const src of sources) {
      for (const q of src.items) {
        const k = q.key.kind === 'scalar' ? q.key.text : undefined;
        if (k === undefined || seen.has(k)) continue;
        seen.add(k);
        merged.push(q);
      }
    }
    m.items = [...merged, ...own];
  }

  private closeBracket(from: number, ch: string): number {
    const t = this.text;
    let p = from;
    while (p < t.length) {
      const c = t[p]!;
      if (c === ch) return p + 1;
      if (c === ' ' || c === '\n' || c === '\r' || c === ',' || c === '\t') { p++; continue; }
      if (c === '#') { p = lineEnd(t, p); continue; }
      break;
    }
    return from;
  }

  private scalar(e: ScalarEvent): YScalar {
    const t = this.text;
    const text = e.fast ? t.slice(e.valueStart, e.valueEnd) : getScalarValue(t, e);
    let start = e.valueStart;
    let end = e.valueEnd;
    const quoted = e.style === SCALAR_STYLE.SINGLE_QUOTED || e.style === SCALAR_STYLE.DOUBLE_QUOTED;
    this.checkTag(e);
    if (quoted) {
      if (start > 0 && (t[start - 1] === '"' || t[start - 1] === "'")) start--;
      if (end < t.length && (t[end] === '"' || t[end] === "'")) end++;
      if (this.hasTab) this.tabOk.push([start, end]);
      if (this.hasBreak) this.quotedRanges.push([start, end]);
    }
    if ((e.style === SCALAR_STYLE.LITERAL_BLOCK || e.style === SCALAR_STYLE.FOLDED_BLOCK) && this.hasTab) this.tabOk.push([e.valueStart, e.valueEnd]);
    if (e.style === SCALAR_STYLE.LITERAL_BLOCK || e.style === SCALAR_STYLE.FOLDED_BLOCK) {
      // Trim the trailing newline so the range stays on the scalar's last line.
      while (end > start && (t[end - 1] === '\n' || t[end - 1] === '\r')) end--;
    }
    // An explicit core tag decides the type as PyYAML's constructors do, quoted or not:
    // `!!float 768` is the float 768.0, `!!int "12"` the integer 12. The node then starts at
    // the tag, so a quick fix that rewrites the value drops the tag with it.
    const tagText = e.tagStart >= 0 ? t.slice(e.tagStart, e.tagEnd) : '';
    const canon = this.canonicalTag(tagText);
    if (canon === '!!merge' || canon === '!!value') {
      // PyYAML's own tags for `<<` and `=`: a merge key (`!!merge <<:`), and no value it can build
      return { kind: 'scalar', text, value: text, quoted, tag: 'str', pyTag: canon === '!!merge' ? 'merge' : 'value', start, end };
    }
    const core = /^!!(int|float|bool|null|timestamp|binary)$/.exec(canon);
    if (core) {
      const kind = core[1] as 'int' | 'float' | 'bool' | 'null' | 'timestamp' | 'binary';
      const value = kind === 'timestamp' ? constructTimestamp(text) : kind === 'binary' ? constructBinary(text) : constructTagged(kind, text);
      if (value !== undefined) return { kind: 'scalar', text, value, quoted: false, tag: kind, explicit: tagText, start: e.tagStart, end };
      this.pyyamlError(e.tagStart, end, `${tagText} cannot read ${JSON.stringify(text)} as ${TYPE_WORDS[kind]}`,
        'Remove the tag, or write a value of its type.');
      return { kind: 'scalar', text, value: text, quoted, tag: 'str', start, end };
    }
    if (e.style !== SCALAR_STYLE.PLAIN) return { kind: 'scalar', text, value: text, quoted: true, tag: 'str', start, end };
    // Explicit tags (!!str ...) are rare in recipes; honour !!str, resolve the rest implicitly.
    if (canon === '!!str') {
      return { kind: 'scalar', text, value: text, quoted: false, tag: 'str', start, end };
    }
    const tag = resolvePlain(text);
    if (tag === 'merge' || tag === 'value') {
      // `<<` and `=` are PyYAML's merge and value tags; as a key they are the merge key and the
      // text "=" (the map loop in node() refuses them as values, as PyYAML's constructor does)
      return { kind: 'scalar', text, value: text, quoted: false, tag: 'str', pyTag: tag, start, end };
    }
    let value: YScalar['value'] | undefined = text;
    if (tag === 'int' || tag === 'float' || tag === 'bool' || tag === 'null') value = constructTagged(tag, text);
    else if (tag === 'timestamp') value = constructTimestamp(text);
    if (value === undefined) {
      // PyYAML's resolver takes it for an integer or a date that its constructor then cannot
      // read (`0b_`, `2024-13-01`): a YAML error at the value (the runtime: _RecipeLoader)
      this.pyyamlError(start, end, `cannot read '${text}' as ${TYPE_WORDS[tag as 'int']} (YAML 1.1 takes it for one)`,
        `Quote it to keep the text: '${text.replace(/'/g, "''")}'.`);
      return { kind: 'scalar', text, value: text, quoted: false, tag: 'str', start, end };
    }
    return { kind: 'scalar', text, value, quoted: false, tag: tag as YScalar['tag'], start, end };
  }
}

const TYPE_WORDS = { int: 'an integer', float: 'a float', bool: 'a boolean', null: 'null', timestamp: 'a timestamp', binary: 'base64 data' } as const;

const DATE_PARTS = /^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+]([0-9]{1,2})(?::([0-9]{2}))?))?)?$/;

/**
 * A date or time as PyYAML's construct_yaml_timestamp reads it (the text, kept as the value), or
 * undefined where it fails: no match, or a day, hour, ... that Python's datetime refuses.
 */
export function constructTimestamp(text: string): string | undefined {
  const m = DATE_PARTS.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec, tzh, tzm] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
  const leap = y! % 4 === 0 && (y! % 100 !== 0 || y! % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo! - 1];
  if (y! < 1 || days === undefined || d! < 1 || d! > days || h! > 23 || mi! > 59 || sec! > 59) return undefined;
  if (tzh! * 60 + tzm! >= 24 * 60) return undefined; // datetime.timezone takes less than a day
  return text;
}

/** `!!binary` text as PyYAML's construct_yaml_binary (base64.decodebytes) reads it, or undefined where it fails. */
export function constructBinary(text: string): string | undefined {
  if (/[^\x00-\x7f]/.test(text)) return undefined;
  // binascii.a2b_base64 (not strict): characters outside the alphabet are skipped, padding that
  // completes a group of 4 ends the data, and the data must end on a whole group
  let quad = 0;
  let pads = 0;
  for (const c of text) {
    if (c === '=') {
      if (quad >= 2 && quad + ++pads >= 4) return text;
      continue;
    }
    if (!/[A-Za-z0-9+/]/.test(c)) continue;
    pads = 0;
    quad = (quad + 1) % 4;
  }
  return quad === 0 ? text : undefined;
}

/**
 * What PyYAML's SafeConstructor makes of a scalar written with an explicit core tag, or
 * undefined where it fails (the runtime then reports the line: conscience.recipe._RecipeLoader).
 * `construct_yaml_int`: '_' dropped, one sign, 0b / 0x / leading-0 octal, base 60 with ':';
 * `construct_yaml_float`: '_' dropped, lower case, one sign, .inf / .nan, base 60, Python float();
 * `construct_yaml_bool`: yes/no/true/false/on/off in any case; `!!null` is null whatever it says.
 */
export function constructTagged(kind: 'int' | 'float' | 'bool' | 'null', text: string): number | boolean | null | undefined {
  if (kind === 'null') return null;
  if (kind === 'bool') {
    const v = ({ yes: true, no: false, true: true, false: false, on: true, off: false } as Record<string, boolean>)[text.toLowerCase()];
    return v;
  }
  let v = text.replace(/_/g, '');
  if (kind === 'float') v = v.toLowerCase();
  if (!v) return undefined;
  const sign = v[0] === '-' ? -1 : 1;
  if (v[0] === '-' || v[0] === '+') v = v.slice(1);
  const base60 = (parse: (d: string) => number): number | undefined => {
    let total = 0;
    for (const d of v.split(':')) {
      const x = parse(d);
      if (!Number.isFinite(x)) return undefined;
      total = total * 60 + x;
    }
    return sign * total;
  };
  if (kind === 'int') {
    const py = (d: string): number => (/^\s*[-+]?\d+\s*$/.test(d) ? Number(d) : NaN);
    if (v === '0') return 0;
    if (v.startsWith('0b')) return /^[01]+$/.test(v.slice(2)) ? sign * parseInt(v.slice(2), 2) : undefined;
    if (v.startsWith('0x')) return /^[0-9a-fA-F]+$/.test(v.slice(2)) ? sign * parseInt(v.slice(2), 16) : undefined;
    if (v[0] === '0') return /^[0-7]+$/.test(v) ? sign * parseInt(v, 8) : undefined;
    if (v.includes(':')) return base60(py);
    const x = py(v);
    return Number.isFinite(x) ? sign * x : undefined;
  }
  // Python's float(): surrounding whitespace, a sign, inf / infinity / nan, digits with an exponent
  const py = (d: string): number => {
    const m = d.trim();
    if (/^[-+]?(?:inf|infinity)$/.test(m)) return m[0] === '-' ? -Infinity : Infinity;
    if (/^[-+]?nan$/.test(m)) return NaN;
    return /^[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)$/.test(m) ? Number(m) : NaN;
  };
  if (v === '.inf') return sign * Infinity;
  if (v === '.nan') return NaN;
  if (v.includes(':')) return base60(py);
  const x = py(v);
  return Number.isNaN(x) && !/^\s*[-+]?nan\s*$/.test(v) ? undefined : sign * x;
}

/** One-based line of an offset (lines end at \r\n, \r or \n). */
export function lineOf(text: string, offset: number): number {
  return positionAt(text, offset).line + 1;
}

/** Follow aliases to the node they name (undefined when the anchor is unknown or over the limit). */
export function deref(n: YNode | undefined): YNode | undefined {
  let guard = 0;
  while (n && n.kind === 'alias' && guard++ < 32) n = n.target;
  return n && n.kind === 'alias' ? undefined : n;
}

/** The mapping pair whose key is `name` (last wins, like PyYAML). */
export function getPair(map: YMap | undefined, name: string): YPair | undefined {
  if (!map) return undefined;
  for (let i = map.items.length - 1; i >= 0; i--) {
    const p = map.items[i]!;
    if (p.key.kind === 'scalar' && p.key.text === name) return p;
  }
  return undefined;
}

/** `s` written so that PyYAML reads back the string `s`: plain while it stays a string there, else single-quoted (`'no'`). */
export function plainScalar(s: string): string {
  if (/^[A-Za-z_][\w./-]*$/.test(s) && resolvePlain(s) === 'str') return s;
  return `'${s.replace(/'/g, "''")}'`;
}

export class PlainBudgetExceeded extends Error {}

/** Convert a node to a plain JS value; throws PlainBudgetExceeded instead of expanding bombs. */
export function toPlain(n: YNode | undefined, budget = { left: LIMITS.maxPlainNodes }): unknown {
  if (--budget.left < 0) throw new PlainBudgetExceeded('value too large to expand');
  const d = deref(n);
  if (!d) return undefined;
  switch (d.kind) {
    case 'scalar': return d.value;
    case 'seq': return d.items.map((x) => toPlain(x, budget));
    case 'map': {
      const o: Record<string, unknown> = Object.create(null);
      for (const p of d.items) {
        const k = deref(p.key);
        o[k && k.kind === 'scalar' ? String(k.value) : '?'] = toPlain(p.value, budget);
      }
      return o;
    }
    default: return undefined;
  }
}
