// A run's recorded process group is trusted only while it is still the run's: once the run has
// ended its pid is reused, and a group that is someone else's (here a `sleep` leading its own
// session) was reported as the run still running, and `cancel` killed it. Status and cancel now
// check the run's launch token in the session's environment, which the start command puts in the
// session leader's own environment. Real processes throughout.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { processDriver, processStatus } from '../../src/core/launch/driver-process';
import { LocalHost } from '../../src/core/launch/host';
import { cancelRun } from '../../src/core/launch/launcher';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import { LOCAL_TARGET, type Target } from '../../src/core/launch/targets';
import type { LaunchSection } from '../../src/core/launch/scripts';
import { readRun, writeRun, type RunRecord } from '../../src/core/runs/store';
import { localRunWorkspace } from '../hardening/helpers';

const host = new LocalHost();
const roots: string[] = [];
const pids: number[] = [];
after(() => {
  for (const p of pids) {
    try {
      process.kill(-p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Someone else's process leading its own session (setsid), as a reused pid would be. */
function foreign(): ChildProcess {
  const p = spawn('sleep', ['301'], { detached: true, stdio: 'ignore' });
  pids.push(p.pid!);
  return p;
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function workspace(extra: Partial<RunRecord>): Promise<{ root: string; id: string; remoteDir: string; session: LaunchSession }> {
  const ws = await localRunWorkspace('', { extra: { sawStarted: true, ...extra } });
  roots.push(ws.root);
  rmSync(join(ws.remoteDir, 'exit_code')); // no exit code: as a run still going would look
  const session = new LaunchSession(ws.root, new Map<string, Target>([['local', { name: 'local', type: 'local', cancelGrace: 1 }]]), {});
  return { ...ws, session };
}

test("a foreign process group written into a run is neither reported as the run nor killed by cancel", async () => {
  const sleeper = foreign();
  const { root, id, session } = await workspace({ pid: sleeper.pid!, pgid: sleeper.pid!, launchToken: 'a1b2c3d4e5f60718' });
  try {
    const rec = (await readRun(root, id))!;
    assert.equal((await processStatus(host, rec)).alive, false, 'the group is not the run (no launch token in it)');
    // the driver's cancel leaves it alone (its detached killer has a 1 s grace; give it time to act)
    await processDriver.cancel(host, rec, 1);
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(alive(sleeper.pid!), 'cancel killed a process group that is not the run');
    // what `runs` shows, and `cancel` through the launcher: the run is over, the sleep lives on
    await new RunMonitor(session, id).pollOnce();
    assert.notEqual((await readRun(root, id))!.state, 'running');
    rec.state = 'running';
    rec.finishedAt = undefined;
    await writeRun(root, rec);
    const after = await cancelRun(session, id, 1);
    assert.equal(after.state, 'failed');
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(alive(sleeper.pid!), 'cancelRun killed a process group that is not the run');
  } finally {
    await session.close();
  }
});

test('a run started by the process driver is its own group: reported running, and cancel stops it', async () => {
  const { root, id, remoteDir, session } = await workspace({ state: 'preparing', pid: undefined, pgid: undefined });
  try {
    const L: LaunchSection = {
      num_processes: 1, num_machines: 1, cpu: true, vllm_server: false, vllm_server_gpus: 1,
      vllm_tensor_parallel_size: 1, vllm_data_parallel_size: 1, vllm_gpu_memory_utilization: 0.9,
    };
    const token = 'feedc0de12345678';
    const prepared = processDriver.prepare({
      runId: id, launchToken: token, projectDir: join(root, 'host'), runDir: remoteDir, outputDir: join(remoteDir, 'out'),
      python: 'python3', recipe: join(root, 'recipe.yaml'), info: { kind: 'grpo', launch: L }, target: LOCAL_TARGET,
    });
    mkdirSync(remoteDir, { recursive: true });
    // a stand-in for the wrapper: records pid and group as it does, then lives until signalled
    writeFileSync(join(remoteDir, 'run.sh'), 'printf "%s %s\\n" "$$" "$$" > pid\nexec sleep 302\n', { mode: 0o700 });
    const rec = (await readRun(root, id))!;
    await processDriver.submit(host, LOCAL_TARGET, prepared.command, rec);
    pids.push(rec.pgid!);
    rec.launchToken = token;
    rec.state = 'running';
    await writeRun(root, rec);
    assert.equal((await processStatus(host, rec)).alive, true, 'the run started with its token is reported alive');
    const c = await cancelRun(session, id, 1);
    assert.equal(c.state, 'cancelling');
    await until('the run to be gone', async () => !alive(rec.pgid!));
    assert.equal((await processStatus(host, rec)).alive, false);
  } finally {
    await session.close();
  }
});
