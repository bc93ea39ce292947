// The recipe a run trains with is the one it was launched (or resumed) with: the trainer reads
// its own copy, written once at start, byte for byte the run's kept recipe.yaml, beside the
// synced recipe so paths in it resolve as before. A later launch that syncs an edited recipe
// does not reach a run whose trainer has not read its --config yet (a slow import, a SLURM
// queue, a requeue). And two resumes of one run at the same moment start one trainer: the
// second finds the run preparing and is refused. Real launches on the local target, whose
// "python" waits for a gate file before it reads --config and records what it read.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cancelRun, launchRun, resumeRun } from '../../src/core/launch/launcher';
import { LaunchSession } from '../../src/core/launch/session';
import type { Target } from '../../src/core/launch/targets';
import { readRun, runDir } from '../../src/core/runs/store';
import { REPO } from '../hardening/helpers';

const roots: string[] = [];
after(() => {
  for (const r of roots) {
    // no stand-in trainer outlives the test (each waits at most 60 s for its gate anyway)
    writeFileSync(join(r, 'gate'), '');
    rmSync(r, { recursive: true, force: true });
  }
});

const RECIPE = 'recipes/demo/sweep.yaml';

/**
 * A workspace with the demo recipe as recipes/demo/sweep.yaml and a local target `slow` whose
 * python, started as the trainer, says so (<root>/seen/waiting.<token>), waits for <root>/gate,
 * then keeps what --config holds (<root>/seen/<run id>.<ns>.yaml) and whether the demo's
 * prompt file is found beside it (.beside), as the runtime resolves a relative path.
 */
function workspace(): { root: string; session: LaunchSession } {
  const root = mkdtempSync(join(tmpdir(), 'conscience-recipe-run-'));
  roots.push(root);
  mkdirSync(join(root, 'recipes', 'demo'), { recursive: true });
  mkdirSync(join(root, 'seen'));
  demoRecipe(root);
  copyFileSync(join(REPO, 'recipes', 'demo', 'grpo-prompts.jsonl'), join(root, 'recipes', 'demo', 'grpo-prompts.jsonl'));
  setRate(root, '1.0e-4');
  const python = join(root, 'slow-python');
  writeFileSync(python, [
    '#!/bin/sh',
    'if [ "$1" = "-c" ]; then exec python3 "$@"; fi',
    'cfg=; prev=; for a in "$@"; do [ "$prev" = "--config" ] && cfg=$a; prev=$a; done',
    `seen='${root}/seen'`,
    'touch "$seen/waiting.$CONSCIENCE_LAUNCH_TOKEN"',
    'i=0',
    `while [ ! -e '${root}/gate' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`,
    'at=$(date +%s%N)',
    '[ -e "$(dirname -- "$cfg")/grpo-prompts.jsonl" ] && touch "$seen/$CONSCIENCE_RUN_ID.$at.beside"',
    'cp -- "$cfg" "$seen/$CONSCIENCE_RUN_ID.$at.tmp" && mv -- "$seen/$CONSCIENCE_RUN_ID.$at.tmp" "$seen/$CONSCIENCE_RUN_ID.$at.yaml"',
    'exit 1',
    '',
  ].join('\n'), { mode: 0o755 });
  writeFileSync(join(root, 'conscience.targets.yaml'), `slow:\n  type: local\n  python: ${python}\n  cancelGrace: 1\n`);
  const target: Target = { name: 'slow', type: 'local', python, cancelGrace: 1 };
  return { root, session: new LaunchSession(root, new Map([['slow', target]]), {}) };
}

/** The demo recipe with its prompts in a file beside it (a path relative to the recipe's folder, synced with it). */
function demoRecipe(root: string): void {
  const text = readFileSync(join(REPO, 'recipes', 'demo', 'tiny-cpu.yaml'), 'utf8').replace(/^dataset_name:.*$/m, 'dataset_name: ./grpo-prompts.jsonl');
  writeFileSync(join(root, RECIPE), text);
}

function setRate(root: string, rate: string): void {
  const f = join(root, RECIPE);
  const text = readFileSync(f, 'utf8');
  const next = /^learning_rate:.*$/m.test(text) ? text.replace(/^learning_rate:.*$/m, `learning_rate: ${rate}`) : `${text}learning_rate: ${rate}\n`;
  writeFileSync(f, next);
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** What each start of run `id` read as its --config (one file per start), oldest first. */
function readBy(root: string, id: string): { text: string; beside: boolean }[] {
  const dir = join(root, 'seen');
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${id}.`) && f.endsWith('.yaml'))
    .map((f) => ({ f, t: BigInt(f.slice(id.length + 1, -'.yaml'.length)) }))
    .sort((a, b) => (a.t < b.t ? -1 : 1))
    .map(({ f }) => ({ text: readFileSync(join(dir, f), 'utf8'), beside: existsSync(join(dir, f.replace(/\.yaml$/, '.beside'))) }));
}

const waiting = (root: string) => readdirSync(join(root, 'seen')).filter((f) => f.startsWith('waiting.'));
const rateOf = (text: string) => text.match(/^learning_rate: (.*)$/m)?.[1];

test("a run trains with the recipe it was launched with, not one launched after it before its trainer read --config; a resume with the resume's", async () => {
  const { root, session } = workspace();
  try {
    const a = (await launchRun(session, RECIPE, 'slow')).run;
    setRate(root, '5.0e-6');
    const b = (await launchRun(session, RECIPE, 'slow')).run;
    // both trainers are up and have not read their --config yet
    await until('both trainers to start', () => waiting(root).length === 2);
    writeFileSync(join(root, 'gate'), '');
    const [ra] = await until('run A to read its recipe', () => (readBy(root, a.id).length ? readBy(root, a.id) : undefined));
    const [rb] = await until('run B to read its recipe', () => (readBy(root, b.id).length ? readBy(root, b.id) : undefined));
    assert.equal(rateOf(ra!.text), '1.0e-4', 'run A trained with the recipe launched after it');
    assert.equal(rateOf(rb!.text), '5.0e-6');
    // what the trainer read is what the run keeps as its recipe (compare's config diff)
    assert.equal(ra!.text, readFileSync(join(runDir(root, a.id), 'recipe.yaml'), 'utf8'));
    assert.equal(rb!.text, readFileSync(join(runDir(root, b.id), 'recipe.yaml'), 'utf8'));
    // a path in the recipe resolves as before: the demo's prompt file is beside the file read
    assert.ok(ra!.beside && rb!.beside, 'the relative prompt file is not beside the recipe the trainer read');

    // resumed from an edited recipe: this attempt reads the edit, kept as recipe.yaml
    await until('run A to end', () => existsSync(join(a.remoteDir, 'exit_code')));
    setRate(root, '3.0e-5');
    await resumeRun(session, a.id);
    setRate(root, '7.0e-7');
    const again = await until('the resumed attempt to read its recipe', () => (readBy(root, a.id).length === 2 ? readBy(root, a.id) : undefined));
    assert.equal(rateOf(again[1]!.text), '3.0e-5');
    assert.equal(again[1]!.text, readFileSync(join(runDir(root, a.id), 'recipe.yaml'), 'utf8'));
    assert.equal(rateOf(readFileSync(join(runDir(root, a.id), 'recipe.before-attempt-2.yaml'), 'utf8')), '1.0e-4');
  } finally {
    await session.close();
  }
});

test('two resumes of one run at the same moment start one trainer; the other is refused as preparing, and cancel stops the run', async () => {
  const { root, session } = workspace();
  const other = new LaunchSession(root, session.targets, {});
  try {
    writeFileSync(join(root, 'gate'), '');
    const a = (await launchRun(session, RECIPE, 'slow')).run;
    await until('run A to end', () => existsSync(join(a.remoteDir, 'exit_code')));
    unlinkSync(join(root, 'gate'));
    for (const f of waiting(root)) unlinkSync(join(root, 'seen', f));

    const both = await Promise.allSettled([resumeRun(session, a.id), resumeRun(other, a.id)]);
    const started = both.filter((r) => r.status === 'fulfilled');
    const refused = both.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(started.length, 1, `${started.length} resumes started a trainer: ${refused.map((r) => (r.reason as Error).message).join('; ')}`);
    assert.match((refused[0]!.reason as Error).message, new RegExp(`run ${a.id} is preparing; cancel it before resuming`));
    await until('the trainer to start', () => waiting(root).length >= 1);
    // a second trainer would have started by now (the first did)
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(waiting(root).length, 1, 'two trainers were started in one output folder');
    const rec = (await readRun(root, a.id))!;
    assert.equal(rec.attempts, 2);

    // cancel stops the one trainer: nothing of the run is left
    const c = await cancelRun(session, a.id, 1);
    assert.ok(['cancelling', 'cancelled'].includes(c.state), c.state);
    await until('no process of the run left', () => !pgroupAlive(c.pgid!));
  } finally {
    await session.close();
    await other.close();
  }
});

test('a resume that cannot be planned puts the run back as it was, with why', async () => {
  const { root, session } = workspace();
  try {
    writeFileSync(join(root, 'gate'), '');
    const a = (await launchRun(session, RECIPE, 'slow')).run;
    await until('run A to end', () => existsSync(join(a.remoteDir, 'exit_code')));
    rmSync(join(root, RECIPE));
    await assert.rejects(resumeRun(session, a.id), /recipe not found/);
    const rec = (await readRun(root, a.id))!;
    assert.equal(rec.state, 'failed');
    assert.equal(rec.attempts, 1);
    assert.match(rec.error ?? '', /resume failed: .*recipe not found/);
    // and it can be resumed once the recipe is back
    demoRecipe(root);
    const again = await resumeRun(session, a.id);
    assert.equal(again.run.attempts, 2);
  } finally {
    await session.close();
  }
});

function pgroupAlive(pgid: number): boolean {
  try {
    return execFileSync('ps', ['-o', 'stat=', '-g', String(pgid)], { encoding: 'utf8' }).split('\n').some((s) => s.trim() && !s.startsWith('Z'));
  } catch {
    return false; // ps found none
  }
}
