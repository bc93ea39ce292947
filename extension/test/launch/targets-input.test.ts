// Broken targets files, as a user makes them by hand, through the real CLI: each gets one line
// naming FILE:LINE:COLUMN and what is wrong there (not a character offset, not js-yaml's
// multi-line snippet), and a byte-order mark, which Windows editors write, is not an error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';

const REPO = resolve(import.meta.dirname, '..', '..', '..');
const base = mkdtempSync(join(tmpdir(), 'cc-targets-input-'));
after(() => rmSync(base, { recursive: true, force: true }));

/** A workspace holding the demo recipe and `files`; `conscience launch r.yaml --target box --dry-run` in it. */
function launchIn(name: string, files: Record<string, string>): { status: number | null; stderr: string; stdout: string; ws: string } {
  const ws = join(base, name);
  mkdirSync(join(ws, '.vscode'), { recursive: true });
  copyFileSync(join(REPO, 'recipes', 'demo', 'tiny-cpu.yaml'), join(ws, 'r.yaml'));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(ws, f), text);
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(REPO, 'node_modules/tsx/dist/loader.mjs')).href, join(REPO, 'extension/src/cli/main.ts'),
    'launch', 'r.yaml', '--target', 'box', '--dry-run'], { cwd: ws, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, ws };
}

/** The one `conscience:` error line, checked to be a single line. */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l.startsWith('conscience:'));
  assert.equal(lines.length, 1, stderr);
  assert.equal(stderr.trim().split('\n').at(-1), lines[0], `the error is the last line, with nothing after it:\n${stderr}`);
  return lines[0]!;
}

describe('a broken targets file is named with its line', () => {
  it('conscience.targets.json with a missing comma: FILE:LINE:COLUMN, not a character position', () => {
    const r = launchIn('json-comma', { 'conscience.targets.json': '{\n  "box": {"type": "ssh",\n    "host": "gpu1"\n    "port": 22}\n}\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: ${join(r.ws, 'conscience.targets.json')}:4:5: invalid JSON: comma expected`);
  });

  it('.vscode/settings.json with a missing comma: FILE:LINE:COLUMN, not "at offset N"', () => {
    const r = launchIn('settings-comma', { '.vscode/settings.json': '{\n  "editor.fontSize": 12,\n  "conscience.targets": {\n    "box": {"type": "local",}\n    "x": 1\n  }\n}\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: ${join(r.ws, '.vscode', 'settings.json')}:5:5: invalid JSON: comma expected`);
  });

  it('a bad entry in .vscode/settings.json names the file and the line of that target', () => {
    const r = launchIn('settings-entry', { '.vscode/settings.json': '{\n  // comments are allowed here, as VS Code allows them\n  "conscience.targets": {\n    "box": {"type": "ssh", "host": "gpu1", "port": 70000},\n  },\n}\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: ${join(r.ws, '.vscode', 'settings.json')}:4: target 'box': 'port' must be an integer from 1 to 65535, got 70000`);
  });

  it('conscience.targets.yaml with a duplicated target: one line FILE:LINE:COLUMN, without js-yaml\'s snippet', () => {
    const r = launchIn('yaml-dup', { 'conscience.targets.yaml': 'box:\n  type: ssh\n  host: gpu1\nbox:\n  type: local\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: ${join(r.ws, 'conscience.targets.yaml')}:4:1: invalid YAML: duplicated mapping key`);
  });

  it('an ssh port out of range is refused at the target\'s line, before any connection', () => {
    const r = launchIn('yaml-port', { 'conscience.targets.yaml': '# my machines\nbox:\n  type: ssh\n  host: gpu1\n  port: 70000\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: ${join(r.ws, 'conscience.targets.yaml')}:2: target 'box': 'port' must be an integer from 1 to 65535, got 70000`);
  });
});

describe('what a hand-made targets file may hold', () => {
  for (const [name, files] of [
    ['json-bom', { 'conscience.targets.json': '\ufeff{"box": {"type": "local"}}\n' }],
    ['settings-bom', { '.vscode/settings.json': '\ufeff{"conscience.targets": {"box": {"type": "local"}}}\n' }],
    ['yaml-bom-crlf', { 'conscience.targets.yaml': '\ufeffbox:\r\n  type: local\r\n' }],
  ] as const) {
    it(`${name}: a byte-order mark is not an error; the target is used`, () => {
      const r = launchIn(name, files);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^run \S+: r\.yaml on box \(local\)$/m);
    });
  }

  it('a targets file with only comments means no targets but local (not "the input is empty")', () => {
    const r = launchIn('yaml-comments', { 'conscience.targets.yaml': '# none yet\n#box:\n#  type: ssh\n' });
    assert.equal(r.status, 1);
    assert.equal(errorLine(r.stderr), `conscience: unknown target 'box' (known: local)`);
  });
});
