import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isViewState, parseToExtension, parseToWebview, type ToExtension, type ToWebview } from '../../src/core/protocol/dashboard';
import * as inspector from '../../src/core/protocol/inspector';
import * as evalPanel from '../../src/core/protocol/eval';
import { int, literal, nullable, optional, protocol, str, type Infer } from '../../src/core/protocol/validate';

// Compile-time: the message types are what the checks accept (tsc fails on a drift).
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
const typesFollowChecks: [
  Equal<Extract<ToExtension, { type: 'exportCsv' }>, { type: 'exportCsv'; reqId: number }>,
  Equal<Extract<ToWebview, { type: 'error' }>, { type: 'error'; message: string }>,
  Equal<Extract<ToExtension, { type: 'samplesQuery' }>['reward'], { name: string; min: number | null; max: number | null } | null>,
] = [true, true, true];
void typesFollowChecks;

const view = { xAxis: 'step', range: null, smoothing: 0.6, width: 800, hidden: [] };

test('host accepts the messages the webview sends', () => {
  for (const m of [
    { type: 'ready', view: null },
    { type: 'ready', view },
    { type: 'view', viewId: 3, ...view, range: [10, 20] },
    { type: 'exportCsv', reqId: 1 },
    { type: 'exportPng', reqId: 2, chartId: 'kl', dataUrl: 'data:image/png;base64,iVBORw0KGgo=' },
  ]) {
    const r = parseToExtension(m);
    assert.ok(r.ok, `${JSON.stringify(m)}: ${!r.ok && r.error}`);
  }
});

test('host rejects malformed or hostile messages with the offending path', () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected object/],
    ['ready', /expected object/],
    [{ type: 'rm -rf' }, /unknown message type/],
    [{ type: 'view', viewId: 1, ...view, smoothing: 1.5 }, /message\.smoothing/],
    [{ type: 'view', viewId: 1, ...view, xAxis: 'log' }, /message\.xAxis/],
    [{ type: 'view', viewId: 1, ...view, width: 0 }, /message\.width/],
    [{ type: 'view', viewId: 1, ...view, width: 1e9 }, /message\.width/],
    [{ type: 'view', viewId: 1, ...view, range: [5, 1] }, /min must be below max/],
    [{ type: 'view', viewId: 1, ...view, range: [0, Infinity] }, /message\.range\[1\]/],
    [{ type: 'exportCsv', reqId: 1.5 }, /message\.reqId: expected integer/],
    [{ type: 'exportCsv', reqId: 1, path: '/etc/passwd' }, /message\.path: unexpected field/],
    [{ type: 'exportPng', reqId: 1, chartId: 'kl', dataUrl: 'javascript:alert(1)' }, /not a PNG data URL/],
    [{ type: 'ready', view: { ...view, hidden: 'all' } }, /message\.view\.hidden: expected array/],
  ];
  for (const [m, re] of cases) {
    const r = parseToExtension(m);
    assert.equal(r.ok, false, `accepted ${JSON.stringify(m)}`);
    if (!r.ok) assert.match(r.error, re);
  }
});

test('a field named like what every object inherits is an unknown field, in every panel protocol', () => {
  for (const k of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__proto__']) {
    // JSON.parse makes "__proto__" an own field, as a message from a webview would have it
    const parsed = [
      parseToExtension(JSON.parse(`{"type":"exportCsv","reqId":1,${JSON.stringify(k)}:{"polluted":true}}`)),
      inspector.parseToExtension(JSON.parse(`{"type":"ready",${JSON.stringify(k)}:1}`)),
      evalPanel.parseToExtension(JSON.parse(`{"type":"close","index":0,${JSON.stringify(k)}:"x"}`)),
    ];
    for (const r of parsed) {
      assert.equal(r.ok, false, `accepted a message with a ${k} field`);
      if (!r.ok) assert.equal(r.error, `message.${k}: unexpected field`);
    }
  }
});

test('a view from ready or from a restored state has the same range check as a view message', () => {
  const backwards = { ...view, range: [50, 10] };
  const r = parseToExtension({ type: 'ready', view: backwards });
  assert.equal(r.ok, false, 'a ready with range [50, 10] was accepted');
  if (!r.ok) assert.match(r.error, /message\.view\.range: min must be below max/);
  assert.equal(isViewState(backwards), false);
  assert.equal(isViewState({ ...view, range: [3, 3] }), false);
  assert.ok(parseToExtension({ type: 'ready', view: { ...view, range: [10, 50] } }).ok);
});

test('hiding the longest series a layout can carry keeps later views and the restored state valid', () => {
  const chartId = 'c'.repeat(256);
  const runId = 'r'.repeat(256);
  const key = 'rewards/' + 'k'.repeat(512 - 'rewards//mean'.length) + '/mean';
  assert.ok(parseToWebview({ type: 'layout', title: 't', runs: [], charts: [{ id: chartId, title: 'R', series: [{ key, label: 'k' }] }] }).ok);
  // the webview stores a legend toggle as chartId/runId/key, or chartId/runId/key/raw for the raw line
  const hidden = [`${chartId}/${runId}/${key}`, `${chartId}/${runId}/${key}/raw`];
  const r = parseToExtension({ type: 'view', viewId: 2, ...view, range: [0, 10], hidden });
  assert.ok(r.ok, !r.ok ? r.error : '');
  assert.ok(isViewState({ ...view, hidden }));
});

test('webview accepts windows as Float64Array or plain arrays, and rejects bad series', () => {
  const w = {
    type: 'window', viewId: 0, xAxis: 'step', range: null, extent: [1, 3], smoothing: 0,
    charts: [{ chartId: 'kl', runs: [{ runId: 'a', x: new Float64Array([1, 2, 3]), y: { kl: [0.1, null, 0.3] }, total: 3 }] }],
  };
  assert.ok(parseToWebview(w).ok);
  const bad = structuredClone(w) as typeof w;
  (bad.charts[0].runs[0].y as Record<string, unknown>).kl = ['0.1'];
  const r = parseToWebview(bad);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.error, /message\.charts\[0\]\.runs\[0\]\.y\["kl"\]\[0\]: expected number or null/);
  const row = { runId: 'a', step: 1, prompt: 1, completion: '', safety: null, answer: '', safetyTokens: null, rewards: {}, budget: null, label: null };
  const page = { type: 'samples', page: 0, label: null, reward: null, pages: 1, total: 1, steps: 1, labels: [], rewardNames: [] };
  assert.ok(parseToWebview({ ...page, rows: [{ ...row, prompt: 'p' }] }).ok);
  const r2 = parseToWebview({ ...page, rows: [row] });
  assert.equal(r2.ok, false);
  if (!r2.ok) assert.match(r2.error, /rows\[0\]\.prompt: expected string/);
  assert.equal(parseToWebview({ type: 'error', message: 'x'.repeat(10_000) }).ok, false);
});

test('protocol() declares a new panel once: parsers and inferred types from the same checks', () => {
  const panel = protocol({
    toWebview: { show: { text: str(20), count: optional(int(0)) }, error: { message: str(100) } },
    toExtension: { ready: {}, pick: { index: int(0, 9), mode: nullable(literal('a', 'b')) } },
  });
  type H = Infer<typeof panel.toExtension>;
  const typed: [Equal<H, { type: 'ready' } | { type: 'pick'; index: number; mode: 'a' | 'b' | null }>,
    Equal<Extract<Infer<typeof panel.toWebview>, { type: 'show' }>, { type: 'show'; text: string; count?: number }>] = [true, true];
  void typed;
  assert.deepEqual(panel.parseToExtension({ type: 'pick', index: 3, mode: 'b' }), { ok: true, value: { type: 'pick', index: 3, mode: 'b' } });
  assert.deepEqual(panel.parseToExtension({ type: 'pick', index: 10, mode: null }), { ok: false, error: 'message.index: 10 outside [0, 9]' });
  assert.deepEqual(panel.parseToExtension({ type: 'pick', index: 1, mode: 'c' }), { ok: false, error: 'message.mode: expected one of "a", "b"' });
  assert.deepEqual(panel.parseToExtension({ type: 'ready', extra: 1 }), { ok: false, error: 'message.extra: unexpected field' });
  assert.ok(panel.parseToWebview({ type: 'show', text: 'hi' }).ok, 'an optional field may be left out');
  assert.deepEqual(panel.parseToWebview({ type: 'show', text: 'x'.repeat(21) }), { ok: false, error: 'message.text: string longer than 20' });
});
