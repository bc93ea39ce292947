// What runs on the host, generated from the recipe's launch: section and the target:
// the trainer's argv, the detached wrapper for local/SSH runs, and the sbatch script + command
// for SLURM. Every value is quoted with shQuote; the only unquoted text is our own constant
// shell and the target's `setup` lines, which are shell code by definition.
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { load } from 'js-yaml';
import { shExport, shJoin, shQuote } from './quote';
import type { SlurmTarget } from './targets';

export interface LaunchSection {
  accelerate_config?: string;
  num_processes: number;
  num_machines: number;
  cpu: boolean;
  main_process_port?: number;
  vllm_server: boolean;
  vllm_server_gpus: number;
  vllm_tensor_parallel_size: number;
  vllm_data_parallel_size: number;
  vllm_gpu_memory_utilization: number;
}

/** A recipe's `kind:` and the runtime module that runs it (runtime/conscience/recipe.py RECIPE_KINDS). */
export const RECIPE_KINDS = { grpo: 'conscience.train', sft: 'conscience.sft', eval: 'conscience.eval' } as const;
export type RecipeKind = keyof typeof RECIPE_KINDS;

export interface RecipeInfo {
  kind: RecipeKind;
  launch: LaunchSection;
  model?: string;
  maxSteps?: number;
}

/** Reads what launching needs from a recipe (its launch: section and model), with clear errors. */
export async function readRecipeInfo(file: string): Promise<RecipeInfo> {
  let doc: unknown;
  try {
    doc = load(await readFile(file, 'utf8'), { filename: file });
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: a recipe must be a YAML mapping`);
  const d = doc as Record<string, unknown>;
  const l = (d.launch ?? {}) as Record<string, unknown>;
  if (typeof l !== 'object' || Array.isArray(l)) throw new Error(`${file}: 'launch' must be a mapping`);
  const posInt = (k: string, def: number) => {
    const v = l[k] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${file}: launch.${k} must be an integer >= 1`);
    return v;
  };
  const acc = l.accelerate_config;
  if (acc !== undefined && acc !== null && typeof acc !== 'string') throw new Error(`${file}: launch.accelerate_config must be a path`);
  const port = l.main_process_port;
  if (port !== undefined && port !== null && (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535))
    throw new Error(`${file}: launch.main_process_port must be a port number`);
  const util = l.vllm_gpu_memory_utilization ?? 0.9;
  if (typeof util !== 'number' || !(util > 0 && util <= 1)) throw new Error(`${file}: launch.vllm_gpu_memory_utilization must be in (0, 1]`);
  const kind = d.kind ?? 'grpo';
  if (typeof kind !== 'string' || !Object.hasOwn(RECIPE_KINDS, kind))
    throw new Error(`${file}: kind must be one of ${Object.keys(RECIPE_KINDS).join(', ')}, got ${JSON.stringify(kind)}`);
  return {
    kind: kind as RecipeKind,
    launch: {
      accelerate_config: (acc as string | undefined) ?? undefined,
      num_processes: posInt('num_processes', 1),
      num_machines: posInt('num_machines', 1),
      cpu: l.cpu === true,
      main_process_port: (port as number | undefined) ?? undefined,
      vllm_server: l.vllm_server === true,
      vllm_server_gpus: posInt('vllm_server_gpus', 1),
      vllm_tensor_parallel_size: posInt('vllm_tensor_parallel_size', 1),
      vllm_data_parallel_size: posInt('vllm_data_parallel_size', 1),
      vllm_gpu_memory_utilization: util,
    },
    model: typeof d.model_name_or_path === 'string' ? d.model_name_or_path : undefined,
    maxSteps: typeof d.max_steps === 'number' ? d.max_steps : undefined,
  };
}

export interface TrainSpec {
  python: string;
  /** Recipe path on the host (absolute). */
  recipe: string;
  outputDir: string;
  launch: LaunchSection;
  /** Extra `accelerate launch` flags (e.g. per-node ranks), passed through conscience.launch. */
  accelerateArgs?: string[];
  /** Extra trainer flags (flat TRL keys), after the output dir. */
  trainerArgs?: string[];
  /** The recipe's kind (default grpo): which runtime module runs it. */
  kind?: RecipeKind;
}

/** True when one plain Python process is enough (no accelerate launcher needed). */
export function singleProcess(l: LaunchSection): boolean {
  return l.num_processes === 1 && l.num_machines === 1 && !l.accelerate_config;
}

/**
 * The trainer's argv on one machine: `python -m conscience.train` (or the module of the
 * recipe's kind: conscience.sft, conscience.eval) for one process, else the
 * runtime's `python -m conscience.launch`, which builds `accelerate launch ... -m
 * conscience.train` from the recipe's launch: section (CPU DDP, config file, ports) and
 * forwards SIGTERM to every rank.
 */
export function trainArgv(s: TrainSpec): string[] {
  const trainer = ['--output_dir', s.outputDir, ...(s.trainerArgs ?? [])];
  if (singleProcess(s.launch) && !s.accelerateArgs?.length) return [s.python, '-m', RECIPE_KINDS[s.kind ?? 'grpo'], '--config', s.recipe, ...trainer];
  return [s.python, '-m', 'conscience.launch', '--config', s.recipe, ...(s.accelerateArgs ?? []).map((a) => `--accelerate-arg=${a}`), '--', ...trainer];
}

export interface WrapperSpec {
  runId: string;
  launchToken?: string;
  projectDir: string;
  runDir: string;
  env?: Record<string, string>;
  argv: string[];
}

function commonPrelude(w: { runId: string; projectDir: string; runDir: string; env?: Record<string, string>; launchToken?: string }): string[] {
  const RUN = shQuote(w.runDir);
  return [
    `RUN=${RUN}`,
    `cd -- ${shQuote(w.projectDir)} || exit 97`,
    // secrets arrive in a 0600 file that is read and deleted before anything else runs
    'if [ -f "$RUN/secrets.env" ]; then set -a; . "$RUN/secrets.env"; set +a; rm -f -- "$RUN/secrets.env"; fi',
    `export PYTHONPATH=${shQuote(w.projectDir + '/runtime')}"\${PYTHONPATH:+:\$PYTHONPATH}"`,
    'export PYTHONUNBUFFERED=1',
    shExport('CONSCIENCE_RUN_ID', w.runId),
    // unique per start: cancel finds this attempt's stray ranks by it, never a later resume's
    ...(w.launchToken ? [shExport('CONSCIENCE_LAUNCH_TOKEN', w.launchToken)] : []),
    ...Object.entries(w.env ?? {}).map(([k, v]) => shExport(k, v)),
  ];
}

/**
 * The wrapper a local or SSH run executes in its own session (setsid): records its pid and
 * process group, starts the trainer, ignores the group's SIGTERM itself (the trainer gets it
 * and writes run_finished), waits, and writes the trainer's exit code to $RUN/exit_code.
 */
export function wrapperScript(w: WrapperSpec): string {
  return [
    '#!/bin/bash',
    `# Chain of Conscience run ${w.runId} (generated; do not edit)`,
    ...commonPrelude(w),
    'exec </dev/null >>"$RUN/stdout.log" 2>>"$RUN/stderr.log"',
    'pgid=$(ps -o pgid= -p $$ 2>/dev/null | tr -d " "); printf "%s %s\\n" "$$" "${pgid:-$$}" > "$RUN/pid"',
    'rm -f -- "$RUN/exit_code"',
    `${shJoin(w.argv)} &`,
    'child=$!',
    'printf "%s\\n" "$child" > "$RUN/trainer.pid"',
    "trap '' TERM INT HUP",
    'wait "$child"; rc=$?',
    'printf "%s\\n" "$rc" > "$RUN/exit_code.tmp" && mv -f -- "$RUN/exit_code.tmp" "$RUN/exit_code"',
    'exit "$rc"',
    '',
  ].join('\n');
}

/** Shell command that starts the wrapper detached (new session, no terminal) and prints its pid. */
export function detachedStartCommand(runDir: string): string {
  const script = shQuote(`${runDir}/run.sh`);
  return `cd -- ${shQuote(runDir)} && { setsid nohup bash ${script} >/dev/null 2>&1 </dev/null & echo $!; }`;
}

export interface SbatchSpec {
  runId: string;
  launchToken?: string;
  projectDir: string;
  runDir: string;
  python: string;
  recipe: string;
  outputDir: string;
  launch: LaunchSection;
  model?: string;
  /** The recipe's kind (default grpo): which runtime module runs it. */
  kind?: RecipeKind;
  target: SlurmTarget;
  env?: Record<string, string>;
}

const SBATCH_OPTION = /^--?[A-Za-z][\w-]*(=[^\s'"`$\\;|&<>()]*)?$/;

function checkValue(what: string, v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`target: ${what} must be a single line`);
  return v;
}

/** The sbatch options (command line, all quoted) for a run. */
export function sbatchArgs(s: SbatchSpec): string[] {
  const t = s.target;
  const a = [
    '--parsable',
    `--job-name=conscience-${s.runId}`,
    `--output=${s.runDir}/stdout.log`,
    `--error=${s.runDir}/stderr.log`,
    `--chdir=${s.projectDir}`,
    `--nodes=${t.nodes ?? 1}`,
    '--ntasks-per-node=1',
  ];
  if (t.partition) a.push(`--partition=${checkValue('partition', t.partition)}`);
  if (t.account) a.push(`--account=${checkValue('account', t.account)}`);
  if (t.gpusPerNode) a.push(`--gres=gpu:${t.gpusPerNode}`);
  if (t.cpusPerTask) a.push(`--cpus-per-task=${t.cpusPerTask}`);
  if (t.time) a.push(`--time=${checkValue('time', t.time)}`);
  return a;
}

export function sbatchCommand(s: SbatchSpec): string {
  return `sbatch ${shJoin([...sbatchArgs(s), `${s.runDir}/job.sbatch`])}`;
}

/**
 * The batch script. One node: the trainer (accelerate launch when several processes) runs on
 * it. Several nodes: `srun` starts one launcher per node with --machine_rank from SLURM_PROCID
 * and the first node as main process. With launch.vllm_server, the last node (or, on one node,
 * the last GPUs) serves generations with `trl vllm-serve`, as open-r1 does.
 */
export function sbatchScript(s: SbatchSpec): string {
  const t = s.target;
  const nodes = t.nodes ?? 1;
  const extra = (t.sbatch ?? []).map((line) => {
    checkValue('sbatch line', line);
    const opt = line.replace(/^#SBATCH\s+/, '').trim();
    if (!SBATCH_OPTION.test(opt)) throw new Error(`target '${t.name}': sbatch line '${line}' must be an option like --qos=high`);
    return `#SBATCH ${opt}`;
  });
  const l = s.launch;
  const gpus = t.gpusPerNode ?? 0;
  const lines = ['#!/bin/bash', ...extra, `# Chain of Conscience run ${s.runId} (generated; do not edit)`, ...commonPrelude(s), ...(t.setup ?? []).map((x) => checkValue('setup line', x))];
  lines.push('rm -f -- "$RUN/exit_code"');
  lines.push('printf "%s\\n" "$SLURM_JOB_ID" > "$RUN/job_id"');
  const vllmArgs = (model: string) => [
    s.python, '-m', 'trl.scripts.vllm_serve', '--model', model,
    '--tensor_parallel_size', String(l.vllm_tensor_parallel_size), '--data_parallel_size', String(l.vllm_data_parallel_size),
    '--gpu_memory_utilization', String(l.vllm_gpu_memory_utilization),
  ];
  const useVllm = l.vllm_server;
  if (useVllm && !s.model) throw new Error('launch.vllm_server needs model_name_or_path in the recipe');
  if (nodes === 1) {
    let spec: TrainSpec = { python: s.python, recipe: s.recipe, outputDir: s.outputDir, launch: l, kind: s.kind };
    if (useVllm) {
      if (gpus <= l.vllm_server_gpus) throw new Error(`target '${t.name}': vLLM server mode on one node needs gpusPerNode > launch.vllm_server_gpus (${l.vllm_server_gpus})`);
      const serve = Array.from({ length: l.vllm_server_gpus }, (_, i) => gpus - l.vllm_server_gpus + i).join(',');
      const train = Array.from({ length: gpus - l.vllm_server_gpus }, (_, i) => i).join(',');
      lines.push(`CUDA_VISIBLE_DEVICES=${serve} ${shJoin(vllmArgs(s.model!))} &`, 'vllm_pid=$!', `export CUDA_VISIBLE_DEVICES=${train}`);
      spec = { ...spec, accelerateArgs: [`--num_processes=${gpus - l.vllm_server_gpus}`], trainerArgs: ['--vllm_server_host', '127.0.0.1'] };
    }
    lines.push(shJoin(trainArgv(spec)));
    lines.push('rc=$?');
    if (useVllm) lines.push('kill "$vllm_pid" 2>/dev/null');
  } else {
    const trainNodes = useVllm ? nodes - 1 : nodes;
    if (trainNodes < 1) throw new Error(`target '${t.name}': vLLM server mode needs at least 2 nodes`);
    const perNode = gpus || Math.max(1, Math.floor(l.num_processes / Math.max(1, l.num_machines)));
    lines.push('mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")', 'export MAIN_NODE=${NODES[0]}');
    if (useVllm) {
      lines.push('VLLM_NODE=${NODES[-1]}');
      lines.push(`srun --nodes=1 --ntasks=1 --nodelist="$VLLM_NODE" ${shJoin(vllmArgs(s.model!))} &`, 'vllm_pid=$!');
    }
    lines.push(`TRAIN_NODES=$(IFS=,; echo "\${NODES[*]:0:${trainNodes}}")`);
    const argv = trainArgv({
      python: s.python, recipe: s.recipe, outputDir: s.outputDir, launch: l, kind: s.kind,
      accelerateArgs: [`--num_machines=${trainNodes}`, `--num_processes=${perNode * trainNodes}`],
      trainerArgs: useVllm ? ['--vllm_server_host', '@VLLM_NODE@'] : [],
    });
    // per-node rank and main address come from SLURM at run time, as arguments (never spliced into the inner script)
    const quoted = shJoin(argv.slice(1)).replace(shQuote('@VLLM_NODE@'), '"$VLLM_NODE"');
    lines.push(
      `srun --nodes=${trainNodes} --ntasks=${trainNodes} --ntasks-per-node=1 --nodelist="$TRAIN_NODES" ` +
        `bash -c 'py=$1; shift; m=$1; mod=$2; shift 2; exec "$py" "$m" "$mod" --accelerate-arg=--machine_rank="$SLURM_PROCID" --accelerate-arg=--main_process_ip="$MAIN_NODE" "$@"' conscience ` +
        `${shQuote(s.python)} ${quoted}`,
    );
    lines.push('rc=$?');
    if (useVllm) lines.push('kill "$vllm_pid" 2>/dev/null');
  }
  lines.push('printf "%s\\n" "$rc" > "$RUN/exit_code.tmp" && mv -f -- "$RUN/exit_code.tmp" "$RUN/exit_code"', 'exit "$rc"', '');
  return lines.join('\n');
}

