// Local runs, end to end with the real trainer: the demo recipe to completion through the CLI,
// SIGKILL of the trainer -> failed with its exit code, cancel -> nothing left behind, resume
// from the last checkpoint.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchRun } from '../../extension/src/core/launch/launcher';
import { RunMonitor } from '../../extension/src/core/launch/monitor';
import { LaunchSession } from '../../extension/src/core/launch/session';
import { loadTargets } from '../../extension/src/core/launch/targets';
import { runFailure } from '../../extension/src/core/runs/present';
import { readRun, readRunEvents, runDir } from '../../extension/src/core/runs/store';
import { PYTHON, REPO, checkEventsComplete, cli, environOf, killRunsOf, makeWorkspace, removeWorkspaces, processesOfRun, until } from './workspace';

/** A TCP server listening on 127.0.0.1 at a port the kernel picks (what "in use" looks like). */
function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res({ server, port: (server.address() as { port: number }).port }));
  });
}

/** A port nobody listens on now. */
async function freePort(): Promise<number> {
  const { server, port } = await listen();
  await new Promise((r) => server.close(r));
  return port;
}

/** The demo, 2 steps on one CPU process, with a vLLM server (launch.vllm_server) and `top` appended. */
function serverRecipe(root: string, name: string, top: string): { rel: string; line: number } {
  const demo = readFileSync(join(root, 'recipes', 'demo', 'tiny-cpu.yaml'), 'utf8')
    .replace(/^max_steps:.*$/m, 'max_steps: 2')
    .replace(/^save_strategy:.*$/m, 'save_strategy: "no"')
    .replace(/^launch:\n(  .*\n)+/m, 'launch:\n  cpu: true\n  num_processes: 1\n  vllm_server: true\n  vllm_server_gpus: 1\n');
  const text = demo + top;
  writeFileSync(join(root, 'recipes', 'demo', name), text);
  return { rel: `recipes/demo/${name}`, line: text.split('\n').findIndex((l) => l.startsWith(top.split(':')[0]!)) + 1 };
}

describe('local launch', { timeout: 900_000 }, () => {
  let root: string;
  let session: LaunchSession;
  let standin: string;
  before(async () => {
    standin = mkdtempSync(join(tmpdir(), 'conscience-standin-'));
    // `srv` declares two GPUs (CUDA_VISIBLE_DEVICES): conscience.launch gives the last to the vLLM server
    root = makeWorkspace({
      here: { type: 'local', python: PYTHON, cancelGrace: 20 },
      srv: { type: 'local', python: PYTHON, cancelGrace: 20, env: { CUDA_VISIBLE_DEVICES: '0,1', CONSCIENCE_STANDIN_DIR: standin } },
      'srv-bad': { type: 'local', python: PYTHON, cancelGrace: 20, env: { CUDA_VISIBLE_DEVICES: '0,1', CONSCIENCE_STANDIN_DIR: standin, CONSCIENCE_STANDIN_EXIT: '3' } },
    });
    session = new LaunchSession(root, (await loadTargets(root)).targets);
  });
  after(async () => {
    await session?.close();
    if (root) killRunsOf(root);
    removeWorkspaces();
    if (standin) rmSync(standin, { recursive: true, force: true });
  });

  /** Launches with the stand-in for `trl vllm-serve` (vLLM needs a GPU): PYTHONPATH reaches the run through the wrapper. */
  async function launchWithStandin(rel: string, target: string) {
    const saved = process.env.PYTHONPATH;
    process.env.PYTHONPATH = join(REPO, 'tests', 'launch', 'standin', 'site');
    try {
      return (await launchRun(session, rel, target)).run;
    } finally {
      if (saved === undefined) delete process.env.PYTHONPATH;
      else process.env.PYTHONPATH = saved;
    }
  }

  it("starts the vLLM server on the recipe's vllm_server_port and points the trainer there", async () => {
    const port = await freePort();
    const { rel } = serverRecipe(root, 'server-port.yaml', `vllm_server_port: ${port}\n`);
    const run = await launchWithStandin(rel, 'srv');
    const trainer = await until('the trainer process', () => processesOfRun(run.id).map((p) => {
      try {
        return { cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'), env: environOf(p) };
      } catch {
        return undefined;
      }
    }).find((x) => x && x.cmd[1] === '-m' && x.cmd[2] === 'conscience.train'));
    const fin = await new RunMonitor(session, run.id, { intervalMs: 200 }).follow();
    assert.equal(fin?.state, 'completed', `${fin?.error ?? ''}\n${readFileSync(join(run.remoteDir, 'stderr.log'), 'utf8').slice(-3000)}`);
    const server = JSON.parse(readFileSync(join(standin, 'server.local.json'), 'utf8'));
    assert.equal(server.port, port, 'the server listens on the recipe port');
    assert.equal(server.host, '127.0.0.1');
    assert.equal(server.cuda_visible_devices, '1');
    const flag = (name: string) => trainer.cmd[trainer.cmd.indexOf(name) + 1];
    assert.equal(flag('--vllm_server_port'), String(port), "the trainer's client uses the recipe port");
    assert.equal(flag('--vllm_server_host'), '127.0.0.1');
    assert.equal(trainer.env.get('CUDA_VISIBLE_DEVICES'), '0');
    await until('the stand-in server to be stopped', () => processesOfRun(run.id).length === 0, 60_000);
  });

  it('a vLLM server that exits before training ends fails the run at once, with the server as its cause', async () => {
    const { rel } = serverRecipe(root, 'server-dies.yaml', `vllm_server_port: ${await freePort()}\n`);
    const run = await launchWithStandin(rel, 'srv-bad');
    const t0 = Date.now();
    const fin = await new RunMonitor(session, run.id, { intervalMs: 200 }).follow();
    const stderr = readFileSync(join(run.remoteDir, 'stderr.log'), 'utf8');
    // failed, not cancelled (the trainer got a SIGTERM, but from the launcher, which said why), and not after TRL's 240 s wait
    assert.equal(fin?.state, 'failed', `${fin?.error ?? ''}\n${stderr.slice(-3000)}`);
    assert.ok(Date.now() - t0 < 120_000, 'the run waited for a server that was gone');
    // the cause the Runs view shows: run_finished's error when the trainer had started (the launcher
    // told it why), else the launcher's own line in stderr.log; here the stand-in fails at once
    const rec = (await readRun(root, run.id))!;
    const cause = runFailure(rec, stderr);
    assert.match(String(cause?.message), /the vLLM server \(python -m trl\.scripts\.vllm_serve .*\) exited with code 3 before training ended/, stderr.slice(-3000));
    const line = stderr.split('\n').find((l) => l.startsWith('conscience.launch: the vLLM server'));
    assert.ok(line && stderr.indexOf('stand-in vllm: cannot load the model') < stderr.indexOf(line), stderr.slice(-3000));
    assert.equal(rec.exitCode, 3, "the run's exit code is the server's");
    await until('the run to leave no process behind', () => processesOfRun(run.id).length === 0, 60_000);
  });

  it('refuses a vllm_server_port out of range, or one something listens on, naming the recipe file and line', async () => {
    const bad = serverRecipe(root, 'bad-port.yaml', 'vllm_server_port: 70000\n');
    const r = await cli(root, ['launch', bad.rel, '--target', 'srv', '--force']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`recipes/demo/bad-port\\.yaml:${bad.line}: vllm_server_port must be a port number \\(1-65535\\), got 70000`));
    const { server, port } = await listen();
    try {
      const busy = serverRecipe(root, 'busy-port.yaml', `vllm_server_port: ${port}\n`);
      const w = await cli(root, ['launch', busy.rel, '--target', 'srv', '--wait']);
      assert.equal(w.code, 1, w.stdout + w.stderr);
      const id = w.stdout.trim().split(/\s+/)[0]!;
      assert.equal((await readRun(root, id))?.state, 'failed');
      assert.match(w.stdout + w.stderr, new RegExp(`recipes/demo/busy-port\\.yaml:${busy.line}: vllm_server_port ${port} is in use on this machine`));
    } finally {
      await new Promise((res) => server.close(res));
    }
  });

  it('runs the demo recipe to run_finished completed with every event in the local store (CLI --wait)', async () => {
    const r = await cli(root, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'here', '--wait']);
    assert.equal(r.code, 0, `launch --wait failed:\n${r.stderr}`);
    const id = r.stdout.trim().split(/\s+/)[0]!;
    const rec = await readRun(root, id);
    assert.equal(rec?.state, 'completed');
    assert.equal(rec?.exitCode, 0);
    assert.equal(rec?.step, 8);
    const { count } = checkEventsComplete(join(runDir(root, id), 'events.jsonl'), join(rec!.outputDir, 'events.jsonl'));
    const evs = await readRunEvents(root, id);
    assert.equal(evs.length, count);
    assert.equal(evs[0]?.type, 'run_started');
    const last = evs.at(-1)!;
    assert.equal(last.type, 'run_finished');
    assert.equal(last.type === 'run_finished' && last.status, 'completed');
    assert.ok(evs.filter((e) => e.type === 'metrics').length >= 8, 'a metrics event per step');
    // the trainer's output is tailed into the store
    assert.match(readFileSync(join(runDir(root, id), 'stderr.log'), 'utf8') + readFileSync(join(runDir(root, id), 'stdout.log'), 'utf8'), /\S/);
    // `conscience runs` in a new process lists it
    const list = await cli(root, ['runs', '--format', 'json']);
    assert.equal(list.code, 0, list.stderr);
    const runs = JSON.parse(list.stdout) as { id: string; state: string; step: number }[];
    assert.deepEqual(runs.filter((x) => x.id === id).map((x) => [x.state, x.step]), [['completed', 8]]);
  });

  it('Ctrl-C in launch --wait detaches with exit 130 (not 1, a failure): the run goes on, and is cancelled after', async () => {
    const p = spawn(process.execPath, ['--import', pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(REPO, 'extension', 'src', 'cli', 'main.ts'), 'launch', 'recipes/demo/long.yaml', '--target', 'here', '--wait'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.stdout.resume();
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    await until('the first step followed', () => /: step [1-9]/.test(stderr) || p.exitCode !== null, 300_000);
    p.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const id = /launched (\S+); following/.exec(stderr)![1]!;
    assert.match(stderr, new RegExp(`detached from ${id} \\((running|starting)\\); it goes on`));
    assert.ok(processesOfRun(id).length > 0, 'the run goes on');
    const c = await cli(root, ['cancel', id, '--grace', '20']);
    assert.equal(c.code, 0, c.stderr);
    await until('no process of the run left', () => processesOfRun(id).length === 0, 30_000);
  });

  it('shows a trainer killed with SIGKILL as failed with its exit code', async () => {
    const { run } = await launchRun(session, 'recipes/demo/long.yaml', 'here');
    const mon = new RunMonitor(session, run.id, { intervalMs: 200 });
    await until('the first step', async () => ((await mon.pollOnce())?.step ?? 0) >= 1);
    const trainerPid = Number(readFileSync(join(run.remoteDir, 'trainer.pid'), 'utf8'));
    process.kill(trainerPid, 'SIGKILL');
    const fin = await mon.follow();
    assert.equal(fin?.state, 'failed');
    assert.equal(fin?.exitCode, 137);
    assert.match(fin?.error ?? '', /137|signal 9/);
    await until('no process of the run left', () => processesOfRun(run.id).length === 0, 20_000);
  });

  it('cancels: SIGTERM to the process group, state cancelled, no process left; resume continues from the checkpoint', async () => {
    const recipeFile = join(root, 'recipes', 'demo', 'long.yaml');
    const first = readFileSync(recipeFile, 'utf8');
    const { run } = await launchRun(session, 'recipes/demo/long.yaml', 'here');
    // the recipe this attempt started with, kept beside the run for compare's config diff
    assert.equal(readFileSync(join(runDir(root, run.id), 'recipe.yaml'), 'utf8'), first);
    const mon = new RunMonitor(session, run.id, { intervalMs: 200 });
    await until('a checkpoint', async () => {
      await mon.pollOnce();
      return (await readRunEvents(root, run.id)).some((e) => e.type === 'checkpoint');
    });
    assert.ok(processesOfRun(run.id).length > 0, 'the trainer runs before cancel');
    const c = await cli(root, ['cancel', run.id.slice(0, 24), '--grace', '20']);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /cancelled/);
    assert.deepEqual(processesOfRun(run.id), [], 'every process of the run is gone');
    const rec = await readRun(root, run.id);
    assert.equal(rec?.state, 'cancelled');
    const evs = await readRunEvents(root, run.id);
    const fin = evs.at(-1);
    assert.equal(fin?.type === 'run_finished' && fin.status, 'cancelled', 'the trainer wrote run_finished cancelled');

    // resume: same output folder, the trainer picks up the last checkpoint and appends; the
    // recipe was edited meanwhile (a lower learning rate), which the resumed attempt trains with
    const edited = first.replace(/^learning_rate:.*$/m, 'learning_rate: 5.0e-5');
    assert.notEqual(edited, first);
    writeFileSync(recipeFile, edited);
    const before = evs.length;
    const r = await cli(root, ['resume', run.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /recipes\/demo\/long\.yaml changed since the last attempt: .*kept as recipe\.before-attempt-2\.yaml/);
    // compare reads the recipe the run trains with now; the first attempt's is kept, not lost
    assert.equal(readFileSync(join(runDir(root, run.id), 'recipe.yaml'), 'utf8'), edited);
    assert.equal(readFileSync(join(runDir(root, run.id), 'recipe.before-attempt-2.yaml'), 'utf8'), first);
    const mon2 = new RunMonitor(session, run.id, { intervalMs: 200 });
    const started = await until('the resumed run_started', async () => {
      await mon2.pollOnce();
      return (await readRunEvents(root, run.id)).slice(before).find((e) => e.type === 'run_started');
    });
    assert.ok(started.type === 'run_started' && started.resumed_from && /checkpoint-\d+/.test(started.resumed_from), `resumed_from: ${JSON.stringify(started)}`);
    assert.equal(started.seq, evs.at(-1)!.seq + 1, 'seq continues across the resume');
    const c2 = await cli(root, ['cancel', run.id, '--grace', '20']);
    assert.equal(c2.code, 0, c2.stderr);
    assert.deepEqual(processesOfRun(run.id), []);
    const rec2 = await readRun(root, run.id);
    assert.equal(rec2?.attempts, 2);
    assert.equal(rec2?.state, 'cancelled');
  });
});
