// The validator and the runtime's loaders agree, from both sides, on the values where they used
// to differ: a recipe the runtime loads gets no error from the validator, and a recipe the
// runtime refuses gets an error from the validator at the line the runtime names, saying the same
// thing. Each recipe goes through the loader of its kind (loader_parity.py: load_recipe,
// load_sft_recipe, load_eval_recipe) in the environment of its TRL line (.venv: 0.18.2,
// .venv-trl1: 1.x) and through validateText.
//   - a single value where a list is expected (`arms: label`, `reward_funcs: refusal`, `label_names: x`)
//   - `.inf` / `.nan` for a number with a bound (`max_grad_norm: .inf` is allowed, `learning_rate: .inf` is not)
//   - `kind: sft` with `launch.trl: 1.x` (its own schema) and the checks TRL 1.x / transformers added
//   - a number or a boolean for a key that takes a list or one string (`reward_funcs: 5`), null
//     for a list key that does not take it (`include_for_metrics: null`), null where
//     transformers reads it as the default (`debug: null`)
//   - a key given twice, a float for an integer, text argparse cannot convert, YAML 1.1's `no`/`yes`
//     for text, a value outside the schema's range (schema.RANGES), a bad value inside a list or a
//     mapping (argparse converts only top-level values), and a DeepSpeed config, accelerate config
//     or eval recipe that is not there
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, fmt, validateFile } from './helpers';
import { constructTagged, constructTimestamp, resolvePlain } from '../../src/core/recipe/yaml';

const GRPO = 'model_name_or_path: conscience/tiny\nreward_funcs: [refusal]\n';
const SFT = 'kind: sft\nmodel_name_or_path: conscience/tiny\n';
const EVAL = 'kind: eval\nmodel_name_or_path: conscience/tiny\n';
const TRL1 = 'launch:\n  trl: 1.16.0\n';

type Venv = '.venv' | '.venv-trl1';
/** `refused`: the validator's code, and a phrase both messages contain; the line is the third. */
interface Case { name: string; venv: Venv; text: string; refused?: { code: string; phrase: RegExp } }

const CASES: Case[] = [
  // 3. a single value for a list
  { name: 'reward-funcs-one-name', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nreward_funcs: refusal\n' },
  { name: 'lora-target-modules-string', venv: '.venv', text: GRPO + 'lora_target_modules: all-linear\n' },
  { name: 'lora-target-parameters-string', venv: '.venv-trl1', text: GRPO + 'lora_target_parameters: q_proj\n' + TRL1 },
  { name: 'label-names-string', venv: '.venv', text: GRPO + 'label_names: labels\n', refused: { code: 'CC101', phrase: /label_names expects a list/ } },
  { name: 'reward-weights-number', venv: '.venv', text: GRPO + 'reward_weights: 1.0\n', refused: { code: 'CC101', phrase: /reward_weights expects a list/ } },
  { name: 'modules-to-save-string-trl1', venv: '.venv-trl1', text: GRPO + 'lora_modules_to_save: lm_head\n' + TRL1, refused: { code: 'CC101', phrase: /lora_modules_to_save expects a list/ } },
  { name: 'sft-label-names-string', venv: '.venv', text: SFT + 'label_names: labels\n', refused: { code: 'CC101', phrase: /label_names expects a list/ } },
  { name: 'eval-arms-one-arm', venv: '.venv', text: EVAL + 'arms: label\n' },
  { name: 'eval-arms-one-fixed-arm', venv: '.venv', text: EVAL + "arms: 'fixed:32'\n" },
  { name: 'eval-arms-one-unknown-arm', venv: '.venv', text: EVAL + 'arms: lable\n', refused: { code: 'CC500', phrase: /unknown arm 'lable'/i } },
  { name: 'eval-arms-number', venv: '.venv', text: EVAL + 'arms: 5\n', refused: { code: 'CC101', phrase: /expect(s|ed) a list/ } },
  // 5. a number, a boolean or null where the runtime cannot use one
  { name: 'reward-funcs-number', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: 5\n', refused: { code: 'CC101', phrase: /reward_funcs expects a list or a string, got the number 5/ } },
  { name: 'reward-funcs-number-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: 5\n' + TRL1, refused: { code: 'CC101', phrase: /reward_funcs expects a list or a string, got the number 5/ } },
  { name: 'reward-funcs-boolean', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: true\n', refused: { code: 'CC101', phrase: /reward_funcs expects a list or a string, got true/ } },
  { name: 'reward-funcs-null', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: null\n', refused: { code: 'CC101', phrase: /reward_funcs expects a list or a string, got null/ } },
  { name: 'lora-target-modules-number', venv: '.venv', text: GRPO + 'lora_target_modules: 5\n', refused: { code: 'CC101', phrase: /lora_target_modules expects a list, a string or null, got the number 5/ } },
  { name: 'lora-target-modules-float-trl1', venv: '.venv-trl1', text: GRPO + 'lora_target_modules: 1.5\n' + TRL1, refused: { code: 'CC101', phrase: /lora_target_modules expects a list, a string or null, got the number 1\.5/ } },
  { name: 'lora-target-parameters-number-trl1', venv: '.venv-trl1', text: GRPO + 'lora_target_parameters: 5\n' + TRL1, refused: { code: 'CC101', phrase: /lora_target_parameters expects a list, a string or null, got the number 5/ } },
  { name: 'sft-lora-target-modules-number', venv: '.venv', text: SFT + 'lora_target_modules: 5\n', refused: { code: 'CC101', phrase: /lora_target_modules expects a list, a string or null, got the number 5/ } },
  { name: 'lora-target-modules-null', venv: '.venv', text: GRPO + 'lora_target_modules: null\n' },
  { name: 'include-for-metrics-null', venv: '.venv', text: GRPO + 'include_for_metrics: null\n', refused: { code: 'CC101', phrase: /include_for_metrics expects a list, got null/ } },
  { name: 'include-for-metrics-null-trl1', venv: '.venv-trl1', text: GRPO + 'include_for_metrics: null\n' + TRL1, refused: { code: 'CC101', phrase: /include_for_metrics expects a list, got null/ } },
  { name: 'sft-include-for-metrics-empty', venv: '.venv', text: SFT + 'include_for_metrics:\n', refused: { code: 'CC101', phrase: /include_for_metrics expects a list, got (an empty value \()?null/ } },
  { name: 'include-for-metrics-list', venv: '.venv', text: GRPO + 'include_for_metrics: [loss]\n' },
  { name: 'debug-null', venv: '.venv', text: GRPO + 'debug: null\n' },
  { name: 'debug-null-trl1', venv: '.venv-trl1', text: GRPO + 'debug: null\n' + TRL1 },
  // 4. infinity and NaN
  { name: 'max-grad-norm-inf', venv: '.venv', text: GRPO + 'max_grad_norm: .inf\n' },
  { name: 'max-grad-norm-inf-trl1', venv: '.venv-trl1', text: GRPO + 'max_grad_norm: .inf\n' + TRL1 },
  { name: 'max-grad-norm-minus-inf', venv: '.venv', text: GRPO + 'max_grad_norm: -.inf\n', refused: { code: 'CC103', phrase: /max_grad_norm = -\.?inf is not a finite number: it must be >= 0/ } },
  { name: 'learning-rate-inf', venv: '.venv', text: GRPO + 'learning_rate: .inf\n', refused: { code: 'CC103', phrase: /learning_rate = \.?inf is not a finite number: it must be >= 0/ } },
  { name: 'learning-rate-inf-string-trl1', venv: '.venv-trl1', text: GRPO + 'learning_rate: inf\n' + TRL1, refused: { code: 'CC103', phrase: /learning_rate = \.?inf is not a finite number/ } },
  { name: 'learning-rate-nan', venv: '.venv', text: GRPO + 'learning_rate: .nan\n', refused: { code: 'CC103', phrase: /learning_rate = \.?nan is not a finite number/i } },
  { name: 'sft-learning-rate-inf', venv: '.venv', text: SFT + 'learning_rate: .inf\n', refused: { code: 'CC103', phrase: /learning_rate = \.?inf is not a finite number/ } },
  // 1. kind: sft for TRL 1.x
  { name: 'sft-trl1-names', venv: '.venv-trl1', text: SFT + 'dtype: bfloat16\nwarmup_steps: 0.1\nmax_length: 512\n' + TRL1 },
  { name: 'sft-trl1-torch-dtype', venv: '.venv-trl1', text: SFT + 'torch_dtype: bfloat16\n' + TRL1, refused: { code: 'CC104', phrase: /torch_dtype/ } },
  { name: 'sft-trl1-max-seq-length', venv: '.venv-trl1', text: SFT + 'max_seq_length: 512\n' + TRL1, refused: { code: 'CC104', phrase: /max_seq_length/ } },
  { name: 'sft-trl018-max-seq-length', venv: '.venv', text: SFT + 'max_seq_length: 512\nlaunch:\n  trl: 0.18.2\n' },
  // 2. TRL 1.x's and transformers' checks
  { name: 'greedy-trl1', venv: '.venv-trl1', text: GRPO + 'lr_scheduler_type: greedy\n' + TRL1, refused: { code: 'CC228', phrase: /lr_scheduler_type greedy requires an eval strategy/ } },
  { name: 'greedy-with-eval-trl1', venv: '.venv-trl1', text: GRPO + 'lr_scheduler_type: greedy\neval_strategy: epoch\ndataset_name: my-org/safety-prompts\n' + TRL1 },
  { name: 'sft-greedy-trl1', venv: '.venv-trl1', text: SFT + 'lr_scheduler_type: greedy\n' + TRL1, refused: { code: 'CC228', phrase: /lr_scheduler_type greedy requires an eval strategy/ } },
  { name: 'is-clip-trl1', venv: '.venv-trl1', text: GRPO + 'vllm_importance_sampling_clip_min: 4\n' + TRL1, refused: { code: 'CC229', phrase: /vllm_importance_sampling_clip_min \(4\) must be less than vllm_importance_sampling_clip_max \(3\.0\)/ } },
  { name: 'is-cap-trl1', venv: '.venv-trl1', text: GRPO + 'vllm_importance_sampling_clip_min: 2.5\nvllm_importance_sampling_cap: 2.0\n' + TRL1, refused: { code: 'CC229', phrase: /clip_min \(2\.5\) must be less than vllm_importance_sampling_clip_max \(2\.0\)/ } },
  { name: 'is-truncate-trl1', venv: '.venv-trl1', text: GRPO + 'vllm_importance_sampling_clip_max: null\nvllm_importance_sampling_mode: token_truncate\n' + TRL1, refused: { code: 'CC229', phrase: /At least one of `vllm_importance_sampling_clip_min` or `vllm_importance_sampling_clip_max` must be set/ } },
  { name: 'is-truncate-no-correction-trl1', venv: '.venv-trl1', text: GRPO + 'vllm_importance_sampling_clip_max: null\nvllm_importance_sampling_mode: token_truncate\nvllm_importance_sampling_correction: false\n' + TRL1 },
  { name: 'prefetch-trl1', venv: '.venv-trl1', text: GRPO + 'dataloader_prefetch_factor: 2\n' + TRL1, refused: { code: 'CC230', phrase: /--dataloader_prefetch_factor can only be set when data is loaded in a different process, i\.e\. when --dataloader_num_workers > 0/ } },
  { name: 'prefetch-trl018', venv: '.venv', text: GRPO + 'dataloader_prefetch_factor: 2\n', refused: { code: 'CC230', phrase: /--dataloader_prefetch_factor can only be set when data is loaded in a different process, i\.e\. when --dataloader_num_workers > 1/ } },
  { name: 'prefetch-with-workers', venv: '.venv', text: GRPO + 'dataloader_num_workers: 1\ndataloader_prefetch_factor: 2\n' },
  // 6. what the trainer took and then trained wrongly or failed on mid-run, refused at load
  { name: 'remove-unused-columns', venv: '.venv', text: GRPO + 'remove_unused_columns: true\n', refused: { code: 'CC232', phrase: /remove_unused_columns: true drops every dataset column but the prompt/ } },
  { name: 'remove-unused-columns-trl1', venv: '.venv-trl1', text: GRPO + 'remove_unused_columns: true\n' + TRL1, refused: { code: 'CC232', phrase: /safety_budget and refusal would score 0\.0 for every completion/ } },
  { name: 'remove-unused-columns-false', venv: '.venv', text: GRPO + 'remove_unused_columns: false\n' },
  { name: 'sft-remove-unused-columns', venv: '.venv', text: SFT + 'remove_unused_columns: true\n' },
  { name: 'reward-funcs-unknown', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: [safety_format, bogus]\n', refused: { code: 'CC301', phrase: /Unknown reward function 'bogus': the runtime knows safety_format, safety_budget, refusal/ } },
  { name: 'reward-funcs-unknown-one-name-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: bogus\n' + TRL1, refused: { code: 'CC301', phrase: /Unknown reward function 'bogus'/ } },
  { name: 'reward-funcs-empty', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: []\n', refused: { code: 'CC300', phrase: /reward_funcs is empty: GRPO needs at least one reward function/ } },
  { name: 'reward-weights-length', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nreward_funcs: [safety_format, refusal]\nreward_weights: [1.0]\n', refused: { code: 'CC207', phrase: /Number of reward weights \(1\) must match number of reward functions \(2\)/ } },
  { name: 'reward-weights-length-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nreward_funcs: refusal\nreward_weights: [1.0, 2.0]\n' + TRL1, refused: { code: 'CC207', phrase: /Number of reward weights \(2\) must match number of reward functions \(1\)/ } },
  { name: 'soft-punish-cache-default-length', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nreward_funcs: [refusal, soft_overlong_punishment]\nsoft_punish_cache: 300\n', refused: { code: 'CC233', phrase: /soft_punish_cache \(300\) must be less than max_completion_length \(256, the default\)/ } },
  { name: 'soft-punish-cache-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nmax_completion_length: 32\nsoft_punish_cache: 32\nreward_funcs: [soft_overlong_punishment]\n' + TRL1, refused: { code: 'CC233', phrase: /soft_punish_cache \(32\) must be less than max_completion_length \(32, line 2\)/ } },
  { name: 'soft-punish-cache-unused', venv: '.venv', text: GRPO + 'soft_punish_cache: 300\n' },
  { name: 'chat-template-missing', venv: '.venv', text: GRPO + 'chat_template: templates/missing.jinja\n', refused: { code: 'CC304', phrase: /chat.template file .*missing\.jinja/i } },
  // 7. budget wording Python renders but the gateway's TypeScript template does not
  { name: 'budget-instruction-format-spec', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  budget_instruction: "at most {budget:d} tokens in {open_tag}{close_tag}"\nreward_funcs: [refusal]\n', refused: { code: 'CC227', phrase: /safety\.budget_instruction: \{budget:d\} has a format spec, conversion or index; write the plain \{budget\}/ } },
  { name: 'zero-budget-instruction-conversion-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nsafety:\n  zero_budget_instruction: "empty {open_tag!s}{close_tag}"\n' + TRL1, refused: { code: 'CC227', phrase: /safety\.zero_budget_instruction: \{open_tag!s\} has a format spec, conversion or index; write the plain \{open_tag\}/ } },
  { name: 'sft-budget-instruction-index', venv: '.venv', text: 'kind: sft\nsafety:\n  budget_instruction: "{open_tag[0]} and {budget}"\n', refused: { code: 'CC227', phrase: /\{open_tag\[0\]\} has a format spec/ } },
  { name: 'eval-budget-instruction-format-spec', venv: '.venv', text: 'kind: eval\nsafety:\n  budget_instruction: "about {budget:>4} tokens"\nmodel_name_or_path: conscience/tiny\n', refused: { code: 'CC227', phrase: /\{budget:>4\} has a format spec/ } },
  { name: 'budget-instruction-escaped-braces', venv: '.venv', text: GRPO + 'safety:\n  budget_instruction: "{{budget:d}} is literal; use {budget} tokens"\n' },
  // 9. what the runtime refuses since review: no budget told, tags inside each other, no step trained
  { name: 'budget-instruction-without-budget', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  budget_instruction: "Think about safety first ({{budget}} is literal)."\nreward_funcs: [refusal]\n', refused: { code: 'CC227', phrase: /safety\.budget_instruction has no \{budget\}: the policy would never be told its budget/ } },
  { name: 'eval-budget-instruction-without-budget', venv: '.venv', text: 'kind: eval\nsafety:\n  budget_instruction: "Think about safety first."\nmodel_name_or_path: conscience/tiny\n', refused: { code: 'CC227', phrase: /has no \{budget\}/ } },
  { name: 'tags-inside-each-other', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  close_tag: "END SAFETY:"\n  open_tag: "SAFETY:"\nreward_funcs: [refusal]\n', refused: { code: 'CC222', phrase: /safety\.close_tag 'END SAFETY:' contains safety\.open_tag 'SAFETY:': a completion's block could not be told apart/ } },
  { name: 'open-tag-inside-default-close-tag-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nsafety:\n  open_tag: "safety>"\n' + TRL1, refused: { code: 'CC222', phrase: /safety\.close_tag '<\/safety>' contains safety\.open_tag 'safety>'/ } },
  { name: 'zero-epochs', venv: '.venv', text: GRPO + 'num_train_epochs: 0\n', refused: { code: 'CC236', phrase: /num_train_epochs: 0 with max_steps -1 trains no step/ } },
  { name: 'sft-zero-epochs-trl1', venv: '.venv-trl1', text: SFT + 'num_train_epochs: 0\n' + TRL1, refused: { code: 'CC236', phrase: /num_train_epochs: 0 with max_steps -1 trains no step/ } },
  { name: 'zero-epochs-with-max-steps', venv: '.venv', text: GRPO + 'num_train_epochs: 0\nmax_steps: 4\n' },
  // 8. values the runtime used to pass on (or fail on with argparse's usage text or a traceback), refused at load
  { name: 'duplicate-key', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nreward_funcs: [refusal]\nreward_funcs: [refusal]\n', refused: { code: 'CC003', phrase: /Duplicate key 'reward_funcs' \(first defined on line 2\)\. PyYAML silently keeps the last value/ } },
  { name: 'duplicate-key-trl1', venv: '.venv-trl1', text: 'model_name_or_path: conscience/tiny\nseed: 1\nseed: 2\n' + TRL1, refused: { code: 'CC003', phrase: /Duplicate key 'seed' \(first defined on line 2\)/ } },
  { name: 'duplicate-section-key', venv: '.venv', text: 'safety:\n  budget_harmful: 12\n  budget_harmful: 24\n', refused: { code: 'CC003', phrase: /Duplicate key 'budget_harmful' \(first defined on line 2\)/ } },
  { name: 'max-steps-float', venv: '.venv', text: GRPO + 'max_steps: 8.0\n', refused: { code: 'CC101', phrase: /max_steps expects an integer, got the number 8\.0\. Write it without a decimal point: 8\./ } },
  { name: 'num-generations-float-trl1', venv: '.venv-trl1', text: GRPO + 'num_generations: 4.0\n' + TRL1, refused: { code: 'CC101', phrase: /num_generations expects an integer or null, got the number 4\.0/ } },
  { name: 'max-steps-exponent', venv: '.venv', text: GRPO + 'max_steps: 1e3\n', refused: { code: 'CC101', phrase: /max_steps expects an integer, got the string "1e3"/ } },
  { name: 'learning-rate-not-a-number', venv: '.venv', text: GRPO + 'learning_rate: 1e-4.5\n', refused: { code: 'CC101', phrase: /learning_rate expects a number, got the string "1e-4\.5"/ } },
  { name: 'eval-strategy-no', venv: '.venv', text: GRPO + 'eval_strategy: no\n', refused: { code: 'CC101', phrase: /eval_strategy expects a string, got false \(YAML 1\.1 reads `no` as a boolean\)\. Quote it to keep the text: 'no'/ } },
  { name: 'eval-strategy-quoted-no', venv: '.venv', text: GRPO + "eval_strategy: 'no'\n" },
  { name: 'report-to-no', venv: '.venv', text: GRPO + 'report_to: no\n', refused: { code: 'CC101', phrase: /report_to expects a string, a list or null, got false \(YAML 1\.1 reads `no` as a boolean\)/ } },
  { name: 'open-tag-yes', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  open_tag: yes\n', refused: { code: 'CC101', phrase: /safety\.open_tag expects a string, got true \(YAML 1\.1 reads `yes` as a boolean\)\. Quote it to keep the text: 'yes'/ } },
  { name: 'num-processes-double-minus', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nlaunch:\n  num_processes: "--2"\n', refused: { code: 'CC101', phrase: /launch\.num_processes:? expect(s|ed) an integer, got (the string )?['"]--2['"]/ } },
  { name: 'non-name-key', venv: '.venv', text: GRPO + '1: x\n', refused: { code: 'CC100', phrase: /Unknown key '1'/ } },
  { name: 'learning-rate-negative', venv: '.venv', text: GRPO + 'learning_rate: -1e-6\n', refused: { code: 'CC103', phrase: /learning_rate = -0\.000001 is out of range: it must be >= 0\./ } },
  { name: 'top-p-over-one', venv: '.venv', text: GRPO + 'top_p: 1.5\n', refused: { code: 'CC103', phrase: /top_p = 1\.5 is out of range: it must be > 0 and <= 1\./ } },
  { name: 'temperature-zero-trl1', venv: '.venv-trl1', text: GRPO + 'temperature: 0\n' + TRL1, refused: { code: 'CC103', phrase: /temperature = 0 is out of range: it must be > 0\./ } },
  { name: 'lora-r-zero', venv: '.venv', text: GRPO + 'lora_r: 0\n', refused: { code: 'CC103', phrase: /lora_r = 0 is out of range: it must be >= 1\./ } },
  { name: 'answer-max-words-zero', venv: '.venv', text: GRPO + 'answer_max_words: 0\n', refused: { code: 'CC103', phrase: /answer_max_words = 0 is out of range: it must be >= 1\./ } },
  // values TRL takes at load and then misuses: max_steps -3 trains by epochs (every value <= 0 does),
  // a seed numpy cannot take fails when the trainer is built, repetition_penalty 0 at the first generation
  { name: 'max-steps-below-minus-one', venv: '.venv', text: GRPO + 'max_steps: -3\n', refused: { code: 'CC103', phrase: /max_steps = -3 is out of range: it must be >= -1\./ } },
  { name: 'sft-max-steps-below-minus-one-trl1', venv: '.venv-trl1', text: SFT + 'max_steps: -3\n' + TRL1, refused: { code: 'CC103', phrase: /max_steps = -3 is out of range: it must be >= -1\./ } },
  { name: 'max-steps-minus-one', venv: '.venv', text: GRPO + 'max_steps: -1\n' },
  { name: 'seed-negative', venv: '.venv', text: GRPO + 'seed: -1\n', refused: { code: 'CC103', phrase: /seed = -1 is out of range: it must be >= 0 and <= 4294967295\./ } },
  { name: 'sft-seed-too-large', venv: '.venv', text: SFT + 'seed: 4294967296\n', refused: { code: 'CC103', phrase: /seed = 4294967296 is out of range/ } },
  { name: 'repetition-penalty-zero-trl1', venv: '.venv-trl1', text: GRPO + 'repetition_penalty: 0\n' + TRL1, refused: { code: 'CC103', phrase: /repetition_penalty = 0 is out of range: it must be > 0\./ } },
  // sync_ref_model with no reference model: TRL 1.x's GRPOTrainer refuses it after the model loads (CC237)
  { name: 'sync-ref-model-default-beta-trl1', venv: '.venv-trl1', text: GRPO + 'sync_ref_model: true\n' + TRL1, refused: { code: 'CC237', phrase: /sync_ref_model: true, but beta is 0 \(the default of TRL 1\.\d+\.\d+\), so GRPO keeps no reference model: there is nothing to sync/ } },
  { name: 'sync-ref-model-peft-trl1', venv: '.venv-trl1', text: GRPO + 'sync_ref_model: true\nbeta: 0.04\nuse_peft: true\n' + TRL1, refused: { code: 'CC237', phrase: /sync_ref_model: true, but use_peft is true, so GRPO keeps no reference model/ } },
  { name: 'sync-ref-model-with-beta-trl1', venv: '.venv-trl1', text: GRPO + 'sync_ref_model: true\nbeta: 0.04\n' + TRL1 },
  { name: 'sync-ref-model-beta-zero-018', venv: '.venv', text: GRPO + 'sync_ref_model: true\nbeta: 0\n' },
  // evaluation on a prompt set with no test split (the bundled set, a single file): refused at load (CC239)
  { name: 'eval-strategy-bundled-prompts', venv: '.venv', text: GRPO + 'eval_strategy: steps\neval_steps: 5\n', refused: { code: 'CC239', phrase: /eval_strategy is 'steps', but dataset_name conscience\/safety_prompts \(the default\) is the bundled prompt set, which has no 'test' split: evaluation would run on the training prompts/ } },
  { name: 'eval-strategy-bundled-prompts-trl1', venv: '.venv-trl1', text: GRPO + 'eval_strategy: epoch\n' + TRL1, refused: { code: 'CC239', phrase: /eval_strategy is 'epoch', but dataset_name conscience\/safety_prompts \(the default\) is the bundled prompt set/ } },
  { name: 'eval-strategy-hub-prompts', venv: '.venv', text: GRPO + 'eval_strategy: steps\neval_steps: 5\ndataset_name: my-org/safety-prompts\n' },
  // top_k that generation refuses at the first step (CC240); 0 (and -1 with vLLM) is no filter
  { name: 'top-k-negative', venv: '.venv', text: GRPO + 'top_k: -1\n', refused: { code: 'CC240', phrase: /top_k -1 is refused by transformers at the first generation/ } },
  { name: 'top-k-negative-trl1', venv: '.venv-trl1', text: GRPO + 'top_k: -5\n' + TRL1, refused: { code: 'CC240', phrase: /top_k -5 is refused by transformers at the first generation/ } },
  { name: 'top-k-below-minus-one-vllm', venv: '.venv', text: GRPO + 'top_k: -2\nuse_vllm: true\nvllm_mode: colocate\n', refused: { code: 'CC240', phrase: /top_k -2 is refused by vLLM at the first generation/ } },
  { name: 'top-k-zero', venv: '.venv', text: GRPO + 'top_k: 0\n' },
  { name: 'top-k-minus-one-vllm', venv: '.venv', text: GRPO + 'top_k: -1\nuse_vllm: true\nvllm_mode: colocate\n' },
  { name: 'batch-size-zero', venv: '.venv', text: GRPO + 'per_device_train_batch_size: 0\n', refused: { code: 'CC103', phrase: /per_device_train_batch_size = 0 is out of range: it must be >= 1\./ } },
  { name: 'top-p-one', venv: '.venv', text: GRPO + 'top_p: 1\n' },
  // 9. values inside a list or a mapping, which argparse does not convert
  { name: 'reward-weights-null-item', venv: '.venv', text: GRPO + 'reward_weights: [1.0, null]\n', refused: { code: 'CC101', phrase: /reward_weights\[1\] expects a number, got null \(null\)/ } },
  { name: 'reward-weights-nested', venv: '.venv', text: GRPO + 'reward_weights: [[1.0]]\n', refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got a list/ } },
  { name: 'reward-weights-quoted', venv: '.venv', text: GRPO + 'reward_weights: ["1.0"]\n', refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got the string "1\.0"/ } },
  { name: 'reward-weights-exponent-trl1', venv: '.venv-trl1', text: GRPO + 'reward_weights: [2e-1]\n' + TRL1, refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got the string "2e-1"/ } },
  { name: 'reward-weights-nan', venv: '.venv', text: GRPO + 'reward_weights: [.nan]\n', refused: { code: 'CC103', phrase: /reward_weights\[0\] = \.nan is not a finite number/ } },
  { name: 'reward-weights-dotted', venv: '.venv', text: GRPO + 'reward_weights: [2.0e-1]\n' },
  { name: 'reward-funcs-mapping', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: {refusal: 1.0}\n', refused: { code: 'CC101', phrase: /reward_funcs expects a list or a string, got a mapping/ } },
  { name: 'reward-funcs-number-item', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: [refusal, 5]\n', refused: { code: 'CC101', phrase: /reward_funcs\[1\] expects a string, got the number 5/ } },
  { name: 'scheduler-kwargs-exponent', venv: '.venv', text: GRPO + 'lr_scheduler_kwargs: {min_lr: 1e-6}\n', refused: { code: 'CC101', phrase: /lr_scheduler_kwargs\.min_lr .*the string "1e-6".*YAML 1\.1 \(PyYAML\) reads 1e-6 as text; write it as 1\.0e-6\./ } },
  // a number PyYAML reads as text anywhere in a flat key's mapping, lists included, and the same advice (a dot and a signed exponent)
  { name: 'deepspeed-mapping-exponent', venv: '.venv', text: GRPO + 'deepspeed: {zero_optimization: {stage: 2, reduce_bucket_size: 5e8}}\n', refused: { code: 'CC101', phrase: /deepspeed\.zero_optimization\.reduce_bucket_size expects a number, got the string "5e8"\. YAML 1\.1 \(PyYAML\) reads 5e8 as text; write it as 5\.0e\+8\./ } },
  { name: 'fsdp-config-exponent', venv: '.venv', text: GRPO + 'fsdp_config: {min_num_params: 1e8}\n', refused: { code: 'CC101', phrase: /fsdp_config\.min_num_params expects a number, got the string "1e8"\. YAML 1\.1 \(PyYAML\) reads 1e8 as text; write it as 1\.0e\+8\./ } },
  { name: 'fsdp-config-dotted-unsigned-exponent', venv: '.venv', text: GRPO + 'fsdp_config: {min_num_params: 1.0e8}\n', refused: { code: 'CC101', phrase: /fsdp_config\.min_num_params expects a number, got the string "1\.0e8"\. YAML 1\.1 \(PyYAML\) reads 1\.0e8 as text; write it as 1\.0e\+8\./ } },
  { name: 'fsdp-config-signed-exponent', venv: '.venv', text: GRPO + 'fsdp_config: {min_num_params: 1.0e+8}\n' },
  { name: 'scheduler-kwargs-list-exponent', venv: '.venv', text: GRPO + 'lr_scheduler_kwargs: {min_lr_rate: [1e-1]}\n', refused: { code: 'CC101', phrase: /lr_scheduler_kwargs\.min_lr_rate\[0\] expects a number, got the string "1e-1"\. YAML 1\.1 \(PyYAML\) reads 1e-1 as text; write it as 1\.0e-1\./ } },
  { name: 'model-init-kwargs-exponent', venv: '.venv', text: GRPO + 'model_init_kwargs: {attn_temperature: 1e-1}\n', refused: { code: 'CC101', phrase: /model_init_kwargs\.attn_temperature expects a number, got the string "1e-1"\. YAML 1\.1 \(PyYAML\) reads 1e-1 as text; write it as 1\.0e-1\./ } },
  { name: 'model-init-kwargs-signed-dot', venv: '.venv', text: GRPO + 'model_init_kwargs: {attn_scale: -.5}\n', refused: { code: 'CC101', phrase: /model_init_kwargs\.attn_scale expects a number, got the string "-\.5"\. YAML 1\.1 \(PyYAML\) reads -\.5 as text; write it as -0\.5\./ } },
  { name: 'reward-weights-exponent-advice', venv: '.venv', text: GRPO + 'reward_weights: [1e0]\n', refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got the string "1e0"\..* 1\.0e\+0\./ } },
  // 10. files a recipe names, read at load
  // TrainingArguments takes a base64-encoded JSON object as the config itself; other base64 is a path
  { name: 'deepspeed-base64', venv: '.venv', text: GRPO + 'deepspeed: eyJ6ZXJvX29wdGltaXphdGlvbiI6IHsic3RhZ2UiOiAyfX0=\n' },
  { name: 'deepspeed-base64-not-json', venv: '.venv', text: GRPO + 'deepspeed: YWJj\n', refused: { code: 'CC306', phrase: /DeepSpeed config 'YWJj' not found/ } },
  { name: 'deepspeed-missing', venv: '.venv', text: GRPO + 'deepspeed: ds/missing.json\n', refused: { code: 'CC306', phrase: /DeepSpeed config 'ds\/missing\.json' not found \(looked for \/\S+\/ds\/missing\.json \(the recipe's folder\) and \/\S+\/ds\/missing\.json \(the working folder\)\)/ } },
  { name: 'accelerate-config-missing', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nlaunch:\n  accelerate_config: acc/missing.yaml\n', refused: { code: 'CC302', phrase: /Accelerate config 'acc\/missing\.yaml' not found \(resolved against the recipe's folder: / } },
  { name: 'eval-recipe-missing', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  eval_recipe: nope-eval.yaml\n', refused: { code: 'CC307', phrase: /Eval recipe 'nope-eval\.yaml' not found \(resolved against the recipe's folder: / } },
  // 11. text keys that take true/false where TRL / transformers do (recipe.BOOL_AS_TEXT, the schema's x-accepts-bool)
  { name: 'scale-rewards-false-trl1', venv: '.venv-trl1', text: GRPO + 'scale_rewards: false\n' + TRL1 },
  { name: 'scale-rewards-true-trl1', venv: '.venv-trl1', text: GRPO + 'scale_rewards: true\n' + TRL1 },
  { name: 'trackio-space-false-trl1', venv: '.venv-trl1', text: GRPO + 'trackio_static_space_id: false\n' + TRL1 },
  { name: 'trackio-space-name-trl1', venv: '.venv-trl1', text: GRPO + 'trackio_static_space_id: me/space\n' + TRL1 },
  { name: 'sft-trackio-space-false-trl1', venv: '.venv-trl1', text: SFT + 'trackio_static_space_id: false\n' + TRL1 },
  { name: 'resume-true', venv: '.venv', text: GRPO + 'resume_from_checkpoint: true\n' },
  { name: 'fsdp-false', venv: '.venv', text: GRPO + 'fsdp: false\n' },
  // explicit core tags: PyYAML's constructors decide the type (`!!float 768` is a float, `!!int "64"` an
  // integer), and a value a tag cannot read is a YAML error at its line (the runtime used to print a traceback)
  { name: 'float-tag-for-integer', venv: '.venv', text: GRPO + 'max_completion_length: !!float 64\n', refused: { code: 'CC101', phrase: /max_completion_length expects an integer or null/ } },
  { name: 'int-tag-on-quoted-text', venv: '.venv', text: GRPO + 'max_completion_length: !!int "64"\n' },
  { name: 'float-tag-safety-integer', venv: '.venv', text: GRPO + 'safety: {max_budget: !!float 12}\n', refused: { code: 'CC101', phrase: /safety\.max_budget:? expect(s|ed) an integer/ } },
  { name: 'float-tag-allocator-budget', venv: '.venv', text: GRPO + 'allocator: {budget_deep: !!float 768}\n', refused: { code: 'CC101', phrase: /allocator\.budget_deep .*integer/ } },
  { name: 'int-tag-allocator-budget', venv: '.venv', text: GRPO + 'allocator: {budget_deep: !!int "768"}\n' },
  { name: 'int-tag-hex', venv: '.venv', text: GRPO + 'max_steps: !!int 0x10\n' },
  { name: 'int-tag-not-a-number', venv: '.venv', text: GRPO + 'seed: !!int abc\n', refused: { code: 'CC001', phrase: /!!int cannot read ['"]abc['"] as an integer/ } },
  { name: 'bool-tag-not-a-boolean', venv: '.venv', text: GRPO + 'bf16: !!bool maybe\n', refused: { code: 'CC001', phrase: /!!bool cannot read ['"]maybe['"] as a boolean/ } },
  { name: 'hub-model-id-no', venv: '.venv', text: GRPO + 'hub_model_id: no\n', refused: { code: 'CC101', phrase: /hub_model_id expects a string or null, got false \(YAML 1\.1 reads `no` as a boolean\)/ } },
  // merge keys: the mapping's own keys win, then earlier sources over later ones, on both sides
  // (PyYAML 6.0.4's own flatten_mapping let the later source win: conscience.recipe._RecipeLoader)
  { name: 'merge-list-first-source-wins', venv: '.venv', text: GRPO + 'safety: {<<: [{budget_harmful: -3}, {budget_harmful: 5}]}\n', refused: { code: 'CC103', phrase: /safety\.budget_harmful = -3 is out of range: it must be >= 0/ } },
  { name: 'merge-list-later-source-loses', venv: '.venv', text: GRPO + 'safety: {<<: [{budget_harmful: 5}, {budget_harmful: -3}]}\n' },
  { name: 'merge-two-keys-first-wins', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  <<: {budget_harmful: -3}\n  <<: {budget_harmful: 5}\n', refused: { code: 'CC103', phrase: /safety\.budget_harmful = -3 is out of range/ } },
  { name: 'merge-two-keys-later-loses', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  <<: {budget_harmful: 5}\n  <<: {budget_harmful: -3}\n' },
  { name: 'merge-own-key-wins', venv: '.venv', text: GRPO + 'safety: {<<: [{budget_harmful: -3}], budget_harmful: 5}\n' },
  // YAML 1.1 dates: PyYAML gives a datetime.date, which no setting takes (to_json_string failed on run_name)
  { name: 'run-name-date', venv: '.venv', text: GRPO + 'run_name: 2024-05-01\n', refused: { code: 'CC101', phrase: /run_name expects a string or null, got a date \(YAML 1\.1 reads `2024-05-01` as a date\)\. Quote it to keep the text: '2024-05-01'\./ } },
  { name: 'output-dir-date', venv: '.venv', text: GRPO + 'output_dir: 2024-05-01\n', refused: { code: 'CC101', phrase: /output_dir expects a string or null, got a date/ } },
  { name: 'system-prompt-datetime', venv: '.venv', text: GRPO + 'system_prompt: 2024-05-01 10:00:00\n', refused: { code: 'CC101', phrase: /system_prompt expects a string or null, got a date \(YAML 1\.1 reads `2024-05-01 10:00:00` as a date\)/ } },
  { name: 'open-tag-date', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  open_tag: 2024-05-01\n', refused: { code: 'CC101', phrase: /safety\.open_tag expects a string, got a date \(YAML 1\.1 reads `2024-05-01` as a date\)\. Quote it to keep the text: '2024-05-01'\./ } },
  { name: 'reward-funcs-date-item', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nseed: 1\nreward_funcs: [refusal, 2024-05-01]\n', refused: { code: 'CC101', phrase: /reward_funcs\[1\] expects a string, got a date/ } },
  { name: 'run-name-quoted-date', venv: '.venv', text: GRPO + "run_name: '2024-05-01'\n" },
  { name: 'run-name-not-a-date', venv: '.venv', text: GRPO + 'run_name: 2024-5-1\n' },
  { name: 'run-name-impossible-date', venv: '.venv', text: GRPO + 'run_name: 2024-02-30\n', refused: { code: 'CC001', phrase: /cannot read '2024-02-30' as a timestamp \(YAML 1\.1 takes it for one\)/ } },
  // !!binary is bytes to PyYAML: `open_tag` used to become the text "b'<safety>'"
  { name: 'open-tag-binary', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nsafety:\n  open_tag: !!binary PHNhZmV0eT4=\n', refused: { code: 'CC101', phrase: /safety\.open_tag expects a string, got/ } },
  { name: 'run-name-binary', venv: '.venv', text: GRPO + 'run_name: !!binary aGVsbG8=\n', refused: { code: 'CC101', phrase: /run_name expects a string or null, got/ } },
  { name: 'run-name-bad-base64', venv: '.venv', text: GRPO + 'run_name: !!binary YQ=\n', refused: { code: 'CC001', phrase: /base64/ } },
  // PyYAML's resolver, not js-yaml's YAML 1.1 schema: `y`/`n` are text, `+.5`/`-.5` are text
  { name: 'launch-cpu-y', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nlaunch:\n  cpu: y\n', refused: { code: 'CC101', phrase: /launch\.cpu:? expect(s|ed) true or false, got (the string )?["']y["']/ } },
  { name: 'launch-vllm-server-n', venv: '.venv', text: 'model_name_or_path: conscience/tiny\nlaunch:\n  vllm_server: n\n', refused: { code: 'CC101', phrase: /launch\.vllm_server:? expect(s|ed) true or false, got (the string )?["']n["']/ } },
  { name: 'allocator-enabled-Y', venv: '.venv', text: GRPO + 'allocator: {enabled: Y}\n', refused: { code: 'CC101', phrase: /allocator\.enabled (expects|must be) true or false, got/ } },
  { name: 'run-name-n', venv: '.venv', text: GRPO + 'run_name: n\n' },
  { name: 'flat-boolean-y', venv: '.venv', text: GRPO + 'disable_tqdm: y\n' },
  { name: 'reward-weights-minus-dot', venv: '.venv', text: GRPO + 'reward_weights: [-.5]\n', refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got the string "-\.5"/ } },
  { name: 'reward-weights-plus-dot', venv: '.venv', text: GRPO + 'reward_weights: [+.5]\n', refused: { code: 'CC101', phrase: /reward_weights\[0\] expects a number, got the string "\+\.5"/ } },
  { name: 'allocator-plus-dot', venv: '.venv', text: GRPO + 'allocator: {risk_harmful: +.5}\n', refused: { code: 'CC101', phrase: /allocator\.risk_harmful (expects|must be) a number/ } },
  { name: 'allocator-dot-five', venv: '.venv', text: GRPO + 'allocator: {risk_harmful: .5}\n' },
  { name: 'int-pattern-not-an-int', venv: '.venv', text: GRPO + 'max_steps: 0b_\n', refused: { code: 'CC001', phrase: /cannot read '0b_' as an integer \(YAML 1\.1 takes it for one\)/ } },
  { name: 'run-name-equals', venv: '.venv', text: GRPO + 'run_name: =\n', refused: { code: 'CC001', phrase: /could not determine a constructor for the tag 'tag:yaml\.org,2002:value'/ } },
  { name: 'run-name-merge', venv: '.venv', text: GRPO + 'run_name: <<\n', refused: { code: 'CC001', phrase: /could not determine a constructor for the tag 'tag:yaml\.org,2002:merge'/ } },
  { name: 'tag-directive', venv: '.venv', text: '%TAG !e! tag:yaml.org,2002:\n---\nmodel_name_or_path: !e!str conscience/tiny\nreward_funcs: [refusal]\n' },
  { name: 'merge-tag-key', venv: '.venv', text: GRPO + 'safety: {!!merge <<: {budget_harmful: -3}}\n', refused: { code: 'CC103', phrase: /safety\.budget_harmful = -3 is out of range/ } },
  { name: 'str-tag-on-merge-key', venv: '.venv', text: GRPO + 'safety: {!!str <<: {budget_harmful: 3}}\n', refused: { code: 'CC100', phrase: /<</ } },
  // NEL / LS / PS end a line to PyYAML only: refused outside quoted scalars, at the line the editor shows
  { name: 'line-separator-in-comment', venv: '.venv', text: GRPO + '# was: \u2028beta: 0.9\n', refused: { code: 'CC001', phrase: /unusual line terminator U\+2028 \(LINE SEPARATOR\): PyYAML reads it as a new line/ } },
  { name: 'next-line-in-comment', venv: '.venv', text: GRPO + '# x\u0085remove_unused_columns: true\n', refused: { code: 'CC001', phrase: /unusual line terminator U\+0085 \(NEXT LINE\)/ } },
  { name: 'paragraph-separator-in-plain', venv: '.venv', text: GRPO + 'run_name: a\u2029b\n', refused: { code: 'CC001', phrase: /unusual line terminator U\+2029 \(PARAGRAPH SEPARATOR\)/ } },
  { name: 'line-separator-quoted', venv: '.venv', text: GRPO + 'run_name: "a\u2028b"\n' },
  // control characters: refused anywhere, comments included, at their line
  { name: 'bell-in-comment', venv: '.venv', text: GRPO + '# bell \u0007 here\n', refused: { code: 'CC001', phrase: /non-printable character U\+0007: PyYAML refuses special characters anywhere in a recipe, comments included/ } },
  { name: 'c1-control-in-comment', venv: '.venv', text: GRPO + '# csi \u009b\n', refused: { code: 'CC001', phrase: /non-printable character U\+009B/ } },
  { name: 'escape-in-quoted-text', venv: '.venv', text: GRPO + 'system_prompt: "red \u001b[31m"\n', refused: { code: 'CC001', phrase: /non-printable character U\+001B/ } },
  // an anchor defined twice, a key given twice through an alias, a value that contains itself, `: 5`
  { name: 'duplicate-anchor', venv: '.venv', text: 'model_name_or_path: &n conscience/tiny\nreward_funcs: [refusal]\nrun_name: &n x\n', refused: { code: 'CC001', phrase: /found duplicate anchor 'n' \(first on line 1\)/ } },
  { name: 'recursive-mapping', venv: '.venv', text: GRPO + 'lr_scheduler_kwargs: &k {a: *k}\n', refused: { code: 'CC001', phrase: /a value that contains itself/ } },
  { name: 'merged-into-itself', venv: '.venv', text: GRPO + 'safety: &s {<<: *s}\n', refused: { code: 'CC001', phrase: /a value that contains itself/ } },
  { name: 'empty-implicit-key', venv: '.venv', text: GRPO + ': 5\n', refused: { code: 'CC001', phrase: /expected <block end>, but found ':'/ } },
  // non-string keys: the line and the spelling they are written with
  { name: 'key-on', venv: '.venv', text: GRPO + 'on: push\n', refused: { code: 'CC100', phrase: /Unknown key 'on'/ } },
  { name: 'key-hex', venv: '.venv', text: GRPO + '0x10: 1\n', refused: { code: 'CC100', phrase: /Unknown key '0x10'/ } },
  { name: 'key-null', venv: '.venv', text: GRPO + 'null: 1\n', refused: { code: 'CC100', phrase: /Unknown key 'null'/ } },
];

/** The line a runtime error names: `PATH:LINE: ...`, or `... (line LINE)` for unknown keys. */
function pythonLine(path: string, msg: string): number | undefined {
  const m = msg.startsWith(path + ':') ? /^:(\d+): /.exec(msg.slice(path.length)) : null;
  const n = m?.[1] ?? /\(line (\d+)\)/.exec(msg)?.[1];
  return n === undefined ? undefined : Number(n);
}

function load(venv: Venv, files: string[]): Record<string, string | null> {
  const py = join(REPO, venv, 'bin/python');
  assert.ok(existsSync(py), `${py} is missing: run ${venv === '.venv' ? 'scripts/setup.sh' : 'scripts/setup.d/trl1.sh'}`);
  const r = spawnSync(py, [join(__dirname, 'loader_parity.py'), ...files], { cwd: REPO, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test('the runtime loads what the validator accepts and refuses what it reports, at the same line and in the same words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conscience-loader-parity-'));
  try {
    const path = (c: Case) => join(dir, `${c.name}.yaml`);
    for (const c of CASES) writeFileSync(path(c), c.text);
    const got: Record<string, string | null> = {};
    for (const venv of ['.venv', '.venv-trl1'] as const) Object.assign(got, load(venv, CASES.filter((c) => c.venv === venv).map(path)));
    const problems: string[] = [];
    for (const c of CASES) {
      const p = path(c);
      const errors = validateFile(p).diags.filter((d) => d.severity === 'error');
      const theirs = got[p];
      if (theirs === undefined) { problems.push(`${c.name}: the loader did not answer`); continue; }
      if (!c.refused) {
        if (theirs !== null) problems.push(`${c.name}: the runtime refuses it: ${theirs}`);
        if (errors.length) problems.push(`${c.name}: the validator reports ${errors.map(fmt).join('; ')}`);
        continue;
      }
      if (theirs === null) { problems.push(`${c.name}: the runtime loads it (the validator: ${errors.map(fmt).join('; ') || 'nothing'})`); continue; }
      const line = pythonLine(p, theirs);
      if (line !== 3) problems.push(`${c.name}: the runtime's error does not name line 3: ${theirs}`);
      if (!c.refused.phrase.test(theirs)) problems.push(`${c.name}: the runtime says ${theirs}`);
      const ours = errors.find((d) => d.code === c.refused!.code && d.line + 1 === 3);
      if (!ours) problems.push(`${c.name}: no ${c.refused.code} at line 3 from the validator; it reports ${errors.map(fmt).join('; ') || 'nothing'}`);
      else if (!c.refused.phrase.test(ours.message)) problems.push(`${c.name}: the validator says ${ours.message}`);
    }
    assert.deepEqual(problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The validator resolves a plain scalar with PyYAML's own patterns (yaml.ts resolvePlain), not
// js-yaml's YAML 1.1 schema (which reads `y`/`n` as booleans and `-.5` as a float): the tag and,
// for numbers, booleans and dates, what the constructor makes of it, for each spelling here.
test('plain scalars get the tag and the value PyYAML gives them', () => {
  const words = ['y', 'Y', 'n', 'N', 'yes', 'No', 'ON', 'oN', 'on', 'Off', 'true', 'TRUE', 'tRUE', 'null', 'Null', 'NULL', 'nULL', '~', '',
    '1', '-1', '+1', '0', '-0', '00', '08', '010', '0o10', '0x1F', '-0x_1', '0x_', '0b101', '0b_', '-0b1', '1_000', '1__0', '_1', '0_', '1:30', '190:20:30', '1:30.5', '1:60',
    '1.0', '1.', '-1.', '.5', '-.5', '+.5', '._5', '1_.5', '1e5', '1.0e5', '1.0e+5', '1.0E-5', '1.0e-5_0', '.inf', '-.inf', '+.INF', '.Inf', '.NaN', '.nan', '-.nan', '.NAN',
    '2024-05-01', '2024-5-1', '2024-05-01 10:00:00', '2024-05-01T10:00:00Z', '2024-05-01t10:00:00.5 +02:00', '2024-5-1 1:00:00', '2024-02-30', '2024-02-29', '2023-02-29',
    '2024-05-01 24:00:00', '2024-05-01 10:00:00 +24', '2024-05-01 10:00:00-23:59', '<<', '=', 'abc', 'a b', 'conscience/tiny', '1e-6', '0.5_0', '١'];
  const script = [
    'import json, math, sys, yaml',
    'from conscience.recipe import _RecipeLoader',
    'out = {}',
    'for s in json.loads(sys.argv[1]):',
    '    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, s, (True, False)).rsplit(":", 1)[-1]',
    '    value = None',
    '    if tag in ("int", "float", "bool", "null", "timestamp"):',
    '        try:',
    '            v = _RecipeLoader("").construct_object(yaml.ScalarNode("tag:yaml.org,2002:" + tag, s))',
    '            value = True if tag == "timestamp" else v if not isinstance(v, float) or math.isfinite(v) else repr(v)',
    '        except yaml.YAMLError:',
    '            value = "error"',
    '    out[s] = [tag, value]',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync(join(REPO, '.venv/bin/python'), ['-c', script, JSON.stringify(words)], { cwd: REPO, encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(REPO, 'runtime') } });
  assert.equal(r.status, 0, r.stderr);
  const py = JSON.parse(r.stdout) as Record<string, [string, unknown]>;
  const ours: Record<string, [string, unknown]> = {};
  for (const w of words) {
    const tag = resolvePlain(w);
    let value: unknown = null;
    if (tag === 'int' || tag === 'float' || tag === 'bool' || tag === 'null') {
      const v = constructTagged(tag, w);
      value = v === undefined ? 'error' : typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf') : v;
    } else if (tag === 'timestamp') value = constructTimestamp(w) === undefined ? 'error' : true;
    ours[w] = [tag, value];
  }
  assert.deepEqual(ours, py);
});
