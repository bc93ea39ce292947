// Thin VS Code adapter for the dashboard: one webview panel per run (or per set of compared
// runs), fed from the run store (.conscience/runs/<id>/) through watchRun, with the host logic
// in core/dashboard/session.ts. Panels restore after a reload through a serializer: the
// webview keeps { view, runIds } in its state. Commands: conscience.openDashboard (arg: run
// id) and conscience.compareRuns (arg: run ids).
import * as vscode from 'vscode';
import { dashboardHtml, makeNonce } from '../core/dashboard/html';
import { DashboardSession } from '../core/dashboard/session';
import { formatProblem } from '../core/runs/events';
import { listRuns, readRun, watchRun, type RunWatcher } from '../core/runs/store';

export const VIEW_TYPE = 'conscience.dashboard';
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function activateDashboard(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  const panels = new Map<string, DashboardPanel>();
  const root = (): string | undefined => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;

  const open = async (ids: string[], existing?: vscode.WebviewPanel): Promise<void> => {
    const ws = root();
    if (!ws) {
      existing?.dispose();
      void vscode.window.showErrorMessage('Chain of Conscience: open a workspace folder to see its runs.');
      return;
    }
    ids = [...new Set(ids)].filter((id) => RUN_ID.test(id)).slice(0, 8);
    if (!ids.length) {
      existing?.dispose();
      return;
    }
    const key = ids.join('\u0000');
    const have = panels.get(key);
    if (have && !existing) {
      have.panel.reveal();
      return;
    }
    const p = new DashboardPanel(context, log, ws, ids, existing);
    panels.set(key, p);
    p.panel.onDidDispose(() => panels.delete(key));
  };

  const pickRuns = async (many: boolean): Promise<string[]> => {
    const ws = root();
    if (!ws) return [];
    const runs = await listRuns(ws);
    if (!runs.length) {
      void vscode.window.showInformationMessage('Chain of Conscience: no runs in .conscience/runs yet.');
      return [];
    }
    const items = runs.map((r) => ({ label: r.id, description: `${r.state} · ${r.recipe}`, detail: r.host }));
    if (many) {
      const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Compare runs', placeHolder: 'Pick two or more runs' });
      return picked?.map((p) => p.label) ?? [];
    }
    const picked = await vscode.window.showQuickPick(items, { title: 'Open run dashboard' });
    return picked ? [picked.label] : [];
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('conscience.openDashboard', async (arg?: unknown) => {
      const id = typeof arg === 'string' ? arg : (arg as { id?: unknown } | undefined)?.id;
      await open(typeof id === 'string' ? [id] : await pickRuns(false));
    }),
    // args: run ids; or, from a tree with multi-select, (clicked node, selected nodes) with `id`s
    vscode.commands.registerCommand('conscience.compareRuns', async (arg?: unknown, selected?: unknown) => {
      const idOf = (x: unknown) => (typeof x === 'string' ? x : typeof (x as { id?: unknown })?.id === 'string' ? (x as { id: string }).id : undefined);
      const given = (Array.isArray(selected) ? selected : Array.isArray(arg) ? arg : []).map(idOf).filter((x): x is string => !!x);
      await open(given.length > 1 ? given : await pickRuns(true));
    }),
    vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        const ids = (state as { runIds?: unknown } | undefined)?.runIds;
        const list = Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
        if (!list.length) {
          panel.dispose();
          return;
        }
        await open(list, panel);
      },
    }),
    { dispose: () => [...panels.values()].forEach((p) => p.panel.dispose()) },
  );
}

class DashboardPanel {
  readonly panel: vscode.WebviewPanel;
  private readonly session: DashboardSession;
  private readonly watchers: RunWatcher[] = [];
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly root: string,
    readonly runIds: string[],
    existing?: vscode.WebviewPanel,
  ) {
    const dist = vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview');
    const title = runIds.length === 1 ? `Run ${runIds[0]}` : `Compare ${runIds.join(', ')}`;
    this.panel = existing ?? vscode.window.createWebviewPanel(VIEW_TYPE, title, vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [dist],
    });
    this.panel.title = title;
    const webview = this.panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: [dist] };
    this.session = new DashboardSession(runIds.map((id) => ({ id })), {
      title,
      post: (msg) => void webview.postMessage(msg),
      saveCsv: (name, text) => this.save(name, { 'CSV': ['csv'] }, new TextEncoder().encode(text)),
      savePng: (name, png) => this.save(name, { 'PNG image': ['png'] }, png),
      log: (m) => log.warn(m),
    });
    webview.html = dashboardHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'dashboard.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'dashboard.css')).toString(),
      title,
    });
    webview.onDidReceiveMessage((m) => void this.session.receive(m), null, this.disposables);
    this.panel.onDidDispose(() => this.dispose(), null, this.disposables);
    for (const id of runIds) void this.attach(id);
  }

  private async attach(id: string): Promise<void> {
    try {
      const rec = await readRun(this.root, id);
      if (rec) this.session.setStatus(id, rec.state);
      else this.log.warn(`dashboard: run ${id} has no run.json in .conscience/runs`);
    } catch (err) {
      this.log.warn(`dashboard: ${(err as Error).message}`);
    }
    const w = watchRun(this.root, id, { fromOffset: 0, pollMs: 1000 });
    w.on('events', (events) => this.session.ingest(id, events));
    w.on('run', (rec) => this.session.setStatus(id, rec.state));
    w.on('problems', (ps) => { for (const p of ps) this.log.warn(`dashboard: run ${id}: ${formatProblem(p)}`); });
    w.on('error', (err) => this.log.warn(`dashboard: run ${id}: ${err.message}`));
    this.watchers.push(w);
  }

  private async save(name: string, filters: Record<string, string[]>, bytes: Uint8Array): Promise<string | null> {
    const base = vscode.workspace.workspaceFolders?.[0]?.uri;
    const uri = await vscode.window.showSaveDialog({
      defaultUri: base ? vscode.Uri.joinPath(base, name) : undefined,
      filters,
      saveLabel: 'Export',
    });
    if (!uri) return null;
    await vscode.workspace.fs.writeFile(uri, bytes);
    return uri.fsPath;
  }

  private dispose(): void {
    this.session.dispose();
    for (const w of this.watchers) w.close();
    for (const d of this.disposables) d.dispose();
  }
}
