// The editor adapters' input checks (core/editor-checks.ts), with plain Node: settings of the
// wrong shape (editor/recipes.ts conscience.recipes.include, editor/launch.ts pollIntervalMs and
// heartbeatTimeout), command arguments (editor/serve.ts port), the file "Launch Recipe…" is asked
// to launch (editor/launch.ts pickRecipe), Show Run Logs' tail of a big log, and the allocator's
// scan of the workspace's YAML files (editor/allocator.ts), read again only when a file changed.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkPort, FileScanCache, mayBeRecipe, notARecipe, numberSetting, stringListSetting } from '../../src/core/editor-checks';
import { readRange, readTail } from '../../src/core/files';
import { LocalHost } from '../../src/core/launch/host';
import { recipeKind } from '../../src/core/recipe';

const repo = join(import.meta.dirname, '..', '..', '..');
const DEFAULT = ['**/recipes/**/*.yaml', '**/*.grpo.yaml'];

test('a string include setting is one pattern, and the user is told; other shapes fall back to the default', () => {
  const one = stringListSetting('conscience.recipes.include', '**/*.grpo.yaml', DEFAULT);
  assert.deepEqual(one.value, ['**/*.grpo.yaml']);
  assert.match(one.problem ?? '', /conscience\.recipes\.include should be a list/);
  for (const bad of [42, { a: 1 }, true, '  ']) {
    const r = stringListSetting('conscience.recipes.include', bad, DEFAULT);
    assert.deepEqual(r.value, DEFAULT, JSON.stringify(bad));
    assert.match(r.problem ?? '', /conscience\.recipes\.include/);
  }
  const mixed = stringListSetting('conscience.recipes.include', ['a/**', 3, null], DEFAULT);
  assert.deepEqual(mixed.value, ['a/**']);
  assert.match(mixed.problem ?? '', /ignored 2 entries/);
  // what the code then does with it (editor/recipes.ts isRecipe) no longer throws
  assert.doesNotThrow(() => one.value.some((g) => g.length > 0));
  assert.deepEqual(stringListSetting('x', ['a', 'b'], DEFAULT), { value: ['a', 'b'] });
  assert.deepEqual(stringListSetting('x', undefined, DEFAULT), { value: DEFAULT });
});

test('poll interval and heartbeat settings are clamped; non-numbers are the default, never a 1 ms poll', () => {
  const poll = (v: unknown) => numberSetting(v, { def: 500, min: 100, max: 60_000 });
  assert.equal(poll(0), 100);
  assert.equal(poll(-5), 100);
  assert.equal(poll('500ms'), 500);
  assert.equal(poll('fast'), 500);
  assert.equal(poll(NaN), 500);
  assert.equal(poll(null), 500);
  assert.equal(poll(undefined), 500);
  assert.equal(poll(250), 250);
  assert.equal(poll('250'), 250);
  assert.equal(poll(1e12), 60_000);
  assert.equal(numberSetting(0, { def: 90, min: 10, max: 86_400 }), 10);
});

test('a port argument is checked as the input box checks a typed one', () => {
  for (const ok of [8100, '8100', 1, 65535]) assert.equal(checkPort(ok), undefined, String(ok));
  for (const bad of ['eighty', 0, 65536, -1, 80.5, '', null, undefined, {}, '80; rm'])
    assert.match(checkPort(bad) ?? '', /a port number, 1-65535/, String(bad));
  assert.match(checkPort('eighty')!, /"eighty"/);
});

test('Launch Recipe refuses an accelerate config and other YAML, and accepts the recipes', () => {
  const ddp = readFileSync(join(repo, 'recipes/accelerate/ddp.yaml'), 'utf8');
  assert.match(notARecipe(ddp, 'recipes/accelerate/ddp.yaml') ?? '', /recipes\/accelerate\/ddp\.yaml is an accelerate config, not a recipe/);
  const ci = 'name: ci\non:\n  push: {}\njobs:\n  test:\n    runs-on: ubuntu-latest\n';
  assert.match(notARecipe(ci, '.github/workflows/ci.yml') ?? '', /ci\.yml is not a recipe/);
  for (const dir of ['recipes/demo', 'recipes/qwen2.5-1.5b-instruct']) {
    for (const f of readdirSync(join(repo, dir)).filter((x) => x.endsWith('.yaml'))) {
      assert.equal(notARecipe(readFileSync(join(repo, dir, f), 'utf8'), f), undefined, f);
    }
  }
});

test('the cheap pre-check never drops a recipe, and skips YAML with no recipe key', () => {
  for (const dir of ['recipes/demo', 'recipes/qwen2.5-1.5b-instruct', 'recipes/accelerate']) {
    for (const f of readdirSync(join(repo, dir)).filter((x) => x.endsWith('.yaml'))) {
      const text = readFileSync(join(repo, dir, f), 'utf8');
      if (recipeKind(text) === 'recipe') assert.equal(mayBeRecipe(text), true, f);
    }
  }
  assert.equal(mayBeRecipe('{"model_name_or_path": "x", "kind": "grpo"}'), true);
  assert.equal(mayBeRecipe('  launch:\n    target: local\n'), true);
  assert.equal(mayBeRecipe('- name: svc-0\n  image: "registry.example.com/app:0"\n  env: {A: "1"}\n'), false);
  assert.equal(mayBeRecipe('description: the launch of a model_name_or_path\n'), false);
});

test('Show Run Logs reads only the end of a big log, from a line start, and says how much it left out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'editor-tail-'));
  const file = join(dir, 'stdout.log');
  const line = `${'x'.repeat(99)}\n`;
  writeFileSync(file, line.repeat(50_000) + 'last line\n'); // ~5 MB
  const size = statSync(file).size;
  const tail = await readTail(file, 1024 * 1024);
  assert.ok(tail);
  assert.ok(tail.text.length <= 1024 * 1024);
  assert.ok(tail.text.endsWith('last line\n'));
  assert.ok(tail.text.startsWith('x'.repeat(99) + '\n'), 'starts at a line');
  assert.equal(tail.skipped + Buffer.byteLength(tail.text), size);
  assert.ok(tail.skipped > 3 * 1024 * 1024);
  // a small log is whole
  writeFileSync(join(dir, 'stderr.log'), 'warning: something\n');
  assert.deepEqual(await readTail(join(dir, 'stderr.log'), 1024 * 1024), { text: 'warning: something\n', skipped: 0 });
  // no log yet, and a log that cannot be read (reported, not taken for "nothing yet")
  assert.equal(await readTail(join(dir, 'none.log'), 1024), undefined);
  mkdirSync(join(dir, 'dir.log'));
  await assert.rejects(readTail(join(dir, 'dir.log'), 1024));
});

test('the workspace recipe scan reads a file again only when it changed, and never reads a big one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'editor-scan-'));
  writeFileSync(join(dir, 'a.yaml'), 'model_name_or_path: a\ndataset_name: data/a.jsonl\n');
  writeFileSync(join(dir, 'ci.yaml'), 'name: ci\n');
  writeFileSync(join(dir, 'big.yaml'), `model_name_or_path: big\n# ${'x'.repeat(3_000_000)}\n`);
  const reads: string[] = [];
  const cache = new FileScanCache<string, string>(
    {
      stat: async (f) => { const st = statSync(f); return { mtime: st.mtimeMs, size: st.size }; },
      read: async (f) => { reads.push(f); return readFileSync(f, 'utf8'); },
    },
    (f) => f,
    (text) => (recipeKind(text) === 'recipe' ? /model_name_or_path: (\w+)/.exec(text)![1] : undefined),
    2_000_000,
  );
  const files = () => readdirSync(dir).map((f) => join(dir, f));
  assert.deepEqual(await cache.scan(files()), ['a']);
  assert.deepEqual(reads.sort(), [join(dir, 'a.yaml'), join(dir, 'ci.yaml')]); // big.yaml: not read
  reads.length = 0;
  assert.deepEqual(await cache.scan(files()), ['a']);
  assert.deepEqual(reads, [], 'nothing changed: nothing read');
  writeFileSync(join(dir, 'ci.yaml'), 'model_name_or_path: ci2\n');
  utimesSync(join(dir, 'ci.yaml'), new Date(), new Date(Date.now() + 5000));
  assert.deepEqual((await cache.scan(files())).sort(), ['a', 'ci2']);
  assert.deepEqual(reads, [join(dir, 'ci.yaml')]);
});

test('the editor adapters use these checks', () => {
  const src = (f: string) => readFileSync(join(repo, 'extension/src/editor', f), 'utf8');
  const launch = src('launch.ts');
  assert.match(launch, /numberSetting\(cfg\.get<unknown>\('pollIntervalMs'\), \{ def: 500, min: 100/);
  assert.match(launch, /numberSetting\(cfg\.get<unknown>\('heartbeatTimeout'\), \{ def: 90, min: 10/);
  assert.match(launch, /docKind\(ed\.document\) === 'recipe'/, 'the active editor is launched only when it is a recipe');
  assert.match(launch, /const why = notARecipe\(text, name\);/);
  assert.doesNotMatch(launch, /if \(ed\.document\.isDirty\) await ed\.document\.save\(\)/, 'no silent save');
  assert.match(launch, /'Save and Launch'/);
  assert.match(launch, /await readTail\(file, LOG_TAIL_BYTES\)/);
  assert.match(launch, /\}, true\)\),\n\s+vscode\.commands\.registerCommand\('conscience\.refreshRuns'/, 'Show Run Logs keeps the launch session');
  const recipes = src('recipes.ts');
  assert.match(recipes, /stringListSetting\('conscience\.recipes\.include', c\.get<unknown>\('include'\)/);
  assert.match(recipes, /recipe = \(force \|\| config\(\)\.enabled\) && isRecipe\(doc\);/, 'isRecipe inside the try');
  const allocator = src('allocator.ts');
  assert.match(allocator, /new FileScanCache<vscode\.Uri, BudgetSettings>/);
  assert.doesNotMatch(allocator, /Date\.now\(\) - this\.recipes\.at < 5000/);
  assert.match(allocator, /typeof arg === 'object' && arg !== null/);
  assert.match(src('serve.ts'), /checkPort\(arg\.port\)/);
});

test('a ranged read (what the run monitor copies events with) gives the bytes asked for, empty past the end, undefined for a missing file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'editor-range-'));
  const file = join(dir, 'events.jsonl');
  writeFileSync(file, '0123456789');
  assert.equal((await readRange(file))?.toString(), '0123456789');
  assert.equal((await readRange(file, 3, 4))?.toString(), '3456');
  assert.equal((await readRange(file, 8, 100))?.toString(), '89');
  assert.equal((await readRange(file, 10))?.length, 0);
  assert.equal((await readRange(file, 50))?.length, 0);
  assert.equal(await readRange(join(dir, 'none')), undefined);
  assert.deepEqual(await new LocalHost().readFrom(file, 2, 3), Buffer.from('234'));
  mkdirSync(join(dir, 'sub'));
  await assert.rejects(readRange(join(dir, 'sub')));
});
