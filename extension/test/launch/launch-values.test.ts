// The launcher reads a recipe's `launch:` values as the runtime does (conscience.recipe._coerce,
// which the validator follows too): "true"/"false" as text are booleans, "2" or "29500" integers,
// "0.5" a number. So the plan shown before launch (--dry-run) is what will run: a text
// `vllm_server: 'true'` plans the vLLM server, `cpu: "true"` gives --use_cpu, `num_processes:
// "2"` is two processes, not a refusal; what the runtime refuses (`cpu: "yes"`) is refused here,
// naming FILE:LINE, instead of silently planning something else.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { coerceField } from '../../src/core/launch/coerce';
import { formatPlan, planLaunch } from '../../src/core/launch/launcher';
import { LaunchSession } from '../../src/core/launch/session';
import { parseTargets } from '../../src/core/launch/targets';

const REPO = join(import.meta.dirname, '..', '..', '..');
const root = mkdtempSync(join(tmpdir(), 'conscience-launch-values-'));
mkdirSync(join(root, 'recipes'));
after(() => rmSync(root, { recursive: true, force: true }));
const TARGETS = { here: { type: 'local', python: '/usr/bin/python3' }, gpu: { type: 'slurm', nodes: 1, gpusPerNode: 2, python: '/usr/bin/python3' } };
const session = new LaunchSession(root, parseTargets(TARGETS));
after(() => session.close());

function recipe(name: string, body: string): string {
  writeFileSync(join(root, 'recipes', name), `model_name_or_path: org/model\nreward_funcs: [refusal]\n${body}`);
  return `recipes/${name}`;
}

test('`cpu: "true"` as text trains on the CPU (--use_cpu), as the runtime reads it', async () => {
  const p = await planLaunch(session, recipe('cpu.yaml', 'launch:\n  cpu: "true"\n'), 'here');
  assert.match(formatPlan(p), /-m conscience\.train --config \S+ --use_cpu true/);
});

test('`num_processes: "2"` as text is two processes (conscience.launch), not a refusal', async () => {
  const p = await planLaunch(session, recipe('two.yaml', 'launch:\n  cpu: "True"\n  num_processes: "2"\n'), 'here');
  assert.equal(p.info.launch.num_processes, 2);
  assert.equal(p.info.launch.cpu, true);
  assert.match(formatPlan(p), /-m conscience\.launch --config/);
});

test("`vllm_server: 'true'` as text plans the vLLM server beside the trainer (launch --dry-run)", () => {
  writeFileSync(join(root, 'conscience.targets.yaml'), JSON.stringify(TARGETS));
  recipe('srv.yaml', "launch:\n  vllm_server: 'true'\n");
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'launch', 'recipes/srv.yaml', '--target', 'gpu', '--dry-run', '--workspace', root],
    { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /trl\.scripts\.vllm_serve/, 'no vLLM server planned');
  assert.match(r.stdout, /--vllm_server_host'? "\$SERVER_ADDR"/);
});

test('text numbers in launch: are the GPU share, the server GPUs and the port', async () => {
  const p = await planLaunch(session, recipe('nums.yaml', "launch:\n  vllm_server: true\n  vllm_server_gpus: '1'\n  vllm_gpu_memory_utilization: '0.5'\n  main_process_port: ' 29501 '\n"), 'gpu');
  assert.match(p.script, /--gpu_memory_utilization '?0\.5'? /);
  assert.match(p.script, /^MAIN_PORT=29501$/m);
  assert.equal(p.info.launch.vllm_server_gpus, 1);
});

test('max_steps as text is the recipe\'s steps (what resume compares with)', async () => {
  const p = await planLaunch(session, recipe('steps.yaml', "max_steps: '200'\nlaunch:\n  cpu: true\n"), 'here');
  assert.equal(p.info.maxSteps, 200);
});

test('values the runtime refuses are refused, naming the file and line, never read as false or the default', async () => {
  await assert.rejects(planLaunch(session, recipe('yes.yaml', 'launch:\n  cpu: "yes"\n'), 'here'), /recipes\/yes\.yaml:4: launch\.cpu must be true or false/);
  await assert.rejects(planLaunch(session, recipe('float.yaml', 'launch:\n  num_processes: 2.0\n'), 'here'), /recipes\/float\.yaml:4: launch\.num_processes must be an integer >= 1/);
  await assert.rejects(planLaunch(session, recipe('plus.yaml', 'launch:\n  num_processes: "+2"\n'), 'here'), /recipes\/plus\.yaml:4: launch\.num_processes must be an integer >= 1/);
  await assert.rejects(planLaunch(session, recipe('one.yaml', 'launch:\n  vllm_server: 1\n'), 'here'), /recipes\/one\.yaml:4: launch\.vllm_server must be true or false/);
});

test('the conversion is _coerce\'s: Python float() text, -?[0-9]+ integers, str() of a number', () => {
  const ok = (v: unknown, t: Parameters<typeof coerceField>[1]) => {
    const c = coerceField(v, t);
    return c.ok ? c.value : 'refused';
  };
  assert.equal(ok('FALSE', 'bool'), false);
  assert.equal(ok(' 7 ', 'int'), 7);
  assert.equal(ok('-3', 'int'), -3);
  assert.equal(ok('1_000', 'int'), 'refused');
  assert.equal(ok('1_000.5', 'float'), 1000.5);
  assert.equal(ok(' .5e-1 ', 'float'), 0.05);
  assert.equal(ok('-Infinity', 'float'), -Infinity);
  assert.equal(ok('1__0', 'float'), 'refused');
  assert.equal(ok(true, 'float'), 'refused');
  assert.equal(ok(5, 'str'), '5');
  assert.equal(ok(1e-5, 'str'), '1e-05');
  assert.equal(ok(false, 'str'), 'refused');
});

test('a workspace reached through a symbolic link takes an absolute recipe path by either name (launch --dry-run)', () => {
  writeFileSync(join(root, 'conscience.targets.yaml'), JSON.stringify(TARGETS));
  recipe('plain.yaml', 'launch:\n  cpu: true\n');
  const link = `${root}-link`;
  symlinkSync(root, link);
  after(() => rmSync(link, { force: true }));
  const launch = (recipePath: string, cwd: string, ws?: string) => spawnSync(process.execPath,
    ['--import', pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(REPO, 'extension/src/cli/main.ts'), 'launch', recipePath, '--target', 'here', '--dry-run', ...(ws ? ['--workspace', ws] : [])],
    { cwd, encoding: 'utf8', timeout: 120_000 });
  // in the linked folder (the shell's $PWD), the recipe named through the link; the workspace through the link, the recipe by its real path
  for (const r of [launch(join(link, 'recipes', 'plain.yaml'), link), launch(join(root, 'recipes', 'plain.yaml'), REPO, link)]) {
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /must be inside the workspace/);
    assert.match(r.stdout, /^run \S+: recipes\/plain\.yaml on here/m);
  }
  // a file outside it is still refused
  const out = launch(join(tmpdir(), 'elsewhere.yaml'), link);
  assert.equal(out.status, 1);
  assert.match(out.stderr, /must be inside the workspace/);
});
