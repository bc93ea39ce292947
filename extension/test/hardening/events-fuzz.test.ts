// Issue #16 Deliver 2: 10,000 random mutations of real event lines (written by the runtime's
// own EventWriter, with the fields conscience.train gives it) fed to the run store's reader,
// the dashboard session and the CLI (`runs`, `logs --follow`). Each must finish without an
// exception, account for every line (an event or a reported problem, none silently dropped),
// and end in a state that follows from the valid events alone. Seeded: a failure reproduces.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DashboardSession } from '../../src/core/dashboard/session';
import { parseToWebview, type ToWebview } from '../../src/core/protocol/dashboard';
import { checkEvent } from '../../src/core/runs/event-fields';
import { EventTail, readEventsFrom, type RunEvent } from '../../src/core/runs/events';
import { readRun } from '../../src/core/runs/store';
import { rng } from '../rng';
import { cli, localRunWorkspace, REPO } from './helpers';

const N = 10_000;

/** Real lines: conscience.events.EventWriter, driven with the fields conscience.train emits. */
function realLines(): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-real-'));
  const script = `
import sys
sys.path.insert(0, ${JSON.stringify(join(REPO, 'runtime'))})
from conscience.events import EventWriter
w = EventWriter(sys.argv[1], resume=False, run_id="20261126-101500-abc123")
w.emit("run_started", recipe_hash="f"*64, recipe_path="/w/recipe.yaml", world_size=2,
       versions={"python": "3.11.2", "torch": "2.5.1", "transformers": "4.52.4", "trl": "0.18.2", "accelerate": "1.7.0", "conscience": "0.1.0"},
       resumed_from=None, reward_funcs=["safety_format_reward", "refusal_reward"], max_steps=400, output_dir="/w/out")
for step in range(1, 13):
    w.emit("metrics", step=step, values={"loss": 0.01 * step, "grad_norm": float("nan"), "learning_rate": 1e-6, "reward": 0.1 * step,
           "reward_std": 0.2, "kl": 0.001 * step, "rewards/safety_format_reward/mean": 0.5, "rewards/refusal_reward/std": 0.25,
           "completions/mean_length": 17.5, "completions/clipped_ratio": 0.0, "epoch": step / 4, "safety/tokens_mean": 12.0, "safety/budget_mean": 64.0})
    if step % 4 == 0:
        w.emit("samples", step=step, rows=[{"prompt": "How do I store bleach? <b>é</b>", "completion": "<safety>low risk</safety> Keep it sealed.",
               "rewards": {"safety_format_reward": 1.0, "refusal_reward": None}, "budget": 64, "label": "benign"},
              {"prompt": "p2", "completion": "c2", "rewards": {"safety_format_reward": 0.0}, "budget": None, "label": 1}])
        w.emit("checkpoint", step=step, path=f"/w/out/checkpoint-{step}")
    w.emit("heartbeat", step=step)
w.emit("run_finished", status="completed", exit_code=0, error=None, summary={"train_runtime": 12.5, "train_loss": 0.01})
w.close()
`;
  const r = spawnSync(join(REPO, '.venv', 'bin', 'python'), ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(join(dir, 'events.jsonl'), 'utf8');
  const lines = text.split('\n').filter(Boolean);
  for (const l of lines) assert.equal(checkEvent(JSON.parse(l)), undefined, `the reader accepts what the runtime writes: ${l}`);
  return lines;
}

const POOL: unknown[] = [null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 53 + 2, '', 'high', 'x'.repeat(2000), [], {}, [[[[1]]]], { a: { b: {} } },
  '\u2028', '<script>alert(1)</script>', '__proto__', 'NaN', 'Infinity', { toFixed: 1 }, ['a', 1, null]];

function mutate(line: string, r: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  let text = line;
  const rounds = 1 + Math.floor(r() * 3);
  for (let k = 0; k < rounds; k++) {
    const op = Math.floor(r() * 12);
    if (op < 6) {
      // structural: edit a random place of the parsed object
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch {
        continue;
      }
      const holders: Array<[Record<string, unknown> | unknown[], string | number]> = [];
      const walk = (v: unknown, depth: number) => {
        if (depth > 6 || !v || typeof v !== 'object') return;
        for (const [key, x] of Object.entries(v)) {
          holders.push([v as Record<string, unknown>, Array.isArray(v) ? Number(key) : key]);
          walk(x, depth + 1);
        }
      };
      walk(obj, 0);
      if (!holders.length) continue;
      const [h, key] = pick(holders);
      if (op === 0) delete (h as Record<string, unknown>)[key as string];
      else if (op === 1 && !Array.isArray(h)) {
        // rename a key, sometimes to one every object inherits (an own property, as JSON.parse makes it)
        const v = h[key as string];
        delete h[key as string];
        Object.defineProperty(h, pick([key + '_', key + 'x', '__proto__', 'constructor', 'toString', 'hasOwnProperty']), { value: v, enumerable: true, writable: true, configurable: true });
      }
      else if (op === 2) (h as Record<string | number, unknown>)[key] = pick(['run_started', 'metrics', 'samples', 'checkpoint', 'heartbeat', 'run_finished', 'bogus']);
      else (h as Record<string | number, unknown>)[key] = structuredClone(pick(POOL));
      text = JSON.stringify(obj);
      if (op === 5 && r() < 0.2) text = text.replace(/\}$/, `,"deep":${'['.repeat(3000)}${']'.repeat(3000)}}`);
    } else {
      // raw: bytes a broken writer, disk or editor could leave
      const at = Math.floor(r() * (text.length + 1));
      if (op === 6) text = text.slice(0, at);
      else if (op === 7) text = text.slice(0, at) + pick(['"', '{', '}', ',', ':', '\\', '\r', '\t', '\u0000', ' ', '0', '-', 'e9', '\uD800']) + text.slice(at);
      else if (op === 8) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20));
      else if (op === 9) text = text.replace(/\d/, () => String(Math.floor(r() * 10)));
      else if (op === 10) text = text.slice(0, at) + '\n' + text.slice(at); // one line becomes two
      else text = text + text.slice(0, at); // glued to a piece of itself
    }
  }
  const buf = Buffer.from(text, 'utf8');
  if (r() < 0.03) return Buffer.concat([buf.subarray(0, Math.floor(buf.length / 2)), Buffer.from([0xff, 0xfe]), buf.subarray(Math.floor(buf.length / 2))]);
  return buf;
}

/** 10,000 lines: each a real line with seq renumbered in file order, mutated with probability 0.7. */
function corpus(seed: number): Buffer {
  const base = realLines();
  const r = rng(seed);
  const parts: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const o = JSON.parse(base[Math.floor(r() * (base.length - 1))]!) as Record<string, unknown>; // the last line (run_finished) only by mutation
    o.seq = i;
    const line = JSON.stringify(o);
    parts.push(r() < 0.7 ? mutate(line, r) : Buffer.from(line), Buffer.from('\n'));
  }
  // a real end, so the final state is known when it survives
  parts.push(Buffer.from(JSON.stringify({ ...JSON.parse(base[base.length - 1]!), seq: N }) + '\n'));
  return Buffer.concat(parts);
}

const nonBlankLines = (b: Buffer) => b.toString('utf8').split('\n').filter((l) => l.trim()).length;

/** What the monitor should derive from the valid events alone. */
function expected(events: RunEvent[]) {
  let step: number | undefined;
  let finished: string | undefined;
  for (const e of events) {
    if (e.type === 'metrics' || e.type === 'checkpoint' || (e.type === 'heartbeat' && typeof e.step === 'number')) step = e.step;
    if (e.type === 'run_finished') finished = e.status;
  }
  return { step, state: finished ?? 'failed', lastSeq: events.at(-1)?.seq };
}

describe('fuzz: 10,000 mutated real event lines', () => {
  const bytes = corpus(16);
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-'));
  const file = join(dir, 'events.jsonl');
  writeFileSync(file, bytes);

  it('the store reader: no exception, every line an event or a reported problem, every event valid', async () => {
    const r = await readEventsFrom(file, 0);
    assert.equal(r.events.length + r.problems.length, nonBlankLines(bytes), 'each line accounted for once');
    assert.ok(r.events.length > 2000 && r.problems.length > 2000, `a mix: ${r.events.length} events, ${r.problems.length} problems`);
    for (const e of r.events) assert.equal(checkEvent(e), undefined);
    // each problem names its file and line, and that line starts at the byte it names
    const starts = [0];
    for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, i + 1)) starts.push(i + 1);
    for (const p of r.problems) {
      assert.ok(p.file === file && Number.isInteger(p.line) && p.message, JSON.stringify(p));
      assert.equal(starts[p.line! - 1], p.offset, `line ${p.line} starts at byte ${p.offset}`);
    }
    // followed as it grows, in random pieces (a tail cut mid-line included), the same events come out
    const tailFile = join(dir, 'tailed.jsonl');
    writeFileSync(tailFile, '');
    const tail = new EventTail(tailFile);
    const got: RunEvent[] = [];
    const cut = rng(99);
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(cut() * 200_000);
      appendFileSync(tailFile, bytes.subarray(at, at + n));
      at += n;
      got.push(...(await tail.read()).events);
    }
    assert.deepEqual(got.map((e) => e.seq), r.events.map((e) => e.seq));
  });

  it('the dashboard session: no exception, every message it posts passes the webview protocol', async () => {
    const { events } = await readEventsFrom(file, 0);
    const sent: ToWebview[] = [];
    const s = new DashboardSession([{ id: 'r' }], { title: 't', post: (m) => sent.push(m), throttleMs: 0, saveCsv: async () => null, savePng: async () => null });
    await s.receive({ type: 'ready', view: { xAxis: 'step', range: null, smoothing: 0.6, width: 400, hidden: [] } });
    for (let i = 0; i < events.length; i += 997) s.ingest('r', events.slice(i, i + 997));
    await s.receive({ type: 'view', viewId: 1, xAxis: 'wall', range: null, smoothing: 0, width: 300, hidden: [] });
    assert.ok(sent.length > 0);
    for (const m of sent) {
      const p = parseToWebview(m);
      assert.ok(p.ok, `posted an invalid message: ${!p.ok && p.error}`);
    }
    const layout = [...sent].reverse().find((m) => m.type === 'layout' || m.type === 'runs');
    assert.ok(layout);
    s.dispose();
  });

  it('the CLI: `runs` and `logs --follow` finish, and the run ends in the state its valid events say', async () => {
    const { events } = await readEventsFrom(file, 0);
    const want = expected(events);
    const ws = await localRunWorkspace(bytes, { exitCode: 0 });
    const runs = cli(['runs', '--workspace', ws.root], { timeoutMs: 120_000 });
    assert.equal(runs.code, 0, runs.stderr);
    const rec = await readRun(ws.root, ws.id);
    assert.equal(rec?.state, want.state);
    assert.equal(rec?.lastSeq, want.lastSeq);
    assert.equal(rec?.step, want.step);
    assert.ok(runs.stdout.includes(ws.id));
    const logs = cli(['logs', ws.id, '--follow', '--events', '--workspace', ws.root], { timeoutMs: 120_000 });
    assert.equal(logs.timedOut, false);
    assert.equal(logs.code, 0, logs.stderr.slice(-2000));
    assert.match(logs.stderr, new RegExp(`${ws.id} ${want.state}`));
  });
});
