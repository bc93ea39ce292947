// YAML -> a small tree with source ranges, built from js-yaml 5's event parser.
// Scalars are resolved with the YAML 1.1 schema because the runtime reads recipes with
// PyYAML (yaml.safe_load), so `no` is false and `1e-6` is a string, exactly as there.
// Aliases are never expanded into copies: an alias node points at its anchor's node, the
// number of aliases per document is capped, and plain-value conversion has a node budget,
// so alias bombs ("billion laughs") cost nothing.
import { parseEvents, getScalarValue, YAML11_SCHEMA, EVENT_ID, SCALAR_STYLE, COLLECTION_STYLE, type Event, type ScalarEvent } from 'js-yaml';
import { type Diagnostic, diag, positionAt } from './diagnostics';

export interface YBase { start: number; end: number }
export interface YScalar extends YBase {
  kind: 'scalar';
  /** Decoded text (without quotes / block indicators). */
  text: string;
  /** Resolved value, YAML 1.1 (PyYAML) rules for plain scalars; quoted/block scalars are strings. */
  value: string | number | boolean | null;
  quoted: boolean;
  /** Whether a plain scalar was resolved to something other than a string. */
  tag: 'str' | 'int' | 'float' | 'bool' | 'null';
  /** The explicit tag it was written with (`!!float`), when that tag decided its type. */
  explicit?: string;
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

const TAG_NAMES: Record<string, YScalar['tag']> = {
  'tag:yaml.org,2002:str': 'str',
  'tag:yaml.org,2002:int': 'int',
  'tag:yaml.org,2002:float': 'float',
  'tag:yaml.org,2002:bool': 'bool',
  'tag:yaml.org,2002:null': 'null',
};

// Lines end at \r\n, \r or \n, as PyYAML and the editor count them. The one place the
// validator finds a line's start and end (values.ts and context.ts use these).

/** Offset of the start of the line holding `pos`. */
export function lineStart(text: string, pos: number): number {
  return Math.max(text.lastIndexOf('\n', pos - 1), text.lastIndexOf('\r', pos - 1)) + 1;
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

/** Parse `text` into a ranged tree. Never throws. */
export function parseYaml(text: string): ParsedYaml {
  const diagnostics: Diagnostic[] = [];
  if (text.length > LIMITS.maxBytes) {
    diagnostics.push(diag(text, 0, Math.min(lineEnd(text, 0), 200), 'error', 'CC007', tooLargeMessage(text.length)));
    return { root: undefined, diagnostics, documents: 0 };
  }
  let events: Event[];
  const pad = new FlowPadding(text);
  for (;;) {
    try {
      events = parseEvents(pad.text, { maxDepth: LIMITS.maxDepth });
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

class TreeBuilder {
  private i = 0;
  private anchors = new Map<string, YNode>();
  private aliases = 0;
  private aliasLimitReported = false;
  /** Ranges where PyYAML reads a tab as text: quoted and block scalars. */
  private tabOk: Array<[number, number]> = [];
  private readonly hasTab: boolean;
  constructor(private text: string, private events: Event[], private diagnostics: Diagnostic[]) { this.hasTab = text.includes('\t'); }

  /** What js-yaml accepts and yaml.safe_load refuses, as a syntax error at the place (CC001). */
  private pyyamlError(start: number, end: number, problem: string, hint: string): void {
    this.diagnostics.push(diag(this.text, start, end, 'error', 'CC001', `YAML error: ${problem} (the runtime's yaml.safe_load refuses it). ${hint}`));
  }

  private checkTag(e: { tagStart: number; tagEnd: number }): void {
    if (e.tagStart < 0) return;
    const err = tagError(this.text.slice(e.tagStart, e.tagEnd));
    if (err) this.pyyamlError(e.tagStart, e.tagEnd, err, 'Remove the tag (a recipe needs plain values) or use a standard one such as !!str.');
  }

  /**
   * PyYAML separates tokens with spaces only: a tab anywhere but in a quoted or block scalar or a
   * comment (`key:\tvalue`, `key\t: value`, `a: [1,\t2]`) is "found character '\t' that cannot
   * start any token". (A tab in indentation is js-yaml's own CC002.)
   */
  private checkTabs(): void {
    const t = this.text;
    for (let p = t.indexOf('\t'); p >= 0; p = t.indexOf('\t', p + 1)) {
      if (this.tabOk.some(([a, b]) => p >= a && p < b)) continue;
      let ls = p;
      while (ls > 0 && t[ls - 1] !== '\n' && t[ls - 1] !== '\r') ls--;
      let comment = false;
      for (let q = t.indexOf('#', ls); q >= 0 && q < p && !comment; q = t.indexOf('#', q + 1)) {
        comment = (q === ls || t[q - 1] === ' ' || t[q - 1] === '\t') && !this.tabOk.some(([a, b]) => q >= a && q < b);
      }
      if (comment) continue;
      this.pyyamlError(p, p + 1, "found character '\\t' that cannot start any token", 'YAML (as PyYAML reads it) separates with spaces only: replace the tab with a space.');
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
      this.anchors.clear();
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
    return { root, diagnostics: this.diagnostics, documents };
  }

  private anchorName(e: { anchorStart: number; anchorEnd: number }): string | undefined {
    return e.anchorStart >= 0 ? this.text.slice(e.anchorStart, e.anchorEnd) : undefined;
  }

  private node(): YNode {
    const e = this.events[this.i++]!;
    switch (e.type) {
      case EVENT_ID.SCALAR: {
        const n = this.scalar(e);
        const a = this.anchorName(e);
        if (a) this.anchors.set(a, n);
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
        }
        return { kind: 'alias', name, target, start, end: e.anchorEnd };
      }
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE: {
        const isMap = e.type === EVENT_ID.MAPPING;
        const flow = e.style === COLLECTION_STYLE.FLOW;
        this.checkTag(e);
        const start = e.anchorStart >= 0 ? Math.min(e.anchorStart - 1, e.start) : e.start;
        const n: YMap | YSeq = isMap
          ? { kind: 'map', items: [], flow, start: Math.max(0, start), end: e.start }
          : { kind: 'seq', items: [], flow, start: Math.max(0, start), end: e.start };
        const a = this.anchorName(e);
        if (a) this.anchors.set(a, n);
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
            if (key.kind === 'scalar' && key.text === '<<' && !key.quoted) continue; // merge keys: see merge()
            if (key.kind === 'scalar') {
              const prev = seen!.get(key.text);
              if (prev) {
                const line = lineOf(this.text, prev.start);
                this.diagnostics.push(diag(this.text, key.start, key.end, 'error', 'CC003',
                  `Duplicate key '${key.text}' (first defined on line ${line}). PyYAML silently keeps the last value; remove one of them.`));
              } else seen!.set(key.text, key);
            }
          } else {
            (n as YSeq).items.push(this.node());
          }
        }
        this.i++; // POP
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
    if (!m.items.some((p) => p.key.kind === 'scalar' && p.key.text === '<<' && !p.key.quoted)) return;
    const own: YPair[] = [];
    const sources: YMap[] = [];
    for (const p of m.items) {
      if (!(p.key.kind === 'scalar' && p.key.text === '<<' && !p.key.quoted)) { own.push(p); continue; }
      const v = deref(p.value);
      const list = v?.kind === 'seq' ? v.items : [p.value];
      for (const it of list) {
        const src = deref(it);
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
    const core = /^!!(int|float|bool|null)$/.exec(tagText) ?? /^!<tag:yaml\.org,2002:(int|float|bool|null)>$/.exec(tagText);
    if (core) {
      const kind = core[1] as 'int' | 'float' | 'bool' | 'null';
      const value = constructTagged(kind, text);
      if (value !== undefined) return { kind: 'scalar', text, value, quoted: false, tag: kind, explicit: tagText, start: e.tagStart, end };
      this.pyyamlError(e.tagStart, end, `${tagText} cannot read ${JSON.stringify(text)} as ${kind === 'int' ? 'an integer' : kind === 'float' ? 'a float' : 'a boolean'}`,
        'Remove the tag, or write a value of its type.');
      return { kind: 'scalar', text, value: text, quoted, tag: 'str', start, end };
    }
    if (e.style !== SCALAR_STYLE.PLAIN) return { kind: 'scalar', text, value: text, quoted: true, tag: 'str', start, end };
    // Explicit tags (!!str ...) are rare in recipes; honour !!str, resolve the rest implicitly.
    if (e.tagStart >= 0 && /(^!!str$|:str$)/.test(tagText)) {
      return { kind: 'scalar', text, value: text, quoted: false, tag: 'str', start, end };
    }
    const r = YAML11_SCHEMA.resolveImplicitScalarTag(text);
    const tag = TAG_NAMES[r.tag.tagName] ?? 'str';
    let value: YScalar['value'];
    if (tag === 'int' || tag === 'float') value = r.value as number;
    else if (tag === 'bool') value = r.value as boolean;
    else if (tag === 'null') value = null;
    else value = text;
    return { kind: 'scalar', text, value, quoted: false, tag, start, end };
  }
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
  if (/^[A-Za-z_][\w./-]*$/.test(s) && YAML11_SCHEMA.resolveImplicitScalarTag(s).tag.tagName === 'tag:yaml.org,2002:str') return s;
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
