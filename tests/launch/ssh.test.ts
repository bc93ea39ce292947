// SSH runs against a real OpenSSH sshd on 127.0.0.1: host key checking (known, hashed,
// changed, unknown), the demo recipe over SSH with hostile values in paths and environment,
// the connection cut and sshd restarted mid-run, and a fresh CLI process that reattaches.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchRun } from '../../extension/src/core/launch/launcher';
import { RunMonitor } from '../../extension/src/core/launch/monitor';
import { LaunchSession } from '../../extension/src/core/launch/session';
import { connectSsh } from '../../extension/src/core/launch/ssh';
import { loadTargets, parseTarget, type SshTarget } from '../../extension/src/core/launch/targets';
import type { RunEvent } from '../../extension/src/core/runs/events';
import { parseCompletions, parseResults } from '../../extension/src/core/eval/results';
import { evalFiles } from '../../extension/src/core/eval/store';
import { readRun, runDir } from '../../extension/src/core/runs/store';
import { startSshd, type Sshd } from './sshd';
import { PYTHON, REPO, checkEventsComplete, cli, environOf, killRunsOf, makeWorkspace, removeWorkspaces, until } from './workspace';

const HOSTILE = `a'b"c; $(touch /tmp/conscience-pwned-1) \`touch /tmp/conscience-pwned-2\` \\ end\nsecond line`;

describe('ssh launch', { timeout: 900_000 }, () => {
  let sshd: Sshd;
  let root: string;
  const sshTarget = (extra: Record<string, unknown> = {}) => ({
    type: 'ssh', host: '127.0.0.1', port: sshd.port, user: 'root', identityFile: sshd.userKey,
    knownHostsFile: sshd.knownHosts, sshConfigFile: join(sshd.dir, 'ssh_config'), python: PYTHON, workdir: join(sshd.dir, 'remote'), ...extra,
  });
  before(async () => {
    sshd = await startSshd({ hashKnownHosts: true });
  });
  after(() => {
    if (root) killRunsOf(root);
    removeWorkspaces();
    sshd?.stop();
  });

  it('accepts the key in a hashed known_hosts entry and previews the exact command', async () => {
    assert.match(readFileSync(sshd.knownHosts, 'utf8'), /^\|1\|/, 'known_hosts is hashed');
    root = makeWorkspace({ box: sshTarget() });
    const r = await cli(root, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /setsid nohup bash/);
    assert.match(r.stdout, /-m conscience\.launch --config/);
  });

  it('reaches the host through a ProxyJump hop (ssh2 forwardOut)', async () => {
    // the same sshd serves as jump host and target: 127.0.0.1:port -> forwardOut -> 127.0.0.1:port
    const ws = makeWorkspace({ box: sshTarget({ proxyJump: `root@127.0.0.1:${sshd.port}` }) });
    const r = await cli(ws, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { host: string; projectDir: string };
    assert.ok(plan.projectDir.startsWith(join(sshd.dir, 'remote')), plan.projectDir);
  });

  it('a read cut mid-file by a dropped connection fails with the reason instead of hanging (the run monitor waited for ever)', async () => {
    const big = join(sshd.dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(64 * 1024 * 1024, 7));
    const t = parseTarget('box', sshTarget()) as SshTarget;
    for (const delayMs of [30, 120]) {
      const host = await connectSsh(t);
      const read = host.readFrom(big, 0).then(() => 'read it all', (e: Error) => e.message);
      await new Promise((r) => setTimeout(r, delayMs));
      sshd.cutConnections();
      const got = await Promise.race([read, new Promise((r) => setTimeout(() => r('still waiting after 15 s'), 15_000))]);
      assert.match(String(got), /connection closed|SFTP channel closed|not connected|No response/, `cut after ${delayMs} ms`);
      await host.close();
    }
  });

  it('refuses a changed host key, and an unknown key unless --accept-new', async () => {
    const other = join(sshd.dir, 'other_known_hosts');
    // a different ed25519 key recorded for [127.0.0.1]:port
    const fake = readFileSync(join(sshd.dir, 'id_ed25519.pub'), 'utf8').split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(other, `[127.0.0.1]:${sshd.port} ${fake}\n`);
    const ws = makeWorkspace({ box: sshTarget({ knownHostsFile: other }) });
    const changed = await cli(ws, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run', '--accept-new']);
    assert.equal(changed.code, 1);
    assert.match(changed.stderr, /HOST IDENTIFICATION HAS CHANGED/);
    assert.equal(readFileSync(other, 'utf8').split('\n').filter(Boolean).length, 1, 'a changed key is never added');

    const empty = join(sshd.dir, 'empty_known_hosts');
    const ws2 = makeWorkspace({ box: sshTarget({ knownHostsFile: empty }) });
    const unknown = await cli(ws2, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown host key .*--accept-new/);
    assert.equal(existsSync(empty), false);
    const accepted = await cli(ws2, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run', '--accept-new']);
    assert.equal(accepted.code, 0, accepted.stderr);
    const again = await cli(ws2, ['launch', 'recipes/demo/tiny-cpu.yaml', '--target', 'box', '--dry-run']);
    assert.equal(again.code, 0, `the accepted key is known now: ${again.stderr}`);
  });

  it("an eval run over SSH: its results and completions are copied into the run store when it settles, where the report reads them", async () => {
    const ws = makeWorkspace({ box: sshTarget({ workdir: join(sshd.dir, 'remote-eval') }) });
    const evalRecipe = readFileSync(join(REPO, 'recipes', 'demo', 'eval-tiny.yaml'), 'utf8')
      .replace(/^max_prompts:.*$/m, 'max_prompts: 6').replace(/^arms:.*$/m, 'arms: [label, none]');
    writeFileSync(join(ws, 'recipes', 'demo', 'eval-tiny.yaml'), evalRecipe);
    const session = new LaunchSession(ws, (await loadTargets(ws)).targets);
    try {
      const { run } = await launchRun(session, 'recipes/demo/eval-tiny.yaml', 'box');
      const final = await new RunMonitor(session, run.id, { intervalMs: 200 }).follow();
      assert.equal(final?.state, 'completed', `${final?.error ?? ''}\n${readFileSync(join(run.remoteDir, 'stderr.log'), 'utf8').slice(-3000)}`);
      // the host's files (the sshd serves this machine's disk), byte for byte in the store
      for (const name of ['results.json', 'completions.jsonl']) {
        assert.deepEqual(readFileSync(join(runDir(ws, run.id), name)), readFileSync(join(run.outputDir, name)), name);
      }
      const files = await evalFiles(ws, final!);
      assert.deepEqual(files, { results: join(runDir(ws, run.id), 'results.json'), completions: join(runDir(ws, run.id), 'completions.jsonl') });
      const results = parseResults(readFileSync(files.results, 'utf8'));
      assert.deepEqual(Object.keys(results.arms).sort(), ['label', 'none']);
      assert.equal(parseCompletions(readFileSync(files.completions!, 'utf8')).rows.length, 12, '6 prompts x 2 arms');
    } finally {
      await session.close();
      killRunsOf(ws);
    }
  });

  it('runs the demo over SSH through a cut connection and an sshd restart: completed, zero events lost or duplicated; hostile values stay literal', async () => {
    for (const f of ['/tmp/conscience-pwned-1', '/tmp/conscience-pwned-2']) assert.equal(existsSync(f), false);
    const workdir = join(sshd.dir, `remote dir 'q' $(touch /tmp/conscience-pwned-1)`);
    root = makeWorkspace({ box: sshTarget({ workdir, env: { CONSCIENCE_TEST_HOSTILE: HOSTILE } }) });
    const session = new LaunchSession(root, (await loadTargets(root)).targets, { secrets: { HF_TOKEN: 'hf_secret_value_123' } });
    try {
      const { run } = await launchRun(session, 'recipes/demo/tiny-cpu.yaml', 'box');
      assert.ok(run.remoteDir.startsWith(workdir), run.remoteDir);
      const mon = new RunMonitor(session, run.id, { intervalMs: 200 });
      const seen: RunEvent[] = [];
      let disconnects = 0;
      let reconnects = 0;
      mon.on('events', (evs: RunEvent[]) => seen.push(...evs));
      mon.on('disconnected', () => disconnects++);
      mon.on('reconnected', () => reconnects++);
      const followed = mon.follow();

      // the trainer sees the exact values: hostile env verbatim, the secret from the 0600 file
      const trainerPid = await until('the trainer pid', () => {
        try {
          return Number(readFileSync(join(run.remoteDir, 'trainer.pid'), 'utf8')) || undefined;
        } catch {
          return undefined;
        }
      });
      const env = environOf(trainerPid);
      assert.equal(env.get('CONSCIENCE_TEST_HOSTILE'), HOSTILE);
      assert.equal(env.get('HF_TOKEN'), 'hf_secret_value_123');
      assert.equal(existsSync(join(run.remoteDir, 'secrets.env')), false, 'the secrets file is deleted at start');

      await until('step 2', () => seen.some((e) => e.type === 'metrics' && e.step >= 2) || undefined);
      sshd.cutConnections();
      await until('the monitor reconnecting after the cut', () => reconnects > 0 || undefined, 60_000);
      await sshd.restart();
      await until('the monitor reconnecting after the sshd restart', () => reconnects > 1 || undefined, 60_000);
      // a fresh CLI process reattaches from the saved offsets while the run goes on
      const fresh = await cli(root, ['runs', '--format', 'json']);
      assert.equal(fresh.code, 0, fresh.stderr);
      const listed = (JSON.parse(fresh.stdout) as { id: string; state: string }[]).find((x) => x.id === run.id);
      assert.ok(listed && ['running', 'completed', 'starting'].includes(listed.state), JSON.stringify(listed));
      const final = await followed;
      assert.ok(reconnects >= 2, `the monitor reconnected after each cut (${reconnects}; disconnects noticed: ${disconnects})`);
      assert.equal(final?.state, 'completed', final?.error ?? '');
      assert.equal(final?.exitCode, 0);

      const { count } = checkEventsComplete(join(runDir(root, run.id), 'events.jsonl'), join(run.outputDir, 'events.jsonl'));
      // the in-process follower and the fresh CLI process wrote to one store, each event exactly once
      assert.ok(seen.length <= count);
      // a fresh process following the (now finished) run replays every event once and exits
      const logs = await cli(root, ['logs', run.id, '--events', '--follow']);
      assert.equal(logs.code, 0, logs.stderr);
      assert.equal(logs.stdout.trim().split('\n').length, count);

      // secrets never land in the run store or the run folder on the host
      for (const dir of [runDir(root, run.id), run.remoteDir]) {
        for (const f of readdirSync(dir)) {
          if (f === 'output') continue;
          assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /hf_secret_value_123/, `${dir}/${f}`);
        }
      }
      for (const f of ['/tmp/conscience-pwned-1', '/tmp/conscience-pwned-2']) assert.equal(existsSync(f), false, `${f} was created: a value reached a shell unquoted`);
      const rec = await readRun(root, run.id);
      assert.equal(rec?.step, 8);
    } finally {
      await session.close();
    }
  });
});
