// Each committed recipe schema must equal what `python -m conscience.schema` generates from its
// TRL line's environment right now (regenerate both with `npm run schema`):
//   schemas/recipe.schema.json       from .venv       (TRL 0.18.2, runtime/requirements/cpu.txt)
//   schemas/recipe.trl1.schema.json  from .venv-trl1  (TRL 1.x,    runtime/requirements/cpu-current.txt)
//   schemas/recipe.sft.schema.json   from .venv       (a kind: sft recipe, `--kind sft`)
//   schemas/recipe.sft.trl1.schema.json  from .venv-trl1  (a kind: sft recipe for TRL 1.x)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers';

const pin = (file: string) => /^trl(?:\[[^\]]*\])?==(\S+)$/m.exec(readFileSync(join(REPO, 'runtime/requirements', file), 'utf8'))?.[1];

const LINES = [
  { file: 'schemas/recipe.schema.json', venv: '.venv', setup: 'scripts/setup.sh', trl: pin('cpu.txt'), args: [] as string[] },
  { file: 'schemas/recipe.trl1.schema.json', venv: '.venv-trl1', setup: 'scripts/setup.d/trl1.sh', trl: pin('cpu-current.txt'), args: [] as string[] },
  { file: 'schemas/recipe.sft.schema.json', venv: '.venv', setup: 'scripts/setup.sh', trl: pin('cpu.txt'), args: ['--kind', 'sft'] },
  { file: 'schemas/recipe.sft.trl1.schema.json', venv: '.venv-trl1', setup: 'scripts/setup.d/trl1.sh', trl: pin('cpu-current.txt'), args: ['--kind', 'sft'] },
];

for (const line of LINES) {
  test(`${line.file} is up to date with TRL ${line.trl} in ${line.venv} (run \`npm run schema\` if not)`, () => {
    const py = join(REPO, line.venv, 'bin/python');
    assert.ok(existsSync(py), `${py} is missing: run ${line.setup} to create the Python environment`);
    const r = spawnSync(py, ['-W', 'ignore', '-m', 'conscience.schema', ...line.args], { cwd: REPO, encoding: 'utf8', timeout: 180_000, maxBuffer: 64 * 1024 * 1024 });
    assert.equal(r.status, 0, `python -m conscience.schema failed:\n${r.stderr}`);
    const committed = readFileSync(join(REPO, line.file), 'utf8');
    assert.ok(r.stdout === committed, `the committed schema is stale: run \`npm run schema\` and commit ${line.file}`);
    const s = JSON.parse(committed);
    assert.equal(s['$schema'], 'http://json-schema.org/draft-07/schema#');
    assert.equal(s['x-conscience'].trl_version, line.trl);
    const keys = line.args.includes('sft') ? ['max_length', 'model_name_or_path', 'dataset_name', 'launch', 'safety'] : ['num_generations', 'model_name_or_path', 'reward_funcs', 'launch'];
    for (const k of keys) assert.ok(s.properties[k], `${line.file} has ${k}`);
    assert.ok(s.properties.launch.properties.trl, 'launch.trl picks the TRL line');
  });
}

for (const [kind, old, cur] of [['grpo', LINES[0]!, LINES[1]!], ['sft', LINES[2]!, LINES[3]!]] as const) test(`${kind}: the two TRL lines differ where users hit it, and each table names the other line's spelling`, () => {
  const a = JSON.parse(readFileSync(join(REPO, old.file), 'utf8'));
  const b = JSON.parse(readFileSync(join(REPO, cur.file), 'utf8'));
  const LINES = [old, cur];
  assert.equal(a['x-conscience'].kind, kind);
  assert.equal(b['x-conscience'].kind, kind);
  for (const [name, ch] of Object.entries(b['x-conscience'].changed_fields as Record<string, { status: string; replacement: string | null }>)) {
    if (ch.status !== 'removed') continue;
    assert.ok(!(name in b.properties), `${name} is marked removed in TRL ${LINES[1]!.trl} but is a field there`);
    if (name !== 'vllm_device') assert.ok(name in a.properties, `${name} is a field of TRL ${LINES[0]!.trl}`);
    if (ch.replacement) assert.ok(ch.replacement in b.properties, `${name}'s replacement ${ch.replacement} is a field of TRL ${LINES[1]!.trl}`);
  }
  for (const [name, ch] of Object.entries(a['x-conscience'].changed_fields as Record<string, { status: string; replacement: string | null }>)) {
    if (ch.status === 'future') assert.ok(name in a.properties && !(name in b.properties), `${name}: valid in ${LINES[0]!.trl}, gone from ${LINES[1]!.trl}`);
    if (ch.status === 'newer') {
      assert.ok(!(name in a.properties) && name in b.properties, `${name}: a field of ${LINES[1]!.trl} only`);
      if (ch.replacement) assert.ok(ch.replacement in a.properties, `${name}'s 0.18 name ${ch.replacement}`);
    }
  }
});
