// The committed schemas/recipe.schema.json must equal what `python -m conscience.schema`
// generates from the pinned TRL right now (regenerate with `npm run schema`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers';

test('schemas/recipe.schema.json is up to date with the pinned TRL (run `npm run schema` if not)', () => {
  const py = join(REPO, '.venv/bin/python');
  assert.ok(existsSync(py), `${py} is missing: run scripts/setup.sh to create the Python environment`);
  const r = spawnSync(py, ['-W', 'ignore', '-m', 'conscience.schema'], { cwd: REPO, encoding: 'utf8', timeout: 180_000, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `python -m conscience.schema failed:\n${r.stderr}`);
  const committed = readFileSync(join(REPO, 'schemas/recipe.schema.json'), 'utf8');
  assert.ok(r.stdout === committed, 'the committed schema is stale: run `npm run schema` and commit schemas/recipe.schema.json');
  const s = JSON.parse(committed);
  assert.equal(s['$schema'], 'http://json-schema.org/draft-07/schema#');
  assert.equal(s['x-conscience'].trl_version, '0.18.2');
  assert.ok(s.properties.num_generations && s.properties.model_name_or_path && s.properties.reward_funcs && s.properties.launch);
});
