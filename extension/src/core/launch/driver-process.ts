// The process driver (local and SSH targets): a generated wrapper started detached in its own
// session (setsid); status from the session's live processes and the wrapper's exit_code file;
// cancel = SIGTERM to the process group, SIGKILL after the grace period, then any rank that left
// the group, found by the launch token in its environment. Both check first that the recorded
// group still carries the run's launch token (a reused pid is someone else's).
import type { RunRecord } from '../runs/store';
import type { Observation, PrepareSpec, Prepared, TargetDriver } from './driver';
import type { Host } from './host';
import { shJoin, shQuote } from './quote';
import { detachedStartCommand, trainArgv, wrapperScript } from './scripts';
import type { Target } from './targets';

export interface ProcessStatus {
  alive: boolean;
  exitCode?: number | null;
}

/**
 * Shell function `owned`: the recorded session $g is still the run's, i.e. a live process of it
 * (its leader, or any member) has the run's launch token $tok in its environment (Linux /proc).
 * A pid is reused once the run has ended: the group recorded may then be someone else's, which
 * is neither reported as the run nor signalled. A run recorded without a token (none) is trusted
 * as recorded. Zombies have an empty environ, so they never count.
 */
const OWNED = [
  'owned() {',
  '  if [ "$tok" = none ]; then',
  '    if command -v ps >/dev/null 2>&1; then ps -o stat= --sid "$g" 2>/dev/null | grep -q "^[^Z]"; else kill -0 -"$g" 2>/dev/null; fi',
  '    return',
  '  fi',
  '  for p in "$g" $(ps -o pid= --sid "$g" 2>/dev/null); do',
  '    grep -qzxF "CONSCIENCE_LAUNCH_TOKEN=$tok" "/proc/$p/environ" 2>/dev/null && return 0',
  '  done',
  '  return 1',
  '}',
].join('\n');

export async function processStatus(host: Host, rec: RunRecord): Promise<ProcessStatus> {
  const sid = rec.pgid ?? rec.pid;
  if (!sid) return { alive: true };
  // alive first, then the exit code: the wrapper writes exit_code before it ends, so a run seen
  // gone has its code on disk; read the other way round, a wrapper ending between the two reads
  // was a run that "disappeared without an exit code"
  const cmd =
    `g=${shQuote(sid)}; tok=${shQuote(rec.launchToken || 'none')}\n${OWNED}\n` +
    `owned && echo alive=1 || echo alive=0; ` +
    `printf 'exit=%s\\n' "$(cat ${shQuote(rec.remoteDir + '/exit_code')} 2>/dev/null)"`;
  const r = await host.exec(cmd);
  if (r.code !== 0) throw new Error(`${host.label}: status check failed: ${r.stderr.trim()}`);
  const ec = /exit=(\d*)/.exec(r.stdout)?.[1];
  return { alive: /alive=1/.test(r.stdout), exitCode: ec ? Number(ec) : null };
}

export const processDriver: TargetDriver = {
  kind: 'process',
  verb: 'started (detached, own session) with',

  prepare(p: PrepareSpec): Prepared {
    const argv = trainArgv({ python: p.python, recipe: p.recipe, outputDir: p.outputDir, launch: p.info.launch, kind: p.info.kind });
    return {
      script: wrapperScript({ runId: p.runId, launchToken: p.launchToken, projectDir: p.projectDir, runDir: p.runDir, env: p.target.env, argv }),
      scriptName: 'run.sh',
      command: detachedStartCommand(p.runDir, p.launchToken),
    };
  },

  async find(host: Host, rec: RunRecord): Promise<boolean> {
    // the wrapper writes "pid pgid" first thing (the launch removed the previous attempt's file
    // before it started this one, so a pid file is this attempt's); before it has, a process
    // with the run's launch token in its environment is the wrapper just started, the leader of
    // its own session
    const tok = shQuote(rec.launchToken || '');
    const r = await host.exec(
      `b=$(cat ${shQuote(rec.remoteDir + '/pid')} 2>/dev/null); if [ -n "$b" ]; then echo "file=$b"; exit 0; fi\n` +
      `[ -n ${tok} ] || exit 0\n` +
      `for e in /proc/[0-9]*/environ; do grep -qzxF "CONSCIENCE_LAUNCH_TOKEN="${tok} "$e" 2>/dev/null || continue; ` +
      `p=\${e#/proc/}; p=\${p%/environ}; echo "token=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f4)"; exit 0; done`,
    );
    if (r.code !== 0) throw new Error(`${host.label}: looking for the process of run ${rec.id} failed: ${r.stderr.trim()}`);
    const file = /file=(\d+) (\d+)/.exec(r.stdout);
    const sid = /token=(\d+)/.exec(r.stdout)?.[1];
    if (file) {
      rec.pid = Number(file[1]);
      rec.pgid = Number(file[2]);
    } else if (sid) {
      rec.pid = rec.pgid = Number(sid);
    } else return false;
    rec.state = 'starting';
    return true;
  },

  async submit(host: Host, _t: Target, command: string, rec: RunRecord): Promise<void> {
    const r = await host.exec(command);
    const pid = Number(r.stdout.trim().split('\n').pop());
    if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) throw new Error(`starting the run on ${host.label} failed: ${(r.stderr || r.stdout).trim() || 'exit ' + r.code}`);
    rec.pid = pid;
    rec.pgid = pid;
    // the wrapper records its own pid and process group
    for (let i = 0; i < 50; i++) {
      const b = await host.readFrom(`${rec.remoteDir}/pid`);
      const m = b && /^(\d+) (\d+)/.exec(b.toString());
      if (m) {
        rec.pid = Number(m[1]);
        rec.pgid = Number(m[2]);
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    rec.state = 'starting';
  },

  async status(host: Host, rec: RunRecord): Promise<Observation> {
    return { process: await processStatus(host, rec) };
  },

  async cancel(host: Host, rec: RunRecord, grace: number): Promise<void> {
    if (!rec.pgid) throw new Error(`run ${rec.id} has no process group recorded`);
    // TERM to the run's process group; SIGKILL when it outlives the grace period; then any rank that
    // left the group (accelerate starts its workers in their own session) is found by the launch token
    // the wrapper put in its environment (unique per start, so a quick resume is never hit). Detached, so it finishes even if we disconnect.
    // The group is signalled only while it is still the run's (`owned`: the launch token in a
    // member's environment), never a group that reused the pid after the run ended.
    const killer = [
      'g=$1; n=$2; tok=$3',
      OWNED,
      'if owned; then',
      '  kill -TERM -- -"$g" 2>/dev/null',
      '  i=0; while [ "$i" -lt "$n" ]; do ps -o stat= --sid "$g" 2>/dev/null | grep -q "^[^Z]" || break; sleep 1; i=$((i+1)); done',
      '  owned && kill -KILL -- -"$g" 2>/dev/null',
      'fi',
      'if [ "$tok" != none ]; then',
      '  for e in /proc/[0-9]*/environ; do if grep -qzxF "CONSCIENCE_LAUNCH_TOKEN=$tok" "$e" 2>/dev/null; then p=${e#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; fi; done',
      'fi',
      'exit 0',
    ].join('\n');
    const r = await host.exec(`setsid nohup bash -c ${shQuote(killer)} conscience-cancel ${shJoin([rec.pgid, grace, rec.launchToken || 'none'])} >/dev/null 2>&1 </dev/null &`);
    if (r.code !== 0) throw new Error(`cancel on ${host.label} failed: ${r.stderr.trim()}`);
  },

  logs(rec: RunRecord) {
    return { stdout: `${rec.remoteDir}/stdout.log`, stderr: `${rec.remoteDir}/stderr.log` };
  },

  async settle(): Promise<void> {
    // the wrapper deleted the secrets file at start; nothing is left
  },

  async gone(host: Host, rec: RunRecord): Promise<boolean> {
    return !rec.pgid || !(await processStatus(host, rec)).alive;
  },
};
