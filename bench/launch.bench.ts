// Launch figures over loopback SSH to a real sshd (tests/launch/sshd.ts):
//   launch.ssh_start_s           launch -> run_started on a prepared host (runtime already synced),
//                                median of 4 starts interleaved with the plain-ssh peer's
//   launch.ssh_start_ratio_vs_ssh  median of the per-pair ratios ours / plain ssh, with its
//                                spread (_p10, _p90)
//   launch.resync_runtime_bytes  runtime bytes sent by that (unchanged) relaunch
//   events.latency_ms_p50        an event appended on the host -> in the local run store
// Peers, measured in the same run: OpenSSH's `ssh` starting the same trainer command by hand
// (launch.peer_ssh_start_s), rsync -a of the same runtime folder (launch.peer_rsync_resync_bytes,
// bytes rsync sends for an unchanged tree) and `ssh host tail -F` (events.peer_ssh_tail_latency_ms_p50).
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cancelRun, launchRun, planLaunch } from '../extension/src/core/launch/launcher';
import { RunMonitor } from '../extension/src/core/launch/monitor';
import { shJoin } from '../extension/src/core/launch/quote';
import { LaunchSession } from '../extension/src/core/launch/session';
import { syncToHost } from '../extension/src/core/launch/sync';
import { loadTargets } from '../extension/src/core/launch/targets';
import type { RunEvent } from '../extension/src/core/runs/events';
import { writeRun } from '../extension/src/core/runs/store';
import { startSshd } from '../tests/launch/sshd';
import { interleaved, quantile } from './run';
import { PYTHON, killRunsOf, makeWorkspace, removeWorkspaces } from '../tests/launch/workspace';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForRunStarted(file: string, t0: number, timeoutMs = 300_000): Promise<number> {
  for (;;) {
    try {
      if (readFileSync(file, 'utf8').includes('"type":"run_started"')) return (Date.now() - t0) / 1000;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no run_started in ${file}`);
    await sleep(50);
  }
}

export default async function bench(): Promise<Record<string, number>> {
  const sshd = await startSshd();
  const remote = join(sshd.dir, 'remote');
  const root = makeWorkspace({
    box: {
      type: 'ssh', host: '127.0.0.1', port: sshd.port, user: 'root', identityFile: sshd.userKey, knownHostsFile: sshd.knownHosts,
      sshConfigFile: join(sshd.dir, 'ssh_config'), python: PYTHON, workdir: remote, cancelGrace: 5,
    },
  });
  const session = new LaunchSession(root, (await loadTargets(root)).targets);
  const sshArgs = ['-i', sshd.userKey, '-p', String(sshd.port), '-o', `UserKnownHostsFile=${sshd.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-F', '/dev/null', 'root@127.0.0.1'];
  const out: Record<string, number> = {};
  try {
    // prepare the host: the runtime is synced once
    const plan = await planLaunch(session, 'recipes/demo/long.yaml', 'box');
    await syncToHost(await session.host(plan.target), session.source, plan.files, plan.projectDir);

    // ours (launch -> run_started) and the peer (OpenSSH starting the same trainer command
    // detached: no sync, no bookkeeping), interleaved A B A B after one warm-up pair: the median
    // of the per-pair ratios, with its spread (bench/run.ts `interleaved`).
    const peerOut = join(remote, 'peer-output');
    let resync = -1;
    const ourStart = async () => {
      const t0 = Date.now();
      const { run, sync } = await launchRun(session, 'recipes/demo/long.yaml', 'box');
      const s = await waitForRunStarted(join(run.outputDir, 'events.jsonl'), t0);
      resync = sync.runtimeBytesSent;
      await cancelRun(session, run.id, 5);
      await new RunMonitor(session, run.id).follow();
      return s;
    };
    let peerN = 0;
    const peerStart = async () => {
      const out = `${peerOut}-${peerN++}`;
      mkdirSync(out, { recursive: true });
      // `;` not `&&` before the background job: `a && b &` would keep the session open until b ends
      const peerCmd = `cd ${shJoin([plan.projectDir])} || exit 1; CONSCIENCE_RUN_ID=peer-bench PYTHONPATH=runtime setsid nohup ${shJoin([PYTHON, '-m', 'conscience.train', '--config', `${plan.projectDir}/recipes/demo/long.yaml`, '--output_dir', out])} >/dev/null 2>&1 </dev/null & echo $!`;
      const t1 = Date.now();
      const r = spawnSync('ssh', [...sshArgs, peerCmd], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`peer ssh failed: ${r.stderr}`);
      try {
        return await waitForRunStarted(join(out, 'events.jsonl'), t1);
      } finally {
        // also when it never reports starting (the wait timed out): long.yaml trains until stopped
        try {
          process.kill(-Number(r.stdout.trim()), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    };
    const starts = await interleaved(ourStart, peerStart, { pairs: 4, warmup: 1 });
    out['launch.ssh_start_s'] = +starts.ours.toFixed(3);
    out['launch.peer_ssh_start_s'] = +starts.peer.toFixed(3);
    // ours / plain ssh (lower is better for us), pair by pair: with an even number of pairs the
    // median (and p10 / p90) of the inverses is not the inverse of the harness's peer / ours median
    const oursVsSsh = starts.pairRatios.map((r) => 1 / r);
    out['launch.ssh_start_ratio_vs_ssh'] = +quantile(oursVsSsh, 0.5).toFixed(3);
    out['launch.ssh_start_ratio_vs_ssh_p10'] = +quantile(oursVsSsh, 0.1).toFixed(3);
    out['launch.ssh_start_ratio_vs_ssh_p90'] = +quantile(oursVsSsh, 0.9).toFixed(3);
    out['launch.resync_runtime_bytes'] = resync;

    // peer: rsync of the runtime folder, unchanged (its protocol still exchanges the file list)
    const rsyncDest = join(remote, 'rsync-peer');
    const rsh = `ssh ${sshArgs.slice(0, -1).join(' ')}`;
    const rsync = (args: string[]) => spawnSync('rsync', ['-a', '--stats', '-e', rsh, ...args, `${join(root, 'runtime')}/`, `root@127.0.0.1:${rsyncDest}/`], { encoding: 'utf8' });
    rsync([]);
    const st = rsync([]);
    const sent = /Total bytes sent: ([\d,]+)/.exec(st.stdout)?.[1];
    if (sent) out['launch.peer_rsync_resync_bytes'] = Number(sent.replace(/,/g, ''));

    // events latency: append on the host, time until the local store has the line
    const dir = join(remote, 'latency');
    mkdirSync(join(dir, 'output'), { recursive: true });
    const file = join(dir, 'output', 'events.jsonl');
    writeFileSync(file, '');
    const now = Date.now() / 1000;
    await writeRun(root, {
      id: 'latency-bench', recipe: 'recipes/demo/long.yaml', target: 'box', targetKind: 'ssh', host: 'bench', projectDir: dir, remoteDir: dir,
      outputDir: join(dir, 'output'), python: PYTHON, state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, createdAt: now, updatedAt: now,
      command: '', attempts: 1, sawStarted: true, startedAt: now,
    });
    const appended = new Map<number, number>();
    const ours: number[] = [];
    const mon = new RunMonitor(session, 'latency-bench');
    mon.on('events', (evs: RunEvent[]) => {
      const t = performance.now();
      for (const e of evs) ours.push(t - appended.get(e.seq)!);
    });
    const peerLat: number[] = [];
    const tail = spawn('ssh', [...sshArgs, `tail -c +1 -F ${shJoin([file])}`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    tail.stdout.on('data', (d: Buffer) => {
      const t = performance.now();
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const seq = JSON.parse(line).seq as number;
        peerLat.push(t - appended.get(seq)!);
      }
    });
    const following = mon.follow();
    await sleep(1500);
    const N = 40;
    for (let seq = 0; seq < N; seq++) {
      appended.set(seq, performance.now());
      appendFileSync(file, JSON.stringify({ type: 'heartbeat', seq, time: Date.now() / 1000, step: seq }) + '\n');
      await sleep(137);
    }
    await sleep(1500);
    mon.stop();
    await following;
    tail.kill();
    if (ours.length !== N) throw new Error(`latency: ${ours.length} of ${N} events reached the store`);
    out['events.latency_ms_p50'] = Math.round(median(ours));
    out['events.latency_ms_max'] = Math.round(Math.max(...ours));
    if (peerLat.length) {
      out['events.peer_ssh_tail_latency_ms_p50'] = Math.round(median(peerLat));
    }
  } finally {
    await session.close();
    killRunsOf(root);
    removeWorkspaces();
    sshd.stop();
  }
  return out;
}
