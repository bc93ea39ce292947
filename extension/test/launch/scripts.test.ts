import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { processDriver } from '../../src/core/launch/driver-process';
import { slurmDriver } from '../../src/core/launch/driver-slurm';
import { readRecipeInfo, sbatchArgs, sbatchCommand, sbatchScript, serverModel, trainArgv, wrapperScript, type LaunchSection, type SbatchSpec } from '../../src/core/launch/scripts';
import { LOCAL_TARGET, parseTarget, type Target } from '../../src/core/launch/targets';

const L = (o: Partial<LaunchSection> = {}): LaunchSection => ({
  num_processes: 1, num_machines: 1, cpu: false, vllm_server: false, vllm_server_gpus: 1,
  vllm_tensor_parallel_size: 1, vllm_data_parallel_size: 1, vllm_gpu_memory_utilization: 0.9, ...o,
});

const spec = (t: Record<string, unknown>, l: LaunchSection = L(), extra: Partial<SbatchSpec> = {}): SbatchSpec => ({
  runId: 'r1', projectDir: '/p', runDir: '/p/.conscience-runs/r1', python: '/env/bin/python', recipe: '/p/recipes/x.yaml',
  outputDir: '/p/.conscience-runs/r1/output', launch: l, model: 'Qwen/Qwen2.5-1.5B-Instruct',
  target: parseTarget('c', { type: 'slurm', ...t }) as SbatchSpec['target'], ...extra,
});

const REPO = resolve(import.meta.dirname, '..', '..', '..');

/** The runtime's own resolution of model_name_or_path for the trainer (recipe.py _resolve_relative), run by the real runtime. */
function trainerModel(value: string, recipe: string): string {
  const code = 'import os, sys; from conscience.recipe import _resolve_relative; print(_resolve_relative(sys.argv[1], os.path.dirname(os.path.abspath(sys.argv[2]))))';
  const r = spawnSync(join(REPO, '.venv', 'bin', 'python'), ['-c', code, value, recipe], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(REPO, 'runtime') } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

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

/**
 * A project folder with stub commands on PATH, to execute the generated scripts: `python`
 * records its argv and CUDA_VISIBLE_DEVICES (one file per call), `srun` drops its options and
 * runs the step as task 0, `scontrol` knows nodes n1 and n2 (NodeAddr 10.0.0.N).
 * As the vLLM server (`python -m trl.scripts.vllm_serve`) the stub writes its pid to
 * `server.pid` and serves until it is sent
 * SIGTERM, or with STUB_SERVER_EXIT=N prints an error and exits N at once. As the trainer it
 * writes its pid to `trainer.pid`, trains STUB_TRAIN_SLEEP seconds (then writes `trained`; a
 * SIGTERM ends it with 143) and exits STUB_TRAIN_EXIT (default 0).
 */
function stubProject() {
  const root = mkdtempSync(join(tmpdir(), 'launch-exec-'));
  const bin = join(root, 'bin');
  const log = join(root, 'calls');
  const project = join(root, 'proj');
  const runDir = join(project, '.conscience-runs', 'r1');
  for (const d of [bin, log, runDir]) mkdirSync(d, { recursive: true });
  const stub = (name: string, lines: string[]) => writeFileSync(join(bin, name), ['#!/bin/bash', ...lines, ''].join('\n'), { mode: 0o755 });
  stub('python', [
    'f="$STUB_LOG/$$.$RANDOM"',
    'printf "%s\\0" "${CUDA_VISIBLE_DEVICES-}" "$@" > "$f.tmp" && mv -- "$f.tmp" "$f.call"',
    // the batch script stops the server when training ends: training waits until the server has recorded its call
    'if [ -n "$STUB_SERVER" ] && [ "$2" != trl.scripts.vllm_serve ]; then for _ in $(seq 200); do grep -qz trl.scripts.vllm_serve "$STUB_LOG"/*.call 2>/dev/null && break; sleep 0.05; done; fi',
    // (the sleeps run in the background with no stdio, so a stub ended by SIGTERM leaves nothing holding the test's pipes)
    'if [ "$2" = trl.scripts.vllm_serve ]; then',
    '  printf "%s\\n" "$$" > "$STUB_LOG/server.pid"',
    '  if [ -n "$STUB_SERVER_EXIT" ]; then echo "stub vllm: cannot load the model" >&2; exit "$STUB_SERVER_EXIT"; fi',
    '  trap \'kill "$s" 2>/dev/null; exit 0\' TERM; sleep 60 </dev/null >/dev/null 2>&1 & s=$!; wait "$s"; exit 0',
    'fi',
    'printf "%s\\n" "$$" > "$STUB_LOG/trainer.pid"',
    'if [ -n "$STUB_TRAIN_SLEEP" ]; then',
    // (on SIGTERM it keeps what the file CONSCIENCE_STOP_REASON names held then, as `told`: what conscience.train would report)
    '  trap \'kill "$s" 2>/dev/null; [ -n "$CONSCIENCE_STOP_REASON" ] && cat -- "$CONSCIENCE_STOP_REASON" > "$STUB_LOG/told" 2>/dev/null; exit 143\' TERM; sleep "$STUB_TRAIN_SLEEP" </dev/null >/dev/null 2>&1 & s=$!; wait "$s"; touch "$STUB_LOG/trained"',
    'fi',
    'exit "${STUB_TRAIN_EXIT:-0}"',
  ]);
  stub('srun', ['while [[ "$1" == --* ]]; do shift; done', 'export SLURM_PROCID=0', 'exec "$@"']);
  stub('scontrol', [
    'if [ "$1 $2" = "show hostnames" ]; then printf "n1\\nn2\\n"; exit 0; fi',
    'if [ "$1 $2" = "show node" ]; then echo "NodeName=$4 NodeAddr=10.0.0.${4#n} State=IDLE"; fi',
  ]);
  const stubEnv = (env: Record<string, string>) =>
    ({ ...process.env, PATH: `${bin}:${process.env.PATH}`, STUB_LOG: log, SLURM_JOB_ID: '4242', SLURM_JOB_NODELIST: 'n[1-2]', ...env });
  const prep = { runId: 'r1', launchToken: 't1', projectDir: project, runDir, outputDir: join(runDir, 'output'), python: join(bin, 'python') };
  return {
    project,
    runDir,
    prep,
    recipe(rel: string, text: string): string {
      const f = join(project, rel);
      mkdirSync(join(f, '..'), { recursive: true });
      writeFileSync(f, text);
      return f;
    },
    log,
    /** Writes the prepared script into the run folder and runs it with bash: its exit status, stderr, `exit_code` file and time taken. */
    exec(script: string, name: string, env: Record<string, string> = {}) {
      writeFileSync(join(runDir, name), script, { mode: 0o755 });
      const t0 = Date.now();
      const r = spawnSync('bash', [join(runDir, name)], { cwd: runDir, encoding: 'utf8', timeout: 30_000, env: stubEnv(env) });
      const exitFile = join(runDir, 'exit_code');
      return { status: r.status, output: `${r.stdout}${r.stderr}`, stderr: r.stderr, ms: Date.now() - t0, exitCode: existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim() : undefined };
    },
    /** Starts the script with bash and returns at once (to signal it while it runs). */
    start(script: string, name: string, env: Record<string, string> = {}) {
      writeFileSync(join(runDir, name), script, { mode: 0o755 });
      return spawn('bash', [join(runDir, name)], { cwd: runDir, env: stubEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    },
    /** Runs the script as `exec`, expects exit 0, and returns the python calls it made. */
    run(script: string, name: string, env: Record<string, string> = {}): { cvd: string; argv: string[] }[] {
      const r = this.exec(script, name, env);
      assert.equal(r.status, 0, `${name}: ${r.output}`);
      assert.equal(r.exitCode, '0');
      return readdirSync(log).filter((f) => f.endsWith('.call')).map((f) => {
        const [cvd, ...argv] = readFileSync(join(log, f), 'utf8').split('\0').slice(0, -1);
        return { cvd: cvd!, argv };
      });
    },
  };
}

describe('generated scripts, executed with stub commands', () => {
  it('a local or SSH run with launch.vllm_server and one training process starts conscience.launch (which starts the server)', async () => {
    const p = stubProject();
    const recipe = p.recipe('recipes/x.yaml', 'model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct\nuse_vllm: true\nvllm_mode: server\nlaunch:\n  vllm_server: true\n');
    const { script } = processDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target: LOCAL_TARGET });
    const calls = p.run(script, 'run.sh');
    assert.deepEqual(calls.map((c) => c.argv), [['-m', 'conscience.launch', '--config', recipe, '--', '--output_dir', p.prep.outputDir]]);
  });

  it('launch.cpu with one process gives the trainer --use_cpu true, as conscience.launch does (local and SLURM)', async () => {
    const p = stubProject();
    const recipe = p.recipe('recipes/cpu.yaml', 'model_name_or_path: m\nlaunch:\n  cpu: true\n');
    const info = await readRecipeInfo(recipe);
    const want = ['-m', 'conscience.train', '--config', recipe, '--use_cpu', 'true', '--output_dir', p.prep.outputDir];
    const local = p.run(processDriver.prepare({ ...p.prep, recipe, info, target: LOCAL_TARGET }).script, 'run.sh');
    assert.deepEqual(local.map((c) => c.argv), [want]);
    const q = stubProject();
    const qRecipe = q.recipe('recipes/cpu.yaml', 'model_name_or_path: m\nlaunch:\n  cpu: true\n');
    const target = parseTarget('c', { type: 'slurm', nodes: 1 }) as Target;
    const slurm = q.run(slurmDriver.prepare({ ...q.prep, recipe: qRecipe, info: await readRecipeInfo(qRecipe), target }).script, 'job.sbatch');
    assert.deepEqual(slurm.map((c) => c.argv), [['-m', 'conscience.train', '--config', qRecipe, '--use_cpu', 'true', '--output_dir', q.prep.outputDir]]);
    // every kind, as conscience.launch passes it
    assert.deepEqual(trainArgv({ python: 'py', recipe: '/r.yaml', outputDir: '/o', launch: L({ cpu: true }), kind: 'eval' }), ['py', '-m', 'conscience.eval', '--config', '/r.yaml', '--use_cpu', 'true', '--output_dir', '/o']);
  });

  it("SLURM's vLLM server gets the model resolved against the recipe's folder and the recipe's model_revision", async () => {
    const p = stubProject();
    const recipe = p.recipe('recipes/qwen/x.yaml', 'model_name_or_path: ../../models/my-sft\nmodel_revision: v1\nuse_vllm: true\nvllm_mode: server\nlaunch:\n  vllm_server: true\n  num_processes: 2\n');
    const target = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 2 }) as Target;
    const calls = p.run(slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script, 'job.sbatch', { STUB_SERVER: '1' });
    const server = calls.find((c) => c.argv[1] === 'trl.scripts.vllm_serve');
    assert.ok(server, JSON.stringify(calls));
    assert.equal(server.cvd, '0');
    assert.equal(server.argv.find((a) => a.startsWith('--model='))?.slice('--model='.length), join(p.project, 'models/my-sft'));
    assert.equal(server.argv[server.argv.indexOf('--revision') + 1], 'v1');
    const train = calls.find((c) => c.argv[1] === 'conscience.launch');
    assert.ok(train?.argv.includes('--no-server'));
    // one training process beside the server's step: a plain trainer, never a second server
    const q = stubProject();
    const one = q.recipe('recipes/qwen/x.yaml', 'model_name_or_path: ./m\nlaunch:\n  vllm_server: true\n');
    const twoNodes = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 1 }) as Target;
    const calls1 = q.run(slurmDriver.prepare({ ...q.prep, recipe: one, info: await readRecipeInfo(one), target: twoNodes }).script, 'job.sbatch', { STUB_SERVER: '1' });
    assert.deepEqual(calls1.map((c) => c.argv.slice(0, 4)).sort(), [['-m', 'conscience.train', '--config', one], ['-m', 'trl.scripts.vllm_serve', `--model=${join(q.project, 'recipes/qwen/m')}`, '--tensor_parallel_size']]);
    // a hub id or an absolute path is kept as it is; ./ and ../ are resolved against the recipe's folder (a bare relative value: at run time, below)
    assert.equal(serverModel('Qwen/Qwen2.5-0.5B-Instruct', '/p/recipes/x.yaml'), 'Qwen/Qwen2.5-0.5B-Instruct');
    assert.equal(serverModel('/models/m', '/p/recipes/x.yaml'), '/models/m');
    assert.equal(serverModel('./m/', '/p/recipes/x.yaml'), '/p/recipes/m');
    assert.equal(serverModel('../../../../m', '/p/recipes/x.yaml'), '/m');
  });
  it("SLURM's vLLM server loads the same model as the trainer for a bare relative path: the folder beside the recipe when it exists there, else the Hub id", async () => {
    const target = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 1 }) as Target;
    const serverModelOf = async (value: string, withFolder: boolean) => {
      const p = stubProject();
      const recipe = p.recipe('recipes/qwen/x.yaml', `model_name_or_path: ${value}\nuse_vllm: true\nvllm_mode: server\nlaunch:\n  vllm_server: true\n`);
      if (withFolder) mkdirSync(join(p.project, 'recipes', 'qwen', value), { recursive: true });
      const calls = p.run(slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script, 'job.sbatch', { STUB_SERVER: '1' });
      const server = calls.find((c) => c.argv[1] === 'trl.scripts.vllm_serve');
      assert.ok(server, JSON.stringify(calls));
      return { model: server.argv.find((a) => a.startsWith('--model='))?.slice('--model='.length), trainer: trainerModel(value, recipe), folder: join(p.project, 'recipes', 'qwen', value) };
    };
    // `models/tiny` exists beside the recipe: both load that folder
    const local = await serverModelOf('models/tiny', true);
    assert.equal(local.model, local.folder);
    assert.equal(local.trainer, local.folder);
    // `Qwen/Qwen2.5-0.5B-Instruct` is no folder there: both take it as the Hub id
    const hub = await serverModelOf('Qwen/Qwen2.5-0.5B-Instruct', false);
    assert.equal(hub.model, 'Qwen/Qwen2.5-0.5B-Instruct');
    assert.equal(hub.trainer, 'Qwen/Qwen2.5-0.5B-Instruct');
    // an org/name that does exist beside the recipe is that folder, for both
    const shadow = await serverModelOf('Qwen/Qwen2.5-0.5B-Instruct', true);
    assert.equal(shadow.model, shadow.folder);
    assert.equal(shadow.trainer, shadow.folder);
  });

  it("SLURM's vLLM server and the trainer's client use the recipe's vllm_server_port, else one derived from the job id (never a fixed 8000 two jobs on one node would share)", async () => {
    for (const [port, want] of [['vllm_server_port: 18123\n', '18123'], ['', String(26000 + (4242 % 6000))]] as const) {
      for (const shape of [{ nodes: 1, gpusPerNode: 2 }, { nodes: 2, gpusPerNode: 1 }]) {
        const p = stubProject();
        const recipe = p.recipe('recipes/x.yaml', `model_name_or_path: m\n${port}launch:\n  vllm_server: true\n`);
        const target = parseTarget('c', { type: 'slurm', ...shape }) as Target;
        const calls = p.run(slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script, 'job.sbatch', { STUB_SERVER: '1' });
        const server = calls.find((c) => c.argv[1] === 'trl.scripts.vllm_serve')!;
        const train = calls.find((c) => c.argv[1] === 'conscience.train')!;
        assert.ok(server && train, JSON.stringify(calls));
        assert.equal(server.argv[server.argv.indexOf('--port') + 1], want, JSON.stringify(shape));
        assert.equal(train.argv[train.argv.indexOf('--vllm_server_port') + 1], want, JSON.stringify(shape));
        assert.equal(train.argv[train.argv.indexOf('--vllm_server_host') + 1], shape.nodes === 1 ? '127.0.0.1' : '10.0.0.2');
      }
    }
  });

  it("SLURM's ports derived from the job id lie below Linux's ephemeral range (32768-60999) and the rendezvous port is never the server's", async () => {
    for (const job of [4242, 19999]) {
      const p = stubProject();
      // two GPUs on the first node train (one conscience.launch, given the main port), the second node serves
      const recipe = p.recipe('recipes/x.yaml', 'model_name_or_path: m\nlaunch:\n  vllm_server: true\n  num_processes: 2\n');
      const target = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 2 }) as Target;
      const calls = p.run(slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script, 'job.sbatch', { STUB_SERVER: '1', SLURM_JOB_ID: String(job) });
      const server = calls.find((c) => c.argv[1] === 'trl.scripts.vllm_serve')!;
      const train = calls.find((c) => c.argv[1] === 'conscience.launch')!;
      assert.ok(server && train, JSON.stringify(calls));
      const main = Number(train.argv[train.argv.indexOf('--main-port') + 1]);
      const port = Number(server.argv[server.argv.indexOf('--port') + 1]);
      assert.equal(Number(train.argv[train.argv.indexOf('--vllm_server_port') + 1]), port);
      assert.deepEqual([main, port], [20000 + (job % 6000), 26000 + (job % 6000)], `job ${job}`);
      for (const x of [main, port]) assert.ok(x >= 1024 && x < 32768, `job ${job}: port ${x} is in the ephemeral range`);
    }
  });

  it("SLURM: a vLLM server step that ends while training runs stops training; the job fails with the server's code and says why", async () => {
    // the server on its own node exits 3; on the training node it exits 0, which still ends training early (code 1)
    for (const [shape, node, serverExit, want] of [[{ nodes: 2, gpusPerNode: 1 }, 'n2', '3', '3'], [{ nodes: 1, gpusPerNode: 2 }, 'n1', '0', '1']] as const) {
      const p = stubProject();
      const recipe = p.recipe('recipes/x.yaml', 'model_name_or_path: m\nlaunch:\n  vllm_server: true\n');
      const target = parseTarget('c', { type: 'slurm', ...shape }) as Target;
      const script = slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script;
      // the trainer would train 20 s: without the watch the job waits for it and then exits 0
      const r = p.exec(script, 'job.sbatch', { STUB_SERVER: '1', STUB_SERVER_EXIT: serverExit, STUB_TRAIN_SLEEP: '20' });
      const what = `${JSON.stringify(shape)} server exit ${serverExit}: ${r.output}`;
      assert.ok(r.ms < 10_000, `took ${r.ms} ms: ${what}`);
      assert.equal(r.status, Number(want), what);
      assert.equal(r.exitCode, want, what);
      const line = r.stderr.split('\n').find((l) => l.startsWith('conscience.launch:'));
      assert.equal(line, `conscience.launch: the vLLM server step (trl.scripts.vllm_serve on node ${node}) exited with code ${serverExit} before training ended; stopping training. Its own error is above in this log.`, what);
      assert.ok(r.stderr.indexOf('stub vllm: cannot load the model') < r.stderr.indexOf(line!), what);
      // the trainer was stopped, not left running
      const pid = Number(readFileSync(join(p.log, 'trainer.pid'), 'utf8'));
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, what);
      assert.ok(!existsSync(join(p.log, 'trained')), what);
      // and it was told why when the SIGTERM came (its run ends `failed` with this, not `cancelled`)
      assert.equal(readFileSync(join(p.log, 'told'), 'utf8'),
        `the vLLM server step (trl.scripts.vllm_serve on node ${node}) exited with code ${serverExit} before training ended; its own error is in this run's log\n`, what);
    }
  });

  it("SLURM: with the vLLM server serving throughout, the job ends with the trainer's code and the server is stopped", async () => {
    const p = stubProject();
    const recipe = p.recipe('recipes/x.yaml', 'model_name_or_path: m\nlaunch:\n  vllm_server: true\n');
    const target = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 1 }) as Target;
    const script = slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script;
    const r = p.exec(script, 'job.sbatch', { STUB_SERVER: '1', STUB_TRAIN_SLEEP: '1.5', STUB_TRAIN_EXIT: '5' });
    assert.equal(r.status, 5, r.output);
    assert.equal(r.exitCode, '5');
    assert.ok(existsSync(join(p.log, 'trained')), r.output);
    assert.ok(!r.stderr.includes('conscience.launch:'), r.output);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    const serverPid = Number(readFileSync(join(p.log, 'server.pid'), 'utf8'));
    assert.throws(() => process.kill(serverPid, 0), { code: 'ESRCH' }, 'the vLLM server step is still running');
  });

  it("SLURM: USR1 (SLURM's warning before the time limit) during training with a vLLM server asks for a checkpoint and the job goes on", async () => {
    const p = stubProject();
    const recipe = p.recipe('recipes/x.yaml', 'model_name_or_path: m\nlaunch:\n  vllm_server: true\n');
    const target = parseTarget('c', { type: 'slurm', nodes: 2, gpusPerNode: 1 }) as Target;
    const script = slurmDriver.prepare({ ...p.prep, recipe, info: await readRecipeInfo(recipe), target }).script;
    const child = p.start(script, 'job.sbatch', { STUB_SERVER: '1', STUB_TRAIN_SLEEP: '3' });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const done = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const deadline = Date.now() + 10_000;
    while (!existsSync(join(p.log, 'trainer.pid'))) {
      assert.ok(Date.now() < deadline, 'the trainer never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGUSR1');
    const status = await done;
    assert.equal(status, 0, stderr);
    assert.equal(readFileSync(join(p.runDir, 'exit_code'), 'utf8').trim(), '0');
    assert.ok(existsSync(join(p.runDir, 'checkpoint_request')), 'USR1 did not ask for a checkpoint');
    assert.ok(existsSync(join(p.log, 'trained')), 'training was cut short');
    assert.ok(!stderr.includes('conscience.launch:'), stderr);
  });

  it('refuses a bad vllm_server_port, and a vllm_server_base_url that would send the trainer away from the launched server, naming the file and line', async () => {
    const d = mkdtempSync(join(tmpdir(), 'recipe-'));
    for (const bad of ['70000', '0', '"80x"', '8000.5', 'true']) {
      writeFileSync(join(d, 'port.yaml'), `model_name_or_path: m\nvllm_server_port: ${bad}\nlaunch:\n  vllm_server: true\n`);
      await assert.rejects(readRecipeInfo(join(d, 'port.yaml')), /port\.yaml:2: vllm_server_port must be a port number \(1-65535\)/, bad);
    }
    writeFileSync(join(d, 'url.yaml'), 'model_name_or_path: m\nuse_vllm: true\nvllm_server_base_url: http://10.1.2.3:8000\nlaunch:\n  vllm_server: true\n');
    await assert.rejects(readRecipeInfo(join(d, 'url.yaml')), /url\.yaml:3: vllm_server_base_url sends the trainer to http:\/\/10\.1\.2\.3:8000 instead of the vLLM server/);
    // without launch.vllm_server the URL is where the user's own server runs: kept
    writeFileSync(join(d, 'own.yaml'), 'model_name_or_path: m\nvllm_server_base_url: http://10.1.2.3:8000\nvllm_server_port: 8001\n');
    assert.equal((await readRecipeInfo(join(d, 'own.yaml'))).serverPort, 8001);
    // the port's digits as a string are the port, as TRL's argparse reads them
    writeFileSync(join(d, 'str.yaml'), 'model_name_or_path: m\nvllm_server_port: "8001"\nlaunch:\n  vllm_server: true\n');
    assert.equal((await readRecipeInfo(join(d, 'str.yaml'))).serverPort, 8001);
  });

  it("a recipe value that looks like one of the script's run-time variables is passed as itself", async () => {
    const p = stubProject();
    for (const rev of ['\\0SERVER_ADDR', '\\0SERVER_PORT', '$SERVER_ADDR']) {
      const recipe = p.recipe('recipes/x.yaml', `model_name_or_path: m\nmodel_revision: "${rev}"\nlaunch:\n  vllm_server: true\n`);
      if (!rev.startsWith('$')) {
        // a NUL cannot reach a shell: refused with the file and line, never turned into "$SERVER_ADDR"
        await assert.rejects(readRecipeInfo(recipe), /x\.yaml:2: model_revision contains a NUL character/);
        continue;
      }
      const info = await readRecipeInfo(recipe);
      const script = slurmDriver.prepare({ ...p.prep, recipe, info, target: parseTarget('c', { type: 'slurm', nodes: 1, gpusPerNode: 2 }) as Target }).script;
      const calls = p.run(script, 'job.sbatch', { STUB_SERVER: '1' });
      const server = calls.find((c) => c.argv[1] === 'trl.scripts.vllm_serve')!;
      assert.equal(server.argv[server.argv.indexOf('--revision') + 1], '$SERVER_ADDR');
    }
  });
});
