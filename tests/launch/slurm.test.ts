// SLURM runs on a real one-node cluster (slurm-wlm + munge, tests/launch/slurm-cluster.sh),
// reached through a real sshd: the demo to completion, a bad partition, cancel -> CANCELLED
// and no process left. sacct is absent (no slurmdbd): status comes from squeue/scontrol.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchRun } from '../../extension/src/core/launch/launcher';
import { RunMonitor } from '../../extension/src/core/launch/monitor';
import { LaunchSession } from '../../extension/src/core/launch/session';
import { loadTargets } from '../../extension/src/core/launch/targets';
import { launcherIdentity, readRun, readRunEvents, runDir, writeRun } from '../../extension/src/core/runs/store';
import { deadPid } from '../../extension/test/hardening/helpers';
import { startSshd, type Sshd } from './sshd';
import { PYTHON, REPO, checkEventsComplete, cli, killRunsOf, makeWorkspace, removeWorkspaces, processesOfRun, until } from './workspace';

const CLUSTER = join(REPO, 'tests', 'launch', 'slurm-cluster.sh');

describe('slurm launch', { timeout: 900_000 }, () => {
  let sshd: Sshd;
  let root: string;
  let session: LaunchSession;
  before(async () => {
    const r = spawnSync('bash', [CLUSTER, 'start'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `starting the SLURM test cluster failed: ${r.stderr}${r.stdout}`);
    sshd = await startSshd();
    const box = {
      type: 'ssh', host: '127.0.0.1', port: sshd.port, user: 'root', identityFile: sshd.userKey,
      knownHostsFile: sshd.knownHosts, sshConfigFile: join(sshd.dir, 'ssh_config'), python: PYTHON, workdir: join(sshd.dir, 'remote'),
    };
    root = makeWorkspace({
      box,
      cluster: { type: 'slurm', via: 'box', workdir: join(sshd.dir, 'remote'), partition: 'debug', nodes: 1, cpusPerTask: 1, time: '00:30:00', python: PYTHON, cancelGrace: 20, sbatch: ['--comment=conscience-test'] },
      nowhere: { type: 'slurm', via: 'box', workdir: join(sshd.dir, 'remote'), partition: 'no-such-partition', python: PYTHON },
    });
    session = new LaunchSession(root, (await loadTargets(root)).targets);
  });
  after(async () => {
    await session?.close();
    if (root) killRunsOf(root);
    removeWorkspaces();
    sshd?.stop();
    spawnSync('bash', [CLUSTER, 'stop']);
  });

  it('gives a clear error for a partition that does not exist', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'nowhere']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /partition 'no-such-partition' does not exist on .*\(partitions: debug\)/);
  });

  it('previews the sbatch script and command', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'cluster', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /sbatch --parsable .*--partition=debug .*--time=00:30:00 .*job\.sbatch/);
    assert.match(r.stdout, /#!\/bin\/bash\n#SBATCH --comment=conscience-test/);
  });

  it('runs the demo through sbatch to run_finished completed with every event in the local store', async () => {
    const { run } = await launchRun(session, 'recipes/demo/tiny-cpu.yaml', 'cluster');
    assert.match(run.jobId ?? '', /^\d+$/);
    const fin = await new RunMonitor(session, run.id, { intervalMs: 250 }).follow();
    assert.equal(fin?.state, 'completed', fin?.error ?? '');
    assert.equal(fin?.exitCode, 0);
    checkEventsComplete(join(runDir(root, run.id), 'events.jsonl'), join(run.outputDir, 'events.jsonl'));
    const evs = await readRunEvents(root, run.id);
    assert.equal(evs.at(-1)?.type === 'run_finished' && evs.at(-1)?.type, 'run_finished');
    // the batch script ends right after the trainer; the job then reads COMPLETED with exit 0
    const sc = await until('the job to leave RUNNING', () => {
      const o = execFileSync('scontrol', ['show', 'job', '-o', run.jobId!], { encoding: 'utf8' });
      return /JobState=(RUNNING|COMPLETING)/.test(o) ? undefined : o;
    }, 60_000);
    assert.match(sc, /JobState=COMPLETED .*ExitCode=0:0/);
  });

  it('a job whose launcher died before recording it is found by its name in the queue and followed (not called interrupted), then cancelled', async () => {
    const { run } = await launchRun(session, 'recipes/demo/long.yaml', 'cluster');
    const jobId = run.jobId!;
    // the record as a launcher killed inside sbatch leaves it: submitting, no job id, launcher gone
    const rec = (await readRun(root, run.id))!;
    Object.assign(rec, { state: 'preparing', submitting: true, jobId: undefined, startedAt: undefined, launcher: { ...launcherIdentity(), pid: deadPid() } });
    await writeRun(root, rec);
    const r = await cli(root, ['runs', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const listed = (JSON.parse(r.stdout) as Array<{ id: string; state: string; jobId?: string }>).find((x) => x.id === run.id)!;
    assert.equal(listed.jobId, jobId, 'the job is found in the queue by its name');
    assert.ok(['queued', 'starting', 'running'].includes(listed.state), listed.state);
    const c = await cli(root, ['cancel', run.id]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(execFileSync('scontrol', ['show', 'job', '-o', jobId], { encoding: 'utf8' }), /JobState=CANCELLED/);
    await until('no process of the job left', () => processesOfRun(run.id).length === 0, 30_000);
  });

  it('cancels with scancel: job CANCELLED, run cancelled, no process left', async () => {
    const { run } = await launchRun(session, 'recipes/demo/long.yaml', 'cluster');
    const mon = new RunMonitor(session, run.id, { intervalMs: 250 });
    await until('the first step', async () => ((await mon.pollOnce())?.step ?? 0) >= 1);
    assert.equal((await readRun(root, run.id))?.state, 'running');
    const c = await cli(root, ['cancel', run.id]);
    assert.equal(c.code, 0, c.stderr);
    const sc = execFileSync('scontrol', ['show', 'job', '-o', run.jobId!], { encoding: 'utf8' });
    assert.match(sc, /JobState=CANCELLED/);
    assert.equal((await readRun(root, run.id))?.state, 'cancelled');
    await until('no process of the job left', () => processesOfRun(run.id).length === 0, 30_000);
  });
});
