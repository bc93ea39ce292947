// The one place that owns the extension's lifecycle: it builds every feature and
// every disposable ends up in context.subscriptions, so deactivation is automatic.
import * as vscode from 'vscode';
import { activateRecipes } from './editor/recipes';
import { activateLaunch } from './editor/launch';
import { activateDashboard } from './editor/dashboard';
import { activateAllocator } from './editor/allocator';
import { activateEval } from './editor/eval';
import { activateServe } from './editor/serve';

export interface Feature {
  (context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void | Promise<void>;
}

const features: Array<[string, Feature]> = [
  ['recipes', activateRecipes],
  ['launch', activateLaunch],
  ['dashboard', activateDashboard],
  ['allocator', activateAllocator],
  ['eval', activateEval],
  ['serve', activateServe],
];

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const started = Date.now();
  const log = vscode.window.createOutputChannel('Chain of Conscience', { log: true });
  context.subscriptions.push(log);
  for (const [name, feature] of features) {
    try {
      await feature(context, log);
    } catch (err) {
      // One broken feature must not take the others down.
      log.error(`feature ${name} failed to activate: ${(err as Error)?.stack ?? err}`);
    }
  }
  log.info(`activated in ${Date.now() - started} ms`);
}

export function deactivate(): void {}
