// The topology planner: the one place that decides, from a recipe's launch: section and a
// target's shape, which node and GPUs serve generations (vLLM), which nodes and GPUs train,
// how many processes, the world size and the main port. Pure (no I/O). The sbatch script
// (scripts.ts) and the runtime's `conscience.launch` only execute the plan it returns; the
// editor shows its diagnostics on the recipe before anything is submitted.
//
// Rules (docs/launch.md "Topology"):
// - A local or SSH target is one machine. Its GPUs are not known before the run, so there the
//   runtime (`conscience.launch`) places the server on the last visible GPUs; only
//   `num_machines > 1` can be refused here.
// - A SLURM target: `nodes` and `gpusPerNode` decide. With `launch.vllm_server`, one node
//   serves with the first `vllm_server_gpus` GPUs of the LAST node (several nodes), or the
//   last `vllm_server_gpus` GPUs of the only node; the other nodes/GPUs train.
// - GPU training: one process per training GPU; the recipe's num_processes/num_machines are
//   what the target then gives (a warning says so when they differ).
// - CPU training (`launch.cpu`): `num_processes` is the total, split evenly over the
//   training nodes (an error when it does not divide).
import { recipeInfoFromText, type LaunchSection } from './scripts';
import type { Target } from './targets';

export interface TopologyTarget {
  kind: 'local' | 'ssh' | 'slurm';
  /** Nodes the target allocates (1 for local and SSH). */
  nodes?: number;
  /** GPUs per node as the target declares them; undefined = not known before the run (local/SSH). */
  gpusPerNode?: number;
  /** Name, for messages. */
  name?: string;
}

export interface TopologyDiagnostic {
  severity: 'error' | 'warning';
  /** The recipe key the diagnostic is about (`launch.num_machines`, ...), for FILE:LINE. */
  key: string;
  message: string;
}

export interface ServerPlacement {
  /** Node index (0-based, in SLURM's node list order). */
  node: number;
  /** GPU ids on that node (CUDA_VISIBLE_DEVICES); [] = decided at run time (local/SSH). */
  gpus: number[];
  /** The recipe's vllm_server_port; undefined = chosen at run time (local/SSH: 8000 when free, else a free
   * port; SLURM: one derived from the job id, so two jobs sharing a node never share a server). */
  port?: number;
  tensorParallel: number;
  dataParallel: number;
}

export interface Topology {
  nodes: number;
  /** Node indexes that run training (rank 0 is on the first). */
  trainNodes: number[];
  procsPerNode: number;
  worldSize: number;
  /** GPU ids each training node uses; [] = CPU, or all visible GPUs (local/SSH). */
  trainGpus: number[];
  cpu: boolean;
  server?: ServerPlacement;
  /** The main process (rendezvous) port; undefined = chosen at run time (a free port, or one derived from the job id). */
  mainPort?: number;
  /** True when the runtime still places the server itself (local/SSH: GPUs unknown here). */
  runtimePlacesServer: boolean;
}

export interface TopologyPlan {
  topology?: Topology;
  diagnostics: TopologyDiagnostic[];
}

const range = (from: number, n: number) => Array.from({ length: Math.max(0, n) }, (_, i) => from + i);

export function planTopology(l: LaunchSection, t: TopologyTarget, serverPort?: number): TopologyPlan {
  const d: TopologyDiagnostic[] = [];
  const err = (key: string, message: string) => d.push({ severity: 'error', key, message });
  const warn = (key: string, message: string) => d.push({ severity: 'warning', key, message });
  const who = t.name ? `target '${t.name}'` : `the ${t.kind} target`;
  const S = l.vllm_server_gpus;
  if (l.vllm_server && S !== l.vllm_tensor_parallel_size * l.vllm_data_parallel_size)
    err('launch.vllm_server_gpus', `launch.vllm_server_gpus (${S}) must equal vllm_tensor_parallel_size x vllm_data_parallel_size (${l.vllm_tensor_parallel_size} x ${l.vllm_data_parallel_size})`);

  if (t.kind !== 'slurm') {
    if (l.num_machines > 1)
      err('launch.num_machines', `launch.num_machines is ${l.num_machines}, but ${who} is one machine; use a SLURM target with nodes: ${l.num_machines + (l.vllm_server ? 1 : 0)}`);
    const server: ServerPlacement | undefined = l.vllm_server ? { node: 0, gpus: [], port: serverPort, tensorParallel: l.vllm_tensor_parallel_size, dataParallel: l.vllm_data_parallel_size } : undefined;
    if (d.some((x) => x.severity === 'error')) return { diagnostics: d };
    return {
      topology: {
        nodes: 1, trainNodes: [0], procsPerNode: l.num_processes, worldSize: l.num_processes, trainGpus: [], cpu: l.cpu, server,
        mainPort: l.main_process_port, runtimePlacesServer: !!server,
      },
      diagnostics: d,
    };
  }

  const N = t.nodes ?? 1;
  const G = t.gpusPerNode ?? 0;
  let trainNodes: number[];
  let trainGpus: number[];
  let server: ServerPlacement | undefined;
  if (l.vllm_server) {
    if (G < S) err('launch.vllm_server', `launch.vllm_server needs ${S} GPU(s) for the vLLM server, but ${who} declares gpusPerNode: ${G}`);
    if (N === 1) {
      if (!l.cpu && G - S < 1)
        err('launch.vllm_server', `on one node the vLLM server takes the last ${S} of ${G} GPU(s) and nothing is left to train: ${who} needs gpusPerNode > ${S}, or nodes: 2 (server on its own node)`);
      server = { node: 0, gpus: range(G - S, S), port: serverPort, tensorParallel: l.vllm_tensor_parallel_size, dataParallel: l.vllm_data_parallel_size };
      trainNodes = [0];
      trainGpus = l.cpu ? [] : range(0, G - S);
    } else {
      server = { node: N - 1, gpus: range(0, S), port: serverPort, tensorParallel: l.vllm_tensor_parallel_size, dataParallel: l.vllm_data_parallel_size };
      trainNodes = range(0, N - 1);
      trainGpus = l.cpu ? [] : range(0, G);
    }
  } else {
    trainNodes = range(0, N);
    trainGpus = l.cpu ? [] : range(0, G);
  }
  const T = trainNodes.length;
  let per: number;
  if (!l.cpu && G > 0) {
    per = trainGpus.length;
    if (per > 0 && l.num_processes !== per * T)
      warn('launch.num_processes', `launch.num_processes is ${l.num_processes}, but ${who} gives ${per * T} training GPU(s) (${T} node(s) x ${per}); ${per * T} processes will run`);
  } else {
    if (!l.cpu && G === 0)
      warn('launch.cpu', `${who} declares no GPUs (gpusPerNode) and launch.cpu is false: ${l.num_processes} process(es) in all are assumed, split over ${T} node(s)`);
    if (l.num_processes % T !== 0)
      err('launch.num_processes', `launch.num_processes (${l.num_processes}) must split evenly over the ${T} training node(s) of ${who}`);
    per = Math.max(1, Math.floor(l.num_processes / T));
  }
  if (l.num_machines !== T)
    warn('launch.num_machines', `launch.num_machines is ${l.num_machines}, but ${who} trains on ${T} node(s)${server && N > 1 ? ` (${N} nodes, one serving vLLM)` : ''}; ${T} will be used`);
  if (d.some((x) => x.severity === 'error')) return { diagnostics: d };
  return {
    topology: { nodes: N, trainNodes, procsPerNode: per, worldSize: per * T, trainGpus, cpu: l.cpu, server, mainPort: l.main_process_port, runtimePlacesServer: false },
    diagnostics: d,
  };
}

/** The planner's diagnostics for a recipe's launch: section on a target (for the recipe validator and the editor). */
export function topologyDiagnostics(l: LaunchSection, t: TopologyTarget, serverPort?: number): TopologyDiagnostic[] {
  return planTopology(l, t, serverPort).diagnostics;
}

/** The topology or an Error listing every error diagnostic (launch refuses before anything is submitted). */
export function requireTopology(l: LaunchSection, t: TopologyTarget, where: string, serverPort?: number): { topology: Topology; warnings: TopologyDiagnostic[] } {
  const p = planTopology(l, t, serverPort);
  if (!p.topology) throw new Error(p.diagnostics.filter((x) => x.severity === 'error').map((x) => `${where}: ${x.key}: ${x.message}`).join('\n'));
  return { topology: p.topology, warnings: p.diagnostics };
}

export interface RecipeTopologyDiagnostic extends TopologyDiagnostic {
  /** The target the recipe does not fit. */
  target: string;
  /** 1-based line of the key in the recipe (the launch: key when the key itself is absent). */
  line: number;
}

/**
 * The planner's diagnostics for a recipe's text against the workspace's targets, each with the
 * line of its key: what the recipe validator / editor shows on the recipe before anyone
 * launches. SLURM targets are checked; the one-machine targets only when there is no SLURM
 * target (a multi-node recipe is meant for the cluster). A recipe that cannot be read gives
 * nothing here (the validator reports it).
 */
export function recipeTopologyDiagnostics(text: string, file: string, targets: Iterable<Target>): RecipeTopologyDiagnostic[] {
  const lines = new Map<string, number>();
  let info;
  try {
    info = recipeInfoFromText(text, file, lines);
  } catch {
    return [];
  }
  const all = [...targets];
  const slurm = all.filter((t) => t.type === 'slurm');
  const out: RecipeTopologyDiagnostic[] = [];
  for (const t of slurm.length ? slurm : all) {
    const shape: TopologyTarget = { kind: t.type, nodes: t.type === 'slurm' ? t.nodes ?? 1 : 1, gpusPerNode: t.type === 'slurm' ? t.gpusPerNode ?? 0 : undefined, name: t.name };
    for (const d of planTopology(info.launch, shape, info.serverPort).diagnostics)
      out.push({ ...d, target: t.name, line: lines.get(d.key) ?? lines.get('launch') ?? 1 });
  }
  return out;
}
