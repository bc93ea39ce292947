// Thin VS Code adapter for the allocator feature (owned by the allocator work; core logic lives in core/).
import type * as vscode from 'vscode';

export function activateAllocator(_context: vscode.ExtensionContext, _log: vscode.LogOutputChannel): void {
  // filled in by the allocator feature
}
