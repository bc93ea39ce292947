// Which workspace folder a command acts in: the one place the editor asks (the rules are in
// core/folders.ts). A command on a file acts in the folder that holds it; a run is found in the
// folder whose run store holds it.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { rootFor, runRoot, type Folder, type RunRef } from '../core/folders';
import { runDir } from '../core/runs/store';

/** The workspace's folders on this machine (file scheme), in the workspace's order. */
export function workspaceFolders(): Folder[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => ({ name: f.name, root: f.uri.fsPath }));
}

/** The root a command on this file acts in: the folder that holds it (VS Code's answer), else the first folder. */
export function rootOfFile(file: vscode.Uri | string | undefined): string | undefined {
  const uri = typeof file === 'string' ? vscode.Uri.file(file) : file;
  const folder = uri ? vscode.workspace.getWorkspaceFolder(uri) : undefined;
  if (folder?.uri.scheme === 'file') return folder.uri.fsPath;
  return rootFor(uri?.scheme === 'file' ? uri.fsPath : undefined, workspaceFolders());
}

const hasRun = async (root: string, id: string): Promise<boolean> => {
  try {
    await access(join(runDir(root, id), 'run.json'));
    return true;
  } catch {
    return false;
  }
};

/** The root of the folder whose run store holds the run (core/folders.ts runRoot). */
export function rootOfRun(ref: RunRef): Promise<string | undefined> {
  return runRoot(ref, workspaceFolders(), hasRun);
}
