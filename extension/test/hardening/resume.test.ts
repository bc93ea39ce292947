// Issue #16 item 7: `resume` of a completed run trained step 401 of 400. Reproduced with the
// real runtime (recipes/demo at max_steps 2, resumed: it trained step 3); `conscience resume`
// now refuses a completed run whose recipe asks for no more steps, and still resumes one whose
// max_steps was raised.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { resumeRefusal } from '../../src/core/runs/resume';
import { readRun } from '../../src/core/runs/store';
import { cli, localRunWorkspace, REPO } from './helpers';

it('`conscience resume` of a run that completed all its steps is refused, and the run is left as it was', async () => {
  const ws = await localRunWorkspace('', { state: 'completed', extra: { step: 400, maxSteps: 400, exitCode: 0, finishedAt: Date.now() / 1000 } });
  const demo = readFileSync(join(REPO, 'recipes/demo/tiny-cpu.yaml'), 'utf8').replace(/^max_steps: \d+$/m, 'max_steps: 400');
  writeFileSync(join(ws.root, 'recipe.yaml'), demo);
  const before = await readRun(ws.root, ws.id);
  const r = cli(['resume', ws.id, '--workspace', ws.root], { timeoutMs: 60_000 });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`run ${ws.id} completed all 400 of 400 steps: nothing to resume\\. Raise max_steps in recipe\\.yaml`));
  const after = await readRun(ws.root, ws.id);
  assert.equal(after?.state, 'completed');
  assert.equal(after?.attempts, before?.attempts, 'no new attempt was started');
});

it('a completed run resumes once max_steps is raised; failed and cancelled runs always may', () => {
  const rec = { id: 'r', state: 'completed' as const, step: 400, maxSteps: 400, recipe: 'a.yaml' };
  assert.match(resumeRefusal(rec, 400)!, /nothing to resume/);
  assert.match(resumeRefusal(rec, undefined)!, /nothing to resume/, 'an epoch-bounded run that completed is done too');
  assert.equal(resumeRefusal(rec, 500), undefined);
  assert.equal(resumeRefusal({ ...rec, state: 'failed', step: 120 }, 400), undefined);
  assert.equal(resumeRefusal({ ...rec, state: 'cancelled' }, 400), undefined);
});
