// The validator's table of learning-rate schedules (core/recipe/schedulers.ts, rules CC234 and
// CC235) against the transformers of both Python stacks: every schedule each knows is in the
// table with the function that builds it and the keyword arguments that function takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEDULES } from '../../src/core/recipe/schedulers';
import { REPO } from './helpers';

const DUMP = [
  'import inspect, json',
  'from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION as T',
  'out = {}',
  'for k, f in T.items():',
  '    ps = inspect.signature(f).parameters',
  '    if any(p.kind == p.VAR_KEYWORD for p in ps.values()): continue',
  '    out[getattr(k, "value", k)] = {"fn": f.__name__, "takes": [p for p in ps if p not in ("optimizer", "num_warmup_steps", "num_training_steps")]}',
  'print(json.dumps(out))',
].join('\n');

for (const [name, py] of [['TRL 0.18.2 stack (.venv)', '.venv'], ['TRL 1.x stack (.venv-trl1)', '.venv-trl1']] as const) {
  test(`${name}: every schedule transformers builds from keyword arguments is in the validator's table, with its function and arguments`, () => {
    const bin = join(REPO, py, 'bin', 'python');
    assert.ok(existsSync(bin), `${bin} is missing: run npm run setup`);
    const r = spawnSync(bin, ['-c', DUMP], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(r.stdout) as Record<string, { fn: string; takes: string[] }>;
    assert.ok(Object.keys(theirs).length >= 9, r.stdout);
    for (const [kind, t] of Object.entries(theirs)) {
      const ours = SCHEDULES[kind];
      assert.ok(ours, `transformers has the ${kind} schedule; the validator's table does not`);
      assert.equal(ours.fn, t.fn, kind);
      assert.deepEqual([...ours.takes].sort(), [...t.takes].sort(), kind);
    }
  });
}
