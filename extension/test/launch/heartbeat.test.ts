// A target's own heartbeatTimeout (conscience.targets.yaml, docs/launch.md: every target accepts
// it) decides when a silent run shows `unresponsive`. The editor always passes its setting
// (conscience.launch.heartbeatTimeout, default 90) to the monitor; that setting used to win, so
// a target's longer timeout was ignored in the editor and honoured only by the CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RunMonitor } from '../../src/core/launch/monitor';
import { LaunchSession } from '../../src/core/launch/session';
import type { Target } from '../../src/core/launch/targets';
import { readRun } from '../../src/core/runs/store';
import { localRunWorkspace } from '../hardening/helpers';

/** The state one poll derives for a run silent for `silentS` seconds whose trainer is alive, on a
 * local target with `heartbeatTimeout`, followed as the editor (with its setting) or the CLI does. */
async function stateAfterSilence(silentS: number, target: { heartbeatTimeout?: number }, monitorTimeoutS?: number): Promise<string | undefined> {
  // a live trainer: a process leading its own session, as the launcher starts it (setsid)
  const trainer = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  const now = Date.now() / 1000;
  const ws = await localRunWorkspace('', { extra: { pid: trainer.pid!, pgid: trainer.pid!, sawStarted: true, lastActivityAt: now - silentS } });
  rmSync(join(ws.remoteDir, 'exit_code')); // still running: no exit code yet
  const targets = new Map<string, Target>([['local', { name: 'local', type: 'local', ...target }]]);
  const session = new LaunchSession(ws.root, targets, {});
  try {
    const m = new RunMonitor(session, ws.id, monitorTimeoutS === undefined ? {} : { heartbeatTimeoutS: monitorTimeoutS });
    await m.pollOnce();
    return (await readRun(ws.root, ws.id))?.state;
  } finally {
    process.kill(-trainer.pid!, 'SIGKILL');
    await session.close();
    rmSync(ws.root, { recursive: true, force: true });
  }
}

test("a target's own heartbeatTimeout wins over the editor's setting", async () => {
  // silent for 200 s on a target that allows 600: still running, followed by the editor (90) or the CLI
  assert.equal(await stateAfterSilence(200, { heartbeatTimeout: 600 }, 90), 'running');
  assert.equal(await stateAfterSilence(200, { heartbeatTimeout: 600 }), 'running');
  // and a shorter one too
  assert.equal(await stateAfterSilence(60, { heartbeatTimeout: 30 }, 90), 'unresponsive');
});

test("a target without one takes the editor's setting, else 90 s", async () => {
  assert.equal(await stateAfterSilence(200, {}, 300), 'running');
  assert.equal(await stateAfterSilence(200, {}, 90), 'unresponsive');
  assert.equal(await stateAfterSilence(100, {}), 'unresponsive');
  assert.equal(await stateAfterSilence(60, {}), 'running');
});
