// The editor adapters' lifecycle rules (core/lifecycle.ts), with plain Node: a replaced launch
// session closed after its last monitor (editor/launch.ts), the gateway's terminal disposed with
// the extension (editor/serve.ts), no reader started by a dashboard panel closed while a run's
// status was read (editor/dashboard.ts), a failed eval CSV export reported (editor/eval.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Lifetime, reported, SessionHolder, Slot } from '../../src/core/lifecycle';

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

// The adapters are thin and need VS Code to run; what they must keep calling is checked in their
// source, so reverting one to the code before these rules fails here.
test('the editor adapters use these rules', () => {
  const src = (f: string) => readFileSync(join(import.meta.dirname, '../../src/editor', f), 'utf8');
  const launch = src('launch.ts');
  assert.match(launch, /new SessionHolder<LaunchSession>\(\)/);
  assert.match(launch, /sessions\.obtain\(root, /);
  assert.match(launch, /sessions\.use\(id, s\)/);
  assert.equal(launch.match(/void sessions\.release\(id\)/g)?.length, 2, 'both ends of a monitor release its session');
  assert.match(launch, /sessions\.dispose\(\)/);
  assert.doesNotMatch(launch, /session\??\.close\(\)/, 'no session closed outside the holder');
  assert.match(src('serve.ts'), /new Slot<vscode\.Terminal>\(context\.subscriptions\)/);
  assert.match(src('eval.ts'), /onDidReceiveMessage\(reported\(/);
  const dashboard = src('dashboard.ts');
  assert.match(dashboard, /this\.readers\.start\(\(\) => runFeed\.followRun\(/);
  assert.match(dashboard, /this\.readers\.close\(\)/);
});
