// `conscience validate` end to end through the CLI entry point (extension/src/cli/main.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO } from './helpers';

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'validate', ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--format json: an array of 1-based diagnostics with the documented fields; exit 1 on errors', () => {
  const f = join(FIXTURES, 'bad', 'CC204-c4-divisibility.yaml');
  const r = cli(f, '--format', 'json');
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  assert.ok(Array.isArray(out) && out.length >= 1);
  for (const d of out) assert.deepEqual(Object.keys(d).sort(), ['code', 'column', 'endColumn', 'endLine', 'file', 'line', 'message', 'severity']);
  const d = out.find((x) => x.code === 'CC204')!;
  assert.equal(d.file, 'extension/test/recipes/fixtures/bad/CC204-c4-divisibility.yaml');
  assert.deepEqual([d.line, d.column, d.endLine, d.endColumn], [8, 18, 8, 19]);
  assert.equal(d.severity, 'error');
});

test('a folder is walked: the shipped recipes/ validate clean with exit 0', () => {
  const r = cli('recipes', '--format', 'json');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout) as Array<{ severity: string }>;
  assert.deepEqual(out.filter((d) => d.severity !== 'info'), []);
});

test('--format text: file:line:col severity code message, a summary on stderr', () => {
  const r = cli(join(FIXTURES, 'bad', 'CC100-unknown-key.yaml'));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /CC100-unknown-key\.yaml:9:1: error CC100: Unknown key 'num_generation'.*Did you mean 'num_generations'\?/);
  assert.match(r.stderr, /1 error\(s\), 0 warning\(s\)\n$/);
  // infos are counted too: the summary does not say "0" above lines it printed (an output
  // folder an earlier stage has not written yet is information, CC305)
  const dir = mkdtempSync(join(tmpdir(), 'validate-info-'));
  try {
    const recipe = join(dir, 'stage2.yaml');
    writeFileSync(recipe, readFileSync(join(FIXTURES, 'good', 'CC305-missing-model.yaml'), 'utf8').replace(/^model_name_or_path:.*$/m, 'model_name_or_path: ./.conscience/outputs/stage1'));
    const t = cli(recipe);
    const count = (sev: string) => t.stdout.split('\n').filter((l) => l.includes(` ${sev} CC`)).length;
    assert.ok(count('info') > 0, t.stdout);
    assert.equal(t.stderr, `${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} info\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warnings alone exit 0; errors in a referenced accelerate config are reported against that file', () => {
  const w = cli(join(FIXTURES, 'bad', 'CC218-processes-machines.yaml'), '--format', 'json');
  assert.equal(w.code, 0);
  assert.ok((JSON.parse(w.stdout) as Array<{ code: string }>).some((d) => d.code === 'CC218'));
  const r = cli(join(FIXTURES, 'bad', 'CC400-broken-accelerate-config.yaml'), '--format', 'json');
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout) as Array<{ file: string; code: string; line: number }>;
  const inConfig = out.find((d) => d.file.endsWith('data/broken-accelerate.yaml'));
  assert.ok(inConfig, JSON.stringify(out));
  assert.equal(inConfig.code, 'CC401');
  assert.equal(inConfig.line, 2);
});

test('usage errors exit 2; a missing path is an error diagnostic', () => {
  assert.equal(cli().code, 2);
  assert.equal(cli('recipes', '--format', 'xml').code, 2);
  assert.equal(cli('--frobnicate', 'recipes').code, 2);
  const r = cli('does/not/exist.yaml', '--format', 'json');
  assert.equal(r.code, 1);
  assert.equal((JSON.parse(r.stdout) as Array<{ code: string }>)[0]!.code, 'CC010');
});

test('binary and non-UTF-8 files get a clean diagnostic, not a crash', () => {
  const r = cli(join(FIXTURES, 'bad', 'CC005-binary.yaml'), join(FIXTURES, 'bad', 'CC006-not-utf8.yaml'), '--format', 'json');
  assert.equal(r.code, 1, r.stderr);
  const codes = (JSON.parse(r.stdout) as Array<{ code: string }>).map((d) => d.code);
  assert.deepEqual(codes, ['CC005', 'CC006']);
});

test('a folder it cannot list is an error naming it, not skipped in silence', () => {
  // root lists any folder: drop to nobody to see what a user sees (in a folder anyone may enter)
  const base = mkdtempSync('/tmp/validate-locked-');
  chmodSync(base, 0o755);
  try {
    const locked = join(base, 'recipes');
    mkdirSync(locked, { mode: 0o000 });
    const asRoot = process.getuid?.() === 0;
    const argv = [process.execPath, '--import', 'tsx', join(REPO, 'extension/src/cli/main.ts'), 'validate', locked, '--format', 'json'];
    // (nobody cannot write the test run's private TMPDIR, where tsx keeps its cache)
    const opts = { cwd: REPO, encoding: 'utf8' as const, env: { ...process.env, TMPDIR: '/tmp' } };
    const r = asRoot ? spawnSync('runuser', ['-u', 'nobody', '--', ...argv], opts) : spawnSync(argv[0]!, argv.slice(1), opts);
    assert.equal(r.status, 1, r.stderr);
    const d = JSON.parse(r.stdout) as Array<{ code: string; message: string }>;
    assert.deepEqual(d.map((x) => x.code), ['CC010']);
    assert.match(d[0]!.message, /Cannot read folder '.*recipes' \(no permission to list it\)/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
