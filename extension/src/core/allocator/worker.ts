// The allocator's scoring thread: a worker_threads entry that loads the model (tokenizer and
// onnxruntime session) and scores the batches its parent posts, so a server's event loop keeps
// taking requests while a batch runs (onnxruntime-node's session.run blocks the thread it runs
// on). The parent side is `ThreadedScorer` (threaded.ts); the messages are below.
import { parentPort, workerData } from 'node:worker_threads';
import { AllocatorModel, type ModelOptions, type Score } from './model';

/** workerData */
export interface WorkerInit { dir: string; opts: ModelOptions }
/** parent → worker: a batch to score, or `close` (release the session, then exit) */
export type ToWorker = { type: 'score'; id: number; texts: string[] } | { type: 'close' };
/** worker → parent: `ready` once the model is loaded (or `failed`), then one reply per request */
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'failed'; error: string }
  | { type: 'scores'; id: number; scores: Score[] }
  | { type: 'error'; id: number; error: string };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker.ts runs as a worker thread');
  const init = workerData as WorkerInit;
  let model: AllocatorModel;
  try {
    model = await AllocatorModel.load(init.dir, init.opts);
  } catch (err) {
    port.postMessage({ type: 'failed', error: (err as Error).message } satisfies WorkerReply);
    return;
  }
  port.on('message', (m: ToWorker) => {
    if (m.type === 'close') {
      // release onnxruntime's session before the thread ends: terminating a worker that still
      // holds one aborts the whole process (Napi::Error at teardown)
      void model.dispose().finally(() => port.close());
      return;
    }
    model.score(m.texts).then(
      (scores) => port.postMessage({ type: 'scores', id: m.id, scores } satisfies WorkerReply),
      (err: unknown) => port.postMessage({ type: 'error', id: m.id, error: (err as Error).message } satisfies WorkerReply),
    );
  });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
}

void main();
