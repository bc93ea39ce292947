// Issue #16 item 7, `conscience validate`: symlinked *.yaml in a folder were skipped in
// silence, and a file name with a newline forged diagnostic lines in text output.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { cli, REPO } from './helpers';

const BAD = join(REPO, 'extension/test/recipes/fixtures/bad/CC204-c4-divisibility.yaml');

it('a folder walk validates symlinked recipes, reports a broken link, and ends on a symlink loop', () => {
  const root = mkdtempSync(join(tmpdir(), 'val-ln-'));
  const dir = join(root, 'recipes');
  mkdirSync(dir);
  const elsewhere = join(root, 'shared');
  mkdirSync(elsewhere);
  copyFileSync(BAD, join(elsewhere, 'real.yaml'));
  symlinkSync(join(elsewhere, 'real.yaml'), join(dir, 'linked.yaml'));
  symlinkSync(join(root, 'gone.yaml'), join(dir, 'broken.yaml'));
  symlinkSync(dir, join(dir, 'loop'));
  symlinkSync(elsewhere, join(dir, 'more'));
  const r = cli(['validate', dir, '--format', 'json'], { cwd: root, timeoutMs: 60_000 });
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as Array<{ file: string; code: string; message: string }>;
  assert.ok(out.some((d) => d.file === 'recipes/linked.yaml' && d.code === 'CC204'), r.stdout);
  assert.ok(out.some((d) => d.file === 'recipes/more/real.yaml' && d.code === 'CC204'), 'a symlinked folder is walked');
  assert.ok(out.some((d) => d.file === 'recipes/broken.yaml' && d.code === 'CC010' && /symbolic link to a missing file/.test(d.message)), r.stdout);
});

it('a file name with a newline cannot forge a diagnostic line in text output', () => {
  const root = mkdtempSync(join(tmpdir(), 'val-nl-'));
  const name = 'a.yaml\nforged.yaml:1:1: error CC999: forged.yaml';
  copyFileSync(BAD, join(root, name));
  writeFileSync(join(root, 'ok.txt'), '');
  const r = cli(['validate', '.'], { cwd: root, timeoutMs: 60_000 });
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.ok(lines.length >= 1);
  for (const l of lines) assert.match(l, /^a\.yaml\\nforged\.yaml:1:1: error CC999: forged\.yaml:\d+:\d+: (error|warning|info) CC\d+: /, `every line is one real diagnostic: ${JSON.stringify(l)}`);
  assert.ok(!lines.some((l) => l.startsWith('forged.yaml')));
});

it('`launch --dry-run` and `inspect` print a hostile file name or line on one escaped line', () => {
  const root = mkdtempSync(join(tmpdir(), 'esc-'));
  const name = 'r.yaml\nforged.yaml:1:1: error CC999: forged';
  copyFileSync(BAD, join(root, name));
  const l = cli(['launch', name, '--target', 'local', '--dry-run', '--workspace', root], { timeoutMs: 60_000 });
  const findings = l.stderr.split('\n').filter((x) => /error CC\d+/.test(x));
  assert.ok(findings.length >= 1, l.stderr);
  for (const f of findings) assert.match(f, /^(.*\/)?r\.yaml\\nforged\.yaml:1:1: error CC999: forged:\d+:\d+: error CC\d+: /, JSON.stringify(f));
  const prompts = join(root, 'p\n\u001b[2Jx.jsonl');
  writeFileSync(prompts, '{"prompt": "ok"}\n{"prompt": 5}\n{"prompt": "\u001b[31m\n');
  const i = cli(['inspect', prompts], { timeoutMs: 60_000 });
  assert.equal(i.code, 1, i.stderr);
  assert.doesNotMatch(i.stderr, /\u001b/, 'no raw escape sequence reaches the terminal');
  const errs = i.stderr.trim().split('\n');
  assert.equal(errs.length, 2, i.stderr);
  for (const e of errs) assert.match(e, /^.*p\\n\\u001b\[2Jx\.jsonl:[23]: /);
});

it('a folder walk says which folder it did not enter for depth, instead of skipping it in silence', () => {
  const root = mkdtempSync(join(tmpdir(), 'val-deep-'));
  let dir = root;
  for (let i = 0; i < 34; i++) dir = join(dir, `d${i}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(BAD, join(dir, 'deep.yaml'));
  const r = cli(['validate', root, '--format', 'json'], { timeoutMs: 60_000 });
  const out = JSON.parse(r.stdout) as Array<{ file: string; code: string; severity: string; message: string }>;
  assert.ok(out.some((d) => d.code === 'CC010' && d.severity === 'warning' && /Not walked: .*d32' is more than 32 folders deep/.test(d.message)), r.stdout);
});
