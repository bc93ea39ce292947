// Prompts written in a script the allocator never learned both labels in. Mirrors
// runtime/conscience/allocator/unfamiliar.py (ScriptTable.unfamiliar): the table (code-point
// ranges, the familiar scripts, the share, how many code points are read) comes from
// allocator.json's "scripts", which `train` writes; a model without it has no unfamiliar
// prompts. Such a prompt gets at least the `standard` tier (policy.ts, decide).

export interface ScriptTable {
  /** [first, last, script] code-point ranges, sorted by first */
  ranges: Array<[number, number, string]>;
  familiar: ReadonlySet<string>;
  minShare: number;
  scanChars: number;
}

/** allocator.json's "scripts" (undefined: absent). Throws naming `file` when malformed. */
export function parseScripts(raw: unknown, file: string): ScriptTable | undefined {
  if (raw === undefined || raw === null) return undefined;
  const bad = (why: string): Error => new Error(`${file}: scripts: ${why}`);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be an object');
  const o = raw as Record<string, unknown>;
  if (!Array.isArray(o.ranges)) throw bad('ranges must be a list of [first, last, script]');
  const ranges = o.ranges.map((r, i) => {
    if (!Array.isArray(r) || r.length !== 3 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) || typeof r[2] !== 'string') {
      throw bad(`ranges[${i}] must be [first, last, script]`);
    }
    return [r[0], r[1], r[2]] as [number, number, string];
  }).sort((a, b) => a[0] - b[0]);
  if (!Array.isArray(o.familiar) || !o.familiar.every((s) => typeof s === 'string')) throw bad('familiar must be a list of script names');
  const minShare = o.min_share ?? 0.2;
  const scanChars = o.scan_chars ?? 2016;
  if (typeof minShare !== 'number' || !(minShare >= 0 && minShare <= 1)) throw bad('min_share must be a number in [0, 1]');
  if (typeof scanChars !== 'number' || !Number.isInteger(scanChars) || scanChars < 0) throw bad('scan_chars must be a non-negative integer');
  return { ranges, familiar: new Set(o.familiar as string[]), minShare, scanChars };
}

function scriptOf(t: ScriptTable, cp: number): string | undefined {
  let lo = 0;
  let hi = t.ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = t.ranges[mid]!;
    if (cp < r[0]) hi = mid - 1;
    else if (cp > r[1]) lo = mid + 1;
    else return r[2];
  }
  return undefined;
}

/**
 * Among the first `scanChars` code points (a lone surrogate counts as one, as in Python's
 * str), those in a range of the table number at least one, and those of scripts not in
 * `familiar` make up at least `minShare` of them.
 */
export function isUnfamiliar(t: ScriptTable | undefined, text: string): boolean {
  if (!t) return false;
  let total = 0;
  let other = 0;
  let seen = 0;
  for (const ch of text) {
    if (seen++ >= t.scanChars) break;
    const s = scriptOf(t, ch.codePointAt(0)!);
    if (s === undefined) continue;
    total++;
    if (!t.familiar.has(s)) other++;
  }
  return total > 0 && other >= t.minShare * total;
}
