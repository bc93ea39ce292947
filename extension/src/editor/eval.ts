// Thin VS Code adapter for the eval report: a webview panel (webview/src/eval) showing one eval
// or two side by side, read from an eval run's results.json and completions.jsonl. Where they
// are found: the run's output dir when it is on this machine (local target), else the run
// store's copy made when the run settled (core/eval/store.ts), or any
// results.json the user picks. Commands: conscience.openEvalReport (arg: run id or the Uri of a
// results.json), conscience.compareEvals. Launching an eval recipe is the launch feature's
// (its CodeLens and guard handle `kind: eval`).
import * as vscode from 'vscode';
import { dirname, join } from 'node:path';
import { dashboardHtml, makeNonce } from '../core/dashboard/html';
import { loadEvalReport } from '../core/eval/report';
import { resultsCsv } from '../core/eval/results';
import { evalFiles, hasResults } from '../core/eval/store';
import { reported } from '../core/lifecycle';
import { parseToExtension, type EvalView, type ToWebview } from '../core/protocol/eval';
import { runName } from '../core/runs/present';
import { listRuns, readRun, type RunRecord } from '../core/runs/store';
import { folderNote, runRef, type RunRef } from '../core/folders';
import { rootOfRun, workspaceFolders } from './folders';

/** An eval to show: a run (its id, and its workspace folder when known) or a results.json file. */
type EvalRef = RunRef | vscode.Uri;

/** Where an eval's files are: results.json and (if present) completions.jsonl. */
async function locate(root: string, ref: string | vscode.Uri): Promise<{ name: string; results: string; completions?: string }> {
  if (typeof ref !== 'string') return { name: ref.fsPath, results: ref.fsPath, completions: join(dirname(ref.fsPath), 'completions.jsonl') };
  const run = await readRun(root, ref);
  if (!run) throw new Error(`no run '${ref}' in ${root}/.conscience/runs`);
  return { name: runName(run), ...(await evalFiles(root, run)) };
}

export async function loadEval(root: string, ref: string | vscode.Uri): Promise<EvalView> {
  return loadEvalReport(await locate(root, ref));
}

/** An eval run's report, read from the store of the workspace folder that holds the run, or a results.json file. */
async function loadRef(ref: EvalRef): Promise<EvalView> {
  if (ref instanceof vscode.Uri) return loadEval('', ref);
  const root = await rootOfRun(ref);
  if (!root) throw new Error(`no run '${ref.id}' in ${workspaceFolders().length > 1 ? "any workspace folder's" : "the workspace's"} .conscience/runs`);
  return loadEval(root, ref.id);
}

export function activateEval(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  let report: EvalReport | undefined;

  /** An eval run among those of every workspace folder, or a results.json file. */
  const pick = async (title: string): Promise<EvalRef | undefined> => {
    const folders = workspaceFolders();
    const evals: Array<{ r: RunRecord; root: string }> = [];
    for (const { root } of folders) {
      for (const r of await listRuns(root)) {
        if (await hasResults(root, r)) evals.push({ r, root });
      }
    }
    const items: Array<vscode.QuickPickItem & { ref?: RunRef }> = evals.map(({ r, root }) => {
      const where = folderNote(root, folders);
      return { label: runName(r), description: `${r.state} · ${r.recipe}${where ? ` · ${where}` : ''}`, detail: r.id, ref: { id: r.id, root } };
    });
    items.push({ label: 'Browse for a results.json…' });
    const got = await vscode.window.showQuickPick(items, { title, placeHolder: 'An eval run, or a results.json file' });
    if (!got) return undefined;
    if (got.ref) return got.ref;
    const files = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Eval results': ['json'] }, title });
    return files?.[0];
  };

  const open = async (arg: unknown, compare = false): Promise<void> => {
    const command = compare ? 'conscience.compareEvals' : 'conscience.openEvalReport';
    let ref: EvalRef | undefined;
    // a run id, a results.json Uri, or a run node of the Runs view ({ id, root }); nothing: ask
    if (arg instanceof vscode.Uri) ref = arg;
    else if (runRef(arg)) ref = runRef(arg);
    else if (arg !== undefined && arg !== null) {
      void vscode.window.showErrorMessage(`Chain of Conscience: ${command} takes a run id or a results.json file, not ${Array.isArray(arg) ? 'a list' : typeof arg}`);
      return;
    }
    ref ??= await pick(compare ? 'Compare with eval' : 'Open eval report');
    if (!ref) return;
    let view: EvalView;
    try {
      view = await loadRef(ref);
    } catch (err) {
      void vscode.window.showErrorMessage(`Chain of Conscience: ${(err as Error).message}`);
      return;
    }
    if (!report) {
      report = new EvalReport(context, log, pick, loadRef);
      report.panel.onDidDispose(() => (report = undefined));
    }
    report.show(view, compare);
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('conscience.openEvalReport', (ref?: unknown) => open(ref, false)),
    vscode.commands.registerCommand('conscience.compareEvals', (ref?: unknown) => open(ref, true)),
    { dispose: () => report?.panel.dispose() },
  );
}

class EvalReport {
  readonly panel: vscode.WebviewPanel;
  private evals: EvalView[] = [];
  private ready = false;

  constructor(context: vscode.ExtensionContext, private readonly log: vscode.LogOutputChannel,
    private readonly pick: (title: string) => Promise<EvalRef | undefined>,
    private readonly load: (ref: EvalRef) => Promise<EvalView>) {
    const dist = vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview');
    this.panel = vscode.window.createWebviewPanel('conscience.evalReport', 'Eval report', vscode.ViewColumn.Active, {
      enableScripts: true, localResourceRoots: [dist], retainContextWhenHidden: true,
    });
    const w = this.panel.webview;
    w.html = dashboardHtml({
      cspSource: w.cspSource, nonce: makeNonce(), title: 'Eval report',
      scriptUri: w.asWebviewUri(vscode.Uri.joinPath(dist, 'eval.js')).toString(),
      styleUri: w.asWebviewUri(vscode.Uri.joinPath(dist, 'eval.css')).toString(),
    });
    // an export to a read-only folder, say: shown, not an unhandled rejection nobody sees
    w.onDidReceiveMessage(reported((raw: unknown) => this.onMessage(raw), (err: unknown) => {
      this.log.error(`eval report: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`Chain of Conscience: ${(err as Error).message}`);
    }));
  }

  show(view: EvalView, compare: boolean): void {
    this.evals = compare && this.evals.length ? [this.evals[0]!, view] : [view];
    this.panel.title = this.evals.length > 1 ? `Eval: ${this.evals[0]!.name} vs ${view.name}` : `Eval: ${view.name}`;
    this.panel.reveal();
    this.post({ type: 'show', evals: this.evals });
  }

  private post(m: ToWebview): void {
    if (this.ready) void this.panel.webview.postMessage(m);
  }

  private async onMessage(raw: unknown): Promise<void> {
    const parsed = parseToExtension(raw);
    if (!parsed.ok) {
      this.log.warn(`eval report: ignored message: ${parsed.error}`);
      return;
    }
    const m = parsed.value;
    if (m.type === 'ready') {
      this.ready = true;
      if (this.evals.length) this.post({ type: 'show', evals: this.evals });
    } else if (m.type === 'exportCsv') {
      const target = await vscode.window.showSaveDialog({ filters: { CSV: ['csv'] }, saveLabel: 'Export', title: 'Export eval results as CSV' });
      if (!target) return;
      const csv = this.evals.map((e, i) => resultsCsv(e.results, e.name).split('\n').slice(i ? 1 : 0).join('\n')).join('');
      await vscode.workspace.fs.writeFile(target, Buffer.from(csv, 'utf8'));
      void vscode.window.showInformationMessage(`Chain of Conscience: wrote ${target.fsPath}`);
    } else if (m.type === 'compare') {
      const ref = await this.pick('Compare with eval');
      if (!ref) return;
      try {
        this.show(await this.load(ref), true);
      } catch (err) {
        this.post({ type: 'error', message: (err as Error).message });
      }
    } else if (m.type === 'close') {
      if (this.evals.length > 1) {
        this.evals.splice(m.index, 1);
        this.post({ type: 'show', evals: this.evals });
      }
    }
  }
}
