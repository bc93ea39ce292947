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
import { rootOfRun, workspaceFolders } from './folders';
import { folderNote, runKey, runRef, type RunRef } from '../core/folders';

export const VIEW_TYPE = 'conscience.dashboard';
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Starts the room (its commands); returns the serializer that restores its panels after a reload. */
export function activateDashboard(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): vscode.WebviewPanelSerializer {
  // one panel per set of runs, even for a second click while the first reads the runs (core/lifecycle.ts)
  const panels = new OnePerKey<DashboardPanel>();

  /** Opens the dashboard of runs, each read from its workspace folder's store (a run named by id
   * alone: the folder whose store holds it, core/folders.ts). */
  const open = async (refs: RunRef[], existing?: vscode.WebviewPanel): Promise<void> => {
    const first = workspaceFolders()[0]?.root;
    if (!first) {
      existing?.dispose();
      void vscode.window.showErrorMessage('Chain of Conscience: open a workspace folder to see its runs.');
      return;
    }
    const located = await Promise.all(refs.filter((r) => RUN_ID.test(r.id)).map(async (r) => ({ id: r.id, root: (await rootOfRun(r)) ?? first })));
    const runs = [...new Map(located.map((r) => [runKey(r.root, r.id), r])).values()].slice(0, 8);
    if (!runs.length) {
      existing?.dispose();
      return;
    }
    const key = runs.map((r) => runKey(r.root, r.id)).join('\u0000');
    // a restored panel (existing) is shown as it is, kept instead of any other for these runs
    const { value, made } = await panels.obtain(key, async (release) => {
      const records = await Promise.all(runs.map((r) => readRun(r.root, r.id).catch(() => undefined)));
      const p = new DashboardPanel(context, log, runs, records, existing);
      p.panel.onDidDispose(release);
      return p;
    }, !!existing);
    if (!made) value?.panel.reveal();
  };

  /** Runs picked among those of every workspace folder. */
  const pickRuns = async (many: boolean): Promise<RunRef[]> => {
    const folders = workspaceFolders();
    const runs = (await Promise.all(folders.map(async ({ root }) => (await listRuns(root)).map((r) => ({ r, root }))))).flat();
    if (!runs.length) {
      if (folders.length) void vscode.window.showInformationMessage('Chain of Conscience: no runs in .conscience/runs yet.');
      return [];
    }
    const items = runs.map(({ r, root }) => {
      const where = folderNote(root, folders);
      return { label: runName(r), description: `${r.state} · ${r.recipe}${where ? ` · ${where}` : ''}`, detail: `${r.id} · ${r.host}`, id: r.id, root };
    });
    if (many) {
      const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Compare runs', placeHolder: 'Pick two or more runs' });
      return picked?.map((p) => ({ id: p.id, root: p.root })) ?? [];
    }
    const picked = await vscode.window.showQuickPick(items, { title: 'Open run dashboard' });
    return picked ? [{ id: picked.id, root: picked.root }] : [];
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('conscience.openDashboard', async (arg?: unknown) => {
      const given = runRef(arg);
      const refs = given ? [given] : await pickRuns(false);
      // a run warm-started from another run (GRPO after SFT) shows its whole pipeline (in its folder)
      const root = refs.length === 1 ? await rootOfRun(refs[0]!) : undefined;
      await open(root ? await pipelineOf(root, refs[0]!.id).then((ids) => ids.map((id) => ({ id, root })), () => refs) : refs);
    }),
    // args: run ids; or, from a tree with multi-select, (clicked node, selected nodes) with `id`s
    vscode.commands.registerCommand('conscience.compareRuns', async (arg?: unknown, selected?: unknown) => {
      const given = (Array.isArray(selected) ? selected : Array.isArray(arg) ? arg : []).map(runRef).filter((x): x is RunRef => !!x);
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
      await open(list.map((id) => ({ id })), panel);
    },
  };
}

class DashboardPanel {
  readonly panel: vscode.WebviewPanel;
  readonly runIds: string[];
  private readonly roots: string[];
  private readonly session: DashboardSession;
  /** the runs' readers: closed with the panel, and an attach still awaiting its first status
   * when the panel closes starts none (core/lifecycle.ts) */
  private readonly readers = new Lifetime<RunReader>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    runs: Required<RunRef>[],
    records: (RunRecord | undefined)[],
    existing?: vscode.WebviewPanel,
  ) {
    this.runIds = runs.map((r) => r.id);
    /** each run's workspace folder (its run store) */
    this.roots = runs.map((r) => r.root);
    const runIds = this.runIds;
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
    runIds.forEach((id, i) => void this.attach(id, this.roots[i]!, records[i]));
    if (runIds.length > 1) void this.config(records);
  }

  /** The run's status (and a failure's root cause), then its events: the monitor's while this window follows it, else the disk's. */
  private async attach(id: string, root: string, first: RunRecord | undefined): Promise<void> {
    const status = async (rec: RunRecord) => this.session.setStatus(id, rec.state, (await failureCause(root, rec))?.message);
    if (first) await status(first).catch((err) => this.log.warn(`dashboard: ${(err as Error).message}`));
    else this.log.warn(`dashboard: run ${id} has no run.json in .conscience/runs`);
    // the panel may have closed while the status was read: then no reader starts (none to leak)
    this.readers.start(() => runFeed.followRun(root, id, {
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
      const root = this.roots[i]!;
      for (const [file, now] of [[`${runDir(root, r.id)}/${RECIPE_SNAPSHOT}`, false], [`${root}/${r.recipe}`, true]] as const) {
        try {
          const text = Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.file(file))).toString('utf8');
          if (now) notes.push(`${runName(r)}: no recipe kept with the run; showing ${r.recipe} as it is now`);
          else if (r.attempts > 1) notes.push(...await this.recipeEdits(root, r));
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
  private async recipeEdits(root: string, r: RunRecord): Promise<string[]> {
    const dir = runDir(root, r.id);
    const entries = await vscode.workspace.fs.readDirectory(vscode.Uri.file(dir)).then((e) => e, () => [] as [string, vscode.FileType][]);
    const attempts = entries.map(([name]) => /^recipe\.before-attempt-(\d+)\.yaml$/.exec(name)?.[1]).filter((n): n is string => !!n).map(Number).sort((a, b) => a - b);
    return attempts.map((n) => `${runName(r)}: ${r.recipe} was edited before attempt ${n}; showing the latest attempt's (the one before: ${dir}/${recipeBeforeAttempt(n)})`);
  }

  private async save(name: string, filters: Record<string, string[]>, bytes: Uint8Array): Promise<string | null> {
    // the first run's workspace folder
    const base = this.roots[0] ? vscode.Uri.file(this.roots[0]) : undefined;
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
