// Browser-side stand-in for the extension host, bundled by the Chromium tests and the
// benchmark: a stubbed acquireVsCodeApi whose other end is the REAL DashboardSession
// (core/dashboard), so the webview bundle talks to the same host code as in VS Code.
// Messages cross with structuredClone, as VS Code's postMessage copies them. Saves go to
// `saved` instead of a dialog.
import { DashboardSession, type SessionRun } from '../../../extension/src/core/dashboard/session';
import type { RunEvent } from '../../../extension/src/core/runs/events';
import { generateRun, rng, type GenOptions } from '../../../extension/test/dashboard/fixtures/grpo';

const queue: unknown[] = [];
let session: DashboardSession | null = null;
let state: unknown = location.hash.length > 1 ? JSON.parse(decodeURIComponent(location.hash.slice(1))) : undefined;
const saved = { csv: [] as { name: string; text: string }[], png: [] as { name: string; bytes: number[]; size: number }[] };
const received: { type: string; viewId?: number; smoothing?: number; range?: unknown; width?: number }[] = [];
const rejected: string[] = [];

function deliver(m: unknown): void {
  const msg = m as { type: string; viewId?: number; smoothing?: number; range?: unknown; width?: number };
  received.push({ type: msg.type, viewId: msg.viewId, smoothing: msg.smoothing, range: msg.range, width: msg.width });
  void session!.receive(m);
}

(window as unknown as { acquireVsCodeApi: unknown }).acquireVsCodeApi = () => ({
  postMessage(m: unknown) {
    const c = structuredClone(m);
    if (session) deliver(c);
    else queue.push(c);
  },
  getState: () => state,
  setState(s: unknown) {
    state = structuredClone(s);
  },
});

function toWebview(msg: unknown): void {
  window.dispatchEvent(new MessageEvent('message', { data: structuredClone(msg) }));
}

/** A run of `steps` metrics events with exactly `keys` series (the benchmark's shape). */
function bigRun(runId: string, steps: number, keys: number, firstStep = 1, firstSeq = 0): RunEvent[] {
  const names = ['reward', 'reward_std', 'kl', 'loss', 'rewards/safety_format_reward/mean', 'rewards/safety_budget_reward/mean',
    'rewards/refusal_reward/mean', 'completions/clipped_ratio', 'learning_rate', 'grad_norm',
    'safety/tokens_mean', 'safety/budget_mean', 'completions/mean_length'].slice(0, keys);
  const r = rng(7 + firstStep);
  const out: RunEvent[] = [];
  let walk = 0;
  for (let i = 0; i < steps; i++) {
    const step = firstStep + i;
    walk += (r() - 0.5) * 0.02;
    const values: Record<string, number> = {};
    names.forEach((k, j) => { values[k] = Math.sin(step / (500 + 97 * j)) * 0.5 + walk + (r() - 0.5) * 0.1 * (j + 1); });
    out.push({ type: 'metrics', seq: firstSeq + i, time: 1_764_000_000 + step * 0.5, run_id: runId, step, values });
  }
  return out;
}

const harness = {
  start(runs: SessionRun[], opts: { throttleMs?: number; title?: string } = {}) {
    session = new DashboardSession(runs, {
      title: opts.title ?? `Run ${runs.map((r) => r.id).join(', ')}`,
      post: toWebview,
      throttleMs: opts.throttleMs ?? 0,
      saveCsv: async (name, text) => { saved.csv.push({ name, text }); return `/saved/${name}`; },
      savePng: async (name, png) => { saved.png.push({ name, bytes: Array.from(png.subarray(0, 8)), size: png.length }); return `/saved/${name}`; },
      log: (m) => rejected.push(m),
    });
    for (const m of queue.splice(0)) deliver(m);
  },
  ingest(runId: string, events: RunEvent[]) { session!.ingest(runId, events); },
  flush() { session!.flush(); },
  csv() { return session!.csv(); },
  view() { return session!.currentView; },
  generate(o: GenOptions) { return generateRun(o); },
  bigRun,
  /** Sends an arbitrary (possibly malformed) message to the webview. */
  sendRaw(msg: unknown) { toWebview(msg); },
  /** Sends an arbitrary message to the host as if from the webview. */
  async sendToHost(msg: unknown) { await session!.receive(msg); },
  state: () => state,
  saved,
  received,
  rejected,
};
(window as unknown as { __harness: typeof harness }).__harness = harness;
export type Harness = typeof harness;
