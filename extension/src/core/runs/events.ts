// The event protocol of docs/events.md, typed, and a reader that resumes from a byte offset.
// Shared by the run store (launch), the dashboard and the CLI.
import { open } from 'node:fs/promises';

interface Base {
  seq: number;
  time: number;
  run_id?: string;
}
export interface RunStartedEvent extends Base {
  type: 'run_started';
  recipe_hash?: string;
  world_size?: number;
  versions?: Record<string, string>;
  resumed_from?: string | null;
  reward_funcs?: string[];
  max_steps?: number;
}
export interface MetricsEvent extends Base {
  type: 'metrics';
  step: number;
  values: Record<string, number | null>;
}
export interface SampleRow {
  prompt: string;
  completion: string;
  rewards: Record<string, number | null>;
  budget?: number | null;
  label?: string | null;
}
export interface SamplesEvent extends Base {
  type: 'samples';
  step: number;
  rows: SampleRow[];
}
export interface CheckpointEvent extends Base {
  type: 'checkpoint';
  step: number;
  path: string;
}
export interface HeartbeatEvent extends Base {
  type: 'heartbeat';
  step?: number;
}
export interface RunFinishedEvent extends Base {
  type: 'run_finished';
  status: 'completed' | 'failed' | 'cancelled';
  exit_code: number;
  error?: string | null;
}
export type RunEvent =
  | RunStartedEvent
  | MetricsEvent
  | SamplesEvent
  | CheckpointEvent
  | HeartbeatEvent
  | RunFinishedEvent;

export interface ParseProblem {
  /** Byte offset of the line that could not be read. */
  offset: number;
  message: string;
}

/**
 * Parses the complete lines of `chunk` (bytes read starting at `baseOffset`). Returns the
 * events, the offset just after the last complete line (where the next read starts), and
 * the lines that were not valid events (reported, never fatal).
 */
export function parseEventChunk(chunk: Buffer, baseOffset: number): {
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
} {
  const events: RunEvent[] = [];
  const problems: ParseProblem[] = [];
  let start = 0;
  for (;;) {
    const nl = chunk.indexOf(0x0a, start);
    if (nl < 0) break;
    const line = chunk.subarray(start, nl).toString('utf8').trim();
    if (line) {
      try {
        const ev = JSON.parse(line);
        if (ev && typeof ev === 'object' && typeof ev.type === 'string' && Number.isInteger(ev.seq)) {
          events.push(ev as RunEvent);
        } else {
          problems.push({ offset: baseOffset + start, message: 'not an event (needs type and seq)' });
        }
      } catch (err) {
        problems.push({ offset: baseOffset + start, message: `invalid JSON: ${(err as Error).message}` });
      }
    }
    start = nl + 1;
  }
  return { events, nextOffset: baseOffset + start, problems };
}

/** Reads the complete events of `file` from byte `offset` on. A missing file reads as empty. */
export async function readEventsFrom(file: string, offset = 0): Promise<{
  events: RunEvent[];
  nextOffset: number;
  problems: ParseProblem[];
}> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], nextOffset: offset, problems: [] };
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size <= offset) return { events: [], nextOffset: offset, problems: [] };
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    return parseEventChunk(buf.subarray(0, bytesRead), offset);
  } finally {
    await fh.close();
  }
}
