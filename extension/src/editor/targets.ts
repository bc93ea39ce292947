// The workspace's launch targets as the editor sees them: the `conscience.targets` setting
// (ignored by VS Code in untrusted workspaces: restrictedConfigurations), then the workspace's
// targets file, whose targets win; both those of the workspace folder `root` (a multi-root
// workspace: the folder of the recipe or run). One place, used by launching and by the recipe diagnostics.
import * as vscode from 'vscode';
import { LOCAL_TARGET, loadTargets, parseTargets, type Target } from '../core/launch/targets';

export async function workspaceTargets(root: string): Promise<Map<string, Target>> {
  // the folder's own value (a multi-root workspace: its .vscode/settings.json), else the workspace's, the user's
  const fromSetting = vscode.workspace.getConfiguration('conscience', vscode.Uri.file(root)).get<Record<string, unknown>>('targets') ?? {};
  // not settings.json itself: VS Code's reading of it (above) is the one that honours trust
  const fromFile = await loadTargets(root, undefined, { settings: false });
  const merged = parseTargets({ ...fromSetting }, 'setting conscience.targets');
  // the file's targets win; its implicit `local` does not replace one configured in the setting
  for (const [name, t] of fromFile.targets) if (t !== LOCAL_TARGET) merged.set(name, t);
  // and so does a bad entry of the file: its error shows when that target is used (FILE:LINE)
  for (const [name, err] of fromFile.targets.broken) merged.setBroken(name, err);
  return merged;
}
