import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dashboardHtml, makeNonce } from '../../src/core/dashboard/html';
import { DashboardSession } from '../../src/core/dashboard/session';
import type { ToWebview } from '../../src/core/protocol/dashboard';
import { generateRun } from './fixtures/grpo';

test('the webview HTML has a strict CSP, one nonce\'d script and escapes what it embeds', () => {
  const nonce = makeNonce();
  assert.match(nonce, /^[A-Za-z0-9_-]{32}$/);
  assert.notEqual(makeNonce(), nonce);
  const html = dashboardHtml({
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net', nonce,
    scriptUri: 'https://x/dashboard.js', styleUri: 'https://x/dashboard.css', title: 'Run <script>alert(1)</script>',
  });
  const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1];
  assert.match(csp, /^default-src 'none'; /);
  assert.match(csp, new RegExp(`script-src 'nonce-${nonce}'(;|$)`));
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(html.match(/<script/g)?.length, 1);
  assert.match(html, new RegExp(`<script nonce="${nonce}" src="https://x/dashboard.js"></script>`));
  assert.match(html, /<title>Run &lt;script&gt;alert\(1\)&lt;\/script&gt;<\/title>/);
});

test('the run store\'s state wins over the state read from events', async () => {
  const sent: ToWebview[] = [];
  const s = new DashboardSession([{ id: 'a' }], { title: 't', post: (m) => sent.push(m), throttleMs: 0, saveCsv: async () => null, savePng: async () => null });
  s.setStatus('a', 'cancelling');
  s.ingest('a', generateRun({ runId: 'a', steps: 5, finished: false }));
  await s.receive({ type: 'ready', view: null });
  const layout = sent.find((m) => m.type === 'layout');
  assert.ok(layout && layout.type === 'layout' && layout.runs[0].status === 'cancelling');
  s.setStatus('a', 'cancelled');
  const runs = sent.filter((m) => m.type === 'runs').pop();
  assert.ok(runs && runs.type === 'runs' && runs.runs[0].status === 'cancelled');
});
