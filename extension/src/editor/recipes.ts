// Thin VS Code adapter over core/recipe: diagnostics as you type (debounced, off the typing
// path), hover docs from TRL's help strings, completion of keys and enum values, and quick
// fixes carried by the diagnostics themselves.
//
// Which YAML files are recipes: the core's recipeKind (a recipe or an accelerate config, from the
// top-level keys); files matching `conscience.recipes.include` globs are always validated.
// A recipe without launch.trl is checked against the TRL its newest run recorded (recordedTrl).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { completionsAt, hoverAt, schemaForText } from '../core/recipe/assist';
import { recordedTrl } from '../core/recipe/recorded';
import { nodeFiles } from '../core/recipe/node-files';
import { recipeKind, validateText, type Diagnostic as CoreDiagnostic } from '../core/recipe';
import { recipeTopologyDiagnostics } from '../core/launch/topology';
import type { Target } from '../core/launch/targets';
import { numberSetting, stringListSetting } from '../core/editor-checks';
import { workspaceTargets } from './targets';
import { rootOfFile, workspaceFolders } from './folders';

const SOURCE = 'conscience';
const DEFAULT_INCLUDE = ['**/recipes/**/*.yaml', '**/*.grpo.yaml'];

/** Settings of the wrong shape (VS Code does not enforce the schema) are warned about once each. */
const warned = new Set<string>();
let warnSetting = (msg: string): void => {
  if (warned.has(msg)) return;
  warned.add(msg);
  void vscode.window.showWarningMessage(`Chain of Conscience: ${msg}`);
};

function config() {
  const c = vscode.workspace.getConfiguration('conscience.recipes');
  const include = stringListSetting('conscience.recipes.include', c.get<unknown>('include'), DEFAULT_INCLUDE);
  if (include.problem) warnSetting(include.problem);
  return {
    enabled: c.get<unknown>('validate', true) !== false,
    debounceMs: numberSetting(c.get<unknown>('debounceMs'), { def: 200, min: 0, max: 10_000 }),
    include: include.value,
  };
}

function isYaml(doc: vscode.TextDocument): boolean {
  return doc.languageId === 'yaml' || /\.ya?ml$/i.test(doc.uri.path);
}

function isRecipe(doc: vscode.TextDocument): boolean {
  if (!isYaml(doc)) return false;
  const { include } = config();
  if (include.some((g) => vscode.languages.match({ pattern: g }, doc) > 0)) return true;
  // The core's one answer (a recipe or an accelerate config), as the CLI and the CodeLens use it.
  return docKind(doc) !== 'other';
}

const kinds = new WeakMap<vscode.TextDocument, { version: number; kind: ReturnType<typeof recipeKind> }>();

/** recipeKind of a document, parsed once per document version (validation, hover, completion
 * and the launch CodeLens all ask on each keystroke). */
export function docKind(doc: vscode.TextDocument): ReturnType<typeof recipeKind> {
  const hit = kinds.get(doc);
  if (hit && hit.version === doc.version) return hit.kind;
  const kind = recipeKind(doc.getText());
  kinds.set(doc, { version: doc.version, kind });
  return kind;
}

function toRange(doc: vscode.TextDocument, start: number, end: number): vscode.Range {
  return new vscode.Range(doc.positionAt(start), doc.positionAt(end));
}

const SEVERITY: Record<CoreDiagnostic['severity'], vscode.DiagnosticSeverity> = {
  error: vscode.DiagnosticSeverity.Error,
  warning: vscode.DiagnosticSeverity.Warning,
  info: vscode.DiagnosticSeverity.Information,
};

/** The topology planner's findings for a recipe on the workspace's targets, at their keys' lines. */
function topologyDiagnostics(doc: vscode.TextDocument, targets: Map<string, Target>): CoreDiagnostic[] {
  return recipeTopologyDiagnostics(doc.getText(), doc.uri.fsPath, targets.values()).map((d) => {
    const line = doc.lineAt(Math.min(Math.max(0, d.line - 1), doc.lineCount - 1));
    const start = doc.offsetAt(line.range.start) + line.firstNonWhitespaceCharacterIndex;
    const end = doc.offsetAt(line.range.end);
    const a = doc.positionAt(start);
    const b = doc.positionAt(end);
    return {
      severity: d.severity, code: 'topology', message: d.message,
      start, end, line: a.line, column: a.character, endLine: b.line, endColumn: b.character,
    };
  });
}

export function activateRecipes(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  const collection = vscode.languages.createDiagnosticCollection('conscience-recipes');
  context.subscriptions.push(collection);
  const showWarning = warnSetting;
  warnSetting = (msg) => {
    if (!warned.has(msg)) log.warn(msg);
    showWarning(msg);
  };
  /** Latest core diagnostics per document version, for quick fixes. */
  const latest = new Map<string, { version: number; diags: CoreDiagnostic[] }>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Each workspace folder's launch targets (by root), for the topology planner's diagnostics (a
   * recipe that does not fit a target is shown before anyone launches it); a recipe is checked
   * against its own folder's (editor/folders.ts). Reloaded when the targets or the folders change. */
  let targets = new Map<string, Map<string, Target>>();
  let loading = 0;
  const refreshTargets = () => {
    const mine = ++loading;
    const folders = workspaceFolders();
    Promise.all(folders.map(async ({ root }) => [root, await workspaceTargets(root).catch((err) => {
      log.warn(`reading the launch targets of ${root}: ${(err as Error)?.message ?? err}`);
      return undefined;
    })] as const)).then((loaded) => {
      if (mine !== loading) return; // a later refresh wins
      targets = new Map(loaded.filter((e): e is readonly [string, Map<string, Target>] => !!e[1]));
      for (const d of vscode.workspace.textDocuments) if (isRecipe(d)) validateNow(d);
    }, (err) => log.warn(`reading the launch targets: ${(err as Error)?.message ?? err}`));
  };
  /** The TRL each recipe's newest run recorded (by file path), looked up on open and save. */
  const recorded = new Map<string, string | undefined>();
  const lookUpTrl = (doc: vscode.TextDocument) => {
    const folder = doc.uri.scheme === 'file' ? vscode.workspace.getWorkspaceFolder(doc.uri) : undefined;
    if (!folder) return;
    const file = doc.uri.fsPath;
    const rel = path.relative(folder.uri.fsPath, file).split(path.sep).join('/');
    recordedTrl(folder.uri.fsPath, rel).then((trl) => {
      const changed = recorded.get(file) !== trl;
      recorded.set(file, trl);
      if (changed && !doc.isClosed) validateNow(doc);
    }, (err) => log.warn(`reading the runs of ${rel}: ${(err as Error)?.message ?? err}`));
  };

  /** Validates a document; `force` (the Validate Recipe command) validates even with validation turned off. */
  const validateNow = (doc: vscode.TextDocument, force = false) => {
    const key = doc.uri.toString();
    let recipe = false;
    try {
      recipe = (force || config().enabled) && isRecipe(doc);
    } catch (err) {
      log.error(`recipe validation failed for ${doc.uri.fsPath}: ${(err as Error)?.stack ?? err}`);
    }
    if (!recipe) {
      collection.delete(doc.uri);
      latest.delete(key);
      return;
    }
    const started = performance.now();
    let diags: CoreDiagnostic[];
    try {
      // paths a run opens from where it starts (deepspeed:) are looked for in the workspace
      // folder, not in the extension host's working folder
      const folder = vscode.workspace.getWorkspaceFolder(doc.uri)?.uri.fsPath;
      const files = doc.uri.scheme !== 'file' ? undefined : folder ? { ...nodeFiles, runFolder: () => folder } : nodeFiles;
      diags = validateText(doc.getText(), { file: doc.uri.scheme === 'file' ? doc.uri.fsPath : undefined, files, trl: recorded.get(doc.uri.fsPath) });
    } catch (err) {
      log.error(`recipe validation failed for ${doc.uri.fsPath}: ${(err as Error)?.stack ?? err}`);
      return;
    }
    const own = targets.get(rootOfFile(doc.uri) ?? '');
    if (own) diags = diags.concat(topologyDiagnostics(doc, own));
    // Diagnostics about a referenced file (accelerate config) show up when that file is open.
    const mineOnly = diags.filter((d) => !d.file);
    latest.set(key, { version: doc.version, diags: mineOnly });
    collection.set(doc.uri, mineOnly.map((d) => {
      const v = new vscode.Diagnostic(toRange(doc, d.start, d.end), d.message, SEVERITY[d.severity]);
      v.code = d.code;
      v.source = SOURCE;
      return v;
    }));
    const ms = performance.now() - started;
    if (ms > 50) log.warn(`validating ${doc.uri.fsPath} took ${ms.toFixed(1)} ms`);
  };

  const schedule = (doc: vscode.TextDocument) => {
    const key = doc.uri.toString();
    const t = timers.get(key);
    if (t) clearTimeout(t);
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      // The document may have closed meanwhile.
      if (!doc.isClosed) validateNow(doc);
    }, config().debounceMs));
  };

  context.subscriptions.push(
    vscode.workspace.onDidOpenTextDocument((d) => { schedule(d); if (isRecipe(d)) lookUpTrl(d); }),
    vscode.workspace.onDidChangeTextDocument((e) => { if (e.contentChanges.length) schedule(e.document); }),
    vscode.workspace.onDidSaveTextDocument((d) => {
      if (/(^|[\\/])conscience\.targets\.(ya?ml|json)$/.test(d.uri.fsPath)) refreshTargets();
      validateNow(d);
      if (isRecipe(d)) lookUpTrl(d);
    }),
    vscode.workspace.onDidCloseTextDocument((d) => {
      const key = d.uri.toString();
      const t = timers.get(key);
      if (t) clearTimeout(t);
      timers.delete(key);
      latest.delete(key);
      collection.delete(d.uri);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('conscience.recipes')) for (const d of vscode.workspace.textDocuments) schedule(d);
      if (e.affectsConfiguration('conscience.targets')) refreshTargets();
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => refreshTargets()),
    { dispose: () => { for (const t of timers.values()) clearTimeout(t); timers.clear(); } },
  );

  refreshTargets();

  const selector: vscode.DocumentSelector = [{ language: 'yaml' }, { pattern: '**/*.{yaml,yml}' }];

  context.subscriptions.push(vscode.languages.registerHoverProvider(selector, {
    provideHover(doc, pos) {
      if (!isRecipe(doc)) return undefined;
      const h = hoverAt(doc.getText(), doc.offsetAt(pos), schemaForText(doc.getText(), recorded.get(doc.uri.fsPath)));
      if (!h) return undefined;
      return new vscode.Hover(new vscode.MarkdownString(h.markdown), toRange(doc, h.start, h.end));
    },
  }));

  context.subscriptions.push(vscode.languages.registerCompletionItemProvider(selector, {
    provideCompletionItems(doc, pos) {
      if (!isRecipe(doc)) return undefined;
      const items = completionsAt(doc.getText(), doc.offsetAt(pos), schemaForText(doc.getText(), recorded.get(doc.uri.fsPath)));
      return items.map((c) => {
        const item = new vscode.CompletionItem(c.label, c.kind === 'value' ? vscode.CompletionItemKind.EnumMember : c.kind === 'section' ? vscode.CompletionItemKind.Module : vscode.CompletionItemKind.Property);
        item.detail = c.detail;
        if (c.documentation) item.documentation = new vscode.MarkdownString(c.documentation);
        item.insertText = c.insertText;
        return item;
      });
    },
  }, ':', ' ', '-'));

  context.subscriptions.push(vscode.languages.registerCodeActionsProvider(selector, {
    provideCodeActions(doc, range) {
      let entry = latest.get(doc.uri.toString());
      if (!entry || entry.version !== doc.version) {
        validateNow(doc);
        entry = latest.get(doc.uri.toString());
      }
      if (!entry) return [];
      const actions: vscode.CodeAction[] = [];
      for (const d of entry.diags) {
        if (!d.fixes) continue;
        const r = toRange(doc, d.start, d.end);
        if (!r.intersection(range) && !r.contains(range.start)) continue;
        for (const fix of d.fixes) {
          const a = new vscode.CodeAction(fix.title, vscode.CodeActionKind.QuickFix);
          const edit = new vscode.WorkspaceEdit();
          for (const e of fix.edits) edit.replace(doc.uri, toRange(doc, e.start, e.end), e.newText);
          a.edit = edit;
          a.isPreferred = fix === d.fixes[0]; // the core lists the likeliest fix first
          a.diagnostics = collection.get(doc.uri)?.filter((x) => x.code === d.code && x.range.isEqual(r)) ?? [];
          actions.push(a);
        }
      }
      return actions;
    },
  }, { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] }));

  context.subscriptions.push(vscode.commands.registerCommand('conscience.recipes.validate', async () => {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) { void vscode.window.showInformationMessage('Open a recipe YAML file to validate it.'); return; }
    const name = vscode.workspace.asRelativePath(doc.uri);
    if (!isRecipe(doc)) {
      void vscode.window.showWarningMessage(`${name} is not a recipe or accelerate config: nothing validated.`);
      return;
    }
    validateNow(doc, true);
    if (!config().enabled) void vscode.window.showInformationMessage('Recipe validation is turned off (conscience.recipes.validate); this check ran because you asked for it, and its problems stay until the file changes.');
    const n = collection.get(doc.uri)?.length ?? 0;
    void vscode.window.showInformationMessage(n ? `Recipe: ${n} problem(s); see the Problems view.` : 'Recipe: no problems found.');
    if (n) await vscode.commands.executeCommand('workbench.actions.view.problems');
  }));

  for (const d of vscode.workspace.textDocuments) { schedule(d); if (isRecipe(d)) lookUpTrl(d); }
}
