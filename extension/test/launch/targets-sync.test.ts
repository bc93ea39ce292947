import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, appendFileSync, readFileSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensurePython, requirementsPath } from '../../src/core/launch/env';
import { LaunchSession } from '../../src/core/launch/session';
import { LocalHost } from '../../src/core/launch/host';
import { collectFiles, diffManifests, MANIFEST_NAME, packageRoot, SyncSource, syncToHost } from '../../src/core/launch/sync';
import { loadTargets, parseTargets } from '../../src/core/launch/targets';
import { completeSize, listRuns, readRun, watchRun, withRunLock, writeRun, type RunRecord } from '../../src/core/runs/store';
import type { RunEvent } from '../../src/core/runs/events';

describe('targets', () => {
  it('always has local, validates fields and via references with the file named', async () => {
    const t = parseTargets({ box: { type: 'ssh', host: 'gpu1', port: 2222 }, c: { type: 'slurm', via: 'box', nodes: 2 } });
    assert.deepEqual([...t.keys()].sort(), ['box', 'c', 'local']);
    assert.throws(() => parseTargets({ c: { type: 'slurm', via: 'nope' } }, 'f.yaml').get('c'), /f\.yaml: target 'c': 'via' names an unknown target 'nope'/);
    assert.throws(() => parseTargets({ c: { type: 'slurm', via: 'local' } }, 'f.yaml').get('c'), /'via' must name an ssh target \('local' is local\)/);
    assert.throws(() => parseTargets({ x: { type: 'ssh' } }, 'f.yaml').get('x'), /'host' is required/);
    assert.throws(() => parseTargets({ x: { type: 'ssh', host: 'h', hots: 1 } }).get('x'), /unknown key 'hots'/);
    assert.throws(() => parseTargets({ x: { type: 'ftp' } }).get('x'), /'type' must be local, ssh or slurm/);
    assert.throws(() => parseTargets({ x: { type: 'slurm', nodes: 0 } }).get('x'), /'nodes' must be an integer >= 1/);
    assert.throws(() => parseTargets([], 'f.yaml'), /f\.yaml: targets must be a mapping/);
    const root = mkdtempSync(join(tmpdir(), 'targets-'));
    writeFileSync(join(root, 'conscience.targets.yaml'), 'box: {type: ssh, host: [oops\n');
    await assert.rejects(loadTargets(root), /conscience\.targets\.yaml/);
  });
  // review item 8: one bad entry blocked every verb, and its error had no line
  it('a bad entry fails only when its target is used, with FILE:LINE in the error', async () => {
    const root = mkdtempSync(join(tmpdir(), 'targets-bad-'));
    const file = join(root, 'conscience.targets.yaml');
    writeFileSync(file, [
      '# targets',
      'good:',
      '  type: ssh',
      '  host: gpu1',
      'bad:',
      '  type: ssh',
      '  hots: gpu2',
      'cluster: { type: slurm, via: good }',
      'behind: { type: slurm, via: bad }',
      'lost: { type: slurm, via: nowhere }',
      '',
    ].join('\n'));
    const { targets } = await loadTargets(root); // does not throw
    assert.deepEqual([...targets.keys()].sort(), ['behind', 'cluster', 'good', 'local']);
    assert.equal(targets.get('good')!.type, 'ssh');
    assert.ok(targets.has('bad'));
    assert.throws(() => targets.get('bad'), (e: Error) => e.message.startsWith(`${file}:5: target 'bad': unknown key 'hots'`));
    assert.throws(() => targets.get('lost'), (e: Error) => e.message === `${file}:10: target 'lost': 'via' names an unknown target 'nowhere'`);
    const s = new LaunchSession(root, targets);
    assert.equal(s.target('cluster').type, 'slurm');
    assert.equal(s.connectionOf(s.target('cluster'))!.name, 'good');
    assert.throws(() => s.target('bad'), /:5: target 'bad'/);
    assert.throws(() => s.connectionOf(s.target('behind')), /:5: target 'bad'/); // the slurm target shows its via's error
    assert.throws(() => s.target('nope'), /unknown target 'nope'/);
    // JSON: the line of the entry too
    const json = join(root, 'other.json');
    writeFileSync(json, '{\n  "targets": {\n    "ok": { "type": "local" },\n    "x": { "type": "ssh" }\n  }\n}\n');
    const j = (await loadTargets(root, json)).targets;
    assert.equal(j.get('ok')!.type, 'local');
    assert.throws(() => j.get('x'), (e: Error) => e.message === `${json}:4: target 'x': 'host' is required`);
  });
  it('a target with GPUs builds its environment from requirements/gpu.txt unless it names its own', () => {
    const t = parseTargets({
      cpu: { type: 'slurm' }, gpu: { type: 'slurm', gpusPerNode: 4 }, box: { type: 'ssh', host: 'h', gpusPerNode: 8 },
      own: { type: 'slurm', gpusPerNode: 4, requirements: 'cpu' }, file: { type: 'ssh', host: 'h', gpusPerNode: 1, requirements: 'reqs/mine.txt' },
    });
    const req = (n: string) => requirementsPath(t.get(n)!);
    assert.deepEqual(['local', 'cpu', 'gpu', 'box', 'own', 'file'].map(req), [
      'runtime/requirements/cpu.txt', 'runtime/requirements/cpu.txt', 'runtime/requirements/gpu.txt', 'runtime/requirements/gpu.txt',
      'runtime/requirements/cpu.txt', 'reqs/mine.txt',
    ]);
  });
  it('a requirements file named by an absolute path is read there, not under the workspace', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cc-req-'));
    const base = mkdtempSync(join(tmpdir(), 'cc-reqbase-'));
    const req = join(mkdtempSync(join(tmpdir(), 'cc-reqown-')), 'mine.txt');
    writeFileSync(req, 'trl==0.18.2\n');
    // an environment already built from that file: found by the hash of its content, nothing is installed
    const envDir = join(base, 'envs', createHash('sha256').update('trl==0.18.2\n').digest('hex').slice(0, 16));
    mkdirSync(join(envDir, 'bin'), { recursive: true });
    writeFileSync(join(envDir, 'bin', 'python'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(envDir, '.conscience-ready'), '');
    const t = parseTargets({ box: { type: 'local', requirements: req } }).get('box')!;
    assert.deepEqual(await ensurePython(new LocalHost(), t, root, base), { python: join(envDir, 'bin', 'python'), built: false, envDir });
  });
});

describe('sync', () => {
  it('sends the runtime, the recipe and referenced files; an unchanged resync sends nothing; a change sends one file', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sync-ws-'));
    mkdirSync(join(root, 'runtime', 'conscience', '__pycache__'), { recursive: true });
    writeFileSync(join(root, 'runtime', 'conscience', '__init__.py'), 'x = 1\n');
    writeFileSync(join(root, 'runtime', 'conscience', '__pycache__', 'a.pyc'), 'junk');
    mkdirSync(join(root, 'recipes', 'acc'), { recursive: true });
    mkdirSync(join(root, 'data'), { recursive: true });
    writeFileSync(join(root, 'recipes', 'acc', 'zero2.yaml'), 'distributed_type: DEEPSPEED\n');
    writeFileSync(join(root, 'data', 'prompts.jsonl'), '{"prompt": "hi"}\n');
    writeFileSync(join(root, 'recipes', 'r.yaml'), 'dataset_name: data/prompts.jsonl\noutput_dir: out\nlaunch:\n  accelerate_config: acc/zero2.yaml\n');
    mkdirSync(join(root, 'out'));
    writeFileSync(join(root, 'out', 'big.bin'), 'results are not inputs');
    const files = await collectFiles(root, 'recipes/r.yaml');
    assert.deepEqual(files, ['data/prompts.jsonl', 'recipes/acc/zero2.yaml', 'recipes/r.yaml', 'runtime/conscience/__init__.py']);

    const remote = join(mkdtempSync(join(tmpdir(), 'sync-host-')), 'project');
    const host = new LocalHost();
    const progress: string[] = [];
    const first = await syncToHost(host, root, files, remote, (p) => p.file && progress.push(p.file));
    assert.equal(first.filesSent, 4);
    assert.equal(progress.length, 4);
    assert.equal(readFileSync(join(remote, 'recipes', 'acc', 'zero2.yaml'), 'utf8'), 'distributed_type: DEEPSPEED\n');
    const again = await syncToHost(host, root, files, remote);
    assert.deepEqual([again.filesSent, again.bytesSent, again.runtimeBytesSent], [0, 0, 0]);
    appendFileSync(join(root, 'runtime', 'conscience', '__init__.py'), 'y = 2\n');
    const changed = await syncToHost(host, root, files, remote);
    assert.deepEqual([changed.filesSent, changed.runtimeBytesSent], [1, 12]);
    const manifest = JSON.parse(readFileSync(join(remote, MANIFEST_NAME), 'utf8'));
    assert.equal(Object.keys(manifest).length, 4);
    assert.deepEqual(diffManifests({ a: { sha256: '1', size: 1 }, b: { sha256: '2', size: 1 } }, { a: { sha256: '1', size: 1 } }), ['b']);
  });

  it('a workspace without runtime/ launches with the runtime and allocator the extension ships', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'sync-user-ws-'));
    writeFileSync(join(ws, 'r.yaml'), 'model_name_or_path: conscience/tiny\nallocator:\n  deep_budget: 256\n');
    const bundle = packageRoot();
    assert.ok(readFileSync(join(bundle, 'package.json'), 'utf8').includes('"chain-of-conscience"'), `packageRoot() found ${bundle}`);
    const src = new SyncSource(ws, bundle);
    const files = await collectFiles(src, 'r.yaml');
    assert.ok(files.includes('r.yaml'));
    assert.ok(files.includes('runtime/conscience/train.py'), 'the shipped runtime is synced');
    assert.ok(files.includes('models/allocator/allocator.json'), 'the shipped allocator is synced for a recipe with allocator:');
    assert.ok(!files.some((f) => f.startsWith('runtime/tests/')), 'tests are not synced');

    const remote = join(mkdtempSync(join(tmpdir(), 'sync-user-host-')), 'project');
    const sent = await syncToHost(new LocalHost(), src, files, remote);
    assert.equal(sent.filesSent, files.length);
    assert.equal(
      readFileSync(join(remote, 'runtime', 'conscience', 'train.py'), 'utf8'),
      readFileSync(join(bundle, 'runtime', 'conscience', 'train.py'), 'utf8'),
    );
    // without a bundle the same workspace names the missing runtime clearly
    await assert.rejects(collectFiles(ws, 'r.yaml'), /cannot read the runtime package/);
  });

  // issue: review item 7 (symbolic links out of the workspace; dataset subfolders dropped)
  const symlinkWorkspace = () => {
    const outside = mkdtempSync(join(tmpdir(), 'sync-outside-'));
    mkdirSync(join(outside, '.ssh'));
    writeFileSync(join(outside, '.ssh', 'id_rsa'), 'PRIVATE KEY');
    mkdirSync(join(outside, 'corpus'));
    writeFileSync(join(outside, 'corpus', 'a.txt'), 'outside data');
    const root = mkdtempSync(join(tmpdir(), 'sync-links-'));
    mkdirSync(join(root, 'runtime', 'conscience', 'tests'), { recursive: true });
    writeFileSync(join(root, 'runtime', 'conscience', '__init__.py'), '');
    writeFileSync(join(root, 'runtime', 'conscience', 'tests', 'test_x.py'), '');
    mkdirSync(join(root, 'data', 'tests'), { recursive: true });
    mkdirSync(join(root, 'data', 'build'));
    writeFileSync(join(root, 'data', 'tests', 'held_out.jsonl'), '{}\n');
    writeFileSync(join(root, 'data', 'build', 'shard0.jsonl'), '{}\n');
    writeFileSync(join(root, 'data', 'train.jsonl'), '{}\n');
    writeFileSync(join(root, 'data', '.env'), 'HF_TOKEN=x\n');
    writeFileSync(join(root, 'data', 'server.pem'), 'cert');
    for (const n of ['.npmrc', '.pypirc', 'tls.key', 'client.p12', 'putty.ppk']) writeFileSync(join(root, 'data', n), 'secret');
    mkdirSync(join(root, 'data', '.venv', 'bin'), { recursive: true });
    writeFileSync(join(root, 'data', '.venv', 'bin', 'python'), '');
    symlinkSync('train.jsonl', join(root, 'data', 'alias.jsonl')); // inside: followed
    symlinkSync('..', join(root, 'data', 'up')); // a loop back to the root: walked once, not forever
    return { root, outside };
  };

  it('follows symbolic links only inside the workspace and keeps a dataset folder whole', async () => {
    const { root } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data\n');
    const files = await collectFiles(root, 'r.yaml');
    assert.deepEqual(files, [
      'data/alias.jsonl', 'data/build/shard0.jsonl', 'data/tests/held_out.jsonl', 'data/train.jsonl', 'r.yaml', 'runtime/conscience/__init__.py',
    ]);
    // a credential named directly is the user's choice
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data/.env\n');
    assert.ok((await collectFiles(root, 'r.yaml')).includes('data/.env'));
    // a link back up to the workspace root ends, and does not send the whole workspace again under data/up/
    symlinkSync('..', join(root, 'data', 'up'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data\n');
    assert.deepEqual((await collectFiles(root, 'r.yaml')).filter((f) => f.startsWith('data/up/')), []);
  });

  it('a value or folder entry that is a link to the workspace root, .git, .conscience or a credential file sends none of it', async () => {
    const { root } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    mkdirSync(join(root, '.venv', 'lib'), { recursive: true });
    writeFileSync(join(root, '.venv', 'lib', 'torch.so'), 'big');
    mkdirSync(join(root, '.conscience', 'runs', 'old', 'output'), { recursive: true });
    writeFileSync(join(root, '.conscience', 'runs', 'old', 'output', 'model.safetensors'), 'weights');
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, '.git', 'config'), '[remote "origin"]\n  url = https://user:ghp_token@github.com/u/r\n');
    symlinkSync('.', join(root, 'workspace'));
    // named lexically the root is not a path to sync: the same root through a link is not either
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data/train.jsonl\nhere: .\nhere_too: workspace\n');
    assert.deepEqual(await collectFiles(root, 'r.yaml'), ['data/train.jsonl', 'r.yaml', 'runtime/conscience/__init__.py']);
    symlinkSync('../.git', join(root, 'data', 'vcs'));
    symlinkSync('../.git/config', join(root, 'data', 'settings'));
    symlinkSync('../.conscience/runs', join(root, 'data', 'runs'));
    // a link with an innocent name to the workspace's .env is skipped like the .env itself
    writeFileSync(join(root, '.env'), 'HF_TOKEN=hf_secret\n');
    symlinkSync('../.env', join(root, 'data', 'extra.jsonl'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data\n');
    const files = await collectFiles(root, 'r.yaml');
    assert.deepEqual(files.filter((f) => /vcs|settings|runs|torch|safetensors|extra/.test(f)), []);
    assert.ok(files.includes('data/train.jsonl'));
  });

  it('refuses a recipe value, or a link inside a named folder, that resolves outside the workspace', async () => {
    const { root, outside } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    symlinkSync(join(outside, '.ssh', 'id_rsa'), join(root, 'key'));
    writeFileSync(join(root, 'r.yaml'), 'tokenizer_name: key\n');
    await assert.rejects(collectFiles(root, 'r.yaml'), /recipe value 'key': key is a symbolic link to .*id_rsa, outside .*: refusing/);
    symlinkSync(join(outside, 'corpus'), join(root, 'corpus'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: corpus\n');
    await assert.rejects(collectFiles(root, 'r.yaml'), /recipe value 'corpus': corpus is a symbolic link to .*corpus, outside/);
    symlinkSync(join(outside, '.ssh'), join(root, 'data', 'ssh'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data\n');
    await assert.rejects(collectFiles(root, 'r.yaml'), /recipe value 'data': data\/ssh is a symbolic link to .*\.ssh, outside/);
  });

  it('refuses a recipe that is a symbolic link to a file outside the workspace, naming the recipe and the target', async () => {
    const { root, outside } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    writeFileSync(join(outside, 'shared.yaml'), 'dataset_name: data/train.jsonl\n');
    mkdirSync(join(root, 'recipes'));
    symlinkSync(join(outside, 'shared.yaml'), join(root, 'recipes', 'r.yaml'));
    await assert.rejects(
      collectFiles(root, 'recipes/r.yaml'),
      /^Error: the recipe: recipes\/r\.yaml is a symbolic link to \/.*shared\.yaml, outside .*: refusing to send it to the host/,
    );
    // a recipe in a linked folder outside the workspace is refused the same way
    rmSync(join(root, 'recipes'), { recursive: true });
    symlinkSync(outside, join(root, 'recipes'));
    await assert.rejects(collectFiles(root, 'recipes/shared.yaml'), /^Error: the recipe: recipes\/shared\.yaml is a symbolic link to .*shared\.yaml, outside/);
    // a link to a recipe inside the workspace is followed
    rmSync(join(root, 'recipes'));
    mkdirSync(join(root, 'recipes'));
    writeFileSync(join(root, 'recipes', 'base.yaml'), 'dataset_name: ../data/train.jsonl\n');
    symlinkSync('base.yaml', join(root, 'recipes', 'r.yaml'));
    assert.deepEqual(await collectFiles(root, 'recipes/r.yaml'), ['data/train.jsonl', 'recipes/r.yaml', 'runtime/conscience/__init__.py']);
  });

  it('a file replaced by a link out of the workspace after the plan listed it is refused by the sync, not sent', async () => {
    const { root, outside } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data/train.jsonl\n');
    const files = await collectFiles(root, 'r.yaml'); // the plan the preview shows
    assert.deepEqual(files, ['data/train.jsonl', 'r.yaml', 'runtime/conscience/__init__.py']);
    // between the preview and "Launch" the dataset file becomes a link to a private key
    rmSync(join(root, 'data', 'train.jsonl'));
    symlinkSync(join(outside, '.ssh', 'id_rsa'), join(root, 'data', 'train.jsonl'));
    const remote = join(mkdtempSync(join(tmpdir(), 'sync-toctou-host-')), 'project');
    await assert.rejects(syncToHost(new LocalHost(), root, files, remote), /data\/train\.jsonl is a symbolic link to .*id_rsa, outside .*: refusing to send it to the host/);
    let sent = '';
    try {
      sent = readFileSync(join(remote, 'data', 'train.jsonl'), 'utf8');
    } catch {
      /* not sent */
    }
    assert.notEqual(sent, 'PRIVATE KEY');
    // the same for a folder on the path that became a link
    rmSync(join(root, 'data'), { recursive: true });
    mkdirSync(join(outside, 'data'));
    writeFileSync(join(outside, 'data', 'train.jsonl'), 'outside data');
    symlinkSync(join(outside, 'data'), join(root, 'data'));
    await assert.rejects(syncToHost(new LocalHost(), root, files, remote), /data\/train\.jsonl is a symbolic link to .*train\.jsonl, outside/);
  });

  it('a file changed after it was hashed: the upload is checked again and the host manifest describes what was sent', async () => {
    const { root, outside } = symlinkWorkspace();
    rmSync(join(root, 'data', 'up'));
    writeFileSync(join(root, 'r.yaml'), 'dataset_name: data/train.jsonl\n');
    const files = await collectFiles(root, 'r.yaml');
    // the real local host; `change` runs between hashing and sending (the sync creates the project folder in between)
    let change = () => {};
    class SlowHost extends LocalHost {
      override async mkdirp(path: string): Promise<void> {
        change();
        change = () => {};
        return super.mkdirp(path);
      }
    }
    const remote = join(mkdtempSync(join(tmpdir(), 'sync-race-host-')), 'project');
    change = () => writeFileSync(join(root, 'data', 'train.jsonl'), '{"new": 1}\n');
    await syncToHost(new SlowHost(), root, files, remote);
    const sent = readFileSync(join(remote, 'data', 'train.jsonl'));
    const manifest = JSON.parse(readFileSync(join(remote, MANIFEST_NAME), 'utf8'));
    assert.equal(sent.toString(), '{"new": 1}\n');
    assert.equal(manifest['data/train.jsonl'].sha256, createHash('sha256').update(sent).digest('hex'), 'the manifest names the bytes on the host');
    // changed back to the hashed content: the host must get it again, not keep '{"new": 1}'
    writeFileSync(join(root, 'data', 'train.jsonl'), '{}\n');
    await syncToHost(new LocalHost(), root, files, remote);
    assert.equal(readFileSync(join(remote, 'data', 'train.jsonl'), 'utf8'), '{}\n');
    // replaced by a link to a private key between hashing and sending: refused, the key is not sent
    change = () => {
      rmSync(join(root, 'data', 'train.jsonl'));
      symlinkSync(join(outside, '.ssh', 'id_rsa'), join(root, 'data', 'train.jsonl'));
    };
    writeFileSync(join(root, 'data', 'train.jsonl'), '{"newest": 3}\n');
    await assert.rejects(syncToHost(new SlowHost(), root, files, remote), /data\/train\.jsonl is a symbolic link to .*id_rsa, outside .*: refusing/);
    assert.equal(readFileSync(join(remote, 'data', 'train.jsonl'), 'utf8'), '{}\n');
  });
});

describe('run store', () => {
  const rec = (id: string, createdAt: number): RunRecord => ({
    id, recipe: 'r.yaml', target: 'local', targetKind: 'local', host: 'local', projectDir: '/p', remoteDir: '/p/r', outputDir: '/p/r/o',
    python: 'py', state: 'running', eventOffset: 0, stdoutOffset: 0, stderrOffset: 0, createdAt, updatedAt: createdAt, command: 'x', attempts: 1,
  });
  it('lists runs newest first, skips broken folders, and reads one run', async () => {
    const root = mkdtempSync(join(tmpdir(), 'store-'));
    await writeRun(root, rec('a', 1));
    await writeRun(root, rec('b', 2));
    mkdirSync(join(root, '.conscience', 'runs', 'broken'));
    writeFileSync(join(root, '.conscience', 'runs', 'broken', 'run.json'), '{nope');
    assert.deepEqual((await listRuns(root)).map((r) => r.id), ['b', 'a']);
    assert.equal((await readRun(root, 'a'))?.state, 'running');
    assert.equal(await readRun(root, 'zzz'), undefined);
    await assert.rejects(readRun(root, '../etc'), /invalid run id/);
  });
  it('serialises writers with the run lock and recovers a stale one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lock-'));
    // (a lock is taken in the run's folder, never creates it: NoRunError without one)
    await assert.rejects(withRunLock(root, 'l', async () => 'x', { wait: true }), /no run 'l'/);
    mkdirSync(join(root, '.conscience', 'runs', 'l'), { recursive: true });
    const order: string[] = [];
    const slow = withRunLock(root, 'l', async () => {
      order.push('a+');
      await new Promise((r) => setTimeout(r, 100));
      order.push('a-');
    }, { wait: true });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(await withRunLock(root, 'l', async () => 'x', { wait: false }), undefined, 'busy: no wait');
    await withRunLock(root, 'l', async () => void order.push('b'), { wait: true });
    await slow;
    assert.deepEqual(order, ['a+', 'a-', 'b']);
    const lock = join(root, '.conscience', 'runs', 'l', '.lock');
    mkdirSync(lock);
    const old = new Date(Date.now() - 120_000);
    utimesSync(lock, old, old);
    assert.equal(await withRunLock(root, 'l', async () => 'got', { wait: false }), 'got', 'a lock left by a dead process is taken over');
  });
  it('cuts a partial last line so the resume offset sits on a line boundary', async () => {
    const f = join(mkdtempSync(join(tmpdir(), 'cs-')), 'events.jsonl');
    writeFileSync(f, '{"seq":0}\n{"seq":1}\n{"se');
    assert.equal(await completeSize(f), 20);
    assert.equal(readFileSync(f, 'utf8'), '{"seq":0}\n{"seq":1}\n');
    assert.equal(await completeSize(join(f, '..', 'missing')), 0);
  });
  it('watchRun emits every event once, in order, as lines are appended', async () => {
    const root = mkdtempSync(join(tmpdir(), 'watch-'));
    await writeRun(root, rec('w', 1));
    const file = join(root, '.conscience', 'runs', 'w', 'events.jsonl');
    writeFileSync(file, '{"type":"run_started","seq":0,"time":1}\n');
    const got: number[] = [];
    const w = watchRun(root, 'w', { pollMs: 50 });
    w.on('events', (evs: RunEvent[]) => got.push(...evs.map((e) => e.seq)));
    await new Promise((r) => setTimeout(r, 150));
    appendFileSync(file, '{"type":"heartbeat","seq":1,"time":2}\n{"type":"heart');
    await new Promise((r) => setTimeout(r, 150));
    appendFileSync(file, 'beat","seq":2,"time":3}\n');
    await new Promise((r) => setTimeout(r, 200));
    w.close();
    assert.deepEqual(got, [0, 1, 2]);
  });
});

describe('targets from .vscode/settings.json', () => {
  it('the CLI reads conscience.targets there when no targets file exists; the editor (settings: false) leaves it to VS Code, which ignores it in an untrusted workspace', async () => {
    const root = mkdtempSync(join(tmpdir(), 'targets-settings-'));
    mkdirSync(join(root, '.vscode'));
    writeFileSync(join(root, '.vscode', 'settings.json'), '{\n  // a comment\n  "conscience.targets": {"gpu": {"type": "ssh", "host": "gpu.example"}},\n}\n');
    const cli = await loadTargets(root);
    assert.equal(cli.targets.get('gpu')?.type, 'ssh');
    assert.equal(cli.file, join(root, '.vscode', 'settings.json'));
    const editor = await loadTargets(root, undefined, { settings: false });
    assert.equal(editor.targets.get('gpu'), undefined);
    assert.equal(editor.file, undefined);
    // a targets file is read either way
    writeFileSync(join(root, 'conscience.targets.yaml'), 'box:\n  type: ssh\n  host: box.example\n');
    assert.equal((await loadTargets(root, undefined, { settings: false })).targets.get('box')?.type, 'ssh');
    rmSync(root, { recursive: true, force: true });
  });
});

describe('the project folder on the host', () => {
  it('is the same for a workspace opened through a link as by its real path, and differs for another workspace', () => {
    const base = mkdtempSync(join(tmpdir(), 'project-key-'));
    const real = join(base, 'my project');
    mkdirSync(real);
    symlinkSync(real, join(base, 'link'));
    const targets = parseTargets(undefined);
    const key = (root: string) => new LaunchSession(root, targets).projectKey();
    assert.match(key(real), /^my_project-[0-9a-f]{8}$/);
    assert.equal(key(join(base, 'link')), key(real));
    mkdirSync(join(base, 'other'));
    assert.notEqual(key(join(base, 'other')), key(real));
    rmSync(base, { recursive: true, force: true });
  });
});

describe('a resume plans into the run\'s own project folder', () => {
  it('keeps a project folder an older version named (under the same base), and names a new one otherwise', async () => {
    const { planLaunch } = await import('../../src/core/launch/launcher');
    const root = mkdtempSync(join(tmpdir(), 'project-resume-'));
    writeFileSync(join(root, 'r.yaml'), readFileSync(join(__dirname, '../../../recipes/demo/tiny-cpu.yaml')));
    const s = new LaunchSession(root, parseTargets(undefined));
    try {
      const fresh = await planLaunch(s, 'r.yaml', 'local', { runId: 'r-1' });
      assert.equal(fresh.projectDir, `${fresh.baseDir}/projects/${s.projectKey()}`);
      const old = `${fresh.baseDir}/projects/r-0123abcd`;
      const resumed = await planLaunch(s, 'r.yaml', 'local', { runId: 'r-1', projectDir: old });
      assert.equal(resumed.projectDir, old);
      assert.equal(resumed.runDir, `${old}/.conscience-runs/r-1`);
      // a folder outside the base (the target's workdir changed since) or one that climbs out is not kept
      for (const elsewhere of ['/elsewhere/projects/r-0123abcd', `${fresh.baseDir}/projects/..`, `${fresh.baseDir}/projects/a/b`]) {
        assert.equal((await planLaunch(s, 'r.yaml', 'local', { runId: 'r-1', projectDir: elsewhere })).projectDir, fresh.projectDir);
      }
    } finally {
      await s.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
