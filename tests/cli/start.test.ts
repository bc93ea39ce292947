// `npm start` (scripts/start.sh) writes the demo workspace's settings with this repository's
// path in them (the `local` target's python). A path with characters that sed or JSON treat
// specially (#, &, \, ") must come out as that path, in valid JSON. The real script, run from a
// copy of the repository at such a path, with setup and code-server replaced by stand-ins.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';

const REPO = resolve(import.meta.dirname, '..', '..');
const base = mkdtempSync(join(tmpdir(), 'cc-start-'));
after(() => rmSync(base, { recursive: true, force: true }));

for (const name of ['proj#2', 'R&D', 'a "quoted" \\ dir']) {
  test(`npm start from ${JSON.stringify(name)}: the demo's python is this repository's, in valid JSON`, () => {
    const root = join(base, name, 'conscience');
    mkdirSync(join(root, 'scripts'), { recursive: true });
    copyFileSync(join(REPO, 'scripts', 'start.sh'), join(root, 'scripts', 'start.sh'));
    copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
    cpSync(join(REPO, 'demo'), join(root, 'demo'), { recursive: true });
    mkdirSync(join(root, 'recipes'));
    // stand-ins: setup has nothing to install; code-server prints where it would serve and ends
    writeFileSync(join(root, 'scripts', 'setup.sh'), 'true\n');
    const cs = join(root, '.cache', 'code-server', 'node_modules', 'code-server');
    mkdirSync(join(cs, 'out', 'node'), { recursive: true });
    writeFileSync(join(cs, 'package.json'), '{"version":"0.0.0-test"}\n');
    writeFileSync(join(cs, 'out', 'node', 'entry.js'), 'console.log("served", process.argv.at(-1));\n');
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
