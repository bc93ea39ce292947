// Browser-side stand-in for the extension host, bundled by the Chromium tests and the
// benchmark: a stubbed acquireVsCodeApi whose other end is the REAL DashboardSession
// (core/dashboard), so the webview bundle talks to the same host code as in VS Code.
// Messages cross with structuredClone, as VS Code's postMessage copies them. Saves go to
// `saved` instead of a dialog.
import { DashboardSession, type SessionRun } from '../../../extension/src/core/dashboard/session';
import type { RunEvent } from '../../../extension/src/core/runs/events';
import { bigRun, generateRun, type GenOptions } from '../../../extension/test/dashboard/fixtures/grpo';

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

/**
 * false: each message is dispatched at once, inside the host's call (the tests read the page
 * right after). true: each is posted as a task of its own, as VS Code's webview channel
 * delivers them, so work the page does between two messages (e.g. uPlot's draws, queued as
 * microtasks) happens where it would in VS Code (the benchmark's first render).
 */
let asyncDelivery = false;

function toWebview(msg: unknown): void {
  if (asyncDelivery) window.postMessage(msg, '*');
  else window.dispatchEvent(new MessageEvent('message', { data: structuredClone(msg) }));
}

const harness = {
  start(runs: SessionRun[], opts: { throttleMs?: number; title?: string } = {}) {
    harness.prepare(runs, opts);
    harness.connect();
  },
  /** Creates the host session without answering the webview yet (so data can be loaded first). */
  prepare(runs: SessionRun[], opts: { throttleMs?: number; title?: string } = {}) {
    session = new DashboardSession(runs, {
      title: opts.title ?? `Run ${runs.map((r) => r.id).join(', ')}`,
      post: toWebview,
      throttleMs: opts.throttleMs ?? 0,
      saveCsv: async (name, text) => { saved.csv.push({ name, text }); return `/saved/${name}`; },
      savePng: async (name, png) => { saved.png.push({ name, bytes: Array.from(png.subarray(0, 8)), size: png.length }); return `/saved/${name}`; },
      log: (m) => rejected.push(m),
    });
  },
  /** Messages to the page from now on: each as a task of its own (true), or at once (false, the default). */
  deliverAsync(on: boolean) { asyncDelivery = on; },
  /** Delivers the webview's queued messages (its 'ready') to the session. */
  connect() {
    for (const m of queue.splice(0)) deliver(m);
  },
  ingest(runId: string, events: RunEvent[]) { session!.ingest(runId, events); },
  setStatus(runId: string, status: string, cause?: string) { session!.setStatus(runId, status, cause); },
  setConfig(rows: { key: string; values: (string | null)[] }[], keys: number, error: string | null = null) { session!.setConfig(rows, keys, error); },
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
