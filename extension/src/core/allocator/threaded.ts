// Scores prompts on a worker thread (worker.ts) instead of the calling thread: for servers,
// whose event loop must keep accepting requests while a batch runs. Same numbers as
// AllocatorModel.score (the same model code runs in the worker). A worker that dies fails the
// batches it held and is started again on the next call.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ModelOptions, Score } from './model';
import type { ToWorker, WorkerInit, WorkerReply } from './worker';

/**
 * The worker: the script beside the running bundle (dist/allocator-worker.js, built by
 * esbuild.mjs) or, when running from sources (tsx), worker.ts through tsx's require hook.
 */
function startWorker(workerData: WorkerInit): Worker {
  const bundled = join(__dirname, 'allocator-worker.js');
  if (existsSync(bundled)) return new Worker(bundled, { workerData });
  const source = join(__dirname, 'worker.ts');
  if (!existsSync(source)) throw new Error(`the allocator's worker script is missing (looked for ${bundled} and ${source})`);
  // from sources: register tsx's require hook in the worker, then load worker.ts
  const code = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(source)});`;
  return new Worker(code, { eval: true, workerData });
}

/** One worker thread and the batches it holds. */
class WorkerSlot {
  private worker: Worker | undefined;
  private starting: Promise<Worker> | undefined;
  private readonly pending = new Map<number, { resolve: (s: Score[]) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  constructor(private readonly init: WorkerInit) {}

  get load(): number {
    return this.pending.size;
  }

  ensure(): Promise<Worker> {
    if (this.worker) return Promise.resolve(this.worker);
    this.starting ??= new Promise<Worker>((resolve, reject) => {
      const w = startWorker(this.init);
      let ready = false;
      w.on('message', (m: WorkerReply) => {
        if (m.type === 'ready') {
          ready = true;
          this.worker = w;
          this.starting = undefined;
          resolve(w);
        } else if (m.type === 'failed') {
          this.starting = undefined;
          reject(new Error(m.error));
          void w.terminate();
        } else {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          if (m.type === 'scores') p.resolve(m.scores);
          else p.reject(new Error(m.error));
        }
      });
      const gone = (why: string): void => {
        if (this.worker === w) this.worker = undefined;
        if (!ready) {
          this.starting = undefined;
          reject(new Error(`the allocator's worker stopped before its model loaded: ${why}`));
        }
        for (const p of this.pending.values()) p.reject(new Error(`the allocator's worker stopped: ${why}`));
        this.pending.clear();
      };
      w.on('error', (err) => gone(err.message));
      w.on('exit', (code) => gone(`exit code ${code}`));
    });
    return this.starting;
  }

  async score(texts: string[]): Promise<Score[]> {
    const w = await this.ensure();
    const id = this.nextId++;
    return new Promise<Score[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ type: 'score', id, texts } satisfies ToWorker);
    });
  }

  /** Lets the worker release its session and end (terminated after 5 s if it does not). */
  async dispose(): Promise<void> {
    const w = this.worker ?? (await this.starting?.catch(() => undefined));
    this.worker = undefined;
    if (!w) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ type: 'close' } satisfies ToWorker);
    const timer = setTimeout(() => void w.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** A pool of worker threads; each call goes to the one holding the fewest batches. */
export class ThreadedScorer {
  private disposed = false;

  private constructor(private readonly slots: WorkerSlot[]) {}

  /** Starts `workers` threads and waits until each has loaded the model (a bad folder fails here). */
  static async start(dir: string, opts: ModelOptions = {}, workers = 1): Promise<ThreadedScorer> {
    const s = new ThreadedScorer(Array.from({ length: Math.max(1, workers) }, () => new WorkerSlot({ dir, opts })));
    try {
      await Promise.all(s.slots.map((w) => w.ensure()));
    } catch (err) {
      await s.dispose();
      throw err;
    }
    return s;
  }

  /** How many batches can run at once (one per thread). */
  get concurrency(): number {
    return this.slots.length;
  }

  async score(texts: string[]): Promise<Score[]> {
    if (this.disposed) throw new Error('the allocator was disposed');
    const slot = this.slots.reduce((a, b) => (b.load < a.load ? b : a));
    return slot.score(texts);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all(this.slots.map((w) => w.dispose()));
  }
}
