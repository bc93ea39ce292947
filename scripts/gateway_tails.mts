/**
 * What scoring a long prompt's end costs and catches (the gateway's TAIL_CHARS, docs/serve.md
 * *Text that is scored*): for each prompt of a JSONL file ({prompt, label}) that the allocator
 * reads only the start of, the tier from its start alone against the strictest of its start and
 * its ends, as the gateway takes it. Prints, per label, how many prompts were truncated and how
 * many of them land in `brief` (what `--policy refuse=brief` refuses) each way.
 *
 *     node --import tsx scripts/gateway_tails.mts FILE.jsonl
 *
 * FILE: e.g. the allocator's held-out test split, written from runtime/ by
 *     ../.venv/bin/python -c "import json; from pathlib import Path; from conscience.allocator.pool import read_all, splits, recorded_split; sp = splits(read_all([Path('../../shared/data/prompt-risk'), Path('conscience/data/allocator_prompts.jsonl')], print), **recorded_split(Path('../models/allocator'))); open('/tmp/test_split.jsonl', 'w').writelines(json.dumps({'prompt': r['prompt'], 'label': r['label']}, ensure_ascii=False) + '\n' for r in sp['test'])"
 */
import { readFileSync } from 'node:fs';
import { Allocator, defaultModelDir, type Assessment } from '../extension/src/core/allocator';
import { TAIL_CHARS } from '../extension/src/core/serve/gateway';

const file = process.argv[2];
if (!file) { console.error('usage: node --import tsx scripts/gateway_tails.mts FILE.jsonl'); process.exit(2); }
const rows = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
  try { return JSON.parse(l) as { prompt: string; label: string }; } catch (e) { console.error(`${file}:${i + 1}: ${(e as Error).message}`); process.exit(1); }
});
const allocator = await Allocator.load(defaultModelDir());
const rank = (t: Assessment): number[] => [t.tier === 'brief' ? 1 : 0, t.budget, t.risk];
const stricter = (x: Assessment, y: Assessment): boolean => { const [p, q] = [rank(x), rank(y)]; const k = p.findIndex((v, i) => v !== q[i]); return k >= 0 && p[k]! > q[k]!; };
const out: Record<string, { n: number; truncated: number; briefHead: number; briefTails: number }> = {};
for (let i = 0; i < rows.length; i += 256) {
  const batch = rows.slice(i, i + 256);
  const heads = await allocator.assess(batch.map((r) => r.prompt));
  const long = batch.map((r, j) => ({ r, h: heads[j]! })).filter((x) => x.h.truncated);
  const tails = await Promise.all(TAIL_CHARS.map((c) => allocator.assess(long.map((x) => x.r.prompt.slice(-c)))));
  batch.forEach((r) => { (out[r.label] ??= { n: 0, truncated: 0, briefHead: 0, briefTails: 0 }).n++; });
  long.forEach(({ r, h }, j) => {
    const o = out[r.label]!;
    o.truncated++;
    let a = h;
    for (const t of tails) if (stricter(t[j]!, a)) a = t[j]!;
    if (h.tier === 'brief') o.briefHead++;
    if (a.tier === 'brief') o.briefTails++;
  });
}
console.log('label        prompts  truncated  brief, start only  brief, start and ends');
for (const [label, o] of Object.entries(out)) console.log(`${label.padEnd(12)} ${String(o.n).padStart(7)}  ${String(o.truncated).padStart(9)}  ${String(o.briefHead).padStart(17)}  ${String(o.briefTails).padStart(21)}`);
await allocator.dispose();
