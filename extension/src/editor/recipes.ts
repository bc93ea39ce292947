// Thin VS Code adapter for the recipes feature (owned by the recipes work; core logic lives in core/).
import type * as vscode from 'vscode';

export function activateRecipes(_context: vscode.ExtensionContext, _log: vscode.LogOutputChannel): void {
  // filled in by the recipes feature
}
