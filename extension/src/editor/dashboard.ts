// Thin VS Code adapter for the dashboard: one webview panel per run (or per set of compared
// runs), fed by the run monitor's parsed events while this window follows the run, else from
// the run store on disk (core/runs/feed.ts), with the panel's logic in core/dashboard/session.ts.
// Runs show by short name; a failed run shows its root cause; compared runs show the config
// diff of the recipes they were launched with. Panels restore after a reload through a serializer: the
// webview keeps { view, runIds } in its state. Commands: conscience.openDashboard (arg: run
// id; a run warm-started from another run opens with its whole pipeline, core/runs/pipeline.ts)
// and conscience.compareRuns (arg: run ids). The panel serializer is registered at activation by
// extension.ts, which starts this room on first use and hands restored panels to the returned one.
import * as vscode from 'vscode';
import { dashboardHtml, makeNonce } from '../core/dashboard/html';
import { DashboardSession } from '../core/dashboard/session';
import { uniqueRunLabels } from '../core/dashboard/labels';
import { formatProblem } from '../core/runs/events';
import { clip } from '../core/protocol/validate';
import { configDiff, recipeConfig } from '../core/dashboard/config';
import { Lifetime, OnePerKey } from '../core/lifecycle';
import type { RunReader } from '../core/runs/feed';
import { runName } from '../core/runs/present';
import { pipelineOf } from '../core/runs/pipeline';
import { listRuns, readRun, RECIPE_SNAPSHOT, recipeBeforeAttempt, runDir, type RunRecord } from '../core/runs/store';
import { failureCause, runFeed } from './launch';

export const VIEW_TYPE = 'conscience.dashboard';
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Starts the room (its commands); returns the serializer that restores its panels after a reload. */
export function activateDashboard(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): vscode.WebviewPanelSerializer {
  // one panel per set of runs, even for a second click while the first reads the runs (core/lifecycle.ts)
  const panels = new OnePerKey<DashboardPanel>();
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
    // a restored panel (existing) is shown as it is, kept instead of any other for these runs
    const { value, made } = await panels.obtain(key, async (release) => {
      const records = await Promise.all(ids.map((id) => readRun(ws, id).catch(() => undefined)));
      const p = new DashboardPanel(context, log, ws, ids, records, existing);
      p.panel.onDidDispose(release);
      return p;
    }, !!existing);
    if (!made) value?.panel.reveal();
  };

  const pickRuns = async (many: boolean): Promise<string[]> => {
    const ws = root();
    if (!ws) return [];
    const runs = await listRuns(ws);
    if (!runs.length) {
      void vscode.window.showInformationMessage('Chain of Conscience: no runs in .conscience/runs yet.');
      return [];
    }
    const items = runs.map((r) => ({ label: runName(r), description: `${r.state} · ${r.recipe}`, detail: `${r.id} · ${r.host}`, id: r.id }));
    if (many) {
      const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Compare runs', placeHolder: 'Pick two or more runs' });
      return picked?.map((p) => p.id) ?? [];
    }
    const picked = await vscode.window.showQuickPick(items, { title: 'Open run dashboard' });
    return picked ? [picked.id] : [];
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('conscience.openDashboard', async (arg?: unknown) => {
      const id = typeof arg === 'string' ? arg : (arg as { id?: unknown } | undefined)?.id;
      const ids = typeof id === 'string' ? [id] : await pickRuns(false);
      // a run warm-started from another run (GRPO after SFT) shows its whole pipeline
      const ws = root();
      await open(ids.length === 1 && ws ? await pipelineOf(ws, ids[0]!).catch(() => ids) : ids);
    }),
    // args: run ids; or, from a tree with multi-select, (clicked node, selected nodes) with `id`s
    vscode.commands.registerCommand('conscience.compareRuns', async (arg?: unknown, selected?: unknown) => {
      const idOf = (x: unknown) => (typeof x === 'string' ? x : typeof (x as { id?: unknown })?.id === 'string' ? (x as { id: string }).id : undefined);
      const given = (Array.isArray(selected) ? selected : Array.isArray(arg) ? arg : []).map(idOf).filter((x): x is string => !!x);
      await open(given.length > 1 ? given : await pickRuns(true));
    }),
    { dispose: () => [...panels.values()].forEach((p) => p.panel.dispose()) },
  );
  return {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      const ids = (state as { runIds?: unknown } | undefined)?.runIds;
      const list = Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
      if (!list.length) {
        panel.dispose();
        return;
      }
      await open(list, panel);
    },
  };
}

class DashboardPanel {
  readonly panel: vscode.WebviewPanel;
  private readonly session: DashboardSession;
  /** the runs' readers: closed with the panel, and an attach still awaiting its first status
   * when the panel closes starts none (core/lifecycle.ts) */
  private readonly readers = new Lifetime<RunReader>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly root: string,
    readonly runIds: string[],
    records: (RunRecord | undefined)[],
    existing?: vscode.WebviewPanel,
  ) {
    const dist = vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview');
    // compared runs that read the same (one recipe launched twice in a minute) are told apart
    const labels = uniqueRunLabels(runIds.map((id, i) => records[i] ?? { id }), runIds.map((id, i) => (records[i] ? runName(records[i]!) : id)));
    const title = runIds.length === 1 ? `Run ${labels[0]}` : `Compare ${labels.join(', ')}`;
    this.panel = existing ?? vscode.window.createWebviewPanel(VIEW_TYPE, title, vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [dist],
    });
    this.panel.title = title;
    const webview = this.panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: [dist] };
    this.session = new DashboardSession(runIds.map((id, i) => ({ id, label: labels[i] })), {
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
    runIds.forEach((id, i) => void this.attach(id, records[i]));
    if (runIds.length > 1) void this.config(records);
  }

  /** The run's status (and a failure's root cause), then its events: the monitor's while this window follows it, else the disk's. */
  private async attach(id: string, first: RunRecord | undefined): Promise<void> {
    const status = async (rec: RunRecord) => this.session.setStatus(id, rec.state, (await failureCause(this.root, rec))?.message);
    if (first) await status(first).catch((err) => this.log.warn(`dashboard: ${(err as Error).message}`));
    else this.log.warn(`dashboard: run ${id} has no run.json in .conscience/runs`);
    // the panel may have closed while the status was read: then no reader starts (none to leak)
    this.readers.start(() => runFeed.followRun(this.root, id, {
      events: (events) => this.session.ingest(id, events),
      run: (rec) => void status(rec),
      problems: (ps) => { for (const p of ps) this.log.warn(`dashboard: run ${id}: ${formatProblem(p)}`); },
      error: (err) => this.log.warn(`dashboard: run ${id}: ${err.message}`),
    }));
  }

  /** The compared runs' recipe differences: the recipe as launched (the run's snapshot), else the workspace file as it is now. */
  private async config(records: (RunRecord | undefined)[]): Promise<void> {
    const notes: string[] = [];
    const configs = await Promise.all(records.map(async (r, i) => {
      if (!r) return null;
      for (const [file, now] of [[`${runDir(this.root, r.id)}/${RECIPE_SNAPSHOT}`, false], [`${this.root}/${r.recipe}`, true]] as const) {
        try {
          const text = Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.file(file))).toString('utf8');
          if (now) notes.push(`${runName(r)}: no recipe kept with the run; showing ${r.recipe} as it is now`);
          else if (r.attempts > 1) notes.push(...await this.recipeEdits(r));
          return recipeConfig(text, file);
        } catch (err) {
          if (!(err instanceof vscode.FileSystemError)) {
            // clipped, so one long error (a YAML error quoting the file) leaves room for the other runs' notes
            notes.push(`${this.runIds[i]}: ${clip((err as Error).message, 1000)}`);
            return null;
          }
        }
      }
      notes.push(`${runName(r)}: recipe ${r.recipe} not found`);
      return null;
    }));
    const { rows, keys } = configDiff(configs);
    this.session.setConfig(rows, keys, notes.length ? notes.join('; ') : null);
  }

  /** "resumed with an edited recipe" notes: the kept recipe.yaml is the latest attempt's (core/runs/store.ts snapshotRecipe). */
  private async recipeEdits(r: RunRecord): Promise<string[]> {
    const dir = runDir(this.root, r.id);
    const entries = await vscode.workspace.fs.readDirectory(vscode.Uri.file(dir)).then((e) => e, () => [] as [string, vscode.FileType][]);
    const attempts = entries.map(([name]) => /^recipe\.before-attempt-(\d+)\.yaml$/.exec(name)?.[1]).filter((n): n is string => !!n).map(Number).sort((a, b) => a - b);
    return attempts.map((n) => `${runName(r)}: ${r.recipe} was edited before attempt ${n}; showing the latest attempt's (the one before: ${dir}/${recipeBeforeAttempt(n)})`);
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
    this.readers.close();
    for (const d of this.disposables) d.dispose();
  }
}
