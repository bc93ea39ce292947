// The budget policy's tier table, shared with Python through allocator.json: the TypeScript
// decide() must pick the tier and budget Python's decide() picks on a grid that includes every
// threshold exactly, with the shipped defaults and with overrides; bad overrides fail on both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { decide, parsePolicy, withFloatLiterals, DEFAULT_POLICY, FloatLiteral, type Policy } from '../../src/core/allocator/policy';
import { budgetSettings } from '../../src/core/allocator/training';
import { yamlAllocatorSection } from '../../src/core/allocator/prompts';
import { readServeRecipe } from '../../src/core/serve/recipe';
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
  assert.deepEqual(decide(0.02, 0.04), { tier: 'none', budget: 0, reason: decide(0.02, 0.04).reason, row: 'none' });
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
  // enabled/model belong to the recipe section: valid ones change no policy value, bad ones are
  // errors naming the key, as AllocatorConfig's (they were skipped unchecked)
  assert.equal(parsePolicy({ enabled: true, model: 'x' }, 'x').budget_deep, DEFAULT_POLICY.budget_deep);
  assert.throws(() => parsePolicy({ enabled: 'yes' }, '--policy'), /^Error: --policy: allocator\.enabled must be true or false, got "yes"$/);
  assert.throws(() => parsePolicy({ model: 5 }, '--policy'), /^Error: --policy: allocator\.model must be a string path, got 5$/);
  assert.throws(() => parsePolicy({ budget_deep: new FloatLiteral(768, '768.0') }, 'r.yaml: allocator'), /budget_deep must be a non-negative integer, got 768\.0 \(a float to Python, which the trainer refuses: write 768\)/);
  assert.equal(parsePolicy({ risk_harmful: new FloatLiteral(1, '1.0') }, 'x').risk_harmful, 1, 'a float threshold is its number');
});

// The same --policy / allocator: overrides through Python's load_config and TypeScript's
// parsePolicy (with the float literals withFloatLiterals marks, as inspect reads --policy):
// accepted by both or refused by both.
const POLICY_TEXTS = [
  '{"budget_deep": 768.0}', '{"budget_deep": 1e3}', '{"budget_deep": 7.68E2}', '{"budget_deep": 768}', '{"budget_deep": -0}',
  '{"budget_deep": 768.0, "budget_deep": 768}', '{"budget_deep": 768, "budget_deep": 768.0}', '{"note": [1.0], "budget_deep": 1}',
  '{"risk_harmful": 1}', '{"risk_harmful": 1.0}', '{"risk_harmful": 5e-1}', '{"risk_harmful": "0.5"}', '{"budget_deep": 1.5}', '{"budget_deep": true}',
  '{"enabled": "yes"}', '{"enabled": false}', '{"enabled": null}', '{"model": 5}', '{"model": null}', '{"model": ""}', '{"model": ["x"]}',
  '{"budget_brief": {"x": 1.0}}', '{"x\u0020y": 1.0, "budget_none": 0}', '{"budget_none": 0, "s": "1.0, \\"budget_deep\\": 1.0"}',
];

test('--policy overrides: TypeScript accepts and refuses what Python\'s load_config does (budgets written as floats, enabled, model)', () => {
  const py = JSON.parse(python(`
import json, sys
from conscience.allocator.policy import load_config
out = []
for t in json.load(sys.stdin):
    try:
        load_config(json.loads(t)); out.append("ok")
    except Exception as e:  # noqa: BLE001 - which error is compared below
        out.append(type(e).__name__ + ": " + str(e))
print(json.dumps(out))`, JSON.stringify(POLICY_TEXTS))) as string[];
  const ts = POLICY_TEXTS.map((t) => {
    try {
      const o = withFloatLiterals(JSON.parse(t), t);
      parsePolicy(o, '--policy', DEFAULT_POLICY);
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    }
  });
  POLICY_TEXTS.forEach((t, i) => {
    assert.equal(ts[i] === 'ok', py[i] === 'ok', `${t}: TypeScript ${ts[i]}, Python ${py[i]}`);
    if (py[i] !== 'ok') assert.match(py[i]!, /^ValueError: /, `${t}: Python should say which setting (${py[i]})`);
  });
  assert.ok(py.filter((x) => x === 'ok').length >= 8 && py.filter((x) => x !== 'ok').length >= 10, 'both outcomes are exercised');
});

// A recipe's allocator: section as the trainer reads it (PyYAML, conscience.recipe.check_allocator),
// the editor reads it (budgetSettings, yamlAllocatorSection, then parsePolicy) and the gateway's
// --recipe reads it (readServeRecipe, which names FILE:LINE).
const RECIPE_SECTIONS = [
  'budget_deep: 768.0', 'budget_deep: 768', 'budget_brief: 1e2', 'budget_brief: 1.0e+2', 'budget_deep: 1_000', 'budget_deep: 0x10',
  'risk_harmful: 1', 'risk_harmful: 1.0', 'budget_none: 0.0', 'enabled: yes', 'enabled: "yes"', 'model: 5',
];

test('a recipe\'s allocator: section: the trainer, the editor and the gateway accept and refuse the same budgets', () => {
  const texts = RECIPE_SECTIONS.map((sec) => `model_name_or_path: x\nallocator:\n  ${sec.replace(/\\n/g, '\n')}\n`);
  const py = JSON.parse(python(`
import json, sys, yaml
from conscience.recipe import check_allocator
out = []
for t in json.load(sys.stdin):
    try:
        check_allocator(yaml.safe_load(t)["allocator"], "r.yaml:2"); out.append("ok")
    except Exception as e:  # noqa: BLE001
        out.append(str(e))
print(json.dumps(out))`, JSON.stringify(texts))) as string[];
  const dir = mkdtempSync(join(tmpdir(), 'alloc-policy-'));
  try {
    texts.forEach((text, i) => {
      const label = `${RECIPE_SECTIONS[i]} (Python: ${py[i]})`;
      const ok = py[i] === 'ok';
      const s = budgetSettings(text, 'r.yaml');
      // the editor: enabled is taken apart (allocatorEnabled); the rest goes through parsePolicy
      const editor = (sec: Record<string, unknown> | undefined): boolean => {
        try { parsePolicy(sec, 'r.yaml: allocator'); return true; } catch { return false; }
      };
      if (!/^enabled/.test(RECIPE_SECTIONS[i]!)) {
        assert.equal(editor(s.allocator), ok, `editor (budgetSettings): ${label}`);
        assert.equal(editor(yamlAllocatorSection(text)), ok, `editor (yamlAllocatorSection): ${label}`);
      }
      const file = join(dir, `r${i}.yaml`);
      writeFileSync(file, text);
      let gateway: string;
      try {
        const r = readServeRecipe(file);
        parsePolicy(r.allocatorPolicy, `${file}: allocator`);
        gateway = 'ok';
      } catch (e) {
        gateway = (e as Error).message;
      }
      // the gateway drops enabled and model (it takes model as the folder, checked to be a string)
      if (!/^enabled/.test(RECIPE_SECTIONS[i]!)) assert.equal(gateway === 'ok', ok, `gateway: ${label}: ${gateway}`);
      if (/^budget_\w+: [\d.]+\.\d|budget_none: 0\.0/.test(RECIPE_SECTIONS[i]!) && !ok) assert.match(gateway, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: allocator\\.budget_\\w+ must be a non-negative integer`), `gateway names FILE:LINE: ${gateway}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(py.filter((x) => x === 'ok').length >= 4 && py.filter((x) => x !== 'ok').length >= 4, `both outcomes are exercised: ${py}`);
});
