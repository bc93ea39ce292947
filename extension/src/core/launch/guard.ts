// The launch guard: a recipe with errors is not launched without an explicit "anyway" (the
// editor asks, the CLI wants --force). On a SLURM target a bad recipe costs a queue wait and
// GPU hours before the trainer rejects it; the validator finds the same mistakes in
// milliseconds. Shared by editor/launch.ts and `conscience launch`.
import { readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { decodeBytes, recipeKind, validateText, type Diagnostic } from '../recipe';
import { nodeFiles } from '../recipe/node-files';
import { escapeControls } from '../escape';
import { launchTrl } from '../recipe/recorded';
import type { Target } from './targets';
import { RECIPE_SNAPSHOT, runDir, type RunRecord } from '../runs/store';

export interface GuardFinding {
  file: string;
  /** 1-based. */
  line: number;
  column: number;
  code: string;
  message: string;
}

/**
 * The recipe's errors (warnings and infos do not stop a launch), in file order. `trl`: the TRL the
 * target runs (core/recipe/recorded.ts `launchTrl`), for a recipe without launch.trl.
 */
export async function recipeErrors(file: string, trl?: string): Promise<GuardFinding[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return [{ file, line: 1, column: 1, code: 'CC010', message: `Cannot read '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }];
  }
  const dec = decodeBytes(bytes);
  // an accelerate config (or other YAML) validates clean as what it is, and the trainer then
  // refuses its every key as unknown: not a recipe to launch
  // (other YAML is validated as a recipe, and its keys are errors there)
  if (!('diagnostic' in dec) && recipeKind(dec.text) === 'accelerate') {
    return [{ file, line: 1, column: 1, code: 'CC010', message: 'this is an accelerate config, not a recipe: launch the recipe that uses it (its launch.accelerate_config)' }];
  }
  const diags: Diagnostic[] = 'diagnostic' in dec ? [dec.diagnostic] : validateText(dec.text, { file, files: nodeFiles, trl });
  return diags
    .filter((d) => d.severity === 'error')
    .map((d) => ({ file: d.file ?? file, line: d.line + 1, column: d.column + 1, code: d.code, message: d.message }));
}

/** "recipes/x.yaml:3:5: CC001 …" lines, as the CLI prints them and the editor's modal lists them. */
export function formatFindings(findings: GuardFinding[], show: (file: string) => string = (f) => f): string {
  // one finding per line: a newline in a file name or message cannot forge another
  return findings.map((f) => escapeControls(`${show(f.file)}:${f.line}:${f.column}: error ${f.code}: ${f.message}`)).join('\n');
}

/**
 * The launch guard's findings for launching `file` on `target`: its errors checked against the
 * TRL the target runs when the recipe does not say (launch.trl): the target's stack, its own
 * requirements pin, or the recipe's last run (`launchTrl`). The editor and `conscience launch`
 * ask this one question.
 */
export async function launchGuard(root: string, file: string, target: Target | undefined): Promise<GuardFinding[]> {
  const trl = await launchTrl(root, relative(root, file).split(sep).join('/'), target).catch(() => undefined);
  return recipeErrors(file, trl);
}

/**
 * The guard for resuming `run`: a resume trains with the recipe as it is now, so an edited recipe
 * is checked as a launch is (an error costs the same queue wait and GPU hours). A recipe
 * unchanged since the attempt that ended (byte for byte its kept recipe.yaml) was checked, or
 * launched anyway, then: no findings.
 */
export async function resumeGuard(root: string, run: Pick<RunRecord, 'id' | 'recipe'>, target: Target | undefined): Promise<GuardFinding[]> {
  const file = join(root, run.recipe);
  const [now, kept] = await Promise.all([readFile(file).catch(() => undefined), readFile(join(runDir(root, run.id), RECIPE_SNAPSHOT)).catch(() => undefined)]);
  if (now && kept && now.equals(kept)) return [];
  return launchGuard(root, file, target);
}
