// Who closes what, and when, for the editor's adapters: the rules are here (vscode-free, tested
// with plain Node), the adapters in editor/ only call them.
// - SessionHolder: the launch room's current session; one replaced while run monitors still use
//   it is retired, and closed after the last of them lets go (editor/launch.ts).
// - Slot: at most one disposable at a time, disposed with the extension (the gateway's terminal,
//   editor/serve.ts).
// - Lifetime: what a panel starts after an await; nothing starts once the panel has closed
//   (a run's disk reader, editor/dashboard.ts).
// - OnePerKey: one run monitor per run, one dashboard panel per set of runs, even when asked
//   for again while the first is still being made (editor/launch.ts, editor/dashboard.ts).
// - Recent: at most N of something kept, the least recently used disposed first (a run's
//   output channel, editor/launch.ts).
// - reported: an async event handler whose failure is reported, not an unhandled rejection
//   (the eval report's messages, editor/eval.ts).

export interface Closable {
  close(): void | Promise<void>;
}

/** The current session, and the sessions that users (run monitors, by run id) still hold.
 * Replacing the current one while a user holds it retires it instead of closing it under that
 * user (which would reopen its connections on a session nothing could close any more); a retired
 * session is closed when its last user is released. */
export class SessionHolder<S extends Closable> {
  private cur: S | undefined;
  private readonly users = new Map<string, S>();
  private readonly retired = new Set<S>();
  /** dispose() was called: a session that finishes opening is closed, none is opened after */
  private disposed = false;

  get current(): S | undefined {
    return this.cur;
  }

  private opening: { key: string; session: Promise<S> } | undefined;

  /** The current session when keyOf(current) is `key`; otherwise the current one is dropped
   * (reset) and open() makes the next. One session is opened at a time: callers asking for the
   * same key while it opens share it (two commands at once used to open two, and the first was
   * replaced without ever being closed); one asking for another key waits for it first. */
  async obtain(key: string, keyOf: (s: S) => string, open: () => Promise<S>): Promise<S> {
    for (;;) {
      const cur = this.cur;
      if (cur && keyOf(cur) === key) return cur;
      if (!this.opening) break;
      if (this.opening.key === key) return this.opening.session;
      await this.opening.session.catch(() => undefined);
    }
    if (this.disposed) throw new Error(ENDED);
    const session = (async () => {
      await this.reset();
      if (this.disposed) throw new Error(ENDED);
      const s = await open();
      // the extension ended while it opened (an SSH connect, a host-key question): nothing
      // would close it any more, so it is closed here and no one gets it
      if (this.disposed) {
        await closeQuietly(s);
        throw new Error(ENDED);
      }
      this.cur = s;
      return s;
    })();
    this.opening = { key, session };
    try {
      return await session;
    } finally {
      if (this.opening?.session === session) this.opening = undefined;
    }
  }

  /** Whether a user still holds s. */
  inUse(s: S): boolean {
    return [...this.users.values()].includes(s);
  }

  /** Whether s was replaced while in use and waits for its last user. */
  isRetired(s: S): boolean {
    return this.retired.has(s);
  }

  /** Drops the current session: closed now when no user holds it, else retired. A session
   * being opened (obtain) becomes current first, so it is dropped like any other. */
  async reset(): Promise<void> {
    const pending = this.opening?.session;
    if (pending) {
      this.opening = undefined;
      await pending.catch(() => undefined);
    }
    const old = this.cur;
    this.cur = undefined;
    if (!old) return;
    if (this.inUse(old)) this.retired.add(old);
    else await old.close();
  }

  /** `user` holds s until release(user). */
  use(user: string, s: S): void {
    this.users.set(user, s);
  }

  /** `user` lets go of its session; a retired session is closed after its last user. */
  async release(user: string): Promise<void> {
    const s = this.users.get(user);
    this.users.delete(user);
    if (s && this.retired.has(s) && !this.inUse(s)) {
      this.retired.delete(s);
      await s.close();
    }
  }

  /** The extension ends: the current session and every retired one are closed, and one still
   * being opened is closed once it is open (obtain then fails); nothing is opened after. A close
   * that fails is not an unhandled rejection. */
  dispose(): void {
    this.disposed = true;
    const cur = this.cur;
    this.cur = undefined;
    if (cur) void closeQuietly(cur);
    for (const s of this.retired) void closeQuietly(s);
    this.retired.clear();
  }
}

const ENDED = 'the extension is ending: no session is opened';

/** s.close(), its failure (thrown or rejected) ignored: nothing is left to report it to. */
async function closeQuietly(s: Closable): Promise<void> {
  try {
    await s.close();
  } catch {
    /* closing anyway */
  }
}

/** At most one live thing per key (a run's monitor, the dashboard panel of a set of runs), made
 * after an await (the session, the runs' records). The key is taken before that await: a second
 * request while the first is being made gets the first (two quick clicks opened two dashboards
 * for one run; a refresh while a run's monitor waited for its session started a second monitor).
 * What make() made is kept until the `release` it was given is called (it closed, it ended); an
 * older one's release, after a newer one replaced it, leaves the newer one kept. */
export class OnePerKey<T> {
  private readonly entries = new Map<string, { made: Promise<T | undefined>; value?: T }>();

  /** The one kept for key (when it is being made, once it is), else make()'s, kept until it
   * calls release (or make gives undefined or fails). `replace`: make a new one even when one is
   * kept (a panel VS Code restored), which is kept instead. `made`: whether this call made it. */
  async obtain(key: string, make: (release: () => void) => Promise<T | undefined>, replace = false): Promise<{ value: T | undefined; made: boolean }> {
    const have = this.entries.get(key);
    if (have && !replace) return { value: await have.made, made: false };
    const entry: { made: Promise<T | undefined>; value?: T } = { made: Promise.resolve(undefined) };
    const release = (): void => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    };
    // kept before make() starts, so a request while it awaits finds it
    this.entries.set(key, entry);
    entry.made = (async () => make(release))();
    try {
      const value = await entry.made;
      if (value === undefined) release();
      else entry.value = value;
      return { value, made: true };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Whether something is kept (or being made) for key. */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** How many are kept or being made. */
  get size(): number {
    return this.entries.size;
  }

  /** The ones made and kept (not those still being made). */
  values(): T[] {
    return [...this.entries.values()].flatMap((e) => (e.value === undefined ? [] : [e.value]));
  }

  /** Forgets every one (the owner disposes them). */
  clear(): void {
    this.entries.clear();
  }
}

/** Where disposables go to be disposed with their owner (the extension's context.subscriptions). */
export interface Owner {
  push(...d: Array<{ dispose(): unknown }>): unknown;
}

/** At most one disposable at a time (the gateway's terminal). Setting one disposes the one
 * before; the slot joins its owner's disposables, so the current one is disposed with the
 * extension (a gateway kept its port after a disable or update). */
export class Slot<T extends { dispose(): void }> {
  private cur: T | undefined;

  constructor(owner: Owner) {
    owner.push(this);
  }

  get current(): T | undefined {
    return this.cur;
  }

  set(t: T): T {
    if (this.cur !== t) this.cur?.dispose();
    this.cur = t;
    return t;
  }

  /** Forgets t without disposing it (it ended by itself); true when t was the current one. */
  forget(t: T): boolean {
    if (!this.cur || t !== this.cur) return false;
    this.cur = undefined;
    return true;
  }

  /** Disposes the current one, if any (a stop command, or the extension ending). */
  dispose(): void {
    this.cur?.dispose();
    this.cur = undefined;
  }
}

/** What something that can close (a panel) starts, often after an await: closed with it, and
 * never started once it has closed (a panel closed while a run's status was read starts no
 * reader for that run). */
export class Lifetime<T extends { close(): void }> {
  private ended = false;
  private readonly items: T[] = [];

  get closed(): boolean {
    return this.ended;
  }

  /** make() and keep what it made, unless closed: then make is not called. */
  start(make: () => T): T | undefined {
    if (this.ended) return undefined;
    const t = make();
    this.items.push(t);
    return t;
  }

  close(): void {
    this.ended = true;
    for (const t of this.items.splice(0)) t.close();
  }
}

/** Up to `limit` values by key; using one (`get` or `set`) makes it the most recent, and adding
 * one past the limit disposes the least recent. `dispose()` disposes the rest. */
export class Recent<T extends { dispose(): void }> {
  private readonly items = new Map<string, T>();
  constructor(private readonly limit: number) {
    if (!(limit >= 1)) throw new Error(`Recent: the limit must be 1 or more, not ${limit}`);
  }
  has(key: string): boolean {
    return this.items.has(key);
  }
  /** The value for `key` (now the most recent), or undefined. */
  get(key: string): T | undefined {
    const v = this.items.get(key);
    if (v !== undefined) { this.items.delete(key); this.items.set(key, v); }
    return v;
  }
  /** Peeks without making it the most recent (for writes that are not a use, such as output). */
  peek(key: string): T | undefined {
    return this.items.get(key);
  }
  set(key: string, value: T): void {
    const old = this.items.get(key);
    this.items.delete(key);
    if (old !== undefined && old !== value) old.dispose();
    this.items.set(key, value);
    while (this.items.size > this.limit) {
      const [k, v] = this.items.entries().next().value as [string, T];
      this.items.delete(k);
      v.dispose();
    }
  }
  get size(): number {
    return this.items.size;
  }
  dispose(): void {
    const all = [...this.items.values()];
    this.items.clear();
    for (const v of all) v.dispose();
  }
}

/** An async handler called from an event (a webview's message): its failure (an export to a
 * read-only folder, say) goes to onError, where it is logged and shown, instead of being an
 * unhandled rejection nobody sees. */
export function reported<A extends unknown[]>(handler: (...a: A) => Promise<unknown>, onError: (err: unknown) => void): (...a: A) => void {
  return (...a: A) => {
    let p: Promise<unknown>;
    try {
      p = handler(...a);
    } catch (err) {
      onError(err);
      return;
    }
    p.catch(onError);
  };
}
