// Thin VS Code adapter for launching runs: the Runs view (short name, state, `step n/N · x%`,
// ETA, reward, elapsed; a welcome view when empty), a status bar item while runs are going,
// the launch guard (a recipe with errors asks "Launch anyway?"), failures that name their root
// cause with "Show Logs" opening stderr.log at that line, the launch / show-launch-command
// (a read-only document) / cancel / resume / logs commands, a "Launch ▸" CodeLens on recipes,
// tokens in SecretStorage, an unknown-host-key modal, and reattaching every unsettled run when
// the window opens. Launching is refused in untrusted workspaces. Logic lives in core/.
// The Runs view, its change event, the plan documents' provider and the run.json watchers (one per folder) are
// made at activation by extension.ts (LaunchUi), which starts this room on first use.
import { open } from 'node:fs/promises';
import * as vscode from 'vscode';
import { launchGuard, resumeGuard } from '../core/launch/guard';
import { OnePerKey, Recent, SessionHolder } from '../core/lifecycle';
import { fileSize, notARecipe, numberSetting } from '../core/editor-checks';
import { readTail } from '../core/files';
import { docKind } from './recipes';
import { cancelRun, formatPlan, launchRun, planLaunch, resumeRun } from '../core/launch/launcher';
import { RunMonitor } from '../core/launch/monitor';
import { LaunchSession } from '../core/launch/session';
import type { UnknownHostKey } from '../core/launch/ssh';
import { workspaceTargets } from './targets';
import { rootOfFile, rootOfRun, workspaceFolders } from './folders';
import { folderNote, runGroups, runKey, runRef, type Folder, type RunRef } from '../core/folders';
import { formatProblem, type ParseProblem } from '../core/runs/events';
import { RunFeed } from '../core/runs/feed';
import { budgetSummary, FAILED_STATES, runActions, runDescription, runFailure, runName, runProgress, formatDuration, type RootCause, runStack } from '../core/runs/present';
import { launchMayHaveStarted, listRuns, readRun, runDir, settleInterruptedLaunch, TERMINAL_STATES, type RunRecord } from '../core/runs/store';

const SECRET_KEYS = ['HF_TOKEN', 'WANDB_API_KEY'] as const;
const secretKey = (name: string) => `conscience.secret.${name}`;

interface RunNode {
  id: string;
  /** the root of the workspace folder whose run store holds it */
  root: string;
  run: RunRecord;
  /** The root cause of a failed run (read from its stderr.log / run_finished). */
  cause?: RootCause;
  /** the workspace has several folders: the view groups runs by folder */
  grouped?: boolean;
}

/** A workspace folder's group of runs in the Runs view (a workspace of several folders). */
interface FolderNode {
  folder: Folder;
  label: string;
  runs: RunNode[];
}

type RunsNode = RunNode | FolderNode;
const isFolderNode = (n: RunsNode): n is FolderNode => 'folder' in n;

/** This window's run monitors, for readers that take their parsed events (the dashboard). */
export const runFeed = new RunFeed();

/** What extension.ts makes at activation for this room: VS Code shows the Runs view and asks for a
 * restored plan document before any run is looked at; a run.json appearing starts the room. */
export interface LaunchUi {
  view: vscode.TreeView<unknown>;
  /** the Runs view's onDidChangeTreeData */
  changed: vscode.EventEmitter<undefined>;
  /** scheme of the read-only "Show launch command" documents, their text by URI, and their change event */
  planScheme: string;
  plans: Map<string, string>;
  planChanged: vscode.EventEmitter<vscode.Uri>;
  /** a .conscience/runs/<id>/run.json was created, changed or deleted in one of the workspace's folders */
  runFiles: vscode.Event<unknown>;
}

/** Causes already found, by run (runKey) and record version: a failed run's stderr.log is read once, not on every refresh. */
const causes = new Map<string, { version: number; cause: RootCause | undefined }>();
/** The head of stderr.log that is searched (a traceback's cause is near its start). */
const CAUSE_BYTES = 4 * 1024 * 1024;
/** Show Run Logs puts at most this much of each log, its end, in the output channel. */
const LOG_TAIL_BYTES = 2 * 1024 * 1024;
/** VS Code does not sync documents over 50 MB to extensions (openTextDocument fails on them). */
const SYNC_LIMIT = 50 * 1024 * 1024;
/** A file picked to launch that is bigger than this is not read: no recipe is (recipeKind calls it 'other'). */
const RECIPE_MAX_BYTES = 2 * 1024 * 1024;
const formatBytes = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(n / 1024)} KB`);

/** Why a run failed or SLURM ended it (preempted, timed out, ...), from its local store (core/runs/present.ts runFailure). */
export async function failureCause(root: string, r: RunRecord): Promise<RootCause | undefined> {
  if (!FAILED_STATES.has(r.state)) return undefined;
  const key = runKey(root, r.id);
  const known = causes.get(key);
  if (known && known.version === r.updatedAt) return known.cause;
  let stderr = '';
  try {
    const fh = await open(`${runDir(root, r.id)}/stderr.log`, 'r');
    try {
      const buf = Buffer.alloc(CAUSE_BYTES);
      const { bytesRead } = await fh.read(buf, 0, CAUSE_BYTES, 0);
      stderr = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    /* no stderr copied */
  }
  const cause = runFailure(r, stderr);
  causes.set(key, { version: r.updatedAt, cause });
  return cause;
}

const STATE_ICON: Record<string, string> = {
  preparing: 'sync~spin', queued: 'watch', starting: 'loading~spin', running: 'play-circle', unresponsive: 'warning',
  cancelling: 'loading~spin', completed: 'pass', failed: 'error', cancelled: 'circle-slash',
};

/** The Runs view: the runs of every workspace folder; with several folders, grouped by folder (core/folders.ts runGroups). */
export class RunsProvider implements vscode.TreeDataProvider<RunsNode> {
  constructor(private readonly folders: () => Folder[], private readonly changed: vscode.EventEmitter<undefined>) {}
  refresh(): void {
    this.changed.fire(undefined);
  }
  async getChildren(el?: RunsNode): Promise<RunsNode[]> {
    if (el) return isFolderNode(el) ? el.runs : [];
    const folders = this.folders();
    const grouped = folders.length > 1;
    const runsOf = new Map(await Promise.all(folders.map(async ({ root }) => {
      const runs = await listRuns(root);
      const nodes = await Promise.all(runs.map(async (run): Promise<RunNode> => ({ id: run.id, root, run, cause: await failureCause(root, run), grouped })));
      return [root, nodes] as const;
    })));
    const shown = runGroups(folders, runsOf);
    return 'runs' in shown ? shown.runs : shown.groups.map((g) => ({ folder: g.folder, label: g.label, runs: g.runs }));
  }
  getTreeItem(n: RunsNode): vscode.TreeItem {
    if (isFolderNode(n)) {
      const item = new vscode.TreeItem(n.label, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `folder:${n.folder.root}`;
      item.description = `${n.runs.length} run${n.runs.length === 1 ? '' : 's'}`;
      item.tooltip = n.folder.root;
      item.iconPath = new vscode.ThemeIcon('root-folder');
      item.contextValue = 'folder.runs';
      return item;
    }
    const r = n.run;
    const item = new vscode.TreeItem(runName(r), vscode.TreeItemCollapsibleState.None);
    // ids are unique in the tree: two folders may each hold a run of the same id
    item.id = n.grouped ? runKey(n.root, r.id) : r.id;
    const budgets = budgetSummary(r.budgets);
    // a run whose allocator failed trains on per-label default budgets: say so where it is seen
    item.description = runDescription(r) + (budgets?.fallback ? ' · ⚠ budgets fell back to label defaults' : '');
    const tip = new vscode.MarkdownString(undefined, true);
    tip.appendMarkdown(`**${runName(r)}** · \`${r.id}\`\n\n`);
    const p = runProgress(r);
    tip.appendText([
      `${r.recipe} on ${r.target} (${r.host})`,
      `state: ${r.state}${r.exitCode ? ` (exit ${r.exitCode})` : ''}${p ? ` · ${p.text}` : ''}${p?.etaS !== undefined && !TERMINAL_STATES.has(r.state) ? ` · ETA ${formatDuration(p.etaS)}` : ''}`,
      ...(n.cause ? [`cause: ${n.cause.message}${n.cause.line !== undefined ? ` (stderr.log line ${n.cause.line + 1})` : ''}`] : r.error ? [r.error] : []),
      budgetSummary(r.budgets)?.text ?? '',
      runStack(r) ? `stack: ${runStack(r)}` : '',
      r.jobId ? `SLURM job ${r.jobId}` : r.pid ? `pid ${r.pid}` : '',
    ].filter(Boolean).join('\n'));
    item.tooltip = tip;
    item.iconPath = new vscode.ThemeIcon(STATE_ICON[r.state] ?? 'circle-outline');
    // run.active (cancel), run.resumable (failed or cancelled: resume), run.completed
    const acts = runActions(r);
    item.contextValue = acts.cancel ? 'run.active' : acts.resume ? 'run.resumable' : 'run.completed';
    item.command = { command: 'conscience.openDashboard', title: 'Open Run Dashboard', arguments: [{ id: r.id, root: n.root }] };
    return item;
  }
}

class RecipeLens implements vscode.CodeLensProvider {
  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    if (!vscode.workspace.isTrusted) return [];
    // a recipe (not an accelerate config): the core's one answer, as the validator and the CLI use it
    if (docKind(doc) !== 'recipe') return [];
    const top = new vscode.Range(0, 0, 0, 0);
    return [
      new vscode.CodeLens(top, { title: 'Launch ▸', command: 'conscience.launch', arguments: [doc.uri] }),
      new vscode.CodeLens(top, { title: 'Show launch command', command: 'conscience.showLaunchCommand', arguments: [doc.uri] }),
    ];
  }
}

/** Starts the room (its commands, CodeLens, status bar, reattaching); returns the Runs view's data. */
export function activateLaunch(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, ui: LaunchUi): RunsProvider {
  const provider = new RunsProvider(workspaceFolders, ui.changed);
  const view = ui.view;
  // one monitor per run (by runKey: its folder and id), even when asked again (Refresh Runs, Show Run Logs, trust granted) while
  // the first waits for its session (core/lifecycle.ts)
  const monitors = new OnePerKey<RunMonitor>();
  /** the running monitors and the folder of each run: a folder removed from the workspace stops its own */
  const following = new Map<string, { root: string; m: RunMonitor }>();
  /** the extension is ending: a monitor still waiting for its session starts no more */
  let ended = false;
  // a run's output channel (Show Run Logs): the 10 most recently shown are kept; an older one
  // is disposed (its logs stay on disk and are read again when it is shown next)
  const channels = new Recent<vscode.OutputChannel>(10);
  context.subscriptions.push(channels);
  // A session replaced while runs are followed on it (a launch, a token change, an edited
  // targets file) is retired, not closed under them: its monitors would reopen its SSH
  // connections on a session nothing could close. It is closed when the last of them ends
  // (core/lifecycle.ts).
  const sessions = new SessionHolder<LaunchSession>();

  // the status bar names the runs that are going (one: its name and progress; several: a count)
  const status = vscode.window.createStatusBarItem('conscience.runs.status', vscode.StatusBarAlignment.Left, 20);
  status.name = 'Chain of Conscience Runs';
  status.command = 'conscience.runs.focus';
  context.subscriptions.push(status);
  const updateStatus = async () => {
    const going = (await Promise.all(workspaceFolders().map(({ root }) => listRuns(root)))).flat().filter((r) => !TERMINAL_STATES.has(r.state));
    if (!going.length) {
      status.hide();
      return;
    }
    if (going.length === 1) {
      const r = going[0]!;
      const p = runProgress(r);
      status.text = `$(sync~spin) ${runName(r)} · ${p ? p.text : r.state}${p?.etaS !== undefined ? ` · ETA ${formatDuration(p.etaS)}` : ''}`;
    } else status.text = `$(sync~spin) ${going.length} runs going`;
    status.tooltip = going.map((r) => `${runName(r)}: ${runDescription(r)}`).join('\n');
    status.show();
  };
  const refresh = () => {
    provider.refresh();
    void updateStatus();
  };
  // the elapsed time and ETA move on between events
  const tick = setInterval(() => {
    if (monitors.size) refresh();
  }, 5000);
  context.subscriptions.push({ dispose: () => clearInterval(tick) });

  const trusted = (): boolean => {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window.showErrorMessage('Chain of Conscience: launching runs is disabled in untrusted workspaces. Trust this workspace to launch, cancel or resume.');
    return false;
  };

  async function secrets(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const k of SECRET_KEYS) {
      const v = await context.secrets.get(secretKey(k));
      if (v) out[k] = v;
    }
    return out;
  }

  /** The launch session of a workspace folder (`root`: the folder of the recipe or of the run acted on). */
  function getSession(root: string | undefined): Promise<LaunchSession> {
    if (!root) return Promise.reject(new Error('open a workspace folder to launch runs'));
    return sessions.obtain(root, (s) => s.root, () => openSession(root));
  }

  async function openSession(root: string): Promise<LaunchSession> {
    return new LaunchSession(root, await workspaceTargets(root), {
      bundleRoot: context.extensionPath,
      secrets: await secrets(),
      onUnknownHostKey: async (k: UnknownHostKey) => {
        const pick = await vscode.window.showWarningMessage(
          `Unknown host key for ${k.host}:${k.port}`,
          { modal: true, detail: `${k.keyType} ${k.fingerprint}\n\nTrust it and add it to ${k.knownHostsFile}? Check the fingerprint with the host's administrator first.` },
          'Trust and Connect',
        );
        return pick === 'Trust and Connect';
      },
      onProgress: (m) => log.info(m),
    });
  }

  function resetSession(): Promise<void> {
    return sessions.reset();
  }

  function channelFor(root: string, id: string): vscode.OutputChannel {
    const key = runKey(root, id);
    let ch = channels.get(key);
    if (!ch) {
      ch = vscode.window.createOutputChannel(`Conscience Run ${id}`);
      channels.set(key, ch);
    }
    return ch;
  }

  /** Follows a run of the folder `root` in the background (reattaches from the saved offsets). */
  async function follow(root: string, id: string): Promise<void> {
    await monitors.obtain(runKey(root, id), (release) => startMonitor(root, id, release));
  }

  async function startMonitor(root: string, id: string, release: () => void): Promise<RunMonitor> {
    const s = await getSession(root);
    const key = runKey(root, id);
    if (ended) throw new Error(`run ${id}: not followed, the extension is ending`);
    // the setting is the default for targets that set no heartbeatTimeout of their own
    // clamped: VS Code does not enforce the schema's minimum, and 0 or "500ms" would poll ~1000 times a second
    const cfg = vscode.workspace.getConfiguration('conscience.launch');
    const heartbeatTimeoutS = numberSetting(cfg.get<unknown>('heartbeatTimeout'), { def: 90, min: 10, max: 86_400 });
    const intervalMs = numberSetting(cfg.get<unknown>('pollIntervalMs'), { def: 500, min: 100, max: 60_000 });
    const m = new RunMonitor(s, id, { intervalMs, heartbeatTimeoutS });
    // a run followed only to settle it (it had ended already) was notified when it ended
    const endedBefore = TERMINAL_STATES.has((await readRun(s.root, id).catch(() => undefined))?.state ?? 'preparing');
    sessions.use(key, s);
    runFeed.attach(root, id, m);
    following.set(key, { root, m });
    const forget = () => {
      if (following.get(key)?.m === m) following.delete(key);
    };
    m.on('run', () => refresh());
    m.on('stdout', (b: Buffer) => channels.peek(key)?.append(b.toString('utf8')));
    m.on('stderr', (b: Buffer) => channels.peek(key)?.append(b.toString('utf8')));
    m.on('problems', (ps: ParseProblem[]) => { for (const p of ps) log.warn(`run ${id}: ${formatProblem(p)}`); });
    m.on('disconnected', (e: Error) => log.warn(`run ${id}: connection lost (${e.message}); reconnecting`));
    m.on('reconnected', () => log.info(`run ${id}: reconnected, continuing from the saved offset`));
    m.on('error', (e: Error) => log.error(`run ${id}: ${e.message}`));
    void m.follow().then(
      (rec) => {
        release();
        forget();
        runFeed.detach(root, id, m);
        void sessions.release(key);
        refresh();
        if (rec && TERMINAL_STATES.has(rec.state) && !endedBefore) void notifyEnd(root, rec);
      },
      (e) => {
        release();
        forget();
        runFeed.detach(root, id, m);
        void sessions.release(key);
        log.error(`run ${id}: ${(e as Error).message}`);
      },
    );
    return m;
  }

  /** A finished run's notification; a failure names its root cause and offers its logs at that line. */
  async function notifyEnd(root: string, rec: RunRecord): Promise<void> {
    const name = runName(rec);
    if (!FAILED_STATES.has(rec.state)) {
      void vscode.window.showInformationMessage(`Run ${name} ${rec.state}${rec.exitCode ? ` (exit ${rec.exitCode})` : ''}`);
      return;
    }
    // failed, or ended by SLURM (preempted, timed_out, ...): say why
    const cause = await failureCause(root, rec);
    const a = await vscode.window.showErrorMessage(`Run ${name} ${rec.state}${rec.exitCode ? ` (exit ${rec.exitCode})` : ''}: ${cause?.message ?? 'no error recorded'}`, 'Show Logs');
    if (a) await vscode.commands.executeCommand('conscience.showRunLogs', { id: rec.id, root });
  }

  /** Follows every unsettled run of every workspace folder (a folder added later too). */
  async function reattachAll(): Promise<void> {
    if (!vscode.workspace.isTrusted) return;
    for (const { root } of workspaceFolders()) await reattach(root).catch((e) => log.error(`reattach ${root}: ${(e as Error).message}`));
  }

  async function reattach(root: string): Promise<void> {
    for (const r of await listRuns(root)) {
      // preparing, and its launcher is gone (a window closed or reloaded while syncing, a killed CLI): failed ("launch interrupted");
      // one gone while submitting it is followed: the monitor asks the host whether it started
      if (r.state === 'preparing' && !launchMayHaveStarted(r)) {
        await settleInterruptedLaunch(root, r.id).then(
          (x) => {
            if (x && x.state !== 'preparing') refresh();
          },
          (e) => log.error(`${r.id}: ${(e as Error).message}`),
        );
      } else if (!TERMINAL_STATES.has(r.state) || !r.finishedAt) await follow(root, r.id).catch((e) => log.error(`${r.id}: ${(e as Error).message}`)); // (one that ended unsettled too)
    }
  }

  /** The recipe to launch: the argument (a Uri), else the active editor when it holds a recipe
   * (not an accelerate config or other YAML), else one picked from the workspace's recipes. A
   * file with unsaved edits is saved only when the user agrees (the launch syncs the file on disk). */
  async function pickRecipe(arg: unknown): Promise<string | undefined> {
    let uri: vscode.Uri | undefined;
    if (arg instanceof vscode.Uri) uri = arg;
    else if (arg !== undefined && arg !== null && !(typeof arg === 'object' && Object.keys(arg).length === 0)) {
      throw new Error(`conscience.launch: expected a recipe file (a Uri), got ${typeof arg === 'string' ? JSON.stringify(arg) : typeof arg}`);
    }
    const ed = vscode.window.activeTextEditor;
    if (!uri && ed && /\.ya?ml$/i.test(ed.document.fileName) && docKind(ed.document) === 'recipe') uri = ed.document.uri;
    if (!uri) {
      const include = vscode.workspace.getConfiguration('conscience.recipes').get<unknown>('include');
      const globs = ['**/recipes/**/*.{yaml,yml}', '**/*.grpo.yaml', ...(Array.isArray(include) ? include : typeof include === 'string' ? [include] : [])]
        .filter((g): g is string => typeof g === 'string' && g.trim() !== '');
      const seen = new Map<string, vscode.Uri>();
      for (const g of globs) {
        for (const f of await vscode.workspace.findFiles(g, '{**/node_modules/**,**/recipes/accelerate/**,**/.conscience/**,**/.git/**}', 200)) seen.set(f.toString(), f);
      }
      const files = [...seen.values()].sort((a, b) => a.path.localeCompare(b.path));
      if (!files.length) { void vscode.window.showInformationMessage('No recipe found in the workspace (recipes/**/*.yaml, *.grpo.yaml, conscience.recipes.include).'); return undefined; }
      const pick = await vscode.window.showQuickPick(files.map((f) => ({ label: vscode.workspace.asRelativePath(f), uri: f })), { placeHolder: 'Recipe to launch' });
      uri = pick?.uri;
      if (!uri) return undefined;
    }
    const name = vscode.workspace.asRelativePath(uri);
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri!.toString());
    // the file launched is the file on disk: a recipe open with unsaved edits is saved only if the user says so
    if (doc?.isDirty) {
      const a = await vscode.window.showWarningMessage(`${name} has unsaved changes. A launch uses the file on disk.`, { modal: true }, 'Save and Launch', 'Launch Saved Version');
      if (!a) return undefined;
      if (a === 'Save and Launch' && !(await doc.save())) throw new Error(`could not save ${name}`);
    }
    // a file picked in the explorer or the quick pick may still be an accelerate config or other YAML
    if (!doc || doc.isDirty) {
      const { size } = await vscode.workspace.fs.stat(uri);
      if (size > RECIPE_MAX_BYTES) throw new Error(`${name} is not a recipe (${formatBytes(size)}; a recipe is a small YAML file)`);
    }
    const text = doc && !doc.isDirty ? doc.getText() : Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8');
    const why = notARecipe(text, name);
    if (why) throw new Error(why);
    return uri.fsPath;
  }

  async function pickTarget(s: LaunchSession): Promise<string | undefined> {
    const names = [...s.targets.keys()];
    if (names.length === 1) return names[0];
    const last = context.workspaceState.get<string>('conscience.lastTarget');
    const items = names.map((n) => ({ label: n, description: s.targets.get(n)!.type }));
    items.sort((a, b) => (a.label === last ? -1 : b.label === last ? 1 : 0));
    const pick = await vscode.window.showQuickPick(items, { placeHolder: 'Launch target' });
    if (pick) await context.workspaceState.update('conscience.lastTarget', pick.label);
    return pick?.label;
  }

  /** The run a command acts on and its folder: a run id (looked up in every folder's store), a
   * Runs view node, or one picked from the runs of every folder. */
  const runArg = async (arg: unknown): Promise<Required<RunRef> | undefined> => {
    const ref = runRef(arg);
    if (ref) {
      const root = await rootOfRun(ref);
      if (!root) throw new Error(`no run ${ref.id} in ${workspaceFolders().length > 1 ? 'any workspace folder\'s' : 'the workspace\'s'} .conscience/runs`);
      return { id: ref.id, root };
    }
    const folders = workspaceFolders();
    const runs = (await Promise.all(folders.map(async ({ root }) => (await listRuns(root)).map((r) => ({ r, root }))))).flat();
    const pick = await vscode.window.showQuickPick(runs.map(({ r, root }) => {
      const where = folderNote(root, folders);
      return { label: runName(r), description: `${r.state} · ${r.target}${where ? ` · ${where}` : ''}`, detail: r.id, id: r.id, root };
    }), { placeHolder: 'Run' });
    return pick && { id: pick.id, root: pick.root };
  };

  /** Runs a command, showing its error; a failed launch-side command also drops the launch session
   * (edited targets, a broken connection). `keepSession`: a view command (logs), which leaves it. */
  const guard = (fn: (...a: unknown[]) => Promise<void>, keepSession = false) => async (...a: unknown[]) => {
    try {
      await fn(...a);
    } catch (e) {
      log.error((e as Error).message);
      void vscode.window.showErrorMessage(`Chain of Conscience: ${(e as Error).message}`);
      if (!keepSession) await resetSession();
    }
  };

  const { plans, planChanged } = ui;
  context.subscriptions.push(
    vscode.languages.registerCodeLensProvider({ language: 'yaml', scheme: 'file' }, new RecipeLens()),
    vscode.commands.registerCommand('conscience.launch', guard(async (arg) => {
      if (!trusted()) return;
      const recipe = await pickRecipe(arg);
      if (!recipe) return;
      await resetSession(); // pick up edited targets and tokens
      // the recipe's workspace folder: its targets, its run store
      const s = await getSession(rootOfFile(recipe));
      const target = await pickTarget(s);
      if (!target) return;
      // the launch guard: a recipe with errors fails on the host only after the sync, the
      // environment and (on SLURM) the queue; say so first. Checked against the TRL the target
      // runs when the recipe does not say (launch.trl), as `conscience launch` checks it
      const errors = await launchGuard(s.root, recipe, s.target(target));
      if (errors.length) {
        const first = errors[0]!;
        const pick = await vscode.window.showWarningMessage(
          `${errors.length} error${errors.length > 1 ? 's' : ''} in ${vscode.workspace.asRelativePath(recipe)} — Launch anyway?`,
          { modal: true, detail: `Line ${first.line}: ${first.code} ${first.message}${errors.length > 1 ? `\n…and ${errors.length - 1} more (see Problems).` : ''}\n\nThe trainer would most likely stop on it after the sync and environment build.` },
          'Launch Anyway', 'Show Problems',
        );
        if (pick === 'Show Problems') {
          const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(recipe));
          const ed = await vscode.window.showTextDocument(doc);
          const pos = new vscode.Position(first.line - 1, first.column - 1);
          ed.selection = new vscode.Selection(pos, pos);
          ed.revealRange(new vscode.Range(pos, pos), vscode.TextEditorRevealType.InCenter);
          await vscode.commands.executeCommand('workbench.actions.view.problems');
          return;
        }
        if (pick !== 'Launch Anyway') return;
        log.warn(`launching ${recipe} despite ${errors.length} error(s)`);
      }
      const launched = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Launching ${vscode.workspace.asRelativePath(recipe)} on ${target}`, cancellable: false },
        async (progress) => {
          const prev = s.opts.onProgress;
          s.opts.onProgress = (m) => {
            log.info(m);
            progress.report({ message: m });
          };
          try {
            return await launchRun(s, recipe, target);
          } finally {
            s.opts.onProgress = prev;
          }
        },
      );
      const out = launched;
      refresh();
      channelFor(s.root, out.run.id);
      await follow(s.root, out.run.id);
      const items = view.visible ? [] : ['Show Runs'];
      void vscode.window.showInformationMessage(`Run ${out.run.id} ${out.run.state} on ${target}`, 'Open Dashboard', ...items).then((a) => {
        if (a === 'Open Dashboard') void vscode.commands.executeCommand('conscience.openDashboard', { id: out.run.id, root: s.root });
        else if (a === 'Show Runs') void vscode.commands.executeCommand('conscience.runs.focus');
      });
    })),
    vscode.commands.registerCommand('conscience.showLaunchCommand', guard(async (arg) => {
      if (!trusted()) return;
      const recipe = await pickRecipe(arg);
      if (!recipe) return;
      await resetSession();
      const s = await getSession(rootOfFile(recipe));
      const target = await pickTarget(s);
      if (!target) return;
      const plan = await planLaunch(s, recipe, target);
      // a read-only document (nothing to save), one per recipe and target, refreshed on each show
      const stem = plan.recipe.split('/').pop()!.replace(/\.ya?ml$/i, '');
      // (by the recipe's path on disk: the same recipe path in two workspace folders is two documents)
      const uri = vscode.Uri.from({ scheme: ui.planScheme, path: `/${stem} on ${target} · launch command.sh`, query: recipe });
      plans.set(uri.toString(), formatPlan(plan));
      planChanged.fire(uri);
      const doc = await vscode.workspace.openTextDocument(uri);
      await vscode.languages.setTextDocumentLanguage(doc, 'shellscript');
      await vscode.window.showTextDocument(doc, { preview: true });
    })),
    vscode.commands.registerCommand('conscience.cancelRun', guard(async (arg) => {
      if (!trusted()) return;
      const run = await runArg(arg);
      if (!run) return;
      const { id, root } = run;
      const ok = await vscode.window.showWarningMessage(`Cancel run ${id}? Every rank gets SIGTERM (SIGKILL after the grace period) or scancel.`, { modal: true }, 'Cancel Run');
      if (ok !== 'Cancel Run') return;
      await cancelRun(await getSession(root), id);
      refresh();
      await follow(root, id);
    })),
    vscode.commands.registerCommand('conscience.resumeRun', guard(async (arg) => {
      if (!trusted()) return;
      const run = await runArg(arg);
      if (!run) return;
      const { id, root } = run;
      await resetSession();
      const s = await getSession(root);
      // a resume trains with the recipe as it is now: edited since, it is checked as a launch is
      const rec = await readRun(s.root, id);
      const errors = rec ? await resumeGuard(s.root, rec, s.target(rec.target)) : [];
      if (errors.length) {
        const first = errors[0]!;
        const pick = await vscode.window.showWarningMessage(
          `${errors.length} error${errors.length > 1 ? 's' : ''} in ${rec!.recipe}, edited since run ${id} last ran — Resume anyway?`,
          { modal: true, detail: `Line ${first.line}: ${first.code} ${first.message}${errors.length > 1 ? `\n…and ${errors.length - 1} more (see Problems).` : ''}\n\nA resume trains with the recipe as it is now; the trainer would most likely stop on it.` },
          'Resume Anyway',
        );
        if (pick !== 'Resume Anyway') return;
      }
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Resuming ${id}` }, () => resumeRun(s, id));
      refresh();
      await follow(root, id);
    })),
    vscode.commands.registerCommand('conscience.showRunLogs', guard(async (arg) => {
      const run = await runArg(arg);
      if (!run) return;
      const { id, root } = run;
      const rec = await readRun(root, id);
      if (!rec) throw new Error(`no run ${id}`);
      // a failed run: stderr.log itself, at the line with the root cause
      const cause = await failureCause(root, rec);
      if (cause?.line !== undefined) {
        const stderr = vscode.Uri.file(`${runDir(root, id)}/stderr.log`);
        const pos = new vscode.Position(cause.line, 0);
        if ((await fileSize(stderr.fsPath) ?? 0) > SYNC_LIMIT) {
          // VS Code does not hand files over 50 MB to extensions (openTextDocument fails): an editor opens it
          await vscode.commands.executeCommand('vscode.open', stderr, { selection: new vscode.Range(pos, pos), preview: true });
        } else {
          const doc = await vscode.workspace.openTextDocument(stderr);
          await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, doc.lineAt(Math.min(cause.line, doc.lineCount - 1)).range.end), preview: true });
        }
        return;
      }
      const fresh = !channels.has(runKey(root, id));
      const ch = channelFor(root, id);
      if (fresh) {
        for (const name of ['stdout.log', 'stderr.log']) {
          const file = `${runDir(root, id)}/${name}`;
          try {
            const tail = await readTail(file, LOG_TAIL_BYTES);
            if (!tail) continue; // nothing yet
            if (tail.skipped) ch.appendLine(`[${name}: the first ${formatBytes(tail.skipped)} are not shown; the whole log is ${file}]`);
            ch.append(tail.text);
          } catch (e) {
            ch.appendLine(`[${name}: could not be read: ${(e as Error).message}]`);
            log.warn(`run ${id}: reading ${file}: ${(e as Error).message}`);
          }
        }
      }
      ch.show(true);
      if (!TERMINAL_STATES.has(rec.state) && vscode.workspace.isTrusted) await follow(root, id);
    }, true)),
    vscode.commands.registerCommand('conscience.refreshRuns', guard(async () => {
      refresh();
      await reattachAll();
    })),
    vscode.commands.registerCommand('conscience.setToken', guard(async () => {
      const pick = await vscode.window.showQuickPick(
        SECRET_KEYS.map((k) => ({ label: k, description: k === 'HF_TOKEN' ? 'Hugging Face' : 'Weights & Biases' })),
        { placeHolder: 'Which token? Kept in VS Code SecretStorage; it reaches a host only in a 0600 file, deleted as the run starts (a SLURM job keeps it until the job ends, for requeues).' },
      );
      if (!pick) return;
      const value = await vscode.window.showInputBox({ prompt: `${pick.label} (empty to remove)`, password: true, ignoreFocusOut: true });
      if (value === undefined) return;
      if (value) await context.secrets.store(secretKey(pick.label), value);
      else await context.secrets.delete(secretKey(pick.label));
      await resetSession();
      void vscode.window.showInformationMessage(`${pick.label} ${value ? 'saved' : 'removed'}.`);
    })),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void reattachAll()),
    // a folder added to the workspace: its runs are listed and its unsettled ones followed; one
    // removed: its runs leave the view and are no longer followed (their monitors stop, the
    // runs go on; added again, the folder's runs are reattached from their saved offsets)
    vscode.workspace.onDidChangeWorkspaceFolders((e) => {
      const removed = new Set(e.removed.map((f) => f.uri.fsPath));
      for (const { root, m } of following.values()) if (removed.has(root)) m.stop();
      refresh();
      void reattachAll();
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('conscience.targets')) void resetSession();
    }),
    { dispose: () => {
      ended = true;
      for (const m of monitors.values()) m.stop();
      monitors.clear();
      sessions.dispose();
    } },
  );

  // runs started by the CLI (or another window) in any folder show up as their run.json appears or changes
  let pending: NodeJS.Timeout | undefined;
  const bump = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      refresh();
    }, 300);
  };
  context.subscriptions.push(ui.runFiles(bump), { dispose: () => clearTimeout(pending) });
  // a window that opens reattaches to every run that was still going
  void updateStatus();
  void reattachAll().catch((e) => log.error(`reattach: ${(e as Error).message}`));
  return provider;
}
