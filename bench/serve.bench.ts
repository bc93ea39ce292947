// Serving gateway figures (docs/serve.md), all in one run on this machine:
//   serve.overhead_ms_p50 / _p99   added latency of the gateway (allocator on, every prompt new to
//                                  its cache): sequential chat requests through `conscience serve`
//                                  minus the same requests straight to the upstream
//   serve.direct_ms_p50            the peer: the upstream alone, same client, same run
//   serve.req_per_s                chat requests/s through the gateway, autocannon, 64 connections,
//                                  every prompt distinct (each one scored by the allocator)
//   serve.direct_req_per_s         the peer: the same load straight to the upstream
//   serve.req_per_s_repeated       the same load with one prompt repeated (the allocator's cache answers)
//   serve.*_workers_0              the same with --allocator-workers 0 (the allocator on the event
//                                  loop's thread, as before 2026-11-26; default: 2 worker threads), same run
//   serve.allocator_batch_mean     prompts per allocator call during the serve.req_per_s load
//   serve.allocator_prompts_per_s  the allocator alone, batches of 64 distinct prompts, in this
//                                  process while the servers idle: the ceiling for serve.req_per_s
// The upstream answers instantly (a fixed chat.completion) in a process of its own; the gateway
// is the real CLI in another; the client is this process (latency) or autocannon (throughput).
// Everything shares the machine's cores.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Allocator, defaultModelDir } from '../extension/src/core/allocator';

const ROOT = join(__dirname, '..');

const UPSTREAM = `
const http = require('node:http');
const body = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: '<safety></safety> ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } });
http.createServer((req, res) => { req.resume(); req.on('end', () => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); }); })
  .listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

const freePort = (): Promise<number> => new Promise((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => r(p)); });
});

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited ${child.exitCode}`);
    try {
      await new Promise<void>((resolve, reject) => http.get(url, (r) => { r.resume(); r.on('end', resolve); }).on('error', reject));
      return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function post(port: number, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const chat = (prompt: string): string => JSON.stringify({ model: 'm', max_tokens: 64, messages: [{ role: 'user', content: prompt }] });
const PROMPTS = ['How do I bake bread for request', 'What is the capital of France, question', 'How do I kill a python process number', 'Explain TCP slow start, variant'];

/** Sequential latency (ms) of n requests, each with a prompt never seen before. */
async function latencies(port: number, n: number, tag: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const body = chat(`${PROMPTS[i % PROMPTS.length]} ${tag}-${i}`);
    const t0 = performance.now();
    await post(port, body);
    out.push(performance.now() - t0);
  }
  return out;
}

function autocannon(port: number, seconds: number, distinct = true): Promise<number> {
  return new Promise((resolve, reject) => {
    const bin = join(ROOT, 'node_modules', '.bin', 'autocannon');
    // -I: every request body gets a fresh random id in place of [<id>], so each prompt is new
    const body = chat(distinct ? 'How do I bake bread? request [<id>]' : 'How do I bake bread?');
    const args = ['-c', '64', '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json', '-b', body, ...(distinct ? ['-I'] : []), '-j', `http://127.0.0.1:${port}/v1/chat/completions`];
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    p.on('error', reject);
    p.on('exit', (code) => {
      try {
        const j = JSON.parse(out) as { requests: { average: number }; non2xx: number; errors: number };
        if (j.non2xx || j.errors) throw new Error(`autocannon: ${j.non2xx} non-2xx, ${j.errors} errors`);
        resolve(j.requests.average);
      } catch (err) { reject(new Error(`autocannon exited ${code}: ${(err as Error).message}`)); }
    });
  });
}

/** The gateway's allocator_batch_size histogram sum and count, from its /metrics. */
async function batchStats(port: number): Promise<{ sum: number; count: number }> {
  const text = await new Promise<string>((resolve, reject) => http.get(`http://127.0.0.1:${port}/metrics`, (r) => {
    let t = '';
    r.on('data', (c: Buffer) => { t += c.toString(); });
    r.on('end', () => resolve(t));
  }).on('error', reject));
  const value = (name: string): number => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(name + ' ')) ?? '')?.[2] ?? 0);
  return { sum: value('conscience_serve_allocator_batch_size_sum'), count: value('conscience_serve_allocator_batch_size_count') };
}

async function allocatorAlone(): Promise<number> {
  const a = await Allocator.load(defaultModelDir(ROOT));
  try {
    const batch = (k: number): string[] => Array.from({ length: 64 }, (_, i) => `How do I bake bread? request ${k}-${i}-${(k * 7919 + i * 104729).toString(36)}`);
    await a.assessUncached(batch(-1));
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 5000) { await a.assessUncached(batch(n)); n += 64; }
    return n / ((performance.now() - t0) / 1000);
  } finally { await a.dispose(); }
}

export default async function bench(): Promise<Record<string, number>> {
  const upPort = await freePort();
  const gwPort = await freePort();
  const upstream = spawn(process.execPath, ['-e', UPSTREAM, String(upPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let gwLog = '';
  const startGateway = (port: number, workers: number): ChildProcess => {
    const g = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'extension/src/cli/main.ts'), 'serve', '--upstream', `http://127.0.0.1:${upPort}/v1`, '--port', String(port), '--allocator-workers', String(workers)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    g.stderr!.on('data', (c: Buffer) => { gwLog = (gwLog + c.toString()).slice(-4000); });
    return g;
  };
  const gw2Port = await freePort();
  const gateway = startGateway(gwPort, 2);
  const gateway2 = startGateway(gw2Port, 0);
  try {
    await waitReady(`http://127.0.0.1:${upPort}/`, upstream);
    for (const [port, g] of [[gwPort, gateway], [gw2Port, gateway2]] as const) {
      await waitReady(`http://127.0.0.1:${port}/health`, g).catch((e: Error) => { throw new Error(`${e.message}\n${gwLog}`); });
    }
    // warm every path (JIT, the allocator's first batches)
    await latencies(gwPort, 200, 'warm');
    await latencies(gw2Port, 200, 'warm2');
    await latencies(upPort, 200, 'warm');
    // interleave rounds so drift on a shared machine hits every side alike
    const via: number[] = [];
    const via2: number[] = [];
    const direct: number[] = [];
    for (let round = 0; round < 5; round++) {
      direct.push(...await latencies(upPort, 300, `d${round}`));
      via.push(...await latencies(gwPort, 300, `g${round}`));
      via2.push(...await latencies(gw2Port, 300, `h${round}`));
    }
    const directRps = await autocannon(upPort, 5);
    const batchBefore = await batchStats(gwPort);
    const gwRps = await autocannon(gwPort, 10);
    const batchAfter = await batchStats(gwPort);
    const batchMean = (batchAfter.sum - batchBefore.sum) / Math.max(1, batchAfter.count - batchBefore.count);
    const inThreadRps = await autocannon(gw2Port, 10);
    const repeatedRps = await autocannon(gwPort, 5, false);
    gateway.kill('SIGTERM');
    gateway2.kill('SIGTERM');
    const allocatorRate = await allocatorAlone();
    return {
      'serve.overhead_ms_p50': +(quantile(via, 0.5) - quantile(direct, 0.5)).toFixed(3),
      'serve.overhead_ms_p99': +(quantile(via, 0.99) - quantile(direct, 0.99)).toFixed(3),
      'serve.overhead_ms_p50_workers_0': +(quantile(via2, 0.5) - quantile(direct, 0.5)).toFixed(3),
      'serve.overhead_ms_p99_workers_0': +(quantile(via2, 0.99) - quantile(direct, 0.99)).toFixed(3),
      'serve.gateway_ms_p50': +quantile(via, 0.5).toFixed(3),
      'serve.direct_ms_p50': +quantile(direct, 0.5).toFixed(3),
      'serve.req_per_s': Math.round(gwRps),
      'serve.req_per_s_workers_0': Math.round(inThreadRps),
      'serve.direct_req_per_s': Math.round(directRps),
      'serve.req_per_s_repeated': Math.round(repeatedRps),
      'serve.allocator_prompts_per_s': Math.round(allocatorRate),
      'serve.allocator_batch_mean': +batchMean.toFixed(1),
    };
  } finally {
    agent.destroy();
    for (const c of [gateway, gateway2, upstream]) if (c.exitCode === null) c.kill('SIGTERM');
  }
}
