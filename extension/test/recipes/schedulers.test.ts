// The validator's table of learning-rate schedules (core/recipe/schedulers.ts, rules CC234 and
// CC235) against the transformers of both Python stacks: every schedule each knows is in the
// table with the function that builds it and the keyword arguments that function takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEDULES } from '../../src/core/recipe/schedulers';
import { validateText } from '../../src/core/recipe';
import { REPO } from './helpers';

const DUMP = [
  'import inspect, json',
  'from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION as T',
  'out = {}',
  'for k, f in T.items():',
  '    ps = inspect.signature(f).parameters',
  '    if any(p.kind == p.VAR_KEYWORD for p in ps.values()): continue',
  '    own = {n: p for n, p in ps.items() if n not in ("optimizer", "num_warmup_steps", "num_training_steps")}',
  '    out[getattr(k, "value", k)] = {"fn": f.__name__, "takes": list(own), "needs": [n for n, p in own.items() if p.default is p.empty]}',
  'print(json.dumps(out))',
].join('\n');

for (const [name, py] of [['TRL 0.18.2 stack (.venv)', '.venv'], ['TRL 1.x stack (.venv-trl1)', '.venv-trl1']] as const) {
  test(`${name}: every schedule transformers builds from keyword arguments is in the validator's table, with its function and arguments`, () => {
    const bin = join(REPO, py, 'bin', 'python');
    assert.ok(existsSync(bin), `${bin} is missing: run npm run setup`);
    const r = spawnSync(bin, ['-c', DUMP], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(r.stdout) as Record<string, { fn: string; takes: string[]; needs: string[] }>;
    assert.ok(Object.keys(theirs).length >= 9, r.stdout);
    for (const [kind, t] of Object.entries(theirs)) {
      const ours = SCHEDULES[kind];
      assert.ok(ours, `transformers has the ${kind} schedule; the validator's table does not`);
      assert.equal(ours.fn, t.fn, kind);
      assert.deepEqual([...ours.takes].sort(), [...t.takes].sort(), kind);
      assert.deepEqual([...(ours.needs ?? [])].sort(), [...t.needs].sort(), `${kind}: the arguments without a default`);
    }
  });
}

test('CC234 in the runtime\'s words: a key the schedule does not take, one it needs, one the trainer passes itself', () => {
  const head = 'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nreward_funcs: [refusal]\n';
  const cc = (body: string) => validateText(head + body).filter((d) => d.code === 'CC234').map((d) => d.message.split(' (transformers')[0]);
  assert.deepEqual(cc('lr_scheduler_type: warmup_stable_decay\nlr_scheduler_kwargs:\n  num_stable_steps: 5\n'), ["get_wsd_schedule() missing 1 required positional argument: 'num_decay_steps'"]);
  assert.deepEqual(cc('lr_scheduler_type: warmup_stable_decay\nlr_scheduler_kwargs:\n  num_decay_steps: 5\n  num_training_steps: 100\n'), ["get_wsd_schedule() got multiple values for argument 'num_training_steps'"]);
  assert.deepEqual(cc('lr_scheduler_type: cosine\nlr_scheduler_kwargs: {min_lr: 1.0e-6}\n'), ["get_cosine_schedule_with_warmup() got an unexpected keyword argument 'min_lr'"]);
  assert.deepEqual(cc('lr_scheduler_type: warmup_stable_decay\nlr_scheduler_kwargs:\n  num_decay_steps: 5\n'), []);
});
