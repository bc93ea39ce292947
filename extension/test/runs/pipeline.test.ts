// A GRPO run warm-started from an SFT run opens with both stages: the run store follows
// run_started.init_from (written by the runtime when model_name_or_path is another run's output).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pipelineOf } from '../../src/core/runs/pipeline';
import { readRunStarted } from '../../src/core/runs/store';

function run(ws: string, id: string, initFrom: unknown) {
  const dir = join(ws, '.conscience', 'runs', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ id, recipe: `recipes/demo/${id}.yaml`, target: 'local', targetKind: 'local', host: 'local',
    projectDir: ws, remoteDir: ws, outputDir: join(ws, id), python: 'python', state: 'completed', eventOffset: 0, stdoutOffset: 0,
    stderrOffset: 0, createdAt: 1, updatedAt: 1, command: 'x', attempts: 1 }));
  const events = [
    { type: 'run_started', seq: 0, time: 1, run_id: id, world_size: 1, init_from: initFrom },
    { type: 'metrics', seq: 1, time: 2, run_id: id, step: 1, values: { loss: 1 } },
  ];
  writeFileSync(join(dir, 'events.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
}

test('a run started from another run in the store opens with it, earliest stage first', async () => {
  const ws = mkdtempSync(join(tmpdir(), 'cc-pipeline-'));
  after(() => rmSync(ws, { recursive: true, force: true }));
  run(ws, '20261126-100000-sft-tiny-aaaa', null);
  run(ws, '20261126-101000-grpo-from-sft-bbbb', { run_id: '20261126-100000-sft-tiny-aaaa', output_dir: '/o', model_path: '/o' });
  run(ws, '20261126-102000-grpo-orphan-cccc', { run_id: '20261120-000000-gone-dddd', output_dir: '/x', model_path: '/x' });
  run(ws, '20261126-103000-self-eeee', { run_id: '20261126-103000-self-eeee', output_dir: '/s', model_path: '/s' });
  assert.deepEqual(await pipelineOf(ws, '20261126-101000-grpo-from-sft-bbbb'), ['20261126-100000-sft-tiny-aaaa', '20261126-101000-grpo-from-sft-bbbb']);
  assert.deepEqual(await pipelineOf(ws, '20261126-100000-sft-tiny-aaaa'), ['20261126-100000-sft-tiny-aaaa']);
  assert.deepEqual(await pipelineOf(ws, '20261126-102000-grpo-orphan-cccc'), ['20261126-102000-grpo-orphan-cccc'], 'a parent no longer in the store is left out');
  assert.deepEqual(await pipelineOf(ws, '20261126-103000-self-eeee'), ['20261126-103000-self-eeee'], 'a run naming itself is not a loop');
});

test("a run's first and last run_started are found in a large events.jsonl without reading it whole", async () => {
  const ws = mkdtempSync(join(tmpdir(), 'cc-started-'));
  after(() => rmSync(ws, { recursive: true, force: true }));
  const id = '20261128-120000-grpo-resumed-ffff';
  run(ws, id, null);
  const file = join(ws, '.conscience', 'runs', id, 'events.jsonl');
  // attempt 1, then ~6 MiB of samples (one quotes "run_started" in a prompt, one line is broken,
  // lines straddle the 1 MiB pieces), then attempt 2's run_started, written last without its newline
  const sample = (seq: number, prompt: string) => JSON.stringify({ type: 'samples', seq, time: seq, run_id: id, step: seq, rows: [{ prompt, completion: 'c'.repeat(300_000), rewards: {} }] });
  const lines = [
    JSON.stringify({ type: 'run_started', seq: 0, time: 1, run_id: id, world_size: 1, init_from: null, versions: { trl: '0.18.2' } }),
    ...Array.from({ length: 10 }, (_, i) => sample(i + 1, i === 4 ? 'what does {"type": "run_started"} mean?' : 'p')),
    '{"type": "run_started", broken',
    ...Array.from({ length: 10 }, (_, i) => sample(i + 11, 'p')),
  ];
  const second = JSON.stringify({ type: 'run_started', seq: 21, time: 30, run_id: id, world_size: 2, init_from: { run_id: '20261128-110000-sft-aaaa', output_dir: '/o', model_path: '/o' }, versions: { trl: '1.16.0' } });
  writeFileSync(file, lines.join('\n') + '\n' + second);
  const first = await readRunStarted(ws, id, 'first');
  const last = await readRunStarted(ws, id, 'last');
  assert.equal((first as { seq: number } | undefined)?.seq, 0);
  assert.equal((last as { seq: number } | undefined)?.seq, 21);
  assert.equal((last as { world_size: number }).world_size, 2);
  assert.equal(await readRunStarted(ws, 'no-such-run', 'last'), undefined);
  // the dashboard's pipeline reads the last attempt's init_from
  run(ws, '20261128-110000-sft-aaaa', null);
  assert.deepEqual(await pipelineOf(ws, id), ['20261128-110000-sft-aaaa', id]);
});
