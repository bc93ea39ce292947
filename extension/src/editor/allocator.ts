// Thin VS Code adapter for the budget allocator (core logic lives in core/allocator):
// - inlay hints "ambiguity 71% → deep · 16 tok (clipped from 512)" after each prompt in JSONL/CSV
//   prompt sets and after prompt strings in YAML files (not after recipe keys such as
//   system_prompt, which are not prompts to budget). The budget is the one training would
//   assign (core/allocator/training.ts): the settings of the recipe that trains on the prompt
//   set (its dataset_name, or the workspace default conscience.allocator.recipe), clip included,
//   and the hint names the score that drove the tier. Only the visible range is scored; results
//   are cached by prompt hash; the model loads on first use.
// - a hover with the breakdown on the same lines;
// - `conscience.inspectPrompt` (selection, the prompt under the cursor, or a prompt argument)
//   opens the inspector webview (webview/src/inspector);
// - settings conscience.allocator.modelPath / .policy / .inlayHints.
import * as vscode from 'vscode';
import { Allocator, defaultModelDir, parsePolicy, type Assessment, type Policy } from '../core/allocator';
import { csvPrompts, csvPromptsInWindow, jsonlLinePrompt, PROMPT_KEY, yamlAllocatorSection, yamlPrompts, type FoundPrompt } from '../core/allocator/prompts';
import { toInspectorView } from '../core/allocator/view';
import { budgetSettings, datasetFiles, RUNTIME_DEFAULTS, tierExplanation, trainingBudget, trainingHint, type BudgetSettings, type TrainingBudget } from '../core/allocator/training';
import { detectKind, parseYaml } from '../core/recipe';
import { defaultSchema } from '../core/recipe/schema';
import { boundInspectorView, MAX_PROMPT, parseToExtension, type ToWebview } from '../core/protocol/inspector';
import { clip } from '../core/protocol/validate';
import { dashboardHtml as webviewHtml } from '../core/dashboard/html';
import { FileScanCache, mayBeRecipe } from '../core/editor-checks';
import { docKind } from './recipes';
import { rootOfFile } from './folders';

/** Each workspace recipe's workspace folder (its dataset_name is resolved there). */
const recipeRoots = new WeakMap<BudgetSettings, string>();

export const INSPECT_COMMAND = 'conscience.inspectPrompt';
const SELECTOR: vscode.DocumentSelector = [
  { language: 'jsonl' },
  { pattern: '**/*.jsonl' },
  { language: 'csv' },
  { pattern: '**/*.csv' },
  { language: 'yaml' },
];
/** Visible prompts scored per request at most (a screen holds far fewer). */
const MAX_PROMPTS_PER_REQUEST = 400;
/** CSV documents above this many lines are parsed per visible window, not whole on each edit. */
const BIG_DOC_LINES = 5_000;
/** YAML documents above this size get no hints (recipes are small; this is some data file). */
const MAX_YAML_CHARS = 2_000_000;

type Kind = 'jsonl' | 'csv' | 'yaml' | undefined;

function kindOf(doc: vscode.TextDocument): Kind {
  const p = doc.uri.path.toLowerCase();
  if (doc.languageId === 'jsonl' || p.endsWith('.jsonl')) return 'jsonl';
  if (doc.languageId === 'csv' || p.endsWith('.csv')) return 'csv';
  if (doc.languageId === 'yaml' || p.endsWith('.yaml') || p.endsWith('.yml')) return 'yaml';
  return undefined;
}

class AllocatorHost implements vscode.Disposable {
  private loading: Promise<Allocator> | undefined;
  private warned = false;
  private readonly docCache = new Map<string, { version: number; prompts: FoundPrompt[]; section?: Record<string, unknown> }>();
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  panel: vscode.WebviewPanel | undefined;
  private panelReady = false;
  private pendingMessage: ToWebview | undefined;
  private requests = 0;
  /** the document the inspector's prompt came from (its recipe policy applies to rescoring) */
  lastDoc: vscode.TextDocument | undefined;
  /** Workspace recipes with their budget settings, kept until a YAML file is saved, created,
   * changed or deleted (recipesChanged); a rescan then reads only files whose mtime or size changed. */
  private recipes: Promise<BudgetSettings[]> | undefined;
  private readonly scan = new FileScanCache<vscode.Uri, BudgetSettings>(
    {
      stat: async (f) => { const st = await vscode.workspace.fs.stat(f); return { mtime: st.mtime, size: st.size }; },
      read: async (f) => Buffer.from(await vscode.workspace.fs.readFile(f)).toString('utf8'),
    },
    (f) => f.toString(),
    (text, f) => {
      if (!(text.length <= MAX_YAML_CHARS && mayBeRecipe(text) && detectKind(parseYaml(text).root) === 'recipe')) return undefined;
      // the recipe's path in its own workspace folder (a multi-root workspace's asRelativePath
      // would put the folder's name first), and that folder: its dataset_name is resolved there
      const s = budgetSettings(text, vscode.workspace.asRelativePath(f, false));
      const root = rootOfFile(f);
      if (root) recipeRoots.set(s, root);
      return s;
    },
    MAX_YAML_CHARS,
  );
  /** A YAML document's own settings when it is a recipe, per document version. */
  private readonly ownSettings = new WeakMap<vscode.TextDocument, { version: number; settings: BudgetSettings | undefined }>();

  constructor(private readonly context: vscode.ExtensionContext, private readonly log: vscode.LogOutputChannel) {}

  modelDir(): string {
    const configured = vscode.workspace.getConfiguration('conscience.allocator').get<string>('modelPath')?.trim();
    if (configured) {
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
      return folder && !configured.startsWith('/') && !/^[a-zA-Z]:[\\/]/.test(configured) ? vscode.Uri.joinPath(vscode.Uri.file(folder), configured).fsPath : configured;
    }
    return process.env.CONSCIENCE_ALLOCATOR_MODEL ? defaultModelDir() : vscode.Uri.joinPath(this.context.extensionUri, 'models', 'allocator').fsPath;
  }

  /** The allocator, loaded once (lazily); a failure is reported once and retried after a settings change. */
  get(): Promise<Allocator> {
    if (!this.loading) {
      const dir = this.modelDir();
      const policy = vscode.workspace.getConfiguration('conscience.allocator').get<unknown>('policy');
      const started = Date.now();
      // Small batches keep each synchronous onnxruntime run (on the extension host thread) short;
      // scores do not depend on the batch, and the model yields between batches.
      this.loading = Allocator.load(dir, { policy, policySource: 'setting conscience.allocator.policy', maxBatch: 8 }).then(
        (a) => {
          this.log.info(`allocator ${a.model.config.version} loaded from ${dir} in ${Date.now() - started} ms`);
          return a;
        },
        (err: Error) => {
          this.log.error(`allocator: ${err.message}`);
          if (!this.warned) {
            this.warned = true;
            void vscode.window.showWarningMessage(`Chain of Conscience: the budget allocator could not load: ${err.message}`);
          }
          throw err;
        },
      );
    }
    return this.loading;
  }

  async reload(): Promise<void> {
    const old = this.loading;
    this.loading = undefined;
    this.warned = false;
    this.docCache.clear();
    this.changed.fire();
    if (old) old.then((a) => a.dispose(), () => undefined);
  }

  /** A YAML file was saved: it may be a recipe whose dataset_name or allocator: section decides
   * another document's budgets, so the recipes are read again and the hints asked for again. */
  recipesChanged(): void {
    this.recipes = undefined;
    this.changed.fire();
  }

  enabled(): boolean {
    return vscode.workspace.getConfiguration('conscience.allocator').get<boolean>('inlayHints', true);
  }

  /** Prompts of the document on lines [from, to] (zero-based, inclusive). */
  promptsIn(doc: vscode.TextDocument, from: number, to: number): FoundPrompt[] {
    const kind = kindOf(doc);
    if (kind === 'jsonl') {
      const out: FoundPrompt[] = [];
      for (let l = Math.max(0, from); l <= Math.min(to, doc.lineCount - 1); l++) {
        const p = jsonlLinePrompt(doc.lineAt(l).text, l);
        if (p) out.push(p);
      }
      return out;
    }
    if (kind === 'csv' && doc.lineCount > BIG_DOC_LINES) {
      // Big CSV: parse only the visible window (with the header) on each request.
      const first = Math.max(0, from);
      const last = Math.min(to, doc.lineCount - 1);
      const lines: string[] = [];
      for (let l = first; l <= last; l++) lines.push(doc.lineAt(l).text);
      return csvPromptsInWindow(doc.lineAt(0).text, lines, first);
    }
    if (kind === 'csv' || kind === 'yaml') {
      const key = doc.uri.toString();
      let cached = this.docCache.get(key);
      if (!cached || cached.version !== doc.version) {
        const text = doc.getText();
        const big = text.length > MAX_YAML_CHARS;
        const prompts = kind === 'csv' ? csvPrompts(text) : big ? [] : yamlPrompts(text, promptKeyFor(text));
        const section = kind === 'yaml' && prompts.length ? yamlAllocatorSection(text) : undefined;
        cached = { version: doc.version, prompts, section };
        this.docCache.set(key, cached);
      }
      return cached.prompts.filter((p) => p.line >= from && p.line <= to);
    }
    return [];
  }

  forget(doc: vscode.TextDocument): void {
    this.docCache.delete(doc.uri.toString());
  }

  /**
   * The policy for a document's prompts: the allocator: section of the recipe that applies
   * (settingsFor) on top of the settings (an invalid section falls back to the settings; the
   * recipe validator reports it).
   */
  policyFor(settings: BudgetSettings, a: Allocator): Policy {
    if (!settings.allocator) return a.policy;
    try {
      return parsePolicy(settings.allocator, `${settings.recipe}: allocator`, a.policy);
    } catch {
      return a.policy;
    }
  }

  /** Every recipe in the workspace with its budget settings (kept until a YAML file changes). */
  private workspaceRecipes(): Promise<BudgetSettings[]> {
    if (!this.recipes) {
      const p = (async () => {
        const files = await vscode.workspace.findFiles('**/*.{yaml,yml}', '{**/node_modules/**,**/.git/**,**/.conscience/**,**/recipes/accelerate/**,**/.venv*/**}', 300);
        return this.scan.scan(files);
      })();
      this.recipes = p;
      p.catch(() => { if (this.recipes === p) this.recipes = undefined; });
    }
    return this.recipes;
  }

  /**
   * Which recipe's settings decide a document's budgets: the document itself when it is a
   * recipe; else the recipe whose dataset_name is this prompt set; else the workspace default
   * (conscience.allocator.recipe); else the runtime's defaults.
   */
  async settingsFor(doc: vscode.TextDocument | undefined): Promise<BudgetSettings> {
    if (!doc) return RUNTIME_DEFAULTS;
    const rel = vscode.workspace.asRelativePath(doc.uri);
    if (kindOf(doc) === 'yaml') {
      let own = this.ownSettings.get(doc);
      if (!own || own.version !== doc.version) {
        const text = doc.getText();
        own = { version: doc.version, settings: text.length <= MAX_YAML_CHARS && docKind(doc) === 'recipe' ? budgetSettings(text, rel) : undefined };
        this.ownSettings.set(doc, own);
      }
      if (own.settings) return own.settings;
    }
    const recipes = await this.workspaceRecipes();
    const mine = recipes.find((r) => r.dataset && datasetMatches(r.dataset, r.recipe!, recipeRoots.get(r), doc.uri, this.context.extensionUri));
    if (mine) return mine;
    const defSetting = vscode.workspace.getConfiguration('conscience.allocator').get<unknown>('recipe');
    const def = typeof defSetting === 'string' ? defSetting.trim() : undefined;
    if (def) {
      const hit = recipes.find((r) => r.recipe === def || r.recipe === def.replace(/^\.\//, ''));
      if (hit) return hit;
    }
    return RUNTIME_DEFAULTS;
  }

  async assess(prompts: FoundPrompt[], doc?: vscode.TextDocument): Promise<{ scored: Assessment[]; training: TrainingBudget[]; settings: BudgetSettings; policy: Policy }> {
    const a = await this.get();
    const settings = await this.settingsFor(doc);
    const policy = this.policyFor(settings, a);
    const scored = await a.assess(prompts.map((p) => p.prompt), policy);
    const training = prompts.map((p, i) => trainingBudget(doc ? rowOf(doc, p) : {}, scored[i]!, policy, settings));
    return { scored, training, settings, policy };
  }

  // ---- inspector panel ------------------------------------------------------------------
  async inspect(prompt: string, doc?: vscode.TextDocument): Promise<void> {
    if (!this.panel) {
      const root = vscode.Uri.joinPath(this.context.extensionUri, 'dist', 'webview');
      const panel = vscode.window.createWebviewPanel('conscience.inspector', 'Prompt budget', vscode.ViewColumn.Beside, {
        enableScripts: true,
        localResourceRoots: [root],
        retainContextWhenHidden: true,
      });
      this.panel = panel;
      this.panelReady = false;
      panel.webview.html = this.html(panel.webview, root);
      panel.onDidDispose(() => { this.panel = undefined; });
      panel.webview.onDidReceiveMessage((raw: unknown) => {
        const parsed = parseToExtension(raw);
        if (!parsed.ok) {
          this.log.warn(`inspector: ignored message: ${parsed.error}`);
          return;
        }
        if (parsed.value.type === 'ready') {
          this.panelReady = true;
          if (this.pendingMessage) void panel.webview.postMessage(this.pendingMessage);
          this.pendingMessage = undefined;
        } else {
          void this.inspect(parsed.value.prompt, this.lastDoc);
        }
      });
    } else {
      this.panel.reveal(undefined, true);
    }
    const request = ++this.requests;
    // a selection past what a message carries is cut (its first tokens are what is scored)
    this.post({ type: 'loading', prompt: clip(prompt, MAX_PROMPT) });
    try {
      const a = await this.get();
      const settings = await this.settingsFor(doc);
      const policy = this.policyFor(settings, a);
      const e = await a.explain(prompt, { policy });
      const row = doc ? rowOfPrompt(doc, prompt) : {};
      const t = trainingBudget(row, e, policy, settings);
      // A newer request may have started meanwhile: only the latest one is shown.
      if (request === this.requests) {
        this.post({ type: 'show', view: boundInspectorView({ ...toInspectorView(e, a.model.dir, a.model.config.maxLength), training: { budget: t.budget, from: t.from, why: t.why, tierWhy: tierExplanation(e.risk, e.ambiguity, policy) } }) });
      }
    } catch (err) {
      if (request === this.requests) this.post({ type: 'error', message: `Could not score the prompt: ${(err as Error).message}` });
    }
  }

  private post(msg: ToWebview): void {
    if (!this.panel) return;
    if (this.panelReady) void this.panel.webview.postMessage(msg);
    else this.pendingMessage = msg;
  }

  private html(webview: vscode.Webview, root: vscode.Uri): string {
    const nonce = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
    return webviewHtml({
      cspSource: webview.cspSource,
      nonce,
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(root, 'inspector.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(root, 'inspector.css')).toString(),
      title: 'Prompt budget',
    });
  }

  dispose(): void {
    this.panel?.dispose();
    this.changed.dispose();
    void this.loading?.then((a) => a.dispose(), () => undefined);
  }
}

/** For a recipe: only keys that are prompts (not recipe keys such as system_prompt); for other YAML: any prompt-like key. */
function promptKeyFor(text: string): ((k: string) => boolean) | undefined {
  let recipe = false;
  try {
    recipe = detectKind(parseYaml(text).root) === 'recipe';
  } catch {
    /* not YAML we can read: no exclusions */
  }
  if (!recipe) return undefined;
  const known = defaultSchema().fields;
  return (k) => PROMPT_KEY.test(k) && !known.has(k);
}

/** Does a recipe's dataset_name name this file (datasetFiles)? */
function datasetMatches(dataset: string, recipe: string, root: string | undefined, file: vscode.Uri, extension: vscode.Uri): boolean {
  if (!root) return false;
  return datasetFiles(dataset, recipe, root, extension.fsPath).includes(file.fsPath);
}

/** The label and budget of a JSONL row (what training's budget source reads). */
function rowOf(doc: vscode.TextDocument, p: FoundPrompt): { label?: string | null; budget?: number | null } {
  if (kindOf(doc) !== 'jsonl') return {};
  try {
    const o = JSON.parse(doc.lineAt(p.line).text) as { label?: unknown; budget?: unknown };
    return { label: typeof o.label === 'string' ? o.label : null, budget: typeof o.budget === 'number' ? o.budget : null };
  } catch {
    return {};
  }
}
function rowOfPrompt(doc: vscode.TextDocument, prompt: string): { label?: string | null; budget?: number | null } {
  if (kindOf(doc) !== 'jsonl') return {};
  for (let l = 0; l < Math.min(doc.lineCount, 200_000); l++) {
    const p = jsonlLinePrompt(doc.lineAt(l).text, l);
    if (p && p.prompt === prompt) return rowOf(doc, p);
  }
  return {};
}

export function activateAllocator(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  const host = new AllocatorHost(context, log);
  context.subscriptions.push(host);

  const hints: vscode.InlayHintsProvider = {
    onDidChangeInlayHints: host.onDidChange,
    async provideInlayHints(doc, range, token) {
      if (!host.enabled()) return [];
      const found = host.promptsIn(doc, range.start.line, range.end.line).slice(0, MAX_PROMPTS_PER_REQUEST);
      if (!found.length) return [];
      let r: Awaited<ReturnType<AllocatorHost['assess']>>;
      try {
        r = await host.assess(found, doc);
      } catch {
        return []; // reported once by host.get()
      }
      if (token.isCancellationRequested) return [];
      return found.map((p, i) => {
        const a = r.scored[i]!;
        const t = r.training[i]!;
        const end = doc.lineAt(p.line).range.end;
        const hint = new vscode.InlayHint(end, trainingHint(t, a, a.truncated));
        hint.paddingLeft = true;
        const tip = new vscode.MarkdownString();
        tip.appendText(`Training budget ${t.budget} tokens: ${t.why}.\n\n${a.reason}\n\n`);
        if (a.truncated) tip.appendText('The prompt is longer than the model reads: it was scored on its start.\n\n');
        tip.appendMarkdown('Run **Inspect prompt budget** for the words driving the score.');
        hint.tooltip = tip;
        return hint;
      });
    },
  };

  const hover: vscode.HoverProvider = {
    async provideHover(doc, pos, token) {
      const found = host.promptsIn(doc, pos.line, pos.line).filter((p) => p.start === undefined || doc.offsetAt(pos) >= p.start && doc.offsetAt(pos) <= p.end!);
      if (!found.length) return undefined;
      let r: Awaited<ReturnType<AllocatorHost['assess']>>;
      try {
        r = await host.assess(found.slice(0, 1), doc);
      } catch (err) {
        return new vscode.Hover(`Budget allocator unavailable: ${(err as Error).message}`);
      }
      if (token.isCancellationRequested) return undefined;
      const a = r.scored[0]!;
      const t = r.training[0]!;
      const md = new vscode.MarkdownString(undefined, true);
      md.isTrusted = { enabledCommands: [INSPECT_COMMAND] };
      md.appendMarkdown(`**Training budget: ${t.budget} tokens** (${t.from}${t.decision ? `, tier ${t.decision.tier}` : ''})\n\n`);
      md.appendText(`${t.why}\n\n`);
      md.appendMarkdown(`| | |\n|---|---|\n| risk | ${(a.risk * 100).toFixed(1)}% |\n| ambiguity | ${(a.ambiguity * 100).toFixed(1)}% |\n`);
      const cats = Object.entries(a.categories).sort((x, y) => y[1] - x[1]).slice(0, 3);
      for (const [name, p] of cats) md.appendMarkdown(`| ${name} | ${(p * 100).toFixed(1)}% |\n`);
      md.appendMarkdown(`\n${a.reason}${a.truncated ? '\n\n_The prompt is longer than the allocator reads: only its beginning was scored._' : ''}\n\n`);
      const args = encodeURIComponent(JSON.stringify([{ prompt: found[0]!.prompt.slice(0, 100_000), uri: doc.uri.toString() }]));
      md.appendMarkdown(`[Inspect prompt budget](command:${INSPECT_COMMAND}?${args})`);
      return new vscode.Hover(md);
    },
  };

  context.subscriptions.push(
    vscode.languages.registerInlayHintsProvider(SELECTOR, hints),
    vscode.languages.registerHoverProvider(SELECTOR, hover),
    vscode.commands.registerCommand(INSPECT_COMMAND, async (arg?: { prompt?: unknown; uri?: unknown } | string) => {
      let prompt = typeof arg === 'string' ? arg : typeof arg?.prompt === 'string' ? arg.prompt : undefined;
      const editor = vscode.window.activeTextEditor;
      let doc = typeof arg === 'object' && arg !== null && typeof arg.uri === 'string'
        ? vscode.workspace.textDocuments.find((d) => d.uri.toString() === arg.uri)
        : undefined;
      if (prompt === undefined && editor) {
        doc = editor.document;
        const sel = editor.selection;
        if (!sel.isEmpty) prompt = editor.document.getText(sel);
        else prompt = host.promptsIn(editor.document, sel.active.line, sel.active.line)[0]?.prompt;
      }
      if (!prompt || !prompt.trim()) {
        void vscode.window.showInformationMessage('Select a prompt (or put the cursor on a dataset line) to inspect its safety budget.');
        return;
      }
      if (doc) host.promptsIn(doc, 0, -1); // fills the document cache (its recipe policy)
      host.lastDoc = doc;
      await host.inspect(prompt, doc);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('conscience.allocator')) void host.reload();
    }),
    vscode.workspace.onDidCloseTextDocument((doc) => host.forget(doc)),
    vscode.workspace.onDidSaveTextDocument((doc) => {
      if (kindOf(doc) === 'yaml') host.recipesChanged();
    }),
    // a recipe added, removed or changed outside the editor (git checkout, a script)
    ...((w, on = (u: vscode.Uri) => { if (!/\/(node_modules|\.git|\.conscience)\//.test(u.path)) host.recipesChanged(); }) =>
      [w, w.onDidCreate(on), w.onDidChange(on), w.onDidDelete(on)])(
      vscode.workspace.createFileSystemWatcher('**/*.{yaml,yml}'),
    ),
  );
}
