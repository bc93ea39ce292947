import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobOutcome, parseSacct, parseSbatchOutput, parseScontrol, parseSqueue } from '../../src/core/launch/slurm';

const SCONTROL =
  'JobId=17 JobName=conscience-r1 UserId=root(0) GroupId=root(0) Priority=1 Account=(null) JobState=CANCELLED Reason=None ' +
  'Dependency=(null) ExitCode=0:15 RunTime=00:00:31 TimeLimit=00:30:00 Partition=debug Command=/p/job.sbatch WorkDir=/p with space';

describe('SLURM output parsing', () => {
  it('reads squeue lines for one job', () => {
    assert.deepEqual(parseSqueue('17|PENDING|Resources\n', '17'), { state: 'PENDING', reason: 'Resources', source: 'squeue' });
    assert.equal(parseSqueue('18|RUNNING|None\n', '17'), undefined);
    assert.equal(parseSqueue('', '17'), undefined);
  });
  it('reads scontrol show job -o: state, exit code and signal', () => {
    const s = parseScontrol(SCONTROL)!;
    assert.equal(s.state, 'CANCELLED');
    assert.equal(s.exitCode, 0);
    assert.equal(s.signal, 15);
    assert.equal(jobOutcome(s), 'cancelled');
    assert.equal(parseScontrol('slurm_load_jobs error: Invalid job id specified'), undefined);
    const failed = parseScontrol('JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0')!;
    assert.deepEqual([failed.state, failed.exitCode, failed.reason, jobOutcome(failed)], ['FAILED', 1, 'NonZeroExitCode', 'failed']);
    assert.equal(jobOutcome(parseScontrol('JobId=3 JobState=TIMEOUT ExitCode=0:0')!), 'failed');
    assert.equal(jobOutcome(parseScontrol('JobId=3 JobState=RUNNING ExitCode=0:0')!), undefined);
  });
  it('reads sacct -P when accounting exists', () => {
    assert.deepEqual(parseSacct('17|CANCELLED by 0|0:15\n', '17'), { state: 'CANCELLED', exitCode: 0, signal: 15, source: 'sacct' });
    assert.equal(parseSacct('', '17'), undefined);
  });
  it('reads the job id sbatch --parsable prints', () => {
    assert.equal(parseSbatchOutput('42\n'), '42');
    assert.equal(parseSbatchOutput('42;cluster\n'), '42');
    assert.equal(parseSbatchOutput('sbatch: error: x\n'), undefined);
  });
});
