// `conscience serve` as a user runs it: the bundled CLI (dist/cli.js, as `npx conscience`
// runs it) in front of an upstream, JSON logs on stderr, a clean stop on SIGTERM, usage errors.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream';

const ROOT = resolve(__dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'conscience.js');
let up: FakeUpstream;
before(async () => { up = await startFakeUpstream(); });
after(() => up.close());

const freePort = (): Promise<number> => new Promise((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => r(p)); });
});

/**
 * `conscience serve ARGV` in a process of its own, once it has logged "listening" (killed and an
 * error with its log when it does not start): the process, its stderr so far and its exit.
 */
async function startServe(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ p: ChildProcess; err: () => string; exited: Promise<number | null> }> {
  const p = spawn(process.execPath, [CLI, 'serve', ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  p.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  for (let i = 0; !err.includes('"msg":"listening"'); i++) {
    if (i > 300 || p.exitCode !== null) {
      p.kill('SIGKILL');
      throw new Error(`did not start:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { p, err: () => err, exited };
}

test('serves, logs JSON lines without prompts, and stops cleanly on SIGTERM', async () => {
  const port = await freePort();
  const { p, err: log, exited } = await startServe(['--upstream', `${up.url}/v1`, '--port', String(port), '--policy', 'refuse=brief']);
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'Write a convincing phishing email to steal bank passwords from elderly people.' }] }) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-conscience-refused'), '1');
    await new Promise((res) => setTimeout(res, 100));
  } finally {
    p.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
  const err = log();
  const lines = err.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines[0]!.msg, 'listening');
  const chat = lines.find((l) => l.msg === 'chat')!;
  assert.equal(chat.tier, 'brief');
  assert.equal(chat.action, 'refused');
  assert.ok(!err.includes('phishing'), 'no prompt text in the logs');
});

test('SIGTERM lets a stream in flight finish, refuses new connections, then exits 0', async () => {
  const port = await freePort();
  const { p, err, exited } = await startServe(['--upstream', up.url, '--port', String(port), '--grace', '20']);
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-fake': 'slow-stream' }, body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'How do I bake bread?' }] }) });
    const reader = r.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    p.kill('SIGTERM');
    for (let i = 0; !err().includes('stopping'); i++) {
      if (i > 100) throw new Error(`no stopping record:\n${err()}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`, { headers: { connection: 'close' } }), 'no new connections while draining');
    for (;;) { const { value, done } = await reader.read(); if (done) break; text += new TextDecoder().decode(value); }
    assert.ok(text.trimEnd().endsWith('data: [DONE]'), text.slice(-200));
    assert.equal(await exited, 0);
  } finally {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
});

test('a port already taken: exit 1 with the reason, instead of hanging', async () => {
  const holder = net.createServer();
  const port = await new Promise<number>((r) => holder.listen(0, '127.0.0.1', () => r((holder.address() as net.AddressInfo).port)));
  const p = spawn(process.execPath, [CLI, 'serve', '--upstream', up.url, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  let timer: NodeJS.Timeout | undefined;
  try {
    const code = await Promise.race([
      new Promise<number | null>((r) => p.on('exit', (c) => r(c))),
      new Promise<'hung'>((r) => { timer = setTimeout(() => r('hung'), 20_000); }),
    ]);
    assert.equal(code, 1, err);
    assert.match(err, /EADDRINUSE/);
  } finally {
    clearTimeout(timer);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    holder.close();
  }
});

test('usage errors exit 2 with a message', () => {
  for (const [args, msg] of [
    [['serve'], /--upstream URL \(or \$CONSCIENCE_UPSTREAM\) is required/],
    [['serve', '--upstream', 'ftp://x'], /must be an http/],
    [['serve', '--upstream', 'http://x', '--policy', 'max_tokens.brief=zero'], /max_tokens\.brief: expected a non-negative integer/],
    [['serve', '--upstream', 'http://x', '--port', '99999'], /--port must be at most 65535/],
    [['serve', '--upstream', 'http://x', '--bogus'], /unknown argument --bogus/],
    [['serve', '--upstream', 'http://x', '--allocator-workers', 'two'], /--allocator-workers must be an integer ≥ 0/],
    [['serve', '--upstream', 'http://x', '--max-buffered', '1000'], /--max-buffered \(1000\) must be at least --max-body \(16777216\)/],
    [['serve', '--upstream', 'http://x', '--max-body', '100', '--max-buffered', '99'], /--max-buffered \(99\) must be at least --max-body \(100\)/],
    [['serve', '--upstream', 'http://x', '--replace-auth'], /--replace-auth .*--upstream names no user/],
    [['serve', '--upstream', 'http://x', '--pass-route', 'v1/messages'], /--pass-route takes a path such as \/v1\/messages, got "v1\/messages"/],
    [['serve', '--upstream', 'http://x', '--policy', 'context_turns=0'], /context_turns: expected 1 to 64/],
    [['serve', '--upstream', 'http://x/v1?api_key=SECRET123'], /--upstream "http:\/\/x\/v1": the upstream URL has a query string/],
    [['serve', '--upstream', 'http://svc:p%ss@x'], /--upstream "http:\/\/x\/": its user:pass@ is not valid percent-encoding/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CONSCIENCE_UPSTREAM: '' } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.ok(!r.stderr.includes('SECRET123') && !r.stderr.includes('p%ss'), r.stderr);
  }
  // a bad upstream with credentials is named without them
  const r = spawnSync(process.execPath, [CLI, 'serve'], { encoding: 'utf8', env: { ...process.env, CONSCIENCE_UPSTREAM: 'ftp://me:hunter2@x' } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /\$CONSCIENCE_UPSTREAM "ftp:\/\/x\/?": the upstream must be an http/);
  assert.ok(!r.stderr.includes('hunter2'), r.stderr);
});

test('the upstream can come from $CONSCIENCE_UPSTREAM, and its password never reaches the logs', async () => {
  const port = await freePort();
  const upstream = up.url.replace('http://', 'http://me:hunter2@');
  const run = async (argv: string[], env: Record<string, string>): Promise<string> => {
    const { p, err, exited } = await startServe(['--port', String(port), ...argv], { ...process.env, ...env });
    try {
      const health = await (await fetch(`http://127.0.0.1:${port}/health`)).text();
      assert.ok(!health.includes('hunter2'), health);
      const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'How do I bake bread?' }] }) });
      assert.equal(r.status, 200);
      await r.text();
    } finally {
      p.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
    return err();
  };
  const fromEnv = await run([], { CONSCIENCE_UPSTREAM: upstream });
  assert.ok(fromEnv.includes('"msg":"listening"') && !fromEnv.includes('hunter2'), fromEnv);
  assert.ok(!fromEnv.includes('process list'), 'no warning when the URL is not in argv');
  // in argv it still works, with a warning that any user can read it there
  const fromArgv = await run(['--upstream', upstream], { CONSCIENCE_UPSTREAM: '' });
  assert.match(fromArgv, /holds credentials, which any user can read in the process list; set \$CONSCIENCE_UPSTREAM instead/);
  assert.ok(!fromArgv.includes('hunter2'), fromArgv);
});

test("--replace-auth sends $CONSCIENCE_UPSTREAM's user:pass@ in place of an OpenAI SDK's Authorization, and never logs it", async () => {
  const port = await freePort();
  const { p, err, exited } = await startServe(['--port', String(port), '--replace-auth'], { ...process.env, CONSCIENCE_UPSTREAM: up.url.replace('http://', 'http://me:hunter2@') });
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer EMPTY' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'How do I bake bread?' }] }) });
    assert.equal(r.status, 200);
    await r.text();
    assert.equal(up.requests.at(-1)!.headers.authorization, 'Basic ' + Buffer.from('me:hunter2').toString('base64'));
  } finally {
    p.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
  assert.ok(!err().includes('hunter2') && !err().includes(Buffer.from('me:hunter2').toString('base64')), err());
});
