// The monitor's copy of a host's events.jsonl (core/runs/copy.ts): a host file cut and written
// again past the offset copied, its new line ending exactly where the old one did (same line
// lengths, as a requeued attempt logging the same steps writes them), must not be taken for
// the old one: the local copy, which the dashboard and the Runs view read, gets every line
// written after the cut, and shows what the host's file says.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RunSeries } from '../../src/core/dashboard/series';
import { copyEventLines } from '../../src/core/runs/copy';
import { readEventsFrom } from '../../src/core/runs/events';

const ev = (seq: number, attempt: string) => JSON.stringify({ type: 'metrics', seq, time: 1000 + seq, step: seq, values: { reward: attempt === 'a' ? 1000 + seq : 2000 + seq } }) + '\n';
const build = (from: number, to: number, attempt: string) => Array.from({ length: to - from + 1 }, (_, i) => ev(from + i, attempt)).join('');

/** What the dashboard's charts show for a file: each step's reward. */
async function shown(file: string): Promise<Array<[number, number]>> {
  const s = new RunSeries('r');
  for (const e of (await readEventsFrom(file, 0)).events) if (e.type === 'metrics') s.append(e);
  return [...s.step].map((step, i) => [step, s.col('reward')![i]!]);
}

/** The host's readFrom (core/launch/host.ts): the bytes from an offset, undefined when the file is missing. */
const readFrom = (file: string) => async (offset: number): Promise<Buffer | undefined> => {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf;
  } finally {
    await fh.close();
  }
};

test('a host file cut and regrown past the copied offset, a line ending where the old one did: the copy takes every new line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ev-copy-'));
  try {
    const host = join(dir, 'host.jsonl');
    const local = join(dir, 'local.jsonl');
    writeFileSync(host, build(10, 30, 'a'));
    const first = await copyEventLines(readFrom(host), local, 0);
    assert.equal(first.bytes.length, readFileSync(host).length);
    // cut after seq 20; the next attempt logs 21..40 (same lengths): byte `offset - 1` still ends a line
    writeFileSync(host, build(10, 20, 'a') + build(21, 40, 'b'));
    assert.equal(readFileSync(host)[first.hostOffset - 1], 0x0a);
    const r = await copyEventLines(readFrom(host), local, first.shift);
    assert.deepEqual(await shown(local), await shown(host), 'the dashboard shows what the host file says');
    assert.deepEqual((await shown(local)).slice(11), Array.from({ length: 20 }, (_, i) => [21 + i, 2021 + i]));
    assert.match(r.cut ?? '', /was cut under the copy .*the first \d+ are unchanged/);
    // and then only what is new
    writeFileSync(host, build(10, 20, 'a') + build(21, 42, 'b'));
    const next = await copyEventLines(readFrom(host), local, r.shift);
    assert.equal(next.cut, undefined);
    assert.equal(next.bytes.toString(), build(41, 42, 'b'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
