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
    const f = deriveState({ ...base, started: true, job: { state: 'TIMEOUT', outcome: 'failed', exitCode: 0, reason: 'TimeLimit' } });
    assert.equal(f.state, 'failed');
    assert.match(f.error!, /TIMEOUT \(TimeLimit\)/);
    const v = deriveState({ ...base, started: true, job: { state: 'UNKNOWN', gone: true }, exitFile: 1 });
    assert.deepEqual([v.state, v.exitCode], ['failed', 1]);
  });
});
