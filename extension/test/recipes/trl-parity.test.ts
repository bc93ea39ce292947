// The cross-field rules are reproduced exactly: the same recipes go through the real runtime
// (conscience.recipe.load_recipe -> TrlParser -> GRPOConfig/ModelConfig/TrainingArguments) and
// through the validator, and both must agree on which fail and with what message. Fixtures
// first, then seeded random batch configurations. Once per supported TRL line, each in its own
// virtual environment: TRL 0.18.2 in .venv (open-r1's stack), TRL 1.x in .venv-trl1; for 1.x
// the validator is told the host's TRL (the route a recipe without launch.trl takes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO, fmt, validateFile as validateWith } from './helpers';
import { rng } from '../rng';

const RULES = ['CC201', 'CC202', 'CC203', 'CC204', 'CC205', 'CC206', 'CC211', 'CC212', 'CC213', 'CC214', 'CC215', 'CC216', 'CC217', 'CC224', 'CC225', 'CC228', 'CC229', 'CC230', 'CC234'];

const STACKS = [
  { name: 'TRL 0.18.2 (.venv)', py: join(REPO, '.venv/bin/python'), trl: undefined as string | undefined, setup: 'scripts/setup.sh' },
  { name: 'TRL 1.x (.venv-trl1)', py: join(REPO, '.venv-trl1/bin/python'), trl: '1.16.0', setup: 'scripts/setup.d/trl1.sh' },
];

for (const stack of STACKS) {
const validateFile = (f: string) => validateWith(f, stack.trl);

function trl(files: string[]): Record<string, string | null> {
  assert.ok(existsSync(stack.py), `${stack.py} is missing: run ${stack.setup} to create the Python environment`);
  const r = spawnSync(stack.py, [join(__dirname, 'trl_parity.py'), ...files], { cwd: REPO, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test(`${stack.name} fixtures: TRL raises for every failing rule fixture and accepts every passing one, with the same message`, () => {
  const files: string[] = [];
  for (const kind of ['bad', 'good']) for (const f of readdirSync(join(FIXTURES, kind))) if (RULES.includes(f.slice(0, 5))) files.push(join(FIXTURES, kind, f));
  const got = trl(files);
  let compared = 0;
  for (const f of files) {
    const code = f.split('/').at(-1)!.slice(0, 5);
    const all = validateFile(f).diags;
    const ours = all.find((d) => d.code === code);
    const theirs = got[f];
    // A fixture written with a key the other TRL line renamed or dropped: both must reject it.
    const keyErrors = all.filter((d) => ['CC100', 'CC104', 'CC106'].includes(d.code));
    if (keyErrors.length) {
      assert.ok(theirs && /unknown keys/.test(theirs), `${f}: the validator reports ${keyErrors.map(fmt).join('; ')} but TRL says ${theirs ?? 'nothing'}`);
      continue;
    }
    // Fixtures that say launch.trl: 1.16.0 (CC224, CC225, CC228, CC229) are checked as 1.x recipes: only 1.x runs them.
    if (stack.trl === undefined && /^\s+trl: 1\./m.test(readFileSync(f, 'utf8'))) continue;
    compared++;
    if (f.includes('/bad/')) {
      assert.ok(theirs, `TRL accepts ${f} but the validator reports ${code}`);
      assert.ok(ours, `TRL raises for ${f} (${theirs}) but the validator does not report ${code}`);
      // The validator starts with TRL's own words (it adds where the numbers came from and how to fix).
      const core = theirs.replace(/IntervalStrategy\.STEPS/, 'steps').split('\n')[0]!.replace(/[.:]$/, '').slice(0, 60);
      assert.ok(ours.message.replace(/\n/g, ' ').includes(core) || code === 'CC216' || /not supported between instances|unsupported operand type/.test(theirs), `message for ${code}:\n ours:   ${ours.message}\n theirs: ${theirs}`);
    } else if (theirs && stack.trl) {
      // A passing fixture of the 0.18 rules that a later TRL rejects (1.x fixed C2's operator
      // precedence): the validator, checking as 1.x, must reject it too, in TRL's words.
      const errs = all.filter((d) => d.severity === 'error');
      assert.ok(errs.some((d) => d.message.startsWith(theirs.slice(0, 40))), `TRL 1.x rejects ${f} (${theirs}); the validator says: ${errs.map(fmt).join('; ') || 'nothing'}`);
    } else {
      assert.equal(theirs, null, `TRL rejects the passing fixture ${f}`);
      assert.equal(ours, undefined);
    }
  }
  assert.ok(compared >= 20, `compared ${compared} fixtures`);
});

test(`${stack.name} random batch configurations: the validator and TRL agree on C1-C5 for each`, () => {
  const r = rng(7);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const dir = mkdtempSync(join(tmpdir(), 'conscience-parity-'));
  try {
    const files: string[] = [];
    for (let i = 0; i < 60; i++) {
      const lines = ['model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct', 'reward_funcs: [safety_format]'];
      lines.push(`per_device_train_batch_size: ${pick([1, 2, 3, 4, 6, 8])}`);
      lines.push(`gradient_accumulation_steps: ${pick([1, 2, 3, 4])}`);
      lines.push(`num_generations: ${pick([1, 2, 3, 4, 5, 6, 7, 8, 12, 16])}`);
      const mode = r();
      if (mode < 0.2) lines.push(`generation_batch_size: ${pick([6, 8, 12, 16, 18, 20, 24, 32, 48])}`);
      else if (mode < 0.35) lines.push(`steps_per_generation: ${pick([1, 2, 3, 4])}`);
      else if (mode < 0.45) lines.push(`generation_batch_size: ${pick([8, 16])}`, `steps_per_generation: 2`);
      if (r() < 0.35) lines.push(`eval_strategy: ${pick(['steps', 'epoch'])}`, 'eval_steps: 5', `per_device_eval_batch_size: ${pick([1, 2, 3, 4, 8])}`);
      lines.push('launch:', `  num_processes: ${pick([1, 2, 3, 4, 7, 8])}`);
      const f = join(dir, `case-${i}.yaml`);
      writeFileSync(f, lines.join('\n') + '\n');
      files.push(f);
    }
    const got = trl(files);
    let raised = 0;
    for (const f of files) {
      const ours = validateFile(f).diags.filter((d) => d.severity === 'error');
      const theirs = got[f];
      if (theirs) raised++;
      assert.equal(ours.length > 0, theirs !== null, `disagreement on ${f}:\n${validateFile(f).text}\n ours: ${ours.map(fmt).join('; ') || 'none'}\n TRL: ${theirs ?? 'accepted'}`);
      if (theirs && ours.length) {
        assert.ok(ours.some((d) => d.message.startsWith(theirs.slice(0, 40))), `message differs for ${f}:\n ours: ${ours.map((d) => d.message).join('; ')}\n TRL: ${theirs}`);
      }
    }
    assert.ok(raised > 10 && raised < 55, `the random cases mix failures and passes (${raised} of 60 fail)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
}
