// known_hosts matching with OpenSSH's meanings: plain and [host]:port names, wildcards and
// negation, hashed entries (|1|salt|hmac-sha1), @revoked; @cert-authority lines are not
// host keys and are skipped. The verdict follows StrictHostKeyChecking: a key that matches is
// trusted, a different key of the same type is "changed" (always refused), no entry is
// "unknown" (asked in the editor, refused by the CLI unless --accept-new).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFile, mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  line: number;
  marker?: '@revoked' | '@cert-authority';
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { kind: 'match'; line: number }
  | { kind: 'changed'; line: number; knownType: string }
  | { kind: 'revoked'; line: number }
  | { kind: 'unknown' };

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (parts[0] === '@revoked' || parts[0] === '@cert-authority') marker = parts.shift() as KnownHostEntry['marker'];
    else if (parts[0]?.startsWith('@')) return; // unknown marker: ignore the line, as OpenSSH does
    if (parts.length < 3) return;
    const [names, keyType, b64] = parts as [string, string, string];
    const key = Buffer.from(b64, 'base64');
    if (!key.length) return;
    const entry: KnownHostEntry = { line: i + 1, marker, patterns: [], keyType, key };
    if (names.startsWith('|1|')) {
      const [, , salt, hash] = names.split('|');
      if (!salt || !hash) return;
      entry.hashed = { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      entry.patterns = names.split(',');
    }
    out.push(entry);
  });
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Does an entry's host field name `name` (already in [host]:port form when needed)? */
export function entryMatchesName(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const h = createHmac('sha1', entry.hashed.salt).update(name).digest();
    return h.length === entry.hashed.hash.length && h.equals(entry.hashed.hash);
  }
  let positive = false;
  for (const p of entry.patterns) {
    if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(name)) return false;
    } else if (globToRegExp(p).test(name)) positive = true;
  }
  return positive;
}

/** The key type named inside an SSH public key blob (string length + name). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return '';
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString('latin1');
}

export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

export function verifyHostKey(entries: KnownHostEntry[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = hostKeyName(host, port);
  const type = keyTypeOf(key);
  const mine = entries.filter((e) => e.marker !== '@cert-authority' && entryMatchesName(e, name));
  const revoked = mine.find((e) => e.marker === '@revoked' && e.key.equals(key));
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const plain = mine.filter((e) => !e.marker);
  const same = plain.find((e) => e.key.equals(key));
  if (same) return { kind: 'match', line: same.line };
  const changed = plain.find((e) => e.keyType === type);
  if (changed) return { kind: 'changed', line: changed.line, knownType: changed.keyType };
  return { kind: 'unknown' };
}

export async function loadKnownHosts(file: string): Promise<KnownHostEntry[]> {
  try {
    return parseKnownHosts(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${file}: cannot read known_hosts: ${(err as Error).message}`);
  }
}

/** Appends a hashed entry (as `ssh-keygen -H` writes) for an accepted new key. */
export async function addKnownHost(file: string, host: string, port: number, key: Buffer): Promise<void> {
  const salt = randomBytes(20);
  const hash = createHmac('sha1', salt).update(hostKeyName(host, port)).digest();
  const line = `|1|${salt.toString('base64')}|${hash.toString('base64')} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // a file whose last line has no final newline (hand-edited) would get our entry glued onto
  // that line, corrupting both: end it first (issue #16 item 7)
  let lead = '';
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const last = Buffer.alloc(1);
      if (size > 0 && (await fh.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a) lead = '\n';
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: cannot read known_hosts: ${(err as Error).message}`);
  }
  await appendFile(file, lead + line, { mode: 0o600 });
}
