// The editor adapters' lifecycle rules (core/lifecycle.ts), with plain Node: a replaced launch
// session closed after its last monitor (editor/launch.ts), the gateway's terminal disposed with
// the extension (editor/serve.ts), no reader started by a dashboard panel closed while a run's
// status was read (editor/dashboard.ts), a failed eval CSV export reported (editor/eval.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Lifetime, OnePerKey, Recent, reported, SessionHolder, Slot } from '../../src/core/lifecycle';

/** A session that counts its closes; `root` as LaunchSession has it. */
class FakeSession {
  closes = 0;
  constructor(readonly root: string) {}
  async close(): Promise<void> {
    this.closes++;
  }
}

/** Makes s the current session the way editor/launch.ts does: obtain() under its root. */
const open = (h: SessionHolder<FakeSession>, s: FakeSession) => h.obtain(s.root, (x) => x.root, async () => s);

test('a session nothing follows runs on is closed when it is replaced', async () => {
  const h = new SessionHolder<FakeSession>();
  const s = new FakeSession('/ws');
  await open(h, s);
  await h.reset();
  assert.equal(s.closes, 1);
  assert.equal(h.current, undefined);
  assert.equal(h.isRetired(s), false);
});

test('a session replaced while followed runs use it is retired, and closed after the last of them ends', async () => {
  const h = new SessionHolder<FakeSession>();
  const old = new FakeSession('/ws');
  await open(h, old);
  h.use('run-a', old);
  h.use('run-b', old);
  // a launch (or a token change, an edited targets file, a failed command) replaces the session
  await h.reset();
  assert.equal(old.closes, 0, 'not closed under the monitors that still use it');
  assert.equal(h.isRetired(old), true);
  const next = new FakeSession('/ws');
  await open(h, next);
  h.use('run-c', next);
  await h.release('run-a');
  assert.equal(old.closes, 0, 'run-b still uses it');
  await h.release('run-b');
  assert.equal(old.closes, 1, 'closed after its last monitor');
  assert.equal(h.isRetired(old), false);
  await h.release('run-b'); // a second release of the same run closes nothing twice
  assert.equal(old.closes, 1);
  assert.equal(next.closes, 0, 'the current session stays open');
  assert.equal(h.current, next);
});

test('the current session is not closed when the runs it follows end', async () => {
  const h = new SessionHolder<FakeSession>();
  const s = new FakeSession('/ws');
  await open(h, s);
  h.use('run-a', s);
  await h.release('run-a');
  assert.equal(s.closes, 0);
  assert.equal(h.current, s);
  await h.reset();
  assert.equal(s.closes, 1, 'no run uses it any more: closed on replacement');
});

test('disposing closes the current session and every retired one', async () => {
  const h = new SessionHolder<FakeSession>();
  const old = new FakeSession('/a');
  await open(h, old);
  h.use('run-a', old);
  await h.reset();
  const cur = new FakeSession('/b');
  await open(h, cur);
  h.dispose();
  assert.equal(old.closes, 1);
  assert.equal(cur.closes, 1);
  await h.release('run-a'); // the monitor ends after the extension: no second close
  assert.equal(old.closes, 1);
});

class FakeTerminal {
  disposed = 0;
  dispose(): void {
    this.disposed++;
  }
}

test("the gateway's terminal is disposed with the extension: the slot joins its owner's disposables", () => {
  const subscriptions: Array<{ dispose(): unknown }> = [];
  const slot = new Slot<FakeTerminal>(subscriptions);
  const t = slot.set(new FakeTerminal());
  assert.equal(slot.current, t);
  for (const d of subscriptions) d.dispose(); // what VS Code does with context.subscriptions
  assert.equal(t.disposed, 1);
  assert.equal(slot.current, undefined);
});

test('a new terminal in the slot disposes the one before; one that closed by itself is forgotten, not disposed', () => {
  const slot = new Slot<FakeTerminal>([]);
  const a = slot.set(new FakeTerminal());
  const b = slot.set(new FakeTerminal());
  assert.equal(a.disposed, 1);
  assert.equal(slot.set(b), b);
  assert.equal(b.disposed, 0, 'setting the same one again keeps it');
  assert.equal(slot.forget(a), false, 'an old terminal closing is not the current one');
  assert.equal(slot.current, b);
  assert.equal(slot.forget(b), true);
  assert.equal(b.disposed, 0);
  assert.equal(slot.current, undefined);
  slot.dispose();
  assert.equal(b.disposed, 0, 'nothing left to dispose');
});

/** A promise and its resolve, for an await a test ends when it wants. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test("a dashboard panel closed while a run's status is read starts no reader for it", async () => {
  const readers = new Lifetime<{ close(): void }>();
  let started = 0;
  const status = deferred();
  // DashboardPanel.attach: await the run's status, then start its disk reader
  const attach = (async () => {
    await status.promise;
    readers.start(() => {
      started++;
      return { close() {} };
    });
  })();
  readers.close(); // the panel is closed while the status is read
  status.resolve();
  await attach;
  assert.equal(started, 0, 'no reader started, so none left running');
  assert.equal(readers.closed, true);
});

test("a panel's readers are closed with it", () => {
  const readers = new Lifetime<{ closed: number; close(): void }>();
  const mk = () => ({ closed: 0, close() { this.closed++; } });
  const a = readers.start(mk)!;
  const b = readers.start(mk)!;
  assert.equal(readers.closed, false);
  readers.close();
  assert.deepEqual([a.closed, b.closed], [1, 1]);
  readers.close();
  assert.deepEqual([a.closed, b.closed], [1, 1], 'closed once');
  assert.equal(readers.start(mk), undefined);
});

test('a failed eval CSV export is reported, not an unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const errors: string[] = [];
    const onMessage = async (m: { type: string }): Promise<void> => {
      if (m.type === 'exportCsv') throw new Error("EACCES: permission denied, open '/ro/results.csv'");
    };
    const listener = reported(onMessage, (err) => errors.push((err as Error).message));
    assert.equal(listener({ type: 'exportCsv' }), undefined);
    listener({ type: 'ready' });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(errors, ["EACCES: permission denied, open '/ro/results.csv'"]);
    assert.deepEqual(unhandled, []);
    // a handler that throws before its first await (not an async function) is reported too
    const sync = reported((): Promise<void> => { throw new Error('bad'); }, (err) => errors.push((err as Error).message));
    sync();
    assert.deepEqual(errors.slice(1), ['bad']);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('two commands at once open one session, and share it', async () => {
  const h = new SessionHolder<FakeSession>();
  let opened = 0;
  let go!: () => void;
  const gate = new Promise<void>((r) => { go = r; });
  const open = async () => { opened++; await gate; return new FakeSession('/ws'); };
  const a = h.obtain('/ws', (s) => s.root, open);
  const b = h.obtain('/ws', (s) => s.root, open);
  go();
  const [sa, sb] = await Promise.all([a, b]);
  assert.equal(opened, 1);
  assert.equal(sa, sb);
  assert.equal(h.current, sa);
  assert.equal(await h.obtain('/ws', (s) => s.root, open), sa, 'the current session is reused');
  assert.equal(opened, 1);
});

test('a session for another folder waits for the one being opened, then replaces and closes it', async () => {
  const h = new SessionHolder<FakeSession>();
  let go!: () => void;
  const gate = new Promise<void>((r) => { go = r; });
  const first = h.obtain('/a', (s) => s.root, async () => { await gate; return new FakeSession('/a'); });
  const second = h.obtain('/b', (s) => s.root, async () => new FakeSession('/b'));
  go();
  const sa = await first;
  const sb = await second;
  assert.equal(sb.root, '/b');
  assert.equal(h.current, sb);
  assert.equal(sa.closes, 1, 'the replaced session, which nothing used, is closed');
});

test('a reset while a session opens drops that session once it is open', async () => {
  const h = new SessionHolder<FakeSession>();
  let go!: () => void;
  const gate = new Promise<void>((r) => { go = r; });
  const p = h.obtain('/ws', (s) => s.root, async () => { await gate; return new FakeSession('/ws'); });
  const reset = h.reset();
  go();
  const s = await p;
  await reset;
  assert.equal(h.current, undefined);
  assert.equal(s.closes, 1);
  const next = await h.obtain('/ws', (x) => x.root, async () => new FakeSession('/ws'));
  assert.notEqual(next, s, 'the next command opens a new session (a changed token takes effect)');
});

test('a session still opening when the extension ends is closed once it opens, and no one gets it', async () => {
  const h = new SessionHolder<FakeSession>();
  let go!: () => void;
  const gate = new Promise<void>((r) => { go = r; });
  const s = new FakeSession('/ws');
  // an SSH connect, or the unknown-host-key question, still pending at deactivation
  const p = h.obtain('/ws', (x) => x.root, async () => { await gate; return s; });
  const same = h.obtain('/ws', (x) => x.root, async () => new FakeSession('/ws'));
  await new Promise((r) => setImmediate(r));
  h.dispose();
  go();
  await assert.rejects(p, /the extension is ending/);
  await assert.rejects(same, /the extension is ending/, 'a caller sharing it gets no session either');
  assert.equal(s.closes, 1, 'closed, not leaked');
  assert.equal(h.current, undefined);
  let opened = 0;
  await assert.rejects(h.obtain('/ws', (x) => x.root, async () => { opened++; return new FakeSession('/ws'); }), /the extension is ending/);
  assert.equal(opened, 0, 'nothing is opened after');
  h.dispose();
  assert.equal(s.closes, 1, 'a second dispose closes nothing twice');
});

test('a session that fails to close at deactivation is no unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const h = new SessionHolder<FakeSession>();
    const s = new FakeSession('/ws');
    s.close = async () => { throw new Error('channel closed'); };
    const old = new FakeSession('/old');
    old.close = () => { throw new Error('sync failure'); };
    await open(h, old);
    h.use('run-a', old);
    await h.reset(); // retired: run-a still follows on it
    await open(h, s);
    h.dispose();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

/** A made thing that counts how often it is made; ends by calling the release it was given. */
class Made {
  constructor(readonly n: number, readonly release: () => void) {}
}

test('two quick requests for one key make one thing: the second gets the first once it is made', async () => {
  const reg = new OnePerKey<Made>();
  let made = 0;
  let go!: () => void;
  const gate = new Promise<void>((r) => { go = r; });
  // the dashboard reading the runs' records, a monitor waiting for its session
  const make = async (release: () => void) => { await gate; return new Made(++made, release); };
  const a = reg.obtain('run', make);
  const b = reg.obtain('run', make);
  assert.equal(reg.has('run'), true, 'taken before the await');
  go();
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(made, 1, 'one dashboard, one monitor');
  assert.equal(ra.value, rb.value);
  assert.deepEqual([ra.made, rb.made], [true, false], 'the second reveals the first');
  assert.deepEqual(reg.values(), [ra.value]);
  const other = await reg.obtain('other', make);
  assert.equal(other.value!.n, 2, 'another key gets its own');
  assert.equal(reg.size, 2);
  // the first ends (its panel closed, its run settled): the next request makes a new one
  ra.value!.release();
  assert.equal(reg.has('run'), false);
  const c = await reg.obtain('run', make);
  assert.deepEqual([c.value!.n, c.made], [3, true]);
});

test("a replaced one's end leaves the newer one kept; a failed or empty make keeps nothing", async () => {
  const reg = new OnePerKey<Made>();
  let n = 0;
  const make = async (release: () => void) => new Made(++n, release);
  const first = (await reg.obtain('k', make)).value!;
  // VS Code restores a panel for the same runs: it replaces the first, which then closes
  const restored = (await reg.obtain('k', make, true)).value!;
  first.release();
  assert.equal(reg.has('k'), true, 'the restored panel is still the one kept');
  assert.deepEqual(reg.values(), [restored]);
  const again = await reg.obtain('k', make);
  assert.deepEqual([again.value, again.made], [restored, false]);
  restored.release();
  assert.equal(reg.has('k'), false);

  // the session could not be opened: the error goes to every caller, and the next one tries again
  let fail = true;
  const flaky = async (release: () => void) => {
    await new Promise((r) => setImmediate(r));
    if (fail) throw new Error('no session');
    return new Made(++n, release);
  };
  const x = reg.obtain('run', flaky);
  const y = reg.obtain('run', flaky);
  await assert.rejects(x, /no session/);
  await assert.rejects(y, /no session/);
  assert.equal(reg.has('run'), false);
  fail = false;
  assert.equal((await reg.obtain('run', flaky)).made, true);
  assert.equal((await reg.obtain('none', async () => undefined)).value, undefined);
  assert.equal(reg.has('none'), false);
  // one that ends while it is still being made (its run settled at once) is not kept either
  const quick = await reg.obtain('quick', async (release) => { const m = new Made(++n, release); release(); return m; });
  assert.equal(quick.made, true);
  assert.equal(reg.has('quick'), false);
});

// The adapters are thin and need VS Code to run; what they must keep calling is checked in their
// source, so reverting one to the code before these rules fails here.
test('the editor adapters use these rules', () => {
  const src = (f: string) => readFileSync(join(import.meta.dirname, '../../src/editor', f), 'utf8');
  const launch = src('launch.ts');
  assert.match(launch, /new SessionHolder<LaunchSession>\(\)/);
  assert.match(launch, /sessions\.obtain\(root, /);
  // a run is keyed by its workspace folder and id (runKey): two folders may hold the same id
  assert.match(launch, /const key = runKey\(root, id\);/);
  assert.match(launch, /sessions\.use\(key, s\)/);
  assert.equal(launch.match(/void sessions\.release\(key\)/g)?.length, 2, 'both ends of a monitor release its session');
  assert.match(launch, /sessions\.dispose\(\)/);
  assert.match(launch, /const monitors = new OnePerKey<RunMonitor>\(\)/);
  assert.match(launch, /await monitors\.obtain\(runKey\(root, id\), /);
  assert.doesNotMatch(launch, /monitors\.(set|delete)\(/, 'a monitor is kept and forgotten by the registry only');
  assert.equal(launch.match(/\brelease\(\);/g)?.length, 2, 'both ends of a monitor release its key');
  assert.doesNotMatch(launch, /session\??\.close\(\)/, 'no session closed outside the holder');
  assert.match(src('serve.ts'), /new Slot<vscode\.Terminal>\(context\.subscriptions\)/);
  assert.match(src('eval.ts'), /onDidReceiveMessage\(reported\(/);
  const dashboard = src('dashboard.ts');
  assert.match(dashboard, /this\.readers\.start\(\(\) => runFeed\.followRun\(/);
  assert.match(dashboard, /this\.readers\.close\(\)/);
  assert.match(dashboard, /const panels = new OnePerKey<DashboardPanel>\(\)/);
  assert.match(dashboard, /await panels\.obtain\(key, /);
  assert.match(dashboard, /p\.panel\.onDidDispose\(release\)/);
  assert.doesNotMatch(dashboard, /panels\.(set|delete)\(/);
});

test('Recent keeps the last N used (a run output channel per run), disposing the least recently used first, and the rest on dispose', () => {
  const disposed: string[] = [];
  const item = (name: string) => ({ name, dispose: () => disposed.push(name) });
  const r = new Recent<ReturnType<typeof item>>(2);
  r.set('a', item('a'));
  r.set('b', item('b'));
  assert.equal(r.get('a')?.name, 'a'); // a is now the most recent
  r.set('c', item('c'));
  assert.deepEqual(disposed, ['b']);
  assert.equal(r.has('b'), false);
  assert.equal(r.peek('a')?.name, 'a'); // a peek is not a use
  r.set('d', item('d'));
  assert.deepEqual(disposed, ['b', 'a']);
  r.set('d', item('d2')); // replacing disposes the replaced one
  assert.deepEqual(disposed, ['b', 'a', 'd']);
  assert.equal(r.size, 2);
  r.dispose();
  assert.deepEqual(disposed.sort(), ['a', 'b', 'c', 'd', 'd2']);
  assert.equal(r.size, 0);
  assert.throws(() => new Recent(0), /limit must be 1 or more/);
});
