import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RunRecord } from '../../src/core/runs/store';
import { slurmDriver } from '../../src/core/launch/driver-slurm';
import { LocalHost } from '../../src/core/launch/host';
import { jobOutcome, parseSacct, parseSbatchOutput, parseScontrol, parseSqueue } from '../../src/core/launch/slurm';
import { parseTarget } from '../../src/core/launch/targets';

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

describe('SLURM submit', () => {
  it('checks every partition of a comma-separated list, hidden ones (sinfo -a) included, before sbatch', async () => {
    // stub sinfo (records its argv; shows the hidden partition only with -a) and sbatch on PATH
    const root = mkdtempSync(join(tmpdir(), 'slurm-submit-'));
    const bin = join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'sinfo'), '#!/bin/bash\nprintf "%s\\n" "$*" >> "$STUB_LOG/sinfo"\nprintf "gpu\\ncpu\\n"\nfor a in "$@"; do [ "$a" = -a ] && echo hidden; done\nexit 0\n', { mode: 0o755 });
    writeFileSync(join(bin, 'sbatch'), '#!/bin/bash\nprintf "%s\\n" "$*" >> "$STUB_LOG/sbatch"\necho 4242\n', { mode: 0o755 });
    const saved = { PATH: process.env.PATH, STUB_LOG: process.env.STUB_LOG };
    process.env.PATH = `${bin}:${process.env.PATH}`;
    process.env.STUB_LOG = root;
    try {
      const submit = async (partition: string) => {
        rmSync(join(root, 'sbatch'), { force: true });
        const rec = { id: 'r1', remoteDir: root } as RunRecord;
        await slurmDriver.submit(new LocalHost(), parseTarget('c', { type: 'slurm', partition }), `sbatch --parsable --partition=${partition} job.sbatch`, rec);
        return rec;
      };
      for (const partition of ['gpu', 'gpu,cpu', 'cpu,hidden']) {
        const rec = await submit(partition);
        assert.deepEqual([rec.jobId, rec.state], ['4242', 'queued'], partition);
      }
      assert.match(readFileSync(join(root, 'sinfo'), 'utf8'), /^-a -h -o %R$/m);
      await assert.rejects(submit('gpu,nope'), /SLURM partition 'nope' does not exist on local \(partitions: gpu, cpu, hidden\)/);
      assert.ok(!existsSync(join(root, 'sbatch')), 'sbatch ran for a partition that does not exist');
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.STUB_LOG === undefined) delete process.env.STUB_LOG;
      else process.env.STUB_LOG = saved.STUB_LOG;
    }
  });
});
