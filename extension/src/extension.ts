// The one place that owns the extension's lifecycle: every disposable ends up in
// context.subscriptions, so deactivation is automatic.
//
// Activation loads no room. It registers what VS Code must have at once (each room's commands,
// the Runs view, the dashboard's panel serializer, the launch-command documents' provider) and
// starts a room the first time it is needed: one of its commands runs, a document it serves is
// open, its view asks for its rows, a run is there to follow, a panel is restored. Starting a
// room requires dist/rooms.js (every room's code, an entry of its own in esbuild.mjs) once and
// calls the room's activate function, which registers the rest (docs/architecture.md, "Loading").
import * as vscode from 'vscode';
import { join } from 'node:path';
import type * as Rooms from './rooms';
import type { RunsProvider } from './editor/launch';

type RoomName = keyof typeof Rooms;

interface Room<T> {
  name: RoomName;
  /** its commands: until it starts, each one starts it and is then run again */
  commands: string[];
  /** documents it serves: one open (when the window opens, or later) starts it */
  serves?: (doc: vscode.TextDocument) => boolean;
  start: (code: typeof Rooms) => T;
}

const isYaml = (d: vscode.TextDocument): boolean => d.languageId === 'yaml' || /\.ya?ml$/i.test(d.uri.path);
const isPromptSet = (d: vscode.TextDocument): boolean => isYaml(d) || ['jsonl', 'csv'].includes(d.languageId) || /\.(jsonl|csv)$/i.test(d.uri.path);

/** The text of a launch-command document this window did not make (one restored after a reload). */
const PLAN_GONE = '# run "Show Launch Command" again: this preview is gone with the window that made it\n';

let code: typeof Rooms | undefined;
/** Every room's code, required once, the first time a room starts. */
const roomCode = (): typeof Rooms => (code ??= require(join(__dirname, 'rooms.js')) as typeof Rooms);

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const started = Date.now();
  const log = vscode.window.createOutputChannel('Chain of Conscience', { log: true });
  context.subscriptions.push(log);

  /** A room that starts on first use; the returned function starts it (once) and gives what its activate returned. */
  const lazy = <T>(room: Room<T>): (() => T | undefined) => {
    let state: { value: T | undefined } | undefined;
    const waiting: vscode.Disposable[] = [];
    const start = (): T | undefined => {
      if (state) return state.value;
      state = { value: undefined };
      for (const d of waiting.splice(0)) d.dispose();
      try {
        state.value = room.start(roomCode());
      } catch (err) {
        // One broken room must not take the others down.
        log.error(`feature ${room.name} failed to activate: ${(err as Error)?.stack ?? err}`);
      }
      return state.value;
    };
    for (const id of room.commands) {
      waiting.push(vscode.commands.registerCommand(id, (...args: unknown[]) => {
        start();
        return vscode.commands.executeCommand(id, ...args);
      }));
    }
    const serves = room.serves;
    if (serves) {
      waiting.push(vscode.workspace.onDidOpenTextDocument((d) => { if (serves(d)) start(); }));
      // documents open when the window opens: right after activation
      const timer = setTimeout(() => { if (vscode.workspace.textDocuments.some(serves)) start(); }, 0);
      waiting.push({ dispose: () => clearTimeout(timer) });
    }
    context.subscriptions.push(...waiting);
    return start;
  };

  lazy({
    name: 'recipes',
    commands: ['conscience.recipes.validate'],
    serves: isYaml,
    start: (c) => c.recipes(context, log),
  });

  // launch: VS Code shows the Runs view and may restore a launch-command document before any
  // run is looked at; a run.json appearing (a run started by the CLI) starts the room.
  const runsChanged = new vscode.EventEmitter<undefined>();
  const planChanged = new vscode.EventEmitter<vscode.Uri>();
  const plans = new Map<string, string>();
  // every workspace folder's run.json files, folders added and removed while the window is open followed
  const runFiles = new vscode.EventEmitter<vscode.Uri>();
  const watchers = new Map<string, vscode.Disposable>();
  let view: vscode.TreeView<unknown> | undefined;
  const launch = lazy<RunsProvider>({
    name: 'launch',
    commands: ['conscience.launch', 'conscience.showLaunchCommand', 'conscience.cancelRun', 'conscience.resumeRun', 'conscience.showRunLogs', 'conscience.refreshRuns', 'conscience.setToken'],
    serves: isYaml, // its CodeLens
    start: (c) => c.launch(context, log, { view: view!, changed: runsChanged, planScheme: 'conscience-plan', plans, planChanged, runFiles: runFiles.event }),
  });
  view = vscode.window.createTreeView<unknown>('conscience.runs', {
    treeDataProvider: {
      onDidChangeTreeData: runsChanged.event,
      getChildren: (el) => launch()?.getChildren(el as never) ?? [],
      getTreeItem: (n) => launch()!.getTreeItem(n as never),
    },
    showCollapseAll: false,
  });
  context.subscriptions.push(
    view, runsChanged, planChanged, runFiles,
    vscode.workspace.registerTextDocumentContentProvider('conscience-plan', {
      onDidChange: planChanged.event,
      provideTextDocumentContent: (uri) => plans.get(uri.toString()) ?? PLAN_GONE,
    }),
  );
  const watch = (folder: vscode.WorkspaceFolder) => {
    const root = folder.uri.fsPath;
    if (folder.uri.scheme !== 'file' || watchers.has(root)) return;
    const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '.conscience/runs/*/run.json'));
    const seen = (uri: vscode.Uri) => {
      launch();
      runFiles.fire(uri);
    };
    watchers.set(root, vscode.Disposable.from(w, w.onDidCreate(seen), w.onDidChange(seen), w.onDidDelete((uri) => runFiles.fire(uri))));
    // runs already in the folder: the status bar names those going, and the room reattaches to them
    vscode.workspace.fs.readDirectory(vscode.Uri.file(join(root, '.conscience', 'runs'))).then(
      (entries) => { if (entries.length) launch(); },
      () => undefined, // no runs yet
    );
  };
  for (const f of vscode.workspace.workspaceFolders ?? []) watch(f);
  context.subscriptions.push(
    vscode.workspace.onDidChangeWorkspaceFolders((e) => {
      for (const f of e.removed) {
        watchers.get(f.uri.fsPath)?.dispose();
        watchers.delete(f.uri.fsPath);
      }
      for (const f of e.added) watch(f);
      runsChanged.fire(undefined); // the view lists the folders' runs again (the room, once started, also reattaches)
    }),
    { dispose: () => { for (const w of watchers.values()) w.dispose(); watchers.clear(); } },
  );

  const dashboard = lazy({
    name: 'dashboard',
    commands: ['conscience.openDashboard', 'conscience.compareRuns'],
    start: (c) => c.dashboard(context, log),
  });
  context.subscriptions.push(vscode.window.registerWebviewPanelSerializer('conscience.dashboard', {
    async deserializeWebviewPanel(panel, state) {
      const s = dashboard();
      if (s) await s.deserializeWebviewPanel(panel, state);
      else panel.dispose();
    },
  }));

  lazy({
    name: 'allocator',
    commands: ['conscience.inspectPrompt'],
    serves: isPromptSet,
    start: (c) => c.allocator(context, log),
  });
  lazy({
    name: 'eval',
    commands: ['conscience.openEvalReport', 'conscience.compareEvals'],
    start: (c) => c.eval(context, log),
  });
  lazy({
    name: 'serve',
    commands: ['conscience.serve.start', 'conscience.serve.stop'],
    start: (c) => c.serve(context, log),
  });

  log.info(`activated in ${Date.now() - started} ms`);
}

export function deactivate(): void {}
