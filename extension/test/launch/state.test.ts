import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveState, type StateInput } from '../../src/core/runs/state';

const base: StateInput = { previous: 'starting', started: false, now: 1000, lastActivity: 990, heartbeatTimeout: 90 };

describe('run state machine', () => {
  it('starting -> running -> unresponsive on a stale heartbeat -> running again', () => {
    assert.equal(deriveState({ ...base, process: { alive: true } }).state, 'starting');
    assert.equal(deriveState({ ...base, started: true, process: { alive: true } }).state, 'running');
    assert.equal(deriveState({ ...base, started: true, lastActivity: 1000 - 91, process: { alive: true } }).state, 'unresponsive');
    assert.equal(deriveState({ ...base, started: true, lastActivity: 1000 - 91, heartbeatTimeout: 300, process: { alive: true } }).state, 'running');
  });
  it('takes the status from run_finished, and the exit code from the process once it ended', () => {
    const fin = { status: 'completed' as const, exit_code: 0 };
    assert.deepEqual(deriveState({ ...base, started: true, finished: fin, process: { alive: false, exitCode: 0 } }), { state: 'completed', exitCode: 0, error: null, terminal: true, settled: true });
    const c = deriveState({ ...base, started: true, finished: { status: 'cancelled', exit_code: 143, error: 'received SIGTERM' }, process: { alive: false, exitCode: 143 } });
    assert.deepEqual([c.state, c.exitCode, c.error], ['cancelled', 143, 'received SIGTERM']);
  });
  it('is settled only once the process is gone; a completed run whose process failed says so', () => {
    const fin = { status: 'completed' as const, exit_code: 0 };
    const early = deriveState({ ...base, started: true, finished: fin, process: { alive: true } });
    assert.deepEqual([early.state, early.terminal, early.settled, early.exitCode], ['completed', true, false, 0]);
    const late = deriveState({ ...base, started: true, finished: fin, job: { state: 'FAILED', outcome: 'failed', exitCode: 1 } });
    assert.deepEqual([late.state, late.settled, late.exitCode], ['completed', true, 1]);
    assert.match(late.error!, /run_finished completed, but its process exited with code 1/);
  });
  it('a trainer that died without run_finished is failed with its exit code', () => {
    const k = deriveState({ ...base, started: true, process: { alive: false, exitCode: 137 } });
    assert.deepEqual([k.state, k.exitCode, k.terminal], ['failed', 137, true]);
    assert.match(k.error!, /137 \(signal 9\)/);
    const gone = deriveState({ ...base, started: true, process: { alive: false, exitCode: null } });
    assert.equal(gone.state, 'failed');
    assert.match(gone.error!, /disappeared/);
  });
  it('a requested cancel reads cancelling until the process is gone, then cancelled', () => {
    assert.equal(deriveState({ ...base, started: true, cancelRequested: true, process: { alive: true } }).state, 'cancelling');
    assert.equal(deriveState({ ...base, started: true, cancelRequested: true, process: { alive: false, exitCode: null } }).state, 'cancelled');
  });
  it('SLURM: pending is queued; CANCELLED is cancelled; FAILED carries the reason; a vanished job uses the exit file', () => {
    assert.equal(deriveState({ ...base, job: { state: 'PENDING' } }).state, 'queued');
    assert.equal(deriveState({ ...base, job: { state: 'RUNNING' } }).state, 'starting');
    assert.equal(deriveState({ ...base, started: true, job: { state: 'CANCELLED', outcome: 'cancelled', exitCode: 0 } }).state, 'cancelled');
    const f = deriveState({ ...base, started: true, job: { state: 'FAILED', outcome: 'failed', exitCode: 1, reason: 'NonZeroExitCode' } });
    assert.equal(f.state, 'failed');
    assert.match(f.error!, /FAILED \(NonZeroExitCode\)/);
    const v = deriveState({ ...base, started: true, job: { state: 'UNKNOWN', gone: true }, exitFile: 1 });
    assert.deepEqual([v.state, v.exitCode], ['failed', 1]);
  });
  it('SLURM: PREEMPTED, NODE_FAIL, TIMEOUT and OUT_OF_MEMORY each show as what they are, even after the trainer wrote cancelled on its SIGTERM', () => {
    const sigterm = { status: 'cancelled' as const, exit_code: 143, error: 'received SIGTERM' };
    for (const [job, state, why] of [
      ['PREEMPTED', 'preempted', /preempted/], ['NODE_FAIL', 'node_failed', /a node of the job failed/],
      ['TIMEOUT', 'timed_out', /time limit/], ['OUT_OF_MEMORY', 'out_of_memory', /out of memory/],
    ] as const) {
      for (const finished of [undefined, sigterm]) {
        const o = deriveState({ ...base, started: true, finished, job: { state: job, outcome: 'failed', exitCode: 0, reason: 'r' } });
        assert.deepEqual([o.state, o.terminal, o.settled], [state, true, true], `${job} finished=${!!finished}`);
        assert.match(o.error!, why);
        assert.match(o.error!, new RegExp(`SLURM job ${job}`));
      }
    }
    // a cancel we asked for stays cancelled
    assert.equal(deriveState({ ...base, started: true, cancelRequested: true, job: { state: 'TIMEOUT', outcome: 'failed' } }).state, 'cancelled');
  });
  it('SLURM requeue: the trainer stopped on SIGTERM, the job queued again -> requeued (not cancelled, not terminal), then running', () => {
    const sigterm = { status: 'cancelled' as const, exit_code: 143, error: 'received SIGTERM' };
    // between the signal and the requeue the job is still active: nothing is concluded yet
    const gap = deriveState({ ...base, previous: 'running', started: true, finished: sigterm, job: { state: 'COMPLETING' } });
    assert.deepEqual([gap.state, gap.terminal], ['running', false]);
    const q = deriveState({ ...base, previous: 'running', started: true, finished: sigterm, job: { state: 'PENDING', reason: 'BeginTime' } });
    assert.deepEqual([q.state, q.terminal], ['requeued', false]);
    // RUNNING again before the new attempt's run_started: still requeued
    assert.equal(deriveState({ ...base, previous: 'requeued', started: true, finished: sigterm, job: { state: 'RUNNING' } }).state, 'requeued');
    // the monitor clears `finished` on the new run_started: running
    assert.equal(deriveState({ ...base, previous: 'requeued', started: true, job: { state: 'RUNNING' } }).state, 'running');
    // pending after having started, without any run_finished (the script was killed first): requeued too
    assert.equal(deriveState({ ...base, previous: 'running', started: true, job: { state: 'PENDING' } }).state, 'requeued');
  });
  it('SLURM: a trainer stopped because a task elsewhere died shows failed with the job\'s why, not cancelled', () => {
    const o = deriveState({
      ...base, previous: 'running', started: true, finished: { status: 'cancelled', exit_code: 143, error: 'received SIGTERM' },
      job: { state: 'FAILED', outcome: 'failed', exitCode: 137, reason: 'n2: task 1: Killed' },
    });
    assert.deepEqual([o.state, o.exitCode, o.settled], ['failed', 137, true]);
    assert.match(o.error!, /SLURM job FAILED \(n2: task 1: Killed\), exit code 137; this trainer was stopped \(received SIGTERM\)/);
    // our own cancel stays cancelled
    assert.equal(deriveState({ ...base, started: true, cancelRequested: true, finished: { status: 'cancelled', exit_code: 143 }, job: { state: 'FAILED', outcome: 'failed' } }).state, 'cancelled');
  });
});
