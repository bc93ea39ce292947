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
import { deriveState } from '../../src/core/runs/state';

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

describe('SLURM status', () => {
  // review item 6: a passing squeue/scontrol failure must not end a running job
  it('a failed squeue with no answer from scontrol is transient; only an answered empty squeue plus "Invalid job id" is gone', async () => {
    const root = mkdtempSync(join(tmpdir(), 'slurm-status-'));
    const bin = join(root, 'bin');
    mkdirSync(bin);
    // each stub prints $STUB_DIR/<name>.out (when present) and exits with $STUB_DIR/<name>.rc
    for (const name of ['squeue', 'scontrol', 'sacct']) {
      writeFileSync(join(bin, name), `#!/bin/bash\ncat "$STUB_DIR/${name}.out" 2>/dev/null\nexit $(cat "$STUB_DIR/${name}.rc" 2>/dev/null || echo 0)\n`, { mode: 0o755 });
    }
    const stub = (name: string, out: string, rc = 0) => {
      writeFileSync(join(root, `${name}.out`), out);
      writeFileSync(join(root, `${name}.rc`), String(rc));
    };
    const saved = { PATH: process.env.PATH, STUB_DIR: process.env.STUB_DIR };
    process.env.PATH = `${bin}:${process.env.PATH}`;
    process.env.STUB_DIR = root;
    const rec = { id: 'r1', jobId: '77', remoteDir: join(root, 'run') } as RunRecord;
    const observe = () => slurmDriver.status(new LocalHost(), rec);
    const derived = async () =>
      deriveState({ previous: 'running', started: true, cancelRequested: false, now: 100, lastActivity: 99, heartbeatTimeout: 90, ...(await observe()) });
    try {
      stub('sacct', '');
      stub('squeue', '77|RUNNING|None\n');
      stub('scontrol', 'JobId=77 JobState=RUNNING Reason=None ExitCode=0:0');
      assert.deepEqual((await observe()).job, { state: 'RUNNING', outcome: undefined, exitCode: undefined, reason: 'None' });
      // slurmctld does not answer: squeue fails, scontrol times out
      stub('squeue', 'squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation\n', 1);
      stub('scontrol', 'slurm_load_jobs error: Socket timed out on send/recv operation\n', 1);
      const o = await observe();
      assert.ok(!o.job?.gone && !o.job?.outcome, JSON.stringify(o));
      assert.match(o.job!.reason ?? '', /squeue failed \(exit 1\)/);
      const d = await derived();
      assert.deepEqual([d.state, d.terminal], ['running', false]);
      // squeue fails, scontrol prints nothing: still not gone
      stub('scontrol', '', 0);
      assert.ok(!(await observe()).job?.gone);
      // squeue answered (empty) but scontrol has no answer: not gone either
      stub('squeue', '', 0);
      assert.ok(!(await observe()).job?.gone);
      // squeue answered without the job and scontrol says the id is invalid: gone
      stub('scontrol', 'slurm_load_jobs error: Invalid job id specified\n', 1);
      assert.deepEqual((await observe()).job, { state: 'UNKNOWN', gone: true });
      assert.equal((await derived()).terminal, true);
      // sacct's final state wins whatever squeue did
      stub('squeue', '', 1);
      stub('sacct', '77|COMPLETED|0:0\n');
      assert.deepEqual((await observe()).job, { state: 'COMPLETED', outcome: 'completed', exitCode: 0, reason: undefined });
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.STUB_DIR === undefined) delete process.env.STUB_DIR;
      else process.env.STUB_DIR = saved.STUB_DIR;
    }
  });

  it('find: a job of the run in the queue is adopted (not the attempt\'s before a resume); a failing squeue cannot tell and throws; none is false', async () => {
    const root = mkdtempSync(join(tmpdir(), 'slurm-find-'));
    const bin = join(root, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'squeue'), `#!/bin/bash\necho "$@" > "$STUB_DIR/squeue.args"\ncat "$STUB_DIR/squeue.out" 2>/dev/null\nexit $(cat "$STUB_DIR/squeue.rc" 2>/dev/null || echo 0)\n`, { mode: 0o755 });
    const stub = (out: string, rc = 0) => { writeFileSync(join(root, 'squeue.out'), out); writeFileSync(join(root, 'squeue.rc'), String(rc)); };
    const saved = { PATH: process.env.PATH, STUB_DIR: process.env.STUB_DIR };
    process.env.PATH = `${bin}:${process.env.PATH}`;
    process.env.STUB_DIR = root;
    mkdirSync(join(root, 'run'));
    const rec = () => ({ id: "r1-it's", remoteDir: join(root, 'run'), state: 'preparing' }) as RunRecord;
    try {
      stub('41\n40\n');
      const a = rec();
      assert.equal(await slurmDriver.find(new LocalHost(), a), true);
      assert.deepEqual([a.jobId, a.state], ['41', 'queued']);
      assert.match(readFileSync(join(root, 'squeue.args'), 'utf8'), /--name=conscience-r1-it's /, 'the job name, quoted for the shell');
      // after a resume, the previous attempt's job (41) is not this attempt's
      const b = { ...rec(), supersededJob: '41' } as RunRecord;
      assert.equal(await slurmDriver.find(new LocalHost(), b), false);
      writeFileSync(join(root, 'run', 'job_id'), '41\n');
      assert.equal(await slurmDriver.find(new LocalHost(), b), false, "the job_id file of the previous attempt is not this one's either");
      stub('41\n57\n');
      assert.equal(await slurmDriver.find(new LocalHost(), b), true);
      assert.equal(b.jobId, '57');
      // started and ended: not in the queue, its script wrote job_id
      stub('');
      writeFileSync(join(root, 'run', 'job_id'), '58\n');
      const c = { ...rec(), supersededJob: '41' } as RunRecord;
      assert.equal(await slurmDriver.find(new LocalHost(), c), true);
      assert.equal(c.jobId, '58');
      // slurmctld does not answer: cannot tell, which is not "never submitted"
      stub('squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation\n', 1);
      await assert.rejects(slurmDriver.find(new LocalHost(), rec()), /cannot tell whether run .* was submitted \(squeue failed\)/);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.STUB_DIR === undefined) delete process.env.STUB_DIR;
      else process.env.STUB_DIR = saved.STUB_DIR;
    }
  });
});
