// Diagnostic type shared by the editor and the CLI. Positions are zero-based here (the CLI
// prints them one-based); `start`/`end` are offsets into the text, end-exclusive.

export type Severity = 'error' | 'warning' | 'info';

export interface TextEdit { start: number; end: number; newText: string }
export interface QuickFix { title: string; edits: TextEdit[] }

export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  start: number;
  end: number;
  /** zero-based */
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** Edits that fix the problem, offered as quick fixes in the editor. */
  fixes?: QuickFix[];
  /** File this diagnostic belongs to, when it is not the file being validated (e.g. the accelerate config). */
  file?: string;
}

/** Line starts of the last text seen (diagnostics come in bursts for one text). */
let cacheText: string | undefined;
let cacheStarts: number[] = [0];

function lineStarts(text: string): number[] {
  if (text === cacheText) return cacheStarts;
  const starts = [0];
  for (let p = text.indexOf('\n'); p >= 0; p = text.indexOf('\n', p + 1)) starts.push(p + 1);
  cacheText = text;
  cacheStarts = starts;
  return starts;
}

export function positionAt(text: string, offset: number): { line: number; column: number } {
  const starts = lineStarts(text);
  const o = Math.max(0, Math.min(text.length, offset));
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= o) lo = mid; else hi = mid - 1;
  }
  return { line: lo, column: o - starts[lo]! };
}

export function offsetAt(text: string, line: number, column: number): number {
  const starts = lineStarts(text);
  if (line < 0) return 0;
  if (line >= starts.length) return text.length;
  return Math.min(text.length, starts[line]! + Math.max(0, column));
}

export function diag(text: string, start: number, end: number, severity: Severity, code: string, message: string, fixes?: QuickFix[]): Diagnostic {
  const s = Math.max(0, Math.min(text.length, start));
  const e = Math.max(s, Math.min(text.length, end));
  const a = positionAt(text, s);
  const b = positionAt(text, e);
  const d: Diagnostic = { severity, code, message, start: s, end: e, line: a.line, column: a.column, endLine: b.line, endColumn: b.column };
  if (fixes && fixes.length) d.fixes = fixes;
  return d;
}

/** Every stable code, its default severity and a one-line summary (docs/recipes.md lists them). */
export const CODES: Record<string, { severity: Severity; summary: string }> = {
  CC001: { severity: 'error', summary: 'YAML syntax error' },
  CC002: { severity: 'error', summary: 'tab character in indentation' },
  CC003: { severity: 'error', summary: 'duplicate key' },
  CC004: { severity: 'error', summary: 'too many aliases (alias bomb guard)' },
  CC005: { severity: 'error', summary: 'binary file' },
  CC006: { severity: 'error', summary: 'file is not UTF-8' },
  CC007: { severity: 'error', summary: 'file too large to be a recipe' },
  CC008: { severity: 'error', summary: 'empty file' },
  CC009: { severity: 'error', summary: 'not a single YAML mapping' },
  CC010: { severity: 'error', summary: 'file cannot be read (CLI)' },
  CC100: { severity: 'error', summary: 'unknown key (with did-you-mean)' },
  CC101: { severity: 'error', summary: 'wrong type' },
  CC102: { severity: 'error', summary: 'value not one of the allowed choices' },
  CC103: { severity: 'error', summary: 'value out of range' },
  CC104: { severity: 'error', summary: 'field removed in the TRL the recipe is checked against' },
  CC105: { severity: 'info', summary: 'field gone from the other supported TRL line (only without launch.trl)' },
  CC106: { severity: 'error', summary: 'field spelled as in the other TRL line' },
  CC107: { severity: 'warning', summary: 'launch.trl names a TRL without a schema (the nearest supported one is used)' },
  CC201: { severity: 'error', summary: 'generation_batch_size and steps_per_generation both set (GRPOConfig C1)' },
  CC202: { severity: 'error', summary: 'generation_batch_size not divisible by the batch (GRPOConfig C2)' },
  CC203: { severity: 'error', summary: 'num_generations < 2 (GRPOConfig C3)' },
  CC204: { severity: 'error', summary: 'effective train batch not divisible by num_generations (GRPOConfig C4)' },
  CC205: { severity: 'error', summary: 'global eval batch not divisible by num_generations (GRPOConfig C5)' },
  CC206: { severity: 'error', summary: 'delta with use_liger_loss (GRPOConfig C6)' },
  CC207: { severity: 'error', summary: 'reward_weights length differs from reward_funcs (GRPOTrainer)' },
  CC208: { severity: 'error', summary: 'vllm_tensor_parallel_size does not divide the world size in colocate mode (GRPOTrainer)' },
  CC209: { severity: 'error', summary: 'unknown loss_type (GRPOTrainer, first step)' },
  CC210: { severity: 'error', summary: 'vllm_mode is neither server nor colocate' },
  CC211: { severity: 'error', summary: 'load_in_8bit and load_in_4bit both set (ModelConfig)' },
  CC212: { severity: 'error', summary: 'cosine_with_min_lr needs exactly one of min_lr / min_lr_rate (transformers)' },
  CC213: { severity: 'error', summary: 'fp16 and bf16 both set (TrainingArguments)' },
  CC214: { severity: 'error', summary: 'steps-based strategy with zero steps (TrainingArguments)' },
  CC215: { severity: 'error', summary: 'logging/eval/save steps > 1 must be an integer (TrainingArguments)' },
  CC216: { severity: 'error', summary: 'load_best_model_at_end needs matching eval/save strategies (TrainingArguments)' },
  CC217: { severity: 'error', summary: 'reduce_lr_on_plateau needs an eval strategy (TrainingArguments)' },
  CC218: { severity: 'warning', summary: 'launch.num_processes not divisible by launch.num_machines' },
  CC219: { severity: 'warning', summary: 'use_vllm in server mode without a vLLM server in launch:' },
  CC220: { severity: 'error', summary: 'vLLM colocate mode needs max_prompt_length (max_model_len)' },
  CC221: { severity: 'error', summary: 'ds3_gather_for_generation: false with vLLM' },
  CC222: { severity: 'error', summary: 'safety.open_tag / close_tag empty or equal (SafetyConfig)' },
  CC223: { severity: 'warning', summary: 'model_init_kwargs is overwritten by conscience.train' },
  CC224: { severity: 'error', summary: 'auto_find_batch_size with GRPO (GRPOConfig, TRL 1.x)' },
  CC225: { severity: 'error', summary: 'log_completions_hub_repo without log_completions (GRPOConfig, TRL 1.x)' },
  CC300: { severity: 'error', summary: 'reward_funcs is empty' },
  CC301: { severity: 'error', summary: 'unknown reward function name' },
  CC302: { severity: 'error', summary: 'accelerate config file not found' },
  CC303: { severity: 'error', summary: 'local dataset not found' },
  CC304: { severity: 'error', summary: 'chat template file not found' },
  CC305: { severity: 'error', summary: 'local model path not found' },
  CC400: { severity: 'error', summary: 'accelerate config cannot be read' },
  CC401: { severity: 'error', summary: 'accelerate config: unknown key' },
  CC402: { severity: 'error', summary: 'accelerate config: wrong type' },
  CC403: { severity: 'error', summary: 'accelerate config: value not allowed' },
  CC404: { severity: 'error', summary: 'accelerate config: DeepSpeed settings inconsistent' },
  CC405: { severity: 'warning', summary: 'launch: and accelerate config disagree on processes or machines' },
  CC406: { severity: 'warning', summary: 'recipe precision differs from the accelerate config mixed_precision' },
};
