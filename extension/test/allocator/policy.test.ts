// The budget policy's tier table, shared with Python through allocator.json: the TypeScript
// decide() must pick the tier and budget Python's decide() picks on a grid that includes every
// threshold exactly, with the shipped defaults and with overrides; bad overrides fail on both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decide, parsePolicy, DEFAULT_POLICY, type Policy } from '../../src/core/allocator/policy';
import { MODEL_DIR, python } from './helpers';

const PY_DECIDE = `
import json, sys
from conscience.allocator.policy import load_config, decide
req = json.loads(sys.stdin.read())
cfg = load_config({"model": req["model"], **req["overrides"]})
print(json.dumps([decide(r, a, cfg, u) for r, a, u in req["points"]]))
`;

function grid(p: Policy): Array<[number, number, boolean]> {
  const cuts = [0, 1, p.risk_harmful, p.ambiguity_deep, p.risk_standard, p.ambiguity_standard];
  const vals = new Set<number>([0.05, 0.15, 0.3, 0.49, 0.5, 0.51, 0.7, 0.9, 0.99]);
  for (const c of cuts) for (const d of [-1e-6, 0, 1e-6]) vals.add(Math.min(1, Math.max(0, c + d)));
  const out: Array<[number, number, boolean]> = [];
  for (const r of vals) for (const a of vals) for (const u of [false, true]) out.push([r, a, u]);
  return out;
}

for (const overrides of [{}, { risk_harmful: 0.6, ambiguity_deep: 0.45, budget_deep: 768, budget_none: 16 }, { risk_standard: 0.3, ambiguity_standard: 0.05, budget_brief: 0 }]) {
  test(`tier table matches Python's decide() with overrides ${JSON.stringify(overrides)}`, () => {
    const shipped = JSON.parse(readFileSync(join(MODEL_DIR, 'allocator.json'), 'utf8')).policy;
    const policy = parsePolicy(overrides, 'test', parsePolicy(shipped, 'allocator.json'));
    const points = grid(policy);
    const expected = JSON.parse(python(PY_DECIDE, JSON.stringify({ model: MODEL_DIR, overrides, points }))) as Array<[string, number]>;
    const tiers = new Set<string>();
    points.forEach(([r, a, u], i) => {
      const d = decide(r, a, policy, u);
      tiers.add(d.tier);
      assert.deepEqual([d.tier, d.budget], expected[i], `risk ${r}, ambiguity ${a}, unfamiliar ${u}`);
    });
    assert.deepEqual([...tiers].sort(), ['brief', 'deep', 'none', 'standard']);
  });
}

test('an unfamiliar script lifts none to standard and leaves the other tiers as the scores put them', () => {
  assert.equal(decide(0.02, 0.04, DEFAULT_POLICY, true).tier, 'standard');
  assert.match(decide(0.02, 0.04, DEFAULT_POLICY, true).reason, /script/);
  assert.equal(decide(0.02, 0.04, DEFAULT_POLICY, false).tier, 'none');
  assert.equal(decide(0.98, 0.04, DEFAULT_POLICY, true).tier, 'brief');
  assert.equal(decide(0.07, 0.87, DEFAULT_POLICY, true).tier, 'deep');
});

test('the documented table: clearly benign gets none, risky-but-benign deep, clearly harmful brief', () => {
  assert.deepEqual(decide(0.02, 0.04), { tier: 'none', budget: 0, reason: decide(0.02, 0.04).reason });
  assert.equal(decide(0.07, 0.87).tier, 'deep'); // looks risky, probably benign
  assert.equal(decide(0.98, 0.04).tier, 'brief'); // clearly harmful
  assert.equal(decide(0.5, 1).tier, 'deep'); // unsure
  assert.equal(decide(0.12, 0.1).tier, 'standard');
  assert.equal(decide(0.75, 0.5).tier, 'deep', 'ambiguity is checked before risk');
  assert.equal(decide(0.75, 0.49).tier, 'brief', 'thresholds are inclusive');
  assert.equal(decide(0.02, 0.04, { ...DEFAULT_POLICY, budget_none: 8 }).budget, 8);
});

test('bad policy overrides are errors naming the key, as in Python', () => {
  assert.throws(() => parsePolicy({ risk_harmfull: 0.5 }, 'setting conscience.allocator.policy'), /setting conscience\.allocator\.policy: unknown allocator setting 'risk_harmfull'/);
  assert.throws(() => parsePolicy({ risk_harmful: 1.5 }, 'x'), /risk_harmful must be a number in \[0, 1\]/);
  assert.throws(() => parsePolicy({ budget_deep: 12.5 }, 'x'), /budget_deep must be a non-negative integer/);
  assert.throws(() => parsePolicy({ budget_deep: -1 }, 'x'), /budget_deep must be a non-negative integer/);
  assert.throws(() => parsePolicy({ ambiguity_deep: '0.5' }, 'x'), /ambiguity_deep must be a number/);
  assert.throws(() => parsePolicy([1], 'x'), /must be an object/);
  // Python rejects the same values.
  for (const bad of [{ risk_harmfull: 0.5 }, { risk_harmful: 1.5 }, { budget_deep: 12.5 }, { budget_deep: -1 }]) {
    assert.throws(() => python(`
from conscience.allocator.policy import AllocatorConfig
AllocatorConfig.from_mapping(${JSON.stringify(bad).replace(/true/g, 'True')})`), /ValueError/, `python accepted ${JSON.stringify(bad)}`);
  }
  // enabled/model belong to the recipe section and are not policy errors.
  assert.equal(parsePolicy({ enabled: true, model: 'x' }, 'x').budget_deep, DEFAULT_POLICY.budget_deep);
});
