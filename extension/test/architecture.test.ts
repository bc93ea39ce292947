// docs/architecture.md lists every room: each folder of core/, webview/src/, the runtime
// package and the repository's top level that holds code appears in its Rooms table.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');
const dirs = (rel: string) => readdirSync(join(ROOT, rel), { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.') && d.name !== '__pycache__').map((d) => d.name);

test('docs/architecture.md names every room that exists', () => {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Rooms'), doc.indexOf('## Contracts between rooms'));
  const rooms = [
    ...dirs('extension/src/core').map((d) => `extension/src/core/${d}/`),
    'extension/src/editor/', 'extension/src/cli/',
    ...dirs('webview/src').map((d) => `${d}/`),
    'runtime/conscience/', 'runtime/conscience/allocator/',
    'schemas/', 'recipes/', 'models/allocator/', 'bench/', 'scripts/', 'demo/', 'media/',
  ];
  const missing = rooms.filter((r) => !table.includes(`\`${r}`));
  assert.deepEqual(missing, [], `rooms missing from docs/architecture.md: ${missing.join(', ')}`);
});

test('every command the extension contributes starts its room: extension.ts lists it under a room', () => {
  // Activation loads no room (extension.ts); a contributed command missing from every room's
  // `commands` list would answer "command not found" until something else started its room.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { contributes: { commands: Array<{ command: string }> } };
  const src = readFileSync(join(ROOT, 'extension/src/extension.ts'), 'utf8');
  const listed = new Set([...src.matchAll(/commands: \[([^\]]*)\]/g)].flatMap((m) => [...m[1]!.matchAll(/'([\w.]+)'/g)].map((x) => x[1]!)));
  const contributed = pkg.contributes.commands.map((c) => c.command);
  assert.ok(contributed.length >= 10, `package.json contributes ${contributed.length} commands`);
  assert.deepEqual(contributed.filter((c) => !listed.has(c)), [], 'contributed commands no room lists');
  assert.deepEqual([...listed].filter((c) => !contributed.includes(c)), [], 'listed commands package.json does not contribute');
});
