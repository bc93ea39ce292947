// Issue #16 item 7: `--accept-new` on a known_hosts without a final newline glued the new
// entry onto the last line, corrupting both. OpenSSH (ssh-keygen -F) must still find both.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { addKnownHost, loadKnownHosts, verifyHostKey } from '../../src/core/launch/knownhosts';

function genKey(dir: string, name: string): { line: string; blob: Buffer } {
  const f = join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f]);
  assert.equal(r.status, 0, String(r.stderr));
  const [type, b64] = readFileSync(f + '.pub', 'utf8').split(/\s+/);
  return { line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64') };
}

it('accepting a new key into a known_hosts without a final newline keeps its last line intact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kh-nl-'));
  const old = genKey(dir, 'old');
  const fresh = genKey(dir, 'new');
  const f = join(dir, 'known_hosts');
  writeFileSync(f, `gpu1 ${old.line}`); // hand-edited: no newline at the end
  await addKnownHost(f, 'gpu2', 2222, fresh.blob);
  const entries = await loadKnownHosts(f);
  assert.equal(entries.length, 2);
  assert.equal(verifyHostKey(entries, 'gpu1', 22, old.blob).kind, 'match', 'the existing entry still matches');
  assert.equal(verifyHostKey(entries, 'gpu2', 2222, fresh.blob).kind, 'match', 'the new entry matches');
  assert.equal(readFileSync(f, 'utf8').split('\n').length, 3, 'two lines, each ended');
  for (const name of ['gpu1', '[gpu2]:2222'])
    assert.equal(spawnSync('ssh-keygen', ['-F', name, '-f', f]).status, 0, `OpenSSH finds ${name}`);
  // a file that ends properly gets no blank line
  await addKnownHost(f, 'gpu3', 22, fresh.blob);
  assert.doesNotMatch(readFileSync(f, 'utf8'), /\n\n/);
});
