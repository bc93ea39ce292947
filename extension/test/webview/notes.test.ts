// The dashboard's notes on how its runs ended (webview/src/dashboard/notes.ts): a run SLURM
// ended (preempted, node_failed, timed_out, out_of_memory) before any metrics is not "Waiting
// for metrics…" forever, and says SLURM's reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunMeta } from '../../src/core/protocol/dashboard';
import { causeNote, emptyNote } from '../../../webview/src/dashboard/notes';

const run = (status: string, over: Partial<RunMeta> = {}): RunMeta => ({ id: 'r1', label: 'grpo · 10:12', status, step: null, maxSteps: 100, rows: 0, ...over });

test('a run SLURM ended before its first metrics says so, with SLURM\'s reason', () => {
  for (const status of ['preempted', 'node_failed', 'timed_out', 'out_of_memory']) {
    assert.equal(emptyNote([run(status)]), `No metrics were logged: the run ended (${status}) before its first logging step.`);
  }
  const cause = 'SLURM job TIMEOUT: the job reached its time limit';
  assert.equal(causeNote(run('timed_out', { cause }), false), `Run ended (timed_out): ${cause}`);
  assert.equal(causeNote(run('timed_out', { cause }), true), `grpo · 10:12 ended (timed_out): ${cause}`);
  // the trainer's own ends read as before
  assert.equal(emptyNote([run('failed')]), 'No metrics were logged: the run failed before its first logging step.');
  assert.equal(causeNote(run('failed', { cause: "KeyError: 'x'" }), false), "Run failed: KeyError: 'x'");
  assert.equal(emptyNote([run('failed'), run('preempted', { id: 'r2' })]), 'No metrics were logged: the runs ended before their first logging step.');
  // still going (or requeued by SLURM): waiting
  assert.equal(emptyNote([run('running')]), 'Waiting for metrics…');
  assert.equal(emptyNote([run('requeued')]), 'Waiting for metrics…');
  assert.equal(emptyNote([run('failed'), run('queued', { id: 'r2' })]), 'Waiting for metrics…');
  assert.equal(emptyNote([]), 'Waiting for metrics…');
});
