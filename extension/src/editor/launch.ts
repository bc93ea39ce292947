// Thin VS Code adapter for the launch feature (owned by the launch work; core logic lives in core/).
import type * as vscode from 'vscode';

export function activateLaunch(_context: vscode.ExtensionContext, _log: vscode.LogOutputChannel): void {
  // filled in by the launch feature
}
