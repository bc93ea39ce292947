// Local runs, end to end with the real trainer: the demo recipe to completion through the CLI,
// SIGKILL of the trainer -> failed with its exit code, cancel -> nothing left behind, resume
// from the last checkpoint.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchRun } from '../../extension/src/core/launch/launcher';
import { RunMonitor } from '../../extension/src/core/launch/monitor';
import { LaunchSession } from '../../extension/src/core/launch/session';
import { loadTargets } from '../../extension/src/core/launch/targets';
import { readRun, readRunEvents, runDir } from '../../extension/src/core/runs/store';
import { PYTHON, checkEventsComplete, cli, killRunsOf, makeWorkspace, removeWorkspaces, processesOfRun, until } from './workspace';

describe('local launch', { timeout: 900_000 }, () => {
  let root: string;
  let session: LaunchSession;
  before(async () => {
    root = makeWorkspace({ here: { type: 'local', python: PYTHON, cancelGrace: 20 } });
    session = new LaunchSession(root, (await loadTargets(root)).targets);
  });
  after(async () => {
    await session?.close();
    if (root) killRunsOf(root);
    removeWorkspaces();
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
    const { run } = await launchRun(session, 'recipes/demo/long.yaml', 'here');
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

    // resume: same output folder, the trainer picks up the last checkpoint and appends
    const before = evs.length;
    const r = await cli(root, ['resume', run.id]);
    assert.equal(r.code, 0, r.stderr);
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
