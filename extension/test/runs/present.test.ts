// How a run reads in the Runs view, the status bar and the CLI: short names, progress with an
// ETA, actions that apply, and the root cause of a failure picked out of a real-looking stderr.
import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { budgetSummary, rootCause, runActions, runDescription, runFailure, runName, runProgress } from '../../src/core/runs/present';
import type { RunRecord } from '../../src/core/runs/store';

const base = (over: Partial<RunRecord>): RunRecord => ({
  id: '20261126-101232-tiny-cpu-ab12', recipe: 'recipes/demo/tiny-cpu.yaml', target: 'local', targetKind: 'local', host: 'local',
  projectDir: '/p', remoteDir: '/r', outputDir: '/o', python: 'python', state: 'running', eventOffset: 0, stdoutOffset: 0,
  stderrOffset: 0, createdAt: new Date(2026, 10, 26, 10, 12, 32).getTime() / 1000, updatedAt: 0, command: '', attempts: 1, ...over,
});

describe('run presentation', () => {
  it('names a run by its recipe and a short start time, with the date when it is not today', () => {
    const r = base({});
    assert.equal(runName(r, new Date(2026, 10, 26, 18)), 'tiny-cpu · 10:12');
    assert.equal(runName(r, new Date(2026, 10, 27, 9)), 'tiny-cpu · Nov 26 10:12');
  });

  it('shows step n/N · x% and an ETA from the pace so far, and no ETA once finished', () => {
    const r = base({ step: 10, maxSteps: 40, startedAt: 1000, lastActivityAt: 1100 });
    const p = runProgress(r)!;
    assert.equal(p.text, 'step 10/40 · 25%');
    assert.equal(p.etaS, 300);
    assert.match(runDescription(r, 1100), /^running · step 10\/40 · 25% · ETA 5m00s · 1m40s$/);
    const done = base({ state: 'completed', step: 40, maxSteps: 40, startedAt: 1000, lastActivityAt: 1400, finishedAt: 1400 });
    assert.equal(runDescription(done), 'completed · step 40/40 · 100% · 6m40s');
    assert.equal(runProgress(base({})), undefined, 'no progress before the first step');
    assert.equal(runProgress(base({ step: 3 }))!.text, 'step 3', 'no percentage without max_steps');
  });

  it('a resumed run\'s ETA is paced by the steps done since the resume, not by every step of the run', () => {
    // resumed at step 500 of 1000; 100 s later it has trained 10 more steps: 490 left at 10 s each
    const r = base({ attempts: 2, startStep: 500, step: 510, maxSteps: 1000, startedAt: 1000, lastActivityAt: 1100 });
    assert.equal(runProgress(r)!.etaS, 4900);
    assert.match(runDescription(r, 1100), / · ETA 1h21m · /);
    // back at its checkpoint, below the step it resumed at: no pace yet, so no ETA
    assert.equal(runProgress({ ...r, step: 480 })!.etaS, undefined);
  });

  it('a run SLURM ended (preempted, node_failed, timed_out, out_of_memory) shows SLURM\'s reason; a failed run its root cause', () => {
    const trace = 'Traceback (most recent call last):\n  File "t.py", line 1\nKeyboardInterrupt\n';
    for (const state of ['preempted', 'node_failed', 'timed_out', 'out_of_memory'] as const) {
      const error = `SLURM job ${state.toUpperCase()}: the job ended`;
      assert.deepEqual(runFailure(base({ state, error }), trace), { message: error, source: 'monitor' }, state);
    }
    assert.deepEqual(runFailure(base({ state: 'failed', error: 'exited with code 1' }), "ValueError: x\nconscience.train: bad recipe\n"),
      { message: 'conscience.train: bad recipe', line: 1, source: 'stderr' });
    for (const state of ['running', 'completed', 'cancelled', 'requeued'] as const) assert.equal(runFailure(base({ state, error: 'x' }), trace), undefined, state);
  });

  it('a cause naming a file of the run\'s project copy on its host names the workspace\'s own file (the one to edit)', () => {
    const projectDir = '/tmp/ws/.conscience/host/projects/ws-01fc9fd6';
    const stderr = `DataError: ${projectDir}/recipes/demo/badp.jsonl:2: invalid JSON\nconscience.train: ${projectDir}/recipes/demo/badp.yaml:4: dataset: see ${projectDir}/recipes/demo/badp.jsonl\n`;
    assert.deepEqual(runFailure({ ...base({ state: 'failed', error: 'exited with code 1' }), projectDir }, stderr),
      { message: 'conscience.train: recipes/demo/badp.yaml:4: dataset: see recipes/demo/badp.jsonl', line: 1, source: 'stderr' });
    assert.deepEqual(runFailure({ ...base({ state: 'failed', error: null, finished: { status: 'failed', exit_code: 1, error: `DataError: ${projectDir}/x.jsonl:2: bad` } }), projectDir: `${projectDir}/` }, ''),
      { message: 'DataError: x.jsonl:2: bad', line: undefined, source: 'run_finished' });
    // a path in the run's own folder on the host (a checkpoint) has no copy in the workspace: kept whole
    const ckpt = `ValueError: Can't find a valid checkpoint at ${projectDir}/.conscience-runs/r1/output/checkpoint-40 (from ${projectDir}/recipes/a.yaml)`;
    assert.equal(runFailure({ ...base({ state: 'failed', error: 'exited with code 1' }), projectDir }, `Traceback (most recent call last):\n  File "x"\n${ckpt}\n`)!.message,
      `ValueError: Can't find a valid checkpoint at ${projectDir}/.conscience-runs/r1/output/checkpoint-40 (from recipes/a.yaml)`);
  });

  it("a cause naming the trainer's own copy of the recipe names the recipe itself, at the same line", () => {
    const projectDir = '/tmp/ws/.conscience/host/projects/ws-01fc9fd6';
    const r = base({ state: 'failed', error: 'exited with code 2', projectDir });
    const stderr = `conscience.launch: ${projectDir}/recipes/demo/.conscience-${r.id}.attempt-2.yaml:61: vllm_server_port 8000 is in use on this machine\n`;
    assert.equal(runFailure(r, stderr)!.message, 'conscience.launch: recipes/demo/tiny-cpu.yaml:61: vllm_server_port 8000 is in use on this machine');
    // another run's copy is not this recipe
    const other = 'conscience.launch: recipes/demo/.conscience-20261126-000000-x-ffff.attempt-1.yaml:3: bad\n';
    assert.match(runFailure(r, other)!.message, /\.conscience-20261126-000000-x-ffff\.attempt-1\.yaml:3/);
  });

  it('offers resume only for failed or cancelled runs, cancel only for runs still going', () => {
    assert.deepEqual(runActions({ state: 'completed' }), { cancel: false, resume: false });
    assert.deepEqual(runActions({ state: 'failed' }), { cancel: false, resume: true });
    assert.deepEqual(runActions({ state: 'cancelled' }), { cancel: false, resume: true });
    assert.deepEqual(runActions({ state: 'queued' }), { cancel: true, resume: false });
  });

  it('finds the root cause: the runtime\'s own line, the first exception of a chained traceback, run_finished, the monitor', () => {
    const own = 'conscience.train: recipes/x.yaml:3: learning_rate must be a number\nconscience.train: recipes/x.yaml:3: learning_rate must be a number\n';
    assert.deepEqual(rootCause(own, null, 'the trainer exited with code 2 before writing run_finished'),
      { message: 'conscience.train: recipes/x.yaml:3: learning_rate must be a number', line: 0, source: 'stderr' });
    const chained = [
      '2026-11-26 10:00:00 - INFO - conscience - loading',
      'Traceback (most recent call last):',
      '  File "/x/train.py", line 10, in _train',
      '    funcs = [REWARDS[n] for n in names]',
      "KeyError: 'no_such_reward'",
      '',
      'During handling of the above exception, another exception occurred:',
      '',
      'Traceback (most recent call last):',
      '  File "/x/train.py", line 12, in _train',
      "ValueError: unknown reward function 'no_such_reward'",
      '[rank1]: Traceback (most recent call last):',
    ].join('\n');
    assert.deepEqual(rootCause(chained, null, null), { message: "KeyError: 'no_such_reward'", line: 4, source: 'stderr' });
    assert.deepEqual(rootCause(chained, "ValueError: unknown reward function 'no_such_reward'", null),
      { message: "ValueError: unknown reward function 'no_such_reward'", line: 10, source: 'run_finished' });
    assert.deepEqual(rootCause('', null, 'SLURM job FAILED, exit code 1'), { message: 'SLURM job FAILED, exit code 1', source: 'monitor' });
    assert.equal(rootCause('', null, null), undefined);
  });
});

test('says where the safety budgets came from, and warns when the allocator failed', () => {
  assert.deepEqual(budgetSummary({ source: { dataset: 0, allocator: 40, label: 24 }, allocator: 'used' }), { text: 'budgets: 40 allocator · 24 label default', fallback: false });
  assert.deepEqual(budgetSummary({ source: { dataset: 0, allocator: 0, label: 64 }, allocator: 'failed: No module named onnxruntime' }),
    { text: 'budgets: 64 label default (allocator failed: No module named onnxruntime; per-label defaults used instead)', fallback: true });
  assert.equal(budgetSummary({ source: { dataset: 64 }, allocator: 'disabled' })!.text, 'budgets: 64 from the prompt set (allocator disabled)');
  assert.equal(budgetSummary(null), undefined);
  // budgets the completion cannot hold (run_started.budgets.over_completion, written by the trainer)
  assert.equal(budgetSummary({ source: { allocator: 64 }, allocator: 'used', over_completion: { count: 9, largest: 512, max_completion_length: 256 } })!.text,
    'budgets: 64 allocator · ⚠ 9 at or above max_completion_length 256 (largest 512): no room left for an answer');
  assert.equal(budgetSummary({ source: { allocator: 64 }, allocator: 'used', over_completion: 'junk' })!.text, 'budgets: 64 allocator');
});
