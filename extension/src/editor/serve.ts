// Editor adapter for the serving gateway: a command that starts `conscience serve` for a chosen
// upstream in a terminal (the bundled CLI run by the editor's own Node, no shell line), one to
// stop it, and a status bar item that polls the gateway's /metrics for its request counts.
import * as vscode from 'vscode';
import { checkPort } from '../core/editor-checks';
import { Slot } from '../core/lifecycle';
import { checkUpstream, MetricsPoller, redactUpstream, serveLaunch, summarizeMetrics, type MetricsSummary } from '../core/serve/status';

const START = 'conscience.serve.start';
const STOP = 'conscience.serve.stop';
const POLL_MS = 2000;

export function activateServe(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  // the gateway's terminal (and the conscience serve process in it): one at a time, disposed
  // with the extension (core/lifecycle.ts)
  const terminal = new Slot<vscode.Terminal>(context.subscriptions);
  let url: string | undefined;
  const status = vscode.window.createStatusBarItem('conscience.serve.status', vscode.StatusBarAlignment.Left, 19);
  status.name = 'Conscience gateway';
  context.subscriptions.push(status);

  const render = (s: MetricsSummary | undefined, upstream: string): void => {
    if (!s) {
      status.text = '$(server-process) gateway starting…';
      status.tooltip = `conscience serve → ${upstream}`;
    } else {
      status.text = `$(server-process) gateway ${s.requests} req`;
      const tiers = Object.entries(s.byTier).map(([t, n]) => `${t} ${n}`).join(' · ');
      status.tooltip = `conscience serve on ${url} → ${upstream}\n${tiers}\nrefused ${s.refused} · in flight ${s.inFlight}\nsafety tokens ${s.safetyTokens} · budget saved ${s.savedTokens}`;
    }
    status.command = { title: 'Show gateway', command: 'workbench.action.terminal.focus' };
    status.show();
  };

  // a poll in flight when the gateway stops (or another starts) shows nothing (core/serve/status.ts)
  const poller = new MetricsPoller({
    intervalMs: POLL_MS,
    read: async (u) => {
      const r = await fetch(`${u}/metrics`, { signal: AbortSignal.timeout(1500) });
      return r.ok ? summarizeMetrics(await r.text()) : undefined;
    },
    hide: () => status.hide(),
  });

  context.subscriptions.push(
    poller,
    vscode.window.onDidCloseTerminal((t) => {
      if (terminal.forget(t)) { url = undefined; poller.stop(); }
    }),
    vscode.commands.registerCommand(START, async (raw?: unknown) => {
      // arguments come from command: links, keybindings and other extensions: checked as typed values are
      const arg = raw !== null && typeof raw === 'object' ? raw as { upstream?: unknown; port?: unknown } : undefined;
      if (arg?.upstream !== undefined && typeof arg.upstream !== 'string') { void vscode.window.showErrorMessage('Conscience gateway: the upstream argument must be a URL string'); return; }
      if (arg?.port !== undefined && checkPort(arg.port)) { void vscode.window.showErrorMessage(`Conscience gateway: port: ${checkPort(arg.port)}`); return; }
      const upstream = (arg?.upstream as string | undefined) ?? await vscode.window.showInputBox({
        title: 'Conscience gateway: upstream',
        prompt: 'The OpenAI-compatible server to put the gateway in front of (vLLM, transformers serve, ...)',
        value: 'http://127.0.0.1:8000',
        validateInput: (v) => checkUpstream(v),
        ignoreFocusOut: true,
      });
      if (!upstream) return;
      const bad = checkUpstream(upstream);
      if (bad) { void vscode.window.showErrorMessage(`Conscience gateway: ${bad}`); return; }
      const portText = arg?.port !== undefined ? String(arg.port).trim() : await vscode.window.showInputBox({
        title: 'Conscience gateway: port',
        prompt: 'Port the gateway listens on (127.0.0.1); point clients at http://127.0.0.1:PORT/v1',
        value: '8100',
        validateInput: (v) => (checkPort(v) ? 'a port number, 1-65535' : undefined),
        ignoreFocusOut: true,
      });
      if (!portText) return;
      terminal.dispose();
      const cfg = vscode.workspace.getConfiguration('conscience.allocator');
      const modelPath = cfg.get<string>('modelPath', '');
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
      const allocatorDir = modelPath ? (folder && !modelPath.startsWith('/') ? vscode.Uri.joinPath(folder, modelPath).fsPath : modelPath) : undefined;
      const launch = serveLaunch({ upstream, port: Number(portText), allocatorDir, policy: cfg.get<Record<string, unknown>>('policy', {}) });
      const cli = vscode.Uri.joinPath(context.extensionUri, 'dist', 'cli.js').fsPath;
      // the editor's own Node runs the bundled CLI; every value is its own argv entry (no shell),
      // and the upstream URL (which may hold user:pass@) goes in the environment, not in argv
      const term = terminal.set(vscode.window.createTerminal({
        name: 'conscience serve',
        shellPath: process.execPath,
        shellArgs: [cli, ...launch.args],
        env: { ELECTRON_RUN_AS_NODE: '1', ...launch.env },
        isTransient: true,
      }));
      term.show();
      url = `http://127.0.0.1:${portText}`;
      const shown = redactUpstream(upstream);
      log.info(`gateway started: ${url} → ${shown}`);
      poller.start(url, (s) => render(s, shown));
    }),
    vscode.commands.registerCommand(STOP, () => {
      terminal.dispose();
      url = undefined;
      poller.stop();
    }),
  );
}
