// What runs on the host, generated from the recipe's launch: section and the target:
// the trainer's argv, the detached wrapper for local/SSH runs, and the sbatch script + command
// for SLURM. Every value is quoted with shQuote; the only unquoted text is our own constant
// shell and the target's `setup` lines, which are shell code by definition.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { defaultSchema } from '../recipe/schema';
import { deref, getPair, LIMITS, lineOf, parseYaml, toPlain, type YNode } from '../recipe/yaml';
import { coerceField, type FieldType } from './coerce';
import { shExport, shJoin, shQuote } from './quote';
import type { SlurmTarget } from './targets';
import { requireTopology, type Topology } from './topology';

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
  /** The recipe's model_revision (the vLLM server's --revision). */
  modelRevision?: string;
  maxSteps?: number;
  /** The recipe's vllm_server_port (TRL key): where a planned generation server listens. */
  serverPort?: number;
}

/**
 * Reads what launching needs from a recipe, once per launch: the recipe core's YAML 1.1 tree
 * (the same parser, alias limits and merge keys as the validator; PyYAML's reading), the
 * launch: section completed with the recipe schema's defaults. Errors name FILE:LINE.
 */
export async function readRecipeInfo(file: string): Promise<RecipeInfo> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  return recipeInfoFromText(text, file);
}

/** readRecipeInfo on text already in hand (the editor's buffer); `lines` gets each launch key's 1-based line. */
export function recipeInfoFromText(text: string, file: string, lines?: Map<string, number>): RecipeInfo {
  const parsed = parseYaml(text);
  const bad = parsed.diagnostics.find((x) => x.severity === 'error');
  if (bad) throw new Error(`${file}:${bad.line + 1}: ${bad.message}`);
  const root = deref(parsed.root);
  if (!root || root.kind !== 'map') throw new Error(`${file}:1: a recipe must be a YAML mapping`);
  const at = (node: YNode | undefined) => `${file}:${node ? lineOf(text, node.start) : 1}`;
  const launchPair = getPair(root, 'launch');
  const launchNode = deref(launchPair?.value);
  if (launchNode && launchNode.kind !== 'map' && !(launchNode.kind === 'scalar' && launchNode.value === null))
    throw new Error(`${at(launchNode)}: 'launch' must be a mapping`);
  // one expansion budget for the whole read: an alias bomb stops with an error, never a hang
  const budget = { left: LIMITS.maxPlainNodes };
  const plain = (n: YNode | undefined): unknown => {
    try {
      return toPlain(n, budget);
    } catch (err) {
      throw new Error(`${at(n)}: ${(err as Error).message}`);
    }
  };
  const top = (k: string) => plain(getPair(root, k)?.value);
  const section = launchNode?.kind === 'map' ? launchNode : undefined;
  const defaults = defaultSchema().sections.get('launch');
  if (lines && launchPair) {
    lines.set('launch', lineOf(text, launchPair.key.start));
    for (const it of section?.items ?? []) {
      const k = deref(it.key);
      if (k?.kind === 'scalar' && typeof k.value === 'string') lines.set(`launch.${k.value}`, lineOf(text, it.key.start));
    }
  }
  // each value as the runtime's _coerce converts it (coerce.ts): `cpu: "true"` is true, `num_processes: "2"` is 2
  const value = (k: string, type: FieldType, what: string): { v: unknown; node?: YNode } => {
    const pair = section ? getPair(section, k) : undefined;
    if (!pair) return { v: defaults?.get(k)?.default ?? undefined };
    const c = coerceField(plain(pair.value), type, pair.value);
    if (!c.ok) throw new Error(`${at(pair.value)}: launch.${k} must be ${what}`);
    return { v: c.value, node: pair.value };
  };
  const posInt = (k: string) => {
    const { v, node } = value(k, 'int', 'an integer >= 1');
    const n = v ?? 1;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new Error(`${at(node)}: launch.${k} must be an integer >= 1`);
    return n;
  };
  const bool = (k: string) => value(k, 'bool', 'true or false').v === true;
  const acc = value('accelerate_config', 'str', 'a path');
  const port = value('main_process_port', 'int', 'a port number');
  if (port.v !== undefined && port.v !== null && (typeof port.v !== 'number' || !Number.isInteger(port.v) || port.v < 1 || port.v > 65535))
    throw new Error(`${at(port.node)}: launch.main_process_port must be a port number`);
  const util = value('vllm_gpu_memory_utilization', 'float', 'in (0, 1]');
  const u = util.v ?? 0.9;
  if (typeof u !== 'number' || !(u > 0 && u <= 1)) throw new Error(`${at(util.node)}: launch.vllm_gpu_memory_utilization must be in (0, 1]`);
  const kind = top('kind') ?? 'grpo';
  if (typeof kind !== 'string' || !Object.hasOwn(RECIPE_KINDS, kind))
    throw new Error(`${at(getPair(root, 'kind')?.value)}: kind must be one of ${Object.keys(RECIPE_KINDS).join(', ')}, got ${JSON.stringify(kind)}`);
  const model = top('model_name_or_path');
  const revision = top('model_revision');
  for (const key of ['model_name_or_path', 'model_revision']) {
    const v = top(key);
    if (typeof v === 'string' && v.includes('\0')) throw new Error(`${at(getPair(root, key)?.value)}: ${key} contains a NUL character, which no path, model id or shell argument can hold`);
  }
  // an integer, or its digits as text, as the trainer's argparse and the validator take it
  const rawSteps = getPair(root, 'max_steps')?.value;
  const steps = coerceField(top('max_steps'), 'int', rawSteps);
  const maxSteps = steps.ok ? steps.value : undefined;
  const portPair = getPair(root, 'vllm_server_port');
  // a whole number, or its digits as a string (TRL's argparse reads `"8001"` as 8001)
  const rawPort = plain(portPair?.value);
  const serverPort = typeof rawPort === 'string' && /^\s*\d+\s*$/.test(rawPort) ? Number(rawPort) : rawPort;
  if (serverPort !== undefined && serverPort !== null && (typeof serverPort !== 'number' || !Number.isInteger(serverPort) || serverPort < 1 || serverPort > 65535))
    throw new Error(`${at(portPair?.value)}: vllm_server_port must be a port number (1-65535), got ${JSON.stringify(serverPort)}`);
  const vllmServer = bool('vllm_server');
  const baseUrlPair = getPair(root, 'vllm_server_base_url');
  const baseUrl = plain(baseUrlPair?.value);
  // TRL ignores vllm_server_host/port when a base URL is set: the trainer would never reach the server launched for it
  if (vllmServer && baseUrl)
    throw new Error(`${at(baseUrlPair?.value)}: vllm_server_base_url sends the trainer to ${String(baseUrl)} instead of the vLLM server that launch.vllm_server starts; remove it (the launcher points the trainer at its own server)`);
  return {
    kind: kind as RecipeKind,
    launch: {
      accelerate_config: (acc.v as string | null | undefined) ?? undefined,
      num_processes: posInt('num_processes'),
      num_machines: posInt('num_machines'),
      cpu: bool('cpu'),
      main_process_port: (port.v as number | null | undefined) ?? undefined,
      vllm_server: vllmServer,
      vllm_server_gpus: posInt('vllm_server_gpus'),
      vllm_tensor_parallel_size: posInt('vllm_tensor_parallel_size'),
      vllm_data_parallel_size: posInt('vllm_data_parallel_size'),
      vllm_gpu_memory_utilization: u,
    },
    model: typeof model === 'string' ? model : undefined,
    // as launch.py reads it: any truthy scalar, as text
    modelRevision: revision && (typeof revision === 'string' || typeof revision === 'number') ? String(revision) : undefined,
    maxSteps: typeof maxSteps === 'number' ? maxSteps : undefined,
    serverPort: typeof serverPort === 'number' ? serverPort : undefined,
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

/**
 * True when one plain Python process is enough (no accelerate launcher needed). A vLLM server
 * (`launch.vllm_server`) needs `conscience.launch`, which starts it beside the trainer.
 */
export function singleProcess(l: LaunchSection): boolean {
  return l.num_processes === 1 && l.num_machines === 1 && !l.accelerate_config && !l.vllm_server;
}

/**
 * The trainer's argv on one machine: `python -m conscience.train` (or the module of the
 * recipe's kind: conscience.sft, conscience.eval) for one process, with `--use_cpu true` for
 * `launch.cpu` as conscience.launch adds it, else the
 * runtime's `python -m conscience.launch`, which builds `accelerate launch ... -m
 * conscience.train` from the recipe's launch: section (CPU DDP, config file, ports, the
 * vLLM server) and forwards SIGTERM to every rank.
 */
export function trainArgv(s: TrainSpec): string[] {
  const trainer = ['--output_dir', s.outputDir, ...(s.trainerArgs ?? [])];
  if (singleProcess(s.launch) && !s.accelerateArgs?.length)
    return [s.python, '-m', RECIPE_KINDS[s.kind ?? 'grpo'], '--config', s.recipe, ...(s.launch.cpu ? ['--use_cpu', 'true'] : []), ...trainer];
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

function commonPrelude(w: { runId: string; projectDir: string; runDir: string; env?: Record<string, string>; launchToken?: string }, keepSecrets = false): string[] {
  const RUN = shQuote(w.runDir);
  return [
    `RUN=${RUN}`,
    `cd -- ${shQuote(w.projectDir)} || exit 97`,
    // secrets arrive in a 0600 file read before anything else runs; a process run deletes it
    // at once, a SLURM job keeps it for the life of the job (a requeued job starts again and
    // needs it) and deletes it when the job ends
    keepSecrets
      ? 'if [ -f "$RUN/secrets.env" ]; then set -a; . "$RUN/secrets.env"; set +a; fi'
      : 'if [ -f "$RUN/secrets.env" ]; then set -a; . "$RUN/secrets.env"; set +a; rm -f -- "$RUN/secrets.env"; fi',
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

/**
 * Shell command that starts the wrapper detached (new session, no terminal) and prints its pid.
 * The launch token is in the session leader's own environment (/proc/<pid>/environ; an `export`
 * in the wrapper would not show there): status and cancel check it before they trust the
 * recorded process group, which may belong to someone else once the run's pid is reused.
 */
export function detachedStartCommand(runDir: string, launchToken?: string): string {
  const script = shQuote(`${runDir}/run.sh`);
  const env = launchToken ? `env ${shQuote(`CONSCIENCE_LAUNCH_TOKEN=${launchToken}`)} ` : '';
  return `cd -- ${shQuote(runDir)} && { ${env}setsid nohup bash ${script} >/dev/null 2>&1 </dev/null & echo $!; }`;
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
  /** The recipe's model_revision, passed to the vLLM server as --revision. */
  modelRevision?: string;
  /** The recipe's kind (default grpo): which runtime module runs it. */
  kind?: RecipeKind;
  /** The recipe's vllm_server_port (TRL key), where the generation server listens (default: derived from the job id). */
  serverPort?: number;
  target: SlurmTarget;
  env?: Record<string, string>;
}

const SBATCH_OPTION = /^--?[A-Za-z][\w-]*(=[^\s'"`$\\;|&<>()]*)?$/;

function checkValue(what: string, v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`target: ${what} must be a single line`);
  return v;
}

/**
 * Variables of the submitting shell that reach the job (plus SLURM_*, which SLURM always
 * passes). Everything else, tokens included, stays out of SLURM's spool: secrets travel only
 * in the run's 0600 secrets.env. Inside the job, srun gets --export=ALL so the steps see what
 * the script built.
 */
export const SBATCH_EXPORT = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TMPDIR'];

/** Seconds before the end (time limit, preemption) SLURM sends USR1 to the batch script, which asks the trainer for a checkpoint. */
export const CHECKPOINT_SIGNAL_S = 120;

/** A path for --output/--error: SLURM expands %j, %N, ... in them, so a literal % is written %%. */
export function slurmFilename(p: string): string {
  return p.replace(/%/g, '%%');
}

function besideRecipe(model: string, recipe: string): string {
  const p = posix.normalize(posix.join(posix.dirname(recipe), model));
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/**
 * The model the vLLM server loads, as the runtime resolves model_name_or_path for the trainer
 * (recipe.py _resolve_relative): a `./` or `../` path is resolved against the recipe's folder
 * on the host; an absolute path is kept. A bare relative value (`models/tiny`, or a Hub id
 * `org/name`) is kept here: see serverModelCandidate.
 */
export function serverModel(model: string, recipe: string): string {
  if (!model.startsWith('./') && !model.startsWith('../')) return model;
  return besideRecipe(model, recipe);
}

/**
 * For a bare relative model_name_or_path (`models/tiny`, `org/name`): the path beside the
 * recipe that the server loads instead when it exists there at run time, as the trainer
 * decides on its node (an existing folder wins, else the value is a Hub id). Undefined for
 * `./`, `../` and absolute values, which serverModel settles.
 */
export function serverModelCandidate(model: string, recipe: string): string | undefined {
  if (model.startsWith('/') || model.startsWith('./') || model.startsWith('../')) return undefined;
  return besideRecipe(model, recipe);
}

/** The sbatch options (command line, all quoted) for a run. */
export function sbatchArgs(s: SbatchSpec): string[] {
  const t = s.target;
  const a = [
    '--parsable',
    `--job-name=conscience-${s.runId}`,
    `--output=${slurmFilename(s.runDir)}/stdout.log`,
    `--error=${slurmFilename(s.runDir)}/stderr.log`,
    `--chdir=${s.projectDir}`,
    `--nodes=${t.nodes ?? 1}`,
    '--ntasks-per-node=1',
    `--export=${SBATCH_EXPORT.join(',')}`,
    // a requeued job (preemption, node failure, scontrol requeue) is the same run, resumed
    '--requeue',
    `--signal=B:USR1@${CHECKPOINT_SIGNAL_S}`,
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

// Arguments the batch script fills in at run time. Each holds a random nonce drawn when this
// module loads, so no value from a recipe or target can equal one (a YAML "\0SERVER_ADDR" is
// quoted as any other value), and no user value is ever written unquoted.
const NONCE = randomBytes(12).toString('hex');
const SERVER_ADDR_VAR = `\0${NONCE}:SERVER_ADDR`;
const SERVER_PORT_VAR = `\0${NONCE}:SERVER_PORT`;
const SCRIPT_VARS = new Map([[SERVER_ADDR_VAR, '"$SERVER_ADDR"'], [SERVER_PORT_VAR, '"$SERVER_PORT"']]);

/** shJoin, with the batch script's own run-time variables (SERVER_ADDR_VAR, ...) written as "$NAME". */
function shJoinVars(argv: string[]): string {
  return argv.map((a) => SCRIPT_VARS.get(a) ?? shQuote(a)).join(' ');
}

/** The plan the batch script executes (topology.ts), refused with every error when the recipe does not fit the target. */
export function sbatchTopology(s: SbatchSpec): Topology {
  return requireTopology(s.launch, { kind: 'slurm', nodes: s.target.nodes ?? 1, gpusPerNode: s.target.gpusPerNode ?? 0, name: s.target.name }, s.recipe, s.serverPort)
    .topology;
}

/**
 * The batch script: it executes the topology planner's plan and decides nothing itself.
 * Node names come from SLURM at run time; the main address is the first training node's
 * NodeAddr and the port the recipe's or one derived from the job id (two jobs sharing a node
 * do not collide). With a vLLM server, one `srun` step starts `trl vllm-serve` on its node
 * and GPUs; training is one `srun` step with one `conscience.launch` per training node
 * (`--kill-on-bad-exit=1 --wait=60`: one dead node ends the job instead of leaving the
 * others hanging until the time limit). A server step that ends while training runs stops
 * training, and the job ends with the server's code. USR1 (sent by --signal before the end)
 * asks the trainer for a checkpoint. docs/launch.md gives the reasons.
 */
export function sbatchScript(s: SbatchSpec): string {
  const t = s.target;
  const extra = (t.sbatch ?? []).map((line) => {
    checkValue('sbatch line', line);
    const opt = line.replace(/^#SBATCH\s+/, '').trim();
    if (!SBATCH_OPTION.test(opt)) throw new Error(`target '${t.name}': sbatch line '${line}' must be an option like --qos=high`);
    return `#SBATCH ${opt}`;
  });
  const l = s.launch;
  const topo = sbatchTopology(s);
  const srv = topo.server;
  if (srv && !s.model) throw new Error(`${s.recipe}: launch.vllm_server needs model_name_or_path in the recipe`);
  const lines = [
    '#!/bin/bash',
    ...extra,
    `# Chain of Conscience run ${s.runId} (generated; do not edit)`,
    ...commonPrelude(s, true),
    // NCCL: fail a collective whose peer died instead of waiting forever (open-r1 sets the same)
    'export NCCL_ASYNC_ERROR_HANDLING=1 TORCH_NCCL_ASYNC_ERROR_HANDLING=1',
    shExport('CONSCIENCE_CHECKPOINT_REQUEST', `${s.runDir}/checkpoint_request`),
    ...(t.setup ?? []).map((x) => checkValue('setup line', x)),
  ];
  lines.push(
    'rm -f -- "$RUN/exit_code" "$RUN/checkpoint_request"',
    'printf "%s\\n" "$SLURM_JOB_ID" > "$RUN/job_id"',
    // SLURM sends USR1 before the time limit or a preemption: the trainer saves a checkpoint at its next step
    `trap 'touch -- "$RUN/checkpoint_request"' USR1`,
    'mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
    `node_addr() { local a; a=$(scontrol show node -o "$1" 2>/dev/null | tr ' ' '\\n' | sed -n 's/^NodeAddr=//p' | head -n1); printf '%s\\n' "\${a:-$1}"; }`,
    `MAIN_ADDR=$(node_addr "\${NODES[${topo.trainNodes[0]}]}")`,
    // derived ports lie below Linux's ephemeral range (32768-60999), where an outgoing connection
    // on the node may hold one already; the main port takes 20000-25999 and the server's port
    // 26000-31999, so neither meets the other, and two jobs meet only when their ids agree mod 6000
    `MAIN_PORT=${topo.mainPort ?? '$((20000 + SLURM_JOB_ID % 6000))'}`,
    `TRAIN_NODES=$(IFS=,; echo "\${NODES[*]:${topo.trainNodes[0]}:${topo.trainNodes.length}}")`,
    'server_pid=',
  );
  const trainerArgs: string[] = [];
  if (srv) {
    const colocated = topo.trainNodes.includes(srv.node);
    lines.push(
      // where the trainer finds why it was stopped, if the server's end stops it (conscience.train: run_finished failed, not cancelled)
      'export CONSCIENCE_STOP_REASON="$RUN/stop_reason"; rm -f -- "$CONSCIENCE_STOP_REASON"',
      `SERVER_NODE=\${NODES[${srv.node}]}`,
      colocated ? 'SERVER_ADDR=127.0.0.1' : 'SERVER_ADDR=$(node_addr "$SERVER_NODE")',
      // the recipe's port, else one derived from the job id (as the main port, see above): two jobs sharing a node never share a server
      `SERVER_PORT=${srv.port ?? '$((26000 + SLURM_JOB_ID % 6000))'}`,
    );
    const serve = [
      '--tensor_parallel_size', String(srv.tensorParallel), '--data_parallel_size', String(srv.dataParallel),
      '--gpu_memory_utilization', String(l.vllm_gpu_memory_utilization), '--host', '0.0.0.0', '--port', SERVER_PORT_VAR,
      ...(s.modelRevision ? ['--revision', s.modelRevision] : []),
    ];
    // the model is decided on the server's node, as the trainer decides on its own: a bare
    // relative value that exists beside the recipe is that folder, else it is kept (a Hub id)
    const serveInner = 'export CUDA_VISIBLE_DEVICES=$1; m=$2; if [ -n "$3" ] && [ -e "$3" ]; then m=$3; fi; py=$4; shift 4; exec "$py" -m trl.scripts.vllm_serve --model="$m" "$@"';
    lines.push(
      `srun --export=ALL --overlap --nodes=1 --ntasks=1 --nodelist="$SERVER_NODE" bash -c ${shQuote(serveInner)} conscience-vllm ` +
        `${shJoin([srv.gpus.join(','), serverModel(s.model!, s.recipe), serverModelCandidate(s.model!, s.recipe) ?? '', s.python])} ${shJoinVars(serve)} &`,
      'server_pid=$!',
    );
    trainerArgs.push('--vllm_server_host', SERVER_ADDR_VAR, '--vllm_server_port', SERVER_PORT_VAR);
  }
  const single = topo.worldSize === 1 && topo.trainNodes.length === 1 && !l.accelerate_config;
  let inner: string;
  let args: string[];
  if (single) {
    // the server, if any, is the step above: one plain trainer process here, never conscience.launch's own server
    args = trainArgv({ python: s.python, recipe: s.recipe, outputDir: s.outputDir, launch: { ...l, num_processes: 1, num_machines: 1, vllm_server: false }, kind: s.kind, trainerArgs });
    inner = 'g=$1; shift; [ -n "$g" ] && export CUDA_VISIBLE_DEVICES=$g; shift 2; exec "$@"';
  } else {
    args = [
      s.python, '-m', 'conscience.launch', '--config', s.recipe, '--no-server',
      '--num-processes', String(topo.worldSize), '--num-machines', String(topo.trainNodes.length),
      '--', '--output_dir', s.outputDir, ...trainerArgs,
    ];
    // per-node rank and the main address/port come from SLURM at run time, as arguments (never spliced into the inner script)
    inner = 'g=$1; shift; [ -n "$g" ] && export CUDA_VISIBLE_DEVICES=$g; a=$1; p=$2; shift 2; py=$1; shift; exec "$py" "$1" "$2" --machine-rank "$SLURM_PROCID" --main-address "$a" --main-port "$p" "${@:3}"';
  }
  const gpus = srv && topo.trainNodes.includes(srv.node) && topo.trainGpus.length ? topo.trainGpus.join(',') : '';
  const quoted = shJoinVars(args);
  const T = topo.trainNodes.length;
  lines.push(
    `srun --export=ALL --overlap --kill-on-bad-exit=1 --wait=60 --nodes=${T} --ntasks=${T} --ntasks-per-node=1 --nodelist="$TRAIN_NODES" ` +
      `bash -c ${shQuote(inner)} conscience-train ${shQuote(gpus)} "$MAIN_ADDR" "$MAIN_PORT" ${quoted} &`,
    'train_pid=$!',
    'early=',
  );
  if (srv) {
    // a server step that ends first (a bad model, vLLM missing) stops training, which would
    // otherwise wait for it (TRL's vllm_server_timeout, 240 s) and then fail with "server is not
    // up". Polled every 0.5 s here, in the script itself (bash 4.2 has no `wait -n PID`):
    // nothing outlives the job, and USR1's trap still runs (after the current sleep).
    const grace = Math.trunc(t.cancelGrace ?? 30);
    lines.push(
      'while kill -0 "$train_pid" 2>/dev/null && kill -0 "$server_pid" 2>/dev/null; do sleep 0.5; done',
      'if ! kill -0 "$server_pid" 2>/dev/null && kill -0 "$train_pid" 2>/dev/null; then',
      '  wait "$server_pid"; early=$?; server_pid=',
      `  said=$(printf 'the vLLM server step (trl.scripts.vllm_serve on node %s) exited with code %s before training ended' "$SERVER_NODE" "$early")`,
      `  printf 'conscience.launch: %s; stopping training. Its own error is above in this log.\\n' "$said" >&2`,
      `  printf "%s; its own error is in this run's log\\n" "$said" > "$CONSCIENCE_STOP_REASON"`,
      '  [ "$early" -ne 0 ] || early=1',
      // SIGTERM: srun passes it to the step (the trainer writes run_finished cancelled); SIGKILL after the target's cancelGrace
      `  kill "$train_pid" 2>/dev/null; for ((i = 0; i < ${grace * 5}; i++)); do kill -0 "$train_pid" 2>/dev/null || break; sleep 0.2; done; kill -0 "$train_pid" 2>/dev/null && kill -KILL "$train_pid"`,
      'fi',
    );
  }
  lines.push(
    // wait returns early when USR1's trap runs; keep waiting while the step is alive
    'while :; do wait "$train_pid"; rc=$?; if [ "$rc" -gt 128 ] && kill -0 "$train_pid" 2>/dev/null; then continue; fi; break; done',
    'if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi',
    // the server's end stopped training: the job ends with the server's code (1 when it exited 0)
    'if [ -n "$early" ]; then rc=$early; fi',
    'printf "%s\\n" "$rc" > "$RUN/exit_code.tmp" && mv -f -- "$RUN/exit_code.tmp" "$RUN/exit_code"',
    // the job ends here for good (a requeue kills the script before this line): its secrets go with it
    'rm -f -- "$RUN/secrets.env"',
    'exit "$rc"',
    '',
  );
  return lines.join('\n');
}

