// Thin VS Code adapter for the dashboard feature (owned by the dashboard work; core logic lives in core/).
import type * as vscode from 'vscode';

export function activateDashboard(_context: vscode.ExtensionContext, _log: vscode.LogOutputChannel): void {
  // filled in by the dashboard feature
}
