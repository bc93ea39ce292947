import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readRecipeInfo, sbatchArgs, sbatchCommand, sbatchScript, trainArgv, wrapperScript, type LaunchSection, type SbatchSpec } from '../../src/core/launch/scripts';
import { parseTarget } from '../../src/core/launch/targets';

const L = (o: Partial<LaunchSection> = {}): LaunchSection => ({
  num_processes: 1, num_machines: 1, cpu: false, vllm_server: false, vllm_server_gpus: 1,
  vllm_tensor_parallel_size: 1, vllm_data_parallel_size: 1, vllm_gpu_memory_utilization: 0.9, ...o,
});

const spec = (t: Record<string, unknown>, l: LaunchSection = L(), extra: Partial<SbatchSpec> = {}): SbatchSpec => ({
  runId: 'r1', projectDir: '/p', runDir: '/p/.conscience-runs/r1', python: '/env/bin/python', recipe: '/p/recipes/x.yaml',
  outputDir: '/p/.conscience-runs/r1/output', launch: l, model: 'Qwen/Qwen2.5-1.5B-Instruct',
  target: parseTarget('c', { type: 'slurm', ...t }) as SbatchSpec['target'], ...extra,
});

const bashSyntaxOk = (script: string) => spawnSync('bash', ['-n'], { input: script }).status === 0;

describe('trainer command', () => {
  it('runs one plain process without accelerate', () => {
    assert.deepEqual(trainArgv({ python: 'py', recipe: '/r.yaml', outputDir: '/o', launch: L() }), ['py', '-m', 'conscience.train', '--config', '/r.yaml', '--output_dir', '/o']);
  });
  it("starts the module of the recipe's kind (sft, eval) and rejects an unknown kind", async () => {
    assert.deepEqual(trainArgv({ python: 'py', recipe: '/r.yaml', outputDir: '/o', launch: L(), kind: 'eval' }).slice(0, 3), ['py', '-m', 'conscience.eval']);
    const d = mkdtempSync(join(tmpdir(), 'recipe-'));
    writeFileSync(join(d, 'sft.yaml'), 'kind: sft\nmodel_name_or_path: m\n');
    assert.equal((await readRecipeInfo(join(d, 'sft.yaml'))).kind, 'sft');
    writeFileSync(join(d, 'bad.yaml'), 'kind: rl\n');
    await assert.rejects(readRecipeInfo(join(d, 'bad.yaml')), /bad\.yaml:1: kind must be one of grpo, sft, eval, got "rl"/);
  });
  it('goes through conscience.launch (accelerate launch) for several processes', () => {
    const a = trainArgv({ python: 'py', recipe: '/r.yaml', outputDir: '/o', launch: L({ num_processes: 2, cpu: true }) });
    assert.deepEqual(a, ['py', '-m', 'conscience.launch', '--config', '/r.yaml', '--', '--output_dir', '/o']);
  });
  it('reads the launch section of a recipe and rejects bad values with the file name', async () => {
    const d = mkdtempSync(join(tmpdir(), 'recipe-'));
    writeFileSync(join(d, 'ok.yaml'), 'model_name_or_path: m\nmax_steps: 5\nlaunch:\n  num_processes: 4\n  accelerate_config: ../acc/zero2.yaml\n');
    const info = await readRecipeInfo(join(d, 'ok.yaml'));
    assert.equal(info.launch.num_processes, 4);
    assert.equal(info.launch.accelerate_config, '../acc/zero2.yaml');
    assert.equal(info.maxSteps, 5);
    writeFileSync(join(d, 'bad.yaml'), 'launch:\n  num_processes: 0\n');
    await assert.rejects(readRecipeInfo(join(d, 'bad.yaml')), new RegExp(`bad\\.yaml:2: launch\\.num_processes must be an integer >= 1`));
    writeFileSync(join(d, 'broken.yaml'), 'a: [1, 2\n');
    await assert.rejects(readRecipeInfo(join(d, 'broken.yaml')), /broken\.yaml:\d+: /);
    // read as the validator and PyYAML read it: YAML 1.1 merge keys, schema defaults for what is absent
    writeFileSync(join(d, 'merge.yaml'), 'base: &b {num_processes: 3, cpu: true}\nlaunch:\n  <<: *b\n  num_machines: 1\n');
    const m = await readRecipeInfo(join(d, 'merge.yaml'));
    assert.deepEqual([m.launch.num_processes, m.launch.cpu, m.launch.vllm_server_gpus, m.launch.vllm_gpu_memory_utilization], [3, true, 1, 0.9]);
    // an alias bomb stops with an error naming the file, never a hang
    const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) bomb.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    writeFileSync(join(d, 'bomb.yaml'), bomb.join('\n') + '\nlaunch:\n  num_processes: *a8\n');
    const t0 = Date.now();
    await assert.rejects(readRecipeInfo(join(d, 'bomb.yaml')), /bomb\.yaml/);
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('wrapper script (local and SSH runs)', () => {
  it('is valid bash that records pid, ignores the group TERM itself and writes the exit code', () => {
    const s = wrapperScript({ runId: 'r1', projectDir: "/p q/it's", runDir: '/p/r', env: { A: 'x; $(id)' }, argv: ['py', '-m', 'conscience.train'] });
    assert.ok(bashSyntaxOk(s));
    assert.match(s, /^cd -- '\/p q\/it'\\''s' \|\| exit 97$/m);
    assert.match(s, /^export A='x; \$\(id\)'$/m);
    assert.match(s, /trap '' TERM INT HUP/);
    assert.match(s, /> "\$RUN\/exit_code.tmp" && mv -f -- "\$RUN\/exit_code.tmp" "\$RUN\/exit_code"/);
  });
});

describe('sbatch script', () => {
  // The scripts themselves are executed on a real two-node SLURM cluster in
  // tests/launch/slurm-2node.test.ts; here: the sbatch command line and what is refused up front.
  it('sbatch options: quoted argv, limited --export, requeue with a checkpoint signal, % in paths kept literal', () => {
    const s = spec({ partition: 'gpu', account: 'lab', nodes: 1, gpusPerNode: 8, time: '04:00:00', sbatch: ['--qos=high'], setup: ['module load cuda/12.4'] }, L({ num_processes: 8 }));
    assert.ok(bashSyntaxOk(sbatchScript(s)));
    const args = sbatchArgs(s);
    for (const o of ['--partition=gpu', '--account=lab', '--nodes=1', '--gres=gpu:8', '--time=04:00:00', '--requeue', '--signal=B:USR1@120'])
      assert.ok(args.includes(o), o);
    assert.ok(args.includes('--export=PATH,HOME,USER,LOGNAME,LANG,LC_ALL,TMPDIR'));
    assert.ok(sbatchCommand(s).endsWith(' /p/.conscience-runs/r1/job.sbatch'));
    const pct = sbatchArgs(spec({}, L(), { runDir: '/p/100%j/r1' }));
    assert.ok(pct.includes('--output=/p/100%%j/r1/stdout.log') && pct.includes('--error=/p/100%%j/r1/stderr.log'));
  });

  it('refuses a recipe that does not fit the target before anything is submitted, naming the recipe and key', () => {
    assert.throws(() => sbatchScript(spec({ nodes: 1, gpusPerNode: 1 }, L({ vllm_server: true }))), /\/p\/recipes\/x\.yaml: launch\.vllm_server: .*gpusPerNode > 1/);
    assert.throws(() => sbatchScript(spec({ nodes: 3 }, L({ cpu: true, num_processes: 4 }))), /launch\.num_processes \(4\) must split evenly over the 3 training node/);
    assert.throws(() => sbatchScript(spec({ nodes: 2, gpusPerNode: 4 }, L({ vllm_server: true }), { model: undefined })), /needs model_name_or_path/);
  });

  it('rejects values that would break out of an #SBATCH line or the command', () => {
    assert.throws(() => parseTarget('c', { type: 'slurm', partition: 'gpu\n#SBATCH --x' }), /single line/);
    assert.throws(() => sbatchScript(spec({ sbatch: ['--qos=high; rm -rf /'] })), /must be an option/);
    assert.throws(() => sbatchScript(spec({ sbatch: ['echo hi'] })), /must be an option/);
    // hostile but single-line values are quoted on the command line, never interpreted
    const cmd = sbatchCommand(spec({ partition: `p'$(id)` }));
    assert.match(cmd, /'--partition=p'\\''\$\(id\)'/);
  });
});
