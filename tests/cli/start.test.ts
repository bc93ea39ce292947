// `npm start` (scripts/start.sh) writes the demo workspace's settings with this repository's
// path in them (the `local` target's python). A path with characters that sed or JSON treat
// specially (#, &, \, ") must come out as that path, in valid JSON. The real script, run from a
// copy of the repository at such a path, with setup and code-server replaced by stand-ins.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const REPO = resolve(import.meta.dirname, '..', '..');
const base = mkdtempSync(join(tmpdir(), 'cc-start-'));
after(() => rmSync(base, { recursive: true, force: true }));

/** A copy of the repository's start script at `base/name/conscience`, with stand-ins: setup
 * installs nothing (it leaves a mark), code-server prints where it would serve and ends. */
function standIn(name: string): string {
  const root = join(base, name, 'conscience');
  mkdirSync(join(root, 'scripts'), { recursive: true });
  copyFileSync(join(REPO, 'scripts', 'start.sh'), join(root, 'scripts', 'start.sh'));
  copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
  cpSync(join(REPO, 'demo'), join(root, 'demo'), { recursive: true });
  mkdirSync(join(root, 'recipes'));
  writeFileSync(join(root, 'scripts', 'setup.sh'), 'touch "$(dirname "$0")/../setup-ran"\n');
  const cs = join(root, '.cache', 'code-server', 'node_modules', 'code-server');
  mkdirSync(join(cs, 'out', 'node'), { recursive: true });
  writeFileSync(join(cs, 'package.json'), '{"version":"0.0.0-test"}\n');
  writeFileSync(join(cs, 'out', 'node', 'entry.js'), 'console.log("served", process.argv.at(-1));\n');
  return root;
}

for (const name of ['proj#2', 'R&D', 'a "quoted" \\ dir']) {
  test(`npm start from ${JSON.stringify(name)}: the demo's python is this repository's, in valid JSON`, () => {
    const root = standIn(name);
    const run = () => spawnSync('bash', [join(root, 'scripts', 'start.sh'), '--port', '18533'], { encoding: 'utf8', timeout: 60_000 });
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    const ws = join(root, '.cache', 'demo', 'workspace');
    assert.match(r.stdout, new RegExp(`served ${ws.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const file = join(ws, '.vscode', 'settings.json');
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /__CONSCIENCE_ROOT__/);
    // (JSON with comments, as VS Code reads settings: whole-line comments here)
    const settings = JSON.parse(text.split('\n').filter((l) => !l.trim().startsWith('//')).join('\n')) as { 'conscience.targets': { local: { python: string } } };
    assert.equal(settings['conscience.targets'].local.python, `${root}/.venv/bin/python`);
    // a second start keeps the settings as they are
    assert.equal(run().status, 0);
    assert.equal(readFileSync(file, 'utf8'), text);
  });
}

for (const port of ['0', '70000', '65536']) {
  test(`npm start -- --port ${port}: a usage error naming the range, before setup runs`, () => {
    const root = standIn(`port-${port}`);
    const r = spawnSync('bash', [join(root, 'scripts', 'start.sh'), '--port', port], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--port must be a number from 1 to 65535 \\(got '${port}'\\)`));
    assert.doesNotMatch(r.stderr + r.stdout, /RangeError|at .*\(node:/);
    assert.doesNotMatch(r.stdout, /Open http/);
    assert.equal(existsSync(join(root, 'setup-ran')), false, 'setup (minutes on a fresh machine) does not run first');
  });
}

test('npm start -- --port 65535 with that port taken: a clear error, not a crash', async () => {
  const root = standIn('port-last');
  const busy = createServer();
  await new Promise<void>((res, rej) => { busy.once('error', rej); busy.listen(65535, '127.0.0.1', () => res()); });
  try {
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((res) => {
      const p = spawn('bash', [join(root, 'scripts', 'start.sh'), '--port', '65535']);
      let stdout = '', stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('close', (status) => res({ status, stdout, stderr }));
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /no free port from 65535 to 65535 on 127\.0\.0\.1/);
    assert.doesNotMatch(r.stderr, /RangeError|ERR_SOCKET_BAD_PORT/);
    assert.doesNotMatch(r.stdout, /served|Open http/);
  } finally {
    busy.close();
  }
});
