// The topology planner over a table of shapes: 1-4 nodes, 1-8 GPUs, colocate and server mode,
// the recipe's num_machines agreeing with the target or not, CPU and GPU training.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPlan, planLaunch } from '../../src/core/launch/launcher';
import type { LaunchSection } from '../../src/core/launch/scripts';
import { LaunchSession } from '../../src/core/launch/session';
import { parseTargets } from '../../src/core/launch/targets';
import { planTopology, recipeTopologyDiagnostics, requireTopology, topologyDiagnostics } from '../../src/core/launch/topology';

const L = (o: Partial<LaunchSection> = {}): LaunchSection => ({
  num_processes: 1, num_machines: 1, cpu: false, vllm_server: false, vllm_server_gpus: 1,
  vllm_tensor_parallel_size: 1, vllm_data_parallel_size: 1, vllm_gpu_memory_utilization: 0.9, ...o,
});

interface Row {
  name: string;
  launch: Partial<LaunchSection>;
  nodes: number;
  gpus: number;
  // expected: undefined topology = refused with an error on `errorKey`
  trainNodes?: number[];
  perNode?: number;
  world?: number;
  trainGpus?: number[];
  server?: { node: number; gpus: number[] };
  errorKey?: string;
  warnings?: string[];
}

const rows: Row[] = [
  // colocate (no server): every node trains on every GPU
  { name: '1 node x 1 GPU', launch: {}, nodes: 1, gpus: 1, trainNodes: [0], perNode: 1, world: 1, trainGpus: [0] },
  { name: '1 node x 8 GPUs, recipe says 8', launch: { num_processes: 8 }, nodes: 1, gpus: 8, trainNodes: [0], perNode: 8, world: 8, trainGpus: [0, 1, 2, 3, 4, 5, 6, 7] },
  { name: '1 node x 4 GPUs, recipe says 2 processes', launch: { num_processes: 2 }, nodes: 1, gpus: 4, perNode: 4, world: 4, warnings: ['launch.num_processes'] },
  { name: '2 nodes x 4 GPUs, num_machines 2', launch: { num_processes: 8, num_machines: 2 }, nodes: 2, gpus: 4, trainNodes: [0, 1], perNode: 4, world: 8 },
  { name: '4 nodes x 8 GPUs, recipe num_machines 1', launch: { num_processes: 8 }, nodes: 4, gpus: 8, trainNodes: [0, 1, 2, 3], perNode: 8, world: 32, warnings: ['launch.num_processes', 'launch.num_machines'] },
  { name: '3 nodes x 2 GPUs', launch: { num_processes: 6, num_machines: 3 }, nodes: 3, gpus: 2, trainNodes: [0, 1, 2], perNode: 2, world: 6 },
  // server mode, one node: the last GPUs serve, the first ones train
  { name: '1 node x 4 GPUs, 1 serving (the shipped Qwen recipe)', launch: { num_processes: 3, vllm_server: true }, nodes: 1, gpus: 4, trainNodes: [0], perNode: 3, world: 3, trainGpus: [0, 1, 2], server: { node: 0, gpus: [3] } },
  { name: '1 node x 8 GPUs, 2 serving (tp 2)', launch: { num_processes: 6, vllm_server: true, vllm_server_gpus: 2, vllm_tensor_parallel_size: 2 }, nodes: 1, gpus: 8, perNode: 6, world: 6, trainGpus: [0, 1, 2, 3, 4, 5], server: { node: 0, gpus: [6, 7] } },
  { name: '1 node x 1 GPU, server mode: nothing left to train', launch: { vllm_server: true }, nodes: 1, gpus: 1, errorKey: 'launch.vllm_server' },
  { name: '1 node x 2 GPUs, 2 serving: nothing left', launch: { vllm_server: true, vllm_server_gpus: 2, vllm_data_parallel_size: 2 }, nodes: 1, gpus: 2, errorKey: 'launch.vllm_server' },
  // server mode, several nodes: the last node serves
  { name: '2 nodes x 8 GPUs, server on node 2', launch: { num_processes: 8, vllm_server: true }, nodes: 2, gpus: 8, trainNodes: [0], perNode: 8, world: 8, trainGpus: [0, 1, 2, 3, 4, 5, 6, 7], server: { node: 1, gpus: [0] } },
  { name: '4 nodes x 8 GPUs, server tp 8, recipe num_machines 3', launch: { num_processes: 24, num_machines: 3, vllm_server: true, vllm_server_gpus: 8, vllm_tensor_parallel_size: 8 }, nodes: 4, gpus: 8, trainNodes: [0, 1, 2], perNode: 8, world: 24, server: { node: 3, gpus: [0, 1, 2, 3, 4, 5, 6, 7] } },
  { name: '3 nodes x 4 GPUs, server, recipe num_machines 1', launch: { num_processes: 4, vllm_server: true }, nodes: 3, gpus: 4, trainNodes: [0, 1], perNode: 4, world: 8, server: { node: 2, gpus: [0] }, warnings: ['launch.num_processes', 'launch.num_machines'] },
  { name: 'server needs more GPUs than a node has', launch: { vllm_server: true, vllm_server_gpus: 4, vllm_tensor_parallel_size: 4 }, nodes: 2, gpus: 2, errorKey: 'launch.vllm_server' },
  { name: 'server GPUs disagree with tp x dp', launch: { vllm_server: true, vllm_server_gpus: 2 }, nodes: 2, gpus: 4, errorKey: 'launch.vllm_server_gpus' },
  { name: 'server mode without GPUs', launch: { vllm_server: true }, nodes: 2, gpus: 0, errorKey: 'launch.vllm_server' },
  // CPU training (gloo): num_processes is the total, split over the training nodes
  { name: 'CPU, 2 nodes, 4 processes', launch: { cpu: true, num_processes: 4, num_machines: 2 }, nodes: 2, gpus: 0, trainNodes: [0, 1], perNode: 2, world: 4, trainGpus: [] },
  { name: 'CPU, 2 nodes, GPUs declared, server on node 2', launch: { cpu: true, num_processes: 2, vllm_server: true }, nodes: 2, gpus: 2, trainNodes: [0], perNode: 2, world: 2, trainGpus: [], server: { node: 1, gpus: [0] } },
  { name: 'CPU, 1 node with 1 GPU serving', launch: { cpu: true, num_processes: 2, vllm_server: true }, nodes: 1, gpus: 1, trainNodes: [0], perNode: 2, world: 2, trainGpus: [], server: { node: 0, gpus: [0] } },
  { name: 'CPU, 3 nodes, 4 processes do not split', launch: { cpu: true, num_processes: 4, num_machines: 3 }, nodes: 3, gpus: 0, errorKey: 'launch.num_processes' },
  { name: 'no GPUs declared, GPU recipe', launch: { num_processes: 2, num_machines: 2 }, nodes: 2, gpus: 0, perNode: 1, world: 2, warnings: ['launch.cpu'] },
];

describe('topology planner (SLURM targets)', () => {
  for (const r of rows) {
    it(r.name, () => {
      const p = planTopology(L(r.launch), { kind: 'slurm', nodes: r.nodes, gpusPerNode: r.gpus, name: 'c' });
      if (r.errorKey) {
        assert.equal(p.topology, undefined, `expected a refusal, got ${JSON.stringify(p.topology)}`);
        const e = p.diagnostics.filter((d) => d.severity === 'error');
        assert.ok(e.some((d) => d.key === r.errorKey), `errors: ${JSON.stringify(e)}`);
        assert.throws(() => requireTopology(L(r.launch), { kind: 'slurm', nodes: r.nodes, gpusPerNode: r.gpus }, 'x.yaml'), new RegExp(`x\\.yaml: ${r.errorKey.replace('.', '\\.')}: `));
        return;
      }
      const t = p.topology!;
      assert.ok(t, JSON.stringify(p.diagnostics));
      if (r.trainNodes) assert.deepEqual(t.trainNodes, r.trainNodes);
      if (r.perNode !== undefined) assert.equal(t.procsPerNode, r.perNode);
      if (r.world !== undefined) assert.equal(t.worldSize, r.world);
      assert.equal(t.worldSize, t.procsPerNode * t.trainNodes.length);
      if (r.trainGpus) assert.deepEqual(t.trainGpus, r.trainGpus);
      if (r.server) {
        assert.equal(t.server?.node, r.server.node);
        assert.deepEqual(t.server?.gpus, r.server.gpus);
        // never a node or GPU both serving and training
        if (t.trainNodes.includes(t.server!.node)) for (const g of t.server!.gpus) assert.ok(!t.trainGpus.includes(g), `GPU ${g} both serves and trains`);
      } else assert.equal(t.server, undefined);
      assert.deepEqual(p.diagnostics.filter((d) => d.severity === 'warning').map((d) => d.key).sort(), (r.warnings ?? []).sort());
    });
  }
  it('keeps the main port of the recipe, and leaves it to run time otherwise', () => {
    assert.equal(planTopology(L({ main_process_port: 29555 }), { kind: 'slurm', nodes: 2, gpusPerNode: 1 }).topology?.mainPort, 29555);
    assert.equal(planTopology(L(), { kind: 'slurm', nodes: 2, gpusPerNode: 1 }).topology?.mainPort, undefined);
  });
  it('a server port from the recipe reaches the placement', () => {
    assert.equal(planTopology(L({ vllm_server: true }), { kind: 'slurm', nodes: 2, gpusPerNode: 1 }, 8123).topology?.server?.port, 8123);
  });
});

describe('topology planner (local and SSH targets)', () => {
  it('one machine: the recipe decides, the runtime places the server on the visible GPUs', () => {
    const t = planTopology(L({ num_processes: 3, vllm_server: true }), { kind: 'ssh' }).topology!;
    assert.equal(t.worldSize, 3);
    assert.equal(t.runtimePlacesServer, true);
  });
  it('refuses num_machines > 1 with the key and a way out', () => {
    const d = topologyDiagnostics(L({ num_machines: 2, num_processes: 4 }), { kind: 'local', name: 'here' });
    assert.equal(d[0]?.key, 'launch.num_machines');
    assert.match(d[0]!.message, /target 'here' is one machine; use a SLURM target with nodes: 2/);
  });
});

describe('launch refuses or warns before anything starts', () => {
  it('a two-machine recipe on this machine is refused with the recipe and key; a SLURM plan shows the warnings', async () => {
    const root = mkdtempSync(join(tmpdir(), 'topo-ws-'));
    try {
      mkdirSync(join(root, 'recipes'));
      writeFileSync(join(root, 'recipes', 'two.yaml'), 'model_name_or_path: m\nlaunch:\n  cpu: true\n  num_processes: 4\n  num_machines: 2\n');
      writeFileSync(join(root, 'recipes', 'one.yaml'), 'model_name_or_path: m\nlaunch:\n  cpu: true\n  num_processes: 4\n');
      const s = new LaunchSession(root, parseTargets({ c: { type: 'slurm', nodes: 2, python: '/usr/bin/python3' } }));
      await assert.rejects(planLaunch(s, 'recipes/two.yaml', 'local'), /recipes\/two\.yaml: launch\.num_machines: .*target 'local' is one machine/);
      const p = await planLaunch(s, 'recipes/one.yaml', 'c');
      assert.deepEqual(p.warnings.map((w) => w.split(': ')[1]), ['launch.num_machines']);
      assert.match(formatPlan(p), /^warning: recipes\/one\.yaml: launch\.num_machines: launch\.num_machines is 1, but target 'c' trains on 2 node/m);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('recipe diagnostics for the editor', () => {
  it('each target the recipe does not fit, at the line of its key', () => {
    const text = 'model_name_or_path: m\nlaunch:\n  num_processes: 3\n  vllm_server: true\n';
    const targets = parseTargets({ small: { type: 'slurm', nodes: 1, gpusPerNode: 1 }, big: { type: 'slurm', nodes: 1, gpusPerNode: 4 } });
    const d = recipeTopologyDiagnostics(text, 'r.yaml', targets.values());
    assert.deepEqual(d.map((x) => [x.target, x.severity, x.key, x.line]), [['small', 'error', 'launch.vllm_server', 4]]);
    // one-machine targets only speak when there is no cluster
    const local = recipeTopologyDiagnostics('launch:\n  num_machines: 2\n  num_processes: 2\n', 'r.yaml', parseTargets(undefined).values());
    assert.deepEqual(local.map((x) => [x.target, x.key, x.line]), [['local', 'launch.num_machines', 2]]);
    assert.deepEqual(recipeTopologyDiagnostics('launch: [oops', 'r.yaml', targets.values()), []);
  });
});
