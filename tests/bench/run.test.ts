// bench/run.ts, the `npm run bench` harness, run as a user runs it: the real run.ts copied into a
// folder of small benches (it runs the *.bench.ts beside it and writes results.json there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { interleaved, ownedBy, quantile } from '../../bench/run';

const REPO = resolve(__dirname, '../..');

function benchDir(benches: Record<string, string>, results?: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-harness-'));
  copyFileSync(join(REPO, 'bench', 'run.ts'), join(dir, 'run.ts'));
  for (const [name, body] of Object.entries(benches)) writeFileSync(join(dir, `${name}.bench.ts`), body);
  if (results) writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  return dir;
}

function runBench(dir: string, ...names: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, 'run.ts'), ...names], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  const file = join(dir, 'results.json');
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, results: existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined };
}

const ok = (figures: Record<string, number>) => `export default async () => (${JSON.stringify(figures)});\n`;
const throws = `export default async () => { throw new Error('upstream did not come up'); };\n`;

test('a misspelt bench name is an error that names it and the benches there, and runs nothing', (t) => {
  const dir = benchDir({ recipes: ok({ 'recipes.ratio': 9 }) }, { 'recipes.ratio': 7 });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = runBench(dir, 'recipe');
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, /no bench named recipe .*\(benches: recipes\)/);
  assert.deepEqual(r.results, { 'recipes.ratio': 7 });
});

test('a bench that throws: exit 1, its error and none of its earlier figures, the others kept', (t) => {
  const dir = benchDir(
    { allocator: ok({ 'allocator.p50_ms': 1 }), serve: throws },
    { 'allocator.p50_ms': 2, 'serve.req_per_s': 1200, 'serve.overhead_ms_p50': 1.5 },
  );
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = runBench(dir, 'serve');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /failed: serve/);
  assert.deepEqual(r.results, { 'allocator.p50_ms': 2, 'serve.error': 'upstream did not come up' });
  assert.doesNotMatch(r.stdout, /serve\.req_per_s/);
});

test('a bench that kills the process keeps the figures of those before it, in a whole file', (t) => {
  const dir = benchDir(
    {
      a: ok({ 'a.x': 42 }),
      b: `export default async () => { setTimeout(() => { throw new Error('stray'); }, 0); await new Promise((r) => setTimeout(r, 1000)); return {}; };\n`,
      c: ok({ 'c.x': 3 }),
    },
    { 'a.x': 1, 'c.x': 2 },
  );
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = runBench(dir);
  assert.notEqual(r.status, 0);
  assert.equal(r.results['a.x'], 42, 'the figure measured in this run');
  assert.equal(r.results['c.x'], 2, 'a bench not reached keeps its earlier figure');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
});

test('a full run replaces every figure and drops those of benches that no longer exist', (t) => {
  const dir = benchDir({ a: ok({ 'a.x': 5 }), launch: ok({ 'launch.s': 2, 'events.ms': 120 }) }, { 'a.x': 1, 'a.old': 1, 'gone.x': 1, 'events.old': 9, 'launch.error': 'x' });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = runBench(dir);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.results, { 'a.x': 5, 'launch.s': 2, 'events.ms': 120 });
});

test('ownedBy: the launch bench owns the events.* figures', () => {
  assert.ok(ownedBy('events.latency_ms_p50', 'launch'));
  assert.ok(ownedBy('launch.ssh_start_s', 'launch'));
  assert.ok(!ownedBy('events.latency_ms_p50', 'eval'));
  assert.ok(!ownedBy('evaluation.x', 'eval'));
});

test('interleaved: ratio is peer / ours, so a peer twice as slow reads 2', async () => {
  const r = await interleaved(() => 10, () => 20, { pairs: 5, warmup: 1 });
  assert.equal(r.ours, 10);
  assert.equal(r.peer, 20);
  assert.equal(r.ratio, 2);
});

test('interleaved: pairRatios gives each pair, so ours / peer is the median of the inverses', async () => {
  // 4 pairs (as the launch bench): peer / ours = 0.5, 0.8, 1, 2
  const peers = [5, 8, 10, 20];
  let i = 0;
  const r = await interleaved(() => 10, () => peers[i++ % 4]!, { pairs: 4, warmup: 0 });
  assert.deepEqual(r.pairRatios, [0.5, 0.8, 1, 2]);
  assert.equal(r.ratio, 0.9);
  // ours / peer per pair: 2, 1.25, 1, 0.5, median 1.125 (1 / 0.9 would read 1.111)
  assert.equal(quantile(r.pairRatios.map((x) => 1 / x), 0.5), 1.125);
});
