// Thin VS Code adapter for the budget allocator (core logic lives in core/allocator):
// - inlay hints "risk 87% · deep · 512 tok" after each prompt in JSONL/CSV datasets and after
//   prompt strings in YAML recipes (system_prompt, prompts: [...], ...). Only the visible range
//   is scored; results are cached by prompt hash; the model loads on first use.
// - a hover with the breakdown on the same lines;
// - `conscience.inspectPrompt` (selection, the prompt under the cursor, or a prompt argument)
//   opens the inspector webview (webview/src/inspector);
// - settings conscience.allocator.modelPath / .policy / .inlayHints.
import * as vscode from 'vscode';
import { Allocator, defaultModelDir, parsePolicy, type Assessment, type Policy } from '../core/allocator';
import { csvPrompts, csvPromptsInWindow, jsonlLinePrompt, yamlAllocatorSection, yamlPrompts, type FoundPrompt } from '../core/allocator/prompts';
import { hintLabel, toInspectorView } from '../core/allocator/view';
import { parseToHost, type ToWebview } from '../core/protocol/inspector';
import { dashboardHtml as webviewHtml } from '../core/dashboard/html';

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
        const prompts = kind === 'csv' ? csvPrompts(text) : big ? [] : yamlPrompts(text);
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
   * The policy for a document's prompts: a recipe's own allocator: section on top of the
   * settings (an invalid section falls back to the settings; the recipe validator reports it).
   */
  policyFor(doc: vscode.TextDocument | undefined, a: Allocator): Policy {
    const section = doc ? this.docCache.get(doc.uri.toString())?.section : undefined;
    if (!section) return a.policy;
    try {
      return parsePolicy(section, `${doc!.uri.fsPath}: allocator`, a.policy);
    } catch {
      return a.policy;
    }
  }

  async assess(prompts: FoundPrompt[], doc?: vscode.TextDocument): Promise<Assessment[]> {
    const a = await this.get();
    return a.assess(prompts.map((p) => p.prompt), this.policyFor(doc, a));
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
        const parsed = parseToHost(raw);
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
    this.post({ type: 'loading', prompt });
    try {
      const a = await this.get();
      const e = await a.explain(prompt, { policy: this.policyFor(doc, a) });
      // A newer request may have started meanwhile: only the latest one is shown.
      if (request === this.requests) this.post({ type: 'show', view: toInspectorView(e, a.model.dir, a.model.config.maxLength) });
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

export function activateAllocator(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  const host = new AllocatorHost(context, log);
  context.subscriptions.push(host);

  const hints: vscode.InlayHintsProvider = {
    onDidChangeInlayHints: host.onDidChange,
    async provideInlayHints(doc, range, token) {
      if (!host.enabled()) return [];
      const found = host.promptsIn(doc, range.start.line, range.end.line).slice(0, MAX_PROMPTS_PER_REQUEST);
      if (!found.length) return [];
      let scored: Assessment[];
      try {
        scored = await host.assess(found, doc);
      } catch {
        return []; // reported once by host.get()
      }
      if (token.isCancellationRequested) return [];
      return found.map((p, i) => {
        const a = scored[i]!;
        const end = doc.lineAt(p.line).range.end;
        const hint = new vscode.InlayHint(end, `  ${hintLabel(a)}`);
        hint.paddingLeft = true;
        hint.tooltip = new vscode.MarkdownString(`${a.reason}\n\nRun **Inspect prompt budget** for the words driving the score.`);
        return hint;
      });
    },
  };

  const hover: vscode.HoverProvider = {
    async provideHover(doc, pos, token) {
      const found = host.promptsIn(doc, pos.line, pos.line).filter((p) => p.start === undefined || doc.offsetAt(pos) >= p.start && doc.offsetAt(pos) <= p.end!);
      if (!found.length) return undefined;
      let scored: Assessment[];
      try {
        scored = await host.assess(found.slice(0, 1), doc);
      } catch (err) {
        return new vscode.Hover(`Budget allocator unavailable: ${(err as Error).message}`);
      }
      if (token.isCancellationRequested) return undefined;
      const a = scored[0]!;
      const md = new vscode.MarkdownString(undefined, true);
      md.isTrusted = { enabledCommands: [INSPECT_COMMAND] };
      md.appendMarkdown(`**Safety budget: ${a.tier} · ${a.budget} tokens**\n\n`);
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
      let doc = typeof arg === 'object' && typeof arg.uri === 'string'
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
  );
}
