// The generated sbatch script, executed on a real two-node SLURM cluster built on this machine
// (tests/launch/slurm-cluster.sh: two slurmd in multiple-slurmd mode, 2 GPUs per node declared
// as generic resources). Training is real (the tiny model, CPU, gloo across both nodes). The
// one stand-in is the vLLM generation server (it needs a GPU): tests/launch/standin/python runs
// tests/launch/standin/vllm_serve.py in its place, which records where and how it was started.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cancelRun, launchRun } from '../../extension/src/core/launch/launcher';
import { RunMonitor } from '../../extension/src/core/launch/monitor';
import { LaunchSession } from '../../extension/src/core/launch/session';
import { loadTargets } from '../../extension/src/core/launch/targets';
import { readRunEvents } from '../../extension/src/core/runs/store';
import { REPO, environOf, killRunsOf, makeWorkspace, processesOfRun, removeWorkspaces, until } from './workspace';

const CLUSTER = join(REPO, 'tests', 'launch', 'slurm-cluster.sh');
const STANDIN_PY = join(REPO, 'tests', 'launch', 'standin', 'python');
const SECRET = `hf_${Math.random().toString(36).slice(2)}SECRETVALUE`;

interface Rank {
  node: string;
  rank: number;
  localRank: number;
  world: number;
  masterAddr: string;
  masterPort: string;
  cmdline: string;
}

/** Samples the run's training ranks (processes with RANK in their environment) until `want` distinct ranks were seen or the job ends. */
async function sampleRanks(runId: string, want: number, timeoutMs = 300_000): Promise<Map<number, Rank>> {
  const seen = new Map<number, Rank>();
  await until(`${want} training ranks of run ${runId}`, () => {
    for (const pid of processesOfRun(runId)) {
      try {
        const e = environOf(pid);
        const r = e.get('RANK');
        if (r === undefined || !e.get('SLURMD_NODENAME')) continue;
        seen.set(Number(r), {
          node: e.get('SLURMD_NODENAME')!, rank: Number(r), localRank: Number(e.get('LOCAL_RANK')), world: Number(e.get('WORLD_SIZE')),
          masterAddr: e.get('MASTER_ADDR') ?? '', masterPort: e.get('MASTER_PORT') ?? '',
          cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '),
        });
      } catch {
        /* gone */
      }
    }
    return seen.size >= want;
  }, timeoutMs, 200);
  return seen;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('SLURM, two nodes: the generated script executed', { timeout: 1_200_000 }, () => {
  let root: string;
  let session: LaunchSession;
  let standin: string;
  let work: string;
  let tmp: string;
  const savedToken = process.env.HF_TOKEN;
  before(async () => {
    const r = spawnSync('bash', [CLUSTER, 'start'], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, `starting the SLURM test cluster failed: ${r.stderr}${r.stdout}`);
    tmp = mkdtempSync(join(tmpdir(), 'conscience-2node-'));
    standin = join(tmp, 'standin');
    mkdirSync(standin);
    // a `%` in the run folder: SLURM must not expand it in --output/--error (issue #16 item 5)
    work = join(tmp, 'work%j%N');
    const base = { type: 'slurm', partition: 'debug', python: STANDIN_PY, workdir: work, cancelGrace: 10, env: { CONSCIENCE_STANDIN_DIR: standin } };
    root = makeWorkspace({
      two: { ...base, nodes: 2, gpusPerNode: 2 },
      one: { ...base, nodes: 1, gpusPerNode: 2 },
    });
    const demo = readFileSync(join(root, 'recipes', 'demo', 'tiny-cpu.yaml'), 'utf8')
      .replace(/^max_steps:.*$/m, 'max_steps: 2')
      .replace(/^max_train_samples:.*$/m, 'max_train_samples: 16')
      .replace(/^max_completion_length:.*$/m, 'max_completion_length: 8')
      .replace(/^save_strategy:.*$/m, 'save_strategy: "no"');
    // colocate: 4 CPU processes over both nodes (the recipe says one machine: the target decides)
    writeFileSync(join(root, 'recipes', 'demo', 'two-nodes.yaml'), demo.replace(/^launch:\n(  .*\n)+/m, 'launch:\n  cpu: true\n  num_processes: 4\n  num_machines: 1\n'));
    // server mode: node 2 serves (stand-in) on its first GPU, node 1 trains with 2 processes.
    // The model is a bare relative path, a folder beside the recipe (the tiny model, saved there):
    // the trainer and the server must both load that folder, not take it for a Hub id.
    const built = spawnSync(join(REPO, '.venv', 'bin', 'python'), ['-m', 'conscience.tiny_model', join(root, 'recipes', 'demo', 'models', 'tiny'), '--warmup-steps', '0'], {
      encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(REPO, 'runtime') }, timeout: 180_000,
    });
    assert.equal(built.status, 0, `building the tiny model failed: ${built.stderr}`);
    writeFileSync(
      join(root, 'recipes', 'demo', 'server.yaml'),
      demo
        .replace(/^model_name_or_path:.*$/m, 'model_name_or_path: models/tiny')
        .replace(/^launch:\n(  .*\n)+/m, 'launch:\n  cpu: true\n  num_processes: 2\n  num_machines: 1\n  vllm_server: true\n  vllm_server_gpus: 1\n') + 'vllm_server_port: 18931\n',
    );
    // runs until cancelled; saves only when asked (SLURM's USR1 warning)
    const long = readFileSync(join(root, 'recipes', 'demo', 'long.yaml'), 'utf8').replace(/^save_strategy:.*$/m, 'save_strategy: "no"');
    writeFileSync(join(root, 'recipes', 'demo', 'long-req.yaml'), long);
    // one process per node, until cancelled: for the node lost mid-run
    writeFileSync(join(root, 'recipes', 'demo', 'long-two.yaml'), long.replace(/^launch:\n(  .*\n)+/m, 'launch:\n  cpu: true\n  num_processes: 2\n  num_machines: 2\n'));
    session = new LaunchSession(root, (await loadTargets(root)).targets, { secrets: { HF_TOKEN: SECRET } });
  });
  after(async () => {
    if (savedToken === undefined) delete process.env.HF_TOKEN;
    else process.env.HF_TOKEN = savedToken;
    await session?.close();
    if (root) killRunsOf(root);
    removeWorkspaces();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    spawnSync('bash', [CLUSTER, 'stop']);
  });

  it('trains with gloo across both nodes: 2 ranks per node, one main address and port; the token never reaches SLURM', async () => {
    // the CLI's environment holds the token, as in issue #16 item 1
    process.env.HF_TOKEN = SECRET;
    const { run } = await launchRun(session, 'recipes/demo/two-nodes.yaml', 'two');
    delete process.env.HF_TOKEN;
    const jobId = run.jobId!;
    const ranks = await sampleRanks(run.id, 4);
    const byRank = [...ranks.values()].sort((a, b) => a.rank - b.rank);
    assert.deepEqual(byRank.map((r) => [r.rank, r.node, r.localRank]), [[0, 'n1', 0], [1, 'n1', 1], [2, 'n2', 0], [3, 'n2', 1]]);
    for (const r of byRank) {
      assert.equal(r.world, 4);
      assert.equal(r.masterAddr, '127.0.0.1'); // n1's NodeAddr
      assert.equal(r.masterPort, String(20000 + (Number(jobId) % 20000)));
    }
    // the job's record in SLURM: controller spool (script + environment), slurmd spools, scontrol
    const spool = filesUnder('/var/spool/slurmctld').filter((f) => f.includes(`job.${jobId}`));
    assert.ok(spool.some((f) => f.endsWith('environment')), `no environment file for job ${jobId} in ${spool.join(', ')}`);
    for (const f of [...spool, ...filesUnder('/var/spool/slurmd')]) assert.ok(!readFileSync(f).includes(SECRET), `the token is in ${f}`);
    const env = readFileSync(spool.find((f) => f.endsWith('environment'))!).toString('utf8');
    assert.ok(!/(^|\0)HF_TOKEN=/.test(env), 'HF_TOKEN was exported to the job');
    assert.ok(!execFileSync('scontrol', ['show', 'job', '-dd', jobId], { encoding: 'utf8' }).includes(SECRET));
    // while the job lives its ranks have the token (from the 0600 file), and the file is still there
    const rank0 = [...processesOfRun(run.id)].find((p) => environOf(p).get('RANK') === '0');
    if (rank0) assert.equal(environOf(rank0).get('HF_TOKEN'), SECRET);
    const fin = await new RunMonitor(session, run.id, { intervalMs: 500 }).follow();
    assert.equal(fin?.state, 'completed', `${fin?.error ?? ''}\n${readFileSync(join(run.remoteDir, 'stderr.log'), 'utf8').slice(-3000)}`);
    // the logs are where the run folder says, % and all
    assert.ok(run.remoteDir.includes('work%j%N'));
    assert.ok(statSync(join(run.remoteDir, 'stdout.log')).isFile());
    assert.ok(!existsSync(join(run.remoteDir, 'secrets.env')), 'secrets.env outlived the job');
  });

  it('server mode: the stand-in server on node 2 GPU 0, training on node 1 pointed at it', async () => {
    const { run } = await launchRun(session, 'recipes/demo/server.yaml', 'two');
    const ranks = await sampleRanks(run.id, 2);
    const fin = await new RunMonitor(session, run.id, { intervalMs: 500 }).follow();
    assert.equal(fin?.state, 'completed', `${fin?.error ?? ''}\n${readFileSync(join(run.remoteDir, 'stderr.log'), 'utf8').slice(-3000)}`);
    const rec = JSON.parse(readFileSync(join(standin, 'server.n2.json'), 'utf8'));
    assert.equal(rec.job_id, run.jobId);
    assert.equal(rec.cuda_visible_devices, '0');
    assert.equal(rec.port, 18931);
    // the synced folder beside the recipe on the host: the one the trainer loaded (it completed,
    // and `models/tiny` as a Hub id does not exist)
    assert.equal(rec.model, join(run.projectDir, 'recipes', 'demo', 'models', 'tiny'));
    assert.equal(rec.tensor_parallel_size, 1);
    assert.ok(!existsSync(join(standin, 'server.n1.json')), 'a second server was started on the training node');
    for (const r of ranks.values()) {
      assert.equal(r.node, 'n1');
      assert.equal(r.world, 2);
      assert.match(r.cmdline, /--vllm_server_host 127\.0\.0\.1 --vllm_server_port 18931/);
    }
    assert.deepEqual([...ranks.keys()].sort(), [0, 1]);
    await until('the stand-in server to be stopped', () => processesOfRun(run.id).length === 0, 60_000);
  });

  it('requeue: USR1 saves a checkpoint, scontrol requeue shows requeued then running from it, the token kept; cancel removes it', async () => {
    const { run } = await launchRun(session, 'recipes/demo/long-req.yaml', 'one');
    const jobId = run.jobId!;
    const mon = new RunMonitor(session, run.id, { intervalMs: 250, statusMs: 250 });
    const states: string[] = [];
    mon.on('run', (r) => states.at(-1) !== r.state && states.push(r.state));
    const events = async () => readRunEvents(root, run.id);
    await until('the first step', async () => ((await mon.pollOnce())?.step ?? 0) >= 1);
    const secrets = join(run.remoteDir, 'secrets.env');
    assert.equal(statSync(secrets).mode & 0o777, 0o600, 'secrets.env is not 0600 while the job runs');
    // SLURM's warning before a time limit/preemption (sbatch --signal=B:USR1@120), sent now
    execFileSync('scancel', ['--signal=USR1', '--batch', jobId]);
    const cp = await until('a checkpoint saved on request', async () => {
      await mon.pollOnce();
      return (await events()).find((e) => e.type === 'checkpoint');
    }, 180_000);
    execFileSync('scontrol', ['requeue', jobId]);
    await until('the run to show requeued', async () => (await mon.pollOnce())?.state === 'requeued', 180_000);
    const again = await until('the same run running again', async () => {
      const r = await mon.pollOnce();
      const starts = (await events()).filter((e) => e.type === 'run_started');
      return r?.state === 'running' && starts.length === 2 && starts[1];
    }, 300_000);
    assert.equal((again as { resumed_from?: string }).resumed_from, (cp as { path?: string }).path, 'the requeued attempt did not resume from the requested checkpoint');
    // the first attempt's SIGTERM wrote run_finished cancelled; the run never showed it
    assert.ok(!states.includes('cancelled') && !states.includes('failed'), states.join(' -> '));
    assert.deepEqual(states.filter((x) => ['running', 'requeued'].includes(x)).slice(-2), ['requeued', 'running']);
    // the requeued attempt has the token, from the file kept for the job's life
    const trainer = await until('the new trainer process', () => processesOfRun(run.id).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('conscience.train')));
    assert.equal(environOf(trainer).get('HF_TOKEN'), SECRET);
    assert.equal(statSync(secrets).mode & 0o777, 0o600);
    await cancelRun(session, run.id);
    const fin = await mon.follow();
    assert.equal(fin?.state, 'cancelled');
    assert.ok(!existsSync(secrets), 'secrets.env outlived the job');
  });

  it('a node lost mid-run: the job ends (srun --kill-on-bad-exit), no hang, and the run says which task died', async () => {
    const { run } = await launchRun(session, 'recipes/demo/long-two.yaml', 'two');
    const mon = new RunMonitor(session, run.id, { intervalMs: 250, statusMs: 500 });
    await until('the first step', async () => ((await mon.pollOnce())?.step ?? 0) >= 1, 300_000);
    // everything of the run on n2 dies at once, as with the node
    const onN2 = processesOfRun(run.id).filter((p) => {
      try {
        return environOf(p).get('SLURMD_NODENAME') === 'n2';
      } catch {
        return false;
      }
    });
    assert.ok(onN2.length > 0, 'no process of the run on n2');
    const t0 = Date.now();
    for (const p of onN2) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const fin = await mon.follow();
    assert.ok(Date.now() - t0 < 150_000, `the job took ${Date.now() - t0} ms to end`);
    assert.equal(fin?.state, 'failed', fin?.error ?? '');
    // why: rank 0's own error (gloo lost its peer) or, when it was stopped first, SLURM's word on the task
    assert.match(fin?.error ?? '', /Connection reset by peer|Connection closed by peer|n2: task 1/);
    const stderr = readFileSync(join(root, '.conscience', 'runs', run.id, 'stderr.log'), 'utf8');
    assert.match(stderr, /srun: error: n2: task 1/, stderr.slice(-2000));
    await until('no process of the run left', () => processesOfRun(run.id).length === 0, 60_000);
  });
});
