// Which workspace folder a command acts in (core/folders.ts), with plain Node and real run
// stores on disk: a recipe's folder (the innermost one; the first only for a file outside every
// folder), a run named by id found in the folder whose store holds it, the Runs view flat with
// one folder and grouped by folder with several.
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { folderLabels, folderNote, folderOf, rootFor, runGroups, runKey, runRef, runRoot, type Folder } from '../../src/core/folders';
import { listRuns, runDir } from '../../src/core/runs/store';

let base = '';
let A: Folder;
let B: Folder;
let nested: Folder;
before(async () => {
  base = await mkdtemp(join(tmpdir(), 'cc-folders-'));
  A = { name: 'alpha', root: join(base, 'alpha') };
  B = { name: 'beta', root: join(base, 'beta') };
  nested = { name: 'inner', root: join(base, 'beta', 'inner') };
});
after(() => rm(base, { recursive: true, force: true }));

const hasRun = async (root: string, id: string) => access(join(runDir(root, id), 'run.json')).then(() => true, () => false);
const storeRun = async (root: string, id: string) => {
  await mkdir(runDir(root, id), { recursive: true });
  await writeFile(join(runDir(root, id), 'run.json'), JSON.stringify({ id, state: 'completed', recipe: 'recipes/r.yaml', target: 'local', host: 'localhost', createdAt: 1, updatedAt: 1 }));
};

test('a command on a file acts in the folder that holds it; the first folder only for a file outside every folder', () => {
  const folders = [A, B];
  assert.equal(rootFor(join(B.root, 'recipes/demo/tiny-cpu.yaml'), folders), B.root);
  assert.equal(rootFor(join(A.root, 'r.yaml'), folders), A.root);
  assert.equal(rootFor(B.root, folders), B.root, 'the folder itself');
  assert.equal(rootFor('/elsewhere/r.yaml', folders), A.root, 'outside every folder: the first');
  assert.equal(rootFor(undefined, folders), A.root, 'no file: the first');
  assert.equal(rootFor(join(base, 'beta-2/r.yaml'), folders), A.root, 'a sibling whose name starts with the folder\'s is not inside it');
  assert.equal(rootFor('/x/r.yaml', []), undefined, 'no folder: none');
  // a folder inside another (both in the workspace): the innermost, as VS Code's getWorkspaceFolder
  assert.equal(folderOf(join(nested.root, 'r.yaml'), [A, B, nested])?.root, nested.root);
  assert.equal(folderOf(join(nested.root, 'r.yaml'), [A, nested, B])?.root, nested.root);
});

test('a run argument: an id, or a Runs view node with its folder; anything else is none', () => {
  assert.deepEqual(runRef('20260101-x'), { id: '20260101-x' });
  assert.deepEqual(runRef({ id: 'r1', root: '/w/b', run: {} }), { id: 'r1', root: '/w/b' });
  assert.deepEqual(runRef({ id: 'r1', root: 3 }), { id: 'r1' });
  for (const bad of [undefined, null, '', 7, {}, { id: 4 }, { id: '' }, []]) assert.equal(runRef(bad), undefined, JSON.stringify(bad));
  assert.notEqual(runKey('/w/a', 'r1'), runKey('/w/b', 'r1'));
});

test('a run named by id is found in the folder whose store holds it; a named folder that is not in the workspace is not trusted', async () => {
  await storeRun(B.root, 'run-in-b');
  await storeRun(A.root, 'same-id');
  await storeRun(B.root, 'same-id');
  const folders = [A, B];
  assert.equal(await runRoot({ id: 'run-in-b' }, folders, hasRun), B.root);
  assert.equal(await runRoot({ id: 'same-id', root: B.root }, folders, hasRun), B.root, 'the node\'s folder wins');
  assert.equal(await runRoot({ id: 'same-id' }, folders, hasRun), A.root, 'by id alone: the first folder that has it');
  assert.equal(await runRoot({ id: 'run-in-b', root: '/not/a/folder' }, folders, hasRun), B.root, 'a stale folder: looked up');
  assert.equal(await runRoot({ id: 'nowhere' }, folders, hasRun), undefined);
  assert.equal(await runRoot({ id: '../escape' }, folders, hasRun), undefined, 'a bad id finds nothing (runDir refuses it)');
});

test('the Runs view: one folder lists its runs as today; several are grouped by folder, folders without runs left out', async () => {
  const runsOf = new Map([[A.root, await listRuns(A.root)], [B.root, await listRuns(B.root)]]);
  const one = runGroups([B], runsOf);
  assert.ok('runs' in one);
  assert.deepEqual(one.runs.map((r) => r.id).sort(), ['run-in-b', 'same-id']);
  const empty = { name: 'empty', root: join(base, 'empty') };
  const several = runGroups([empty, A, B], new Map([...runsOf, [empty.root, []]]));
  assert.ok('groups' in several);
  assert.deepEqual(several.groups.map((g) => [g.label, g.runs.map((r) => r.id).sort()]), [['alpha', ['same-id']], ['beta', ['run-in-b', 'same-id']]]);
  const none = runGroups([A, B], new Map());
  assert.ok('groups' in none && none.groups.length === 0, 'no runs anywhere: nothing (the view shows its welcome)');
  assert.ok('runs' in runGroups([], new Map()) , 'no folder: no runs');
});

test('folders that share a name are told apart by their paths; a pick names the folder only when there are several', () => {
  const twin = { name: 'alpha', root: '/other/alpha' };
  const labels = folderLabels([A, B, twin]);
  assert.equal(labels.get(B.root), 'beta');
  assert.equal(labels.get(A.root), `alpha (${A.root})`);
  assert.equal(labels.get(twin.root), 'alpha (/other/alpha)');
  assert.equal(folderNote(A.root, [A]), undefined);
  assert.equal(folderNote(B.root, [A, B]), 'beta');
});
