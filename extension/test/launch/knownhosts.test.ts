import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { addKnownHost, entryMatchesName, hostKeyName, keyTypeOf, loadKnownHosts, parseKnownHosts, verifyHostKey } from '../../src/core/launch/knownhosts';

function genKey(dir: string, name: string): { line: string; blob: Buffer } {
  const f = join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f]);
  assert.equal(r.status, 0, String(r.stderr));
  const [type, b64] = readFileSync(f + '.pub', 'utf8').split(/\s+/);
  return { line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64') };
}

describe('known_hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kh-test-'));
  const a = genKey(dir, 'a');
  const b = genKey(dir, 'b');

  it('names non-default ports as [host]:port', () => {
    assert.equal(hostKeyName('gpu1', 22), 'gpu1');
    assert.equal(hostKeyName('10.0.0.5', 2222), '[10.0.0.5]:2222');
  });

  it('matches plain, port and wildcard entries and honours negation', () => {
    const entries = parseKnownHosts(
      [`# comment`, `gpu1,10.0.0.5 ${a.line}`, `[gpu2]:2222 ${a.line}`, `*.lab,!bad.lab ${a.line}`, `@cert-authority *.lab ${b.line}`, 'garbage'].join('\n'),
    );
    assert.equal(verifyHostKey(entries, 'gpu1', 22, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, '10.0.0.5', 22, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, 'gpu2', 2222, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, 'gpu2', 22, a.blob).kind, 'unknown', 'port 22 is another name than [gpu2]:2222');
    assert.equal(verifyHostKey(entries, 'node7.lab', 22, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, 'bad.lab', 22, a.blob).kind, 'unknown');
    assert.equal(verifyHostKey(entries, 'node7.lab', 22, b.blob).kind, 'changed', 'a cert-authority line is not a host key');
  });

  it('matches entries hashed by ssh-keygen -H', () => {
    const f = join(dir, 'kh');
    writeFileSync(f, `[127.0.0.1]:2200 ${a.line}\ngpu9 ${a.line}\n`);
    assert.equal(spawnSync('ssh-keygen', ['-H', '-f', f]).status, 0);
    const entries = parseKnownHosts(readFileSync(f, 'utf8'));
    assert.ok(entries.every((e) => e.hashed), 'all hashed');
    assert.equal(verifyHostKey(entries, '127.0.0.1', 2200, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, 'gpu9', 22, a.blob).kind, 'match');
    assert.equal(verifyHostKey(entries, '127.0.0.1', 2201, a.blob).kind, 'unknown');
    const changed = verifyHostKey(entries, 'gpu9', 22, b.blob);
    assert.equal(changed.kind, 'changed');
    assert.equal(changed.kind === 'changed' && changed.line, 2);
  });

  it('refuses a @revoked key', () => {
    const entries = parseKnownHosts(`gpu1 ${a.line}\n@revoked * ${b.line}\n`);
    assert.equal(verifyHostKey(entries, 'gpu1', 22, b.blob).kind, 'revoked');
  });

  it('adds an accepted key as a hashed line that ssh-keygen -F finds', async () => {
    const f = join(dir, 'sub', 'known_hosts');
    await addKnownHost(f, 'newhost', 2022, a.blob);
    const entries = await loadKnownHosts(f);
    assert.equal(entries.length, 1);
    assert.ok(entries[0]!.hashed);
    assert.ok(entryMatchesName(entries[0]!, '[newhost]:2022'));
    assert.equal(keyTypeOf(a.blob), 'ssh-ed25519');
    const r = spawnSync('ssh-keygen', ['-F', '[newhost]:2022', '-f', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, 'OpenSSH reads the line we wrote');
  });
});
