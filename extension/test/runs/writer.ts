// The runtime's own events writer (runtime/conscience/events.py) driven from the tests of the
// runs/ folder, and what the dashboard shows of an events file (the series its charts draw).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RunSeries } from '../../src/core/dashboard/series';
import { formatProblem, readEventsFrom, type ParseProblem, type RunEvent } from '../../src/core/runs/events';

export const REPO = resolve(__dirname, '..', '..', '..');
export const PYTHON = join(REPO, '.venv', 'bin', 'python');

/**
 * Python source that runs the runtime's EventWriter on `out` with its clock at `t0` (one second
 * per event): a run_started, then metrics for steps `from..to` with reward attempt*1000+step.
 */
const py = (v: string | number | undefined) => (v === undefined ? 'None' : JSON.stringify(v));
export function attempt(out: string, n: number, from: number, to: number, t0: number, opts: { resume?: boolean; waitFor?: string; cutTo?: number; staged?: boolean } = {}): string {
  return `
import os, sys, time
sys.path.insert(0, ${JSON.stringify(join(REPO, 'runtime'))})
from conscience import events
out = ${JSON.stringify(out)}
wait_for = ${py(opts.waitFor)}
if wait_for is not None:
    deadline = time.monotonic() + 30
    while not os.path.exists(wait_for):
        if time.monotonic() > deadline:
            sys.exit("no go-ahead from the test")
        time.sleep(0.01)
cut_to = ${py(opts.cutTo)}
target = out
if ${opts.staged ? 'True' : 'False'}:
    # the requeued job writes on node-local scratch, from the copy it has (up to cut_to), and
    # syncs the file back over the shared one at the end (a temp file renamed over it, as rsync does)
    target = os.path.join(out, ".scratch")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(out, "events.jsonl"), "rb") as f:
        kept = f.read(cut_to)
    with open(os.path.join(target, "events.jsonl"), "wb") as f:
        f.write(kept)
elif cut_to is not None:
    os.truncate(os.path.join(out, "events.jsonl"), cut_to)  # the tail the preempted node never synced
clock = [${t0}.0]
def now():
    clock[0] += 1.0
    return clock[0]
events.time.time = now  # this node's clock
w = events.EventWriter(target, resume=${opts.resume === false ? 'False' : 'True'})
w.emit("run_started", max_steps=40, resumed_from=${from > 1 ? `"/out/checkpoint-${from - 1}"` : 'None'})
for step in range(${from}, ${to + 1}):
    w.emit("metrics", step=step, values={"reward": ${n} * 1000 + step})
w.close()
if target != out:
    os.replace(os.path.join(target, "events.jsonl"), os.path.join(out, "events.jsonl"))
`;
}

export function write(out: string, n: number, from: number, to: number, t0: number, opts: { resume?: boolean } = {}): void {
  const r = spawnSync(PYTHON, ['-c', attempt(out, n, from, to, t0, opts)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** What the dashboard's charts show: each step's reward, as its series store keeps them. */
export function shown(events: RunEvent[]): Array<[number, number]> {
  const s = new RunSeries('r');
  for (const e of events) if (e.type === 'metrics') s.append(e);
  const reward = s.col('reward') ?? new Float64Array(s.len);
  return [...s.step].map((step, i) => [step, reward[i]!]);
}

/** What a reader opening the file now shows. */
export async function fresh(file: string): Promise<Array<[number, number]>> {
  return shown((await readEventsFrom(file, 0)).events);
}

/** Bytes of the first `n` lines of a file. */
export const lineBytes = (file: string, n: number) => Buffer.byteLength(readFileSync(file, 'utf8').split('\n').slice(0, n).join('\n') + '\n');
export const steps = (from: number, to: number, n: number): Array<[number, number]> => Array.from({ length: to - from + 1 }, (_, i) => [from + i, n * 1000 + from + i]);
export const problemText = (ps: ParseProblem[]) => ps.map(formatProblem).join('\n');
