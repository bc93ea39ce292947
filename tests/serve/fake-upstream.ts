/**
 * A hand-written OpenAI-shaped upstream for the faults a real server will not produce on demand
 * (hang, reset mid-stream, slow first byte, an error status) and for recording exactly what the
 * gateway sent. The real-server tests (transformers serve) are in gateway.real.test.ts; this is
 * in addition to them, never instead. The behaviour is picked per request by the `x-fake` header
 * (the gateway passes headers through untouched, which is itself under test).
 */
import http from 'node:http';
import zlib, { gzipSync } from 'node:zlib';

export interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }

export interface FakeUpstream {
  url: string;
  requests: Recorded[];
  /** sockets the fake has seen closed by the other side before it finished answering */
  cancelled: number;
  /** bytes the `flood` mode has managed to write so far (it honours backpressure) */
  flooded: number;
  close(): Promise<void>;
}

export const ANSWER = '<safety>Benign request.</safety> Here is how.';
/** what the `opaque-break` mode sends (as `Content-Encoding: zstd`) before its connection is reset */
export const OPAQUE_BYTES = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x61, 0x62, 0x63, 0x0a]);
/** the second choice of the `n2-stream` mode (no safety block) */
export const N2_SECOND = 'Sure, the second choice has no safety block at all.';
/** the `n2-json` mode's body: two choices, usage covering both */
export const N2_JSON = JSON.stringify({
  id: 'chatcmpl-fake-n2', object: 'chat.completion', created: 1, model: 'fake',
  choices: [
    { index: 0, message: { role: 'assistant', content: '<safety>aaaa</safety> bbbb' }, finish_reason: 'stop' },
    { index: 1, message: { role: 'assistant', content: 'cccccccc' }, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 },
});

/** the headers of the `gzip` mode's answer that describe its compressed bytes (and a Vary that does not) */
export const COMPRESSED_HEADERS = {
  etag: '"v1-abc"', 'content-md5': 'Q2hlY2sgSW50ZWdyaXR5IQ==', digest: 'sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=',
  'repr-digest': 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', 'content-digest': 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', vary: 'Accept-Encoding',
};
/** the content of each of the `many` mode's choices, and how many it sends (past the gateway's 128) */
export const MANY_CONTENT = 'cccccccccc';
export const MANY_CHOICES = 130;

/**
 * `x-fake-encoding` as a compressor and the Content-Encoding it is sent under: gzip, deflate
 * (with its zlib header), deflate-raw (no header, sent as `deflate`, as many servers do) or br.
 */
function encoder(encoding: string): { header: string; stream: () => zlib.Gzip | zlib.Deflate | zlib.DeflateRaw | zlib.BrotliCompress; sync: (b: string) => Buffer; flush: number } {
  const flush = encoding === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH;
  if (encoding === 'br') return { header: 'br', stream: () => zlib.createBrotliCompress(), sync: (b) => zlib.brotliCompressSync(b), flush };
  if (encoding === 'deflate') return { header: 'deflate', stream: () => zlib.createDeflate(), sync: (b) => zlib.deflateSync(b), flush };
  if (encoding === 'deflate-raw') return { header: 'deflate', stream: () => zlib.createDeflateRaw(), sync: (b) => zlib.deflateRawSync(b), flush };
  return { header: 'gzip', stream: () => zlib.createGzip(), sync: (b) => gzipSync(b), flush };
}

/**
 * The `gzip-flood-stall` body, compressed once per process off the main thread: started with
 * the first fake, so a test with a short upstream timeout does not wait for it
 */
let flood: Promise<Buffer> | undefined;
const floodGzip = (): Promise<Buffer> => (flood ??= new Promise((resolve, reject) => {
  zlib.gzip(chunk({ content: 'y'.repeat(4000) }).repeat(8 * 1024), (err, b) => (err ? reject(err) : resolve(b)));
}));

function completion(content: string, model: unknown): string {
  return JSON.stringify({
    id: 'chatcmpl-fake', object: 'chat.completion', created: 1, model: model ?? 'fake',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 },
  });
}

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
  `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;

/** `host`: the address to listen on ('::1' gives an IPv6 URL, http://[::1]:PORT) */
export async function startFakeUpstream(host = '127.0.0.1'): Promise<FakeUpstream> {
  const requests: Recorded[] = [];
  const state = { cancelled: 0, flooded: 0 };
  void floodGzip();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('error', () => { /* a request body the gateway cut off */ });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const mode = String(req.headers['x-fake'] ?? 'ok');
      let parsed: Record<string, unknown> = {};
      try { parsed = JSON.parse(body) as Record<string, unknown>; } catch { /* passthrough bodies */ }
      res.on('close', () => { if (!res.writableFinished) state.cancelled++; });
      if (req.url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'fake' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake', object: 'model' }] }));
      } else if (mode === 'hang') {
        // never answers
      } else if (mode === 'error') {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(JSON.stringify({ error: { message: 'rate limited by the fake', type: 'rate_limit', code: 'slow_down' } }));
      } else if (mode === 'redirect') {
        // a 307 to `x-fake-location`, in which {self} is this server's own origin as the Host
        // header names it (as Starlette builds its trailing-slash redirects)
        res.writeHead(307, { location: String(req.headers['x-fake-location'] ?? '').replace('{self}', `http://${req.headers.host}`), 'content-length': 0 });
        res.end();
      } else if (mode === 'slow-first-byte') {
        setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(completion(ANSWER, parsed.model)); }, 300);
      } else if (mode === 'gzip') {
        // a compressed answer, streamed or not, as a server behind a compressing proxy sends it
        // (`x-fake-encoding`: gzip by default, deflate, deflate-raw or br)
        const stream = parsed.stream === true;
        const text = stream
          ? chunk({ role: 'assistant' }) + chunk({ content: '<safety>Short note.' }) + chunk({ content: '</safety> Fine.' }) + chunk({}, { usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 } }) + 'data: [DONE]\n\n'
          : completion(ANSWER, parsed.model);
        const enc = encoder(String(req.headers['x-fake-encoding'] ?? 'gzip'));
        const body = enc.sync(text);
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-encoding': enc.header, 'content-length': body.length, ...COMPRESSED_HEADERS });
        // in two writes, so the gateway inflates across chunks
        res.write(body.subarray(0, 10));
        setTimeout(() => res.end(body.subarray(10)), 10);
      } else if (mode === 'flood') {
        // 64 MiB of SSE content deltas, written only as fast as the reader takes them
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const piece = chunk({ content: 'x'.repeat(4000) });
        const total = 64 * 1024 * 1024;
        const pump = (): void => {
          while (state.flooded < total && !res.destroyed) {
            state.flooded += piece.length;
            if (!res.write(piece)) { res.once('drain', pump); return; }
          }
          if (!res.destroyed) res.end('data: [DONE]\n\n');
        };
        pump();
      } else if (mode === 'n2-stream') {
        // n = 2 as vLLM streams it: each chunk carries one choice's delta, named by its index;
        // with stream_options.include_usage, a last chunk without choices holds the usage of
        // both choices together (here one token per stripped character: 4 + 51)
        const usage = (parsed.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
        const ck = (index: number, delta: Record<string, unknown>): string =>
          `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [{ index, delta, finish_reason: null }], ...(usage ? { usage: null } : {}) })}\n\n`;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(ck(0, { role: 'assistant', content: '' }) + ck(1, { role: 'assistant', content: '' }) + ck(0, { content: '<safety>aa' })
          + ck(1, { content: N2_SECOND }) + ck(0, { content: '</safety>' }) + ck(0, { content: 'ok' })
          + (usage ? `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [], usage: { prompt_tokens: 5, completion_tokens: 4 + N2_SECOND.length, total_tokens: 9 + N2_SECOND.length } })}\n\n` : '')
          + 'data: [DONE]\n\n');
      } else if (mode === 'n2-json') {
        // n = 2, not streamed: usage.completion_tokens counts both choices (8 + 8 stripped characters, one token each)
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(N2_JSON);
      } else if (mode === 'gzip-break' || mode === 'gzip-stall') {
        // a compressed answer (flushed as it goes, as a compressing proxy streams it) that breaks
        // off in the middle of an event / of the JSON body: the connection is reset, or (stall)
        // nothing more comes. `x-fake-encoding`: gzip (default), deflate, br or identity
        const stream = parsed.stream === true;
        const encoding = String(req.headers['x-fake-encoding'] ?? 'gzip');
        const full = completion(ANSWER, parsed.model);
        const text = stream ? chunk({ role: 'assistant', content: '<safety>x</safety>' }) + chunk({ content: ' second' }).slice(0, 40) : full.slice(0, full.length >> 1);
        const cut = (): void => { if (mode === 'gzip-break') setTimeout(() => res.socket?.destroy(), 50); };
        const enc = encoder(encoding);
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', ...(encoding === 'identity' ? {} : { 'content-encoding': enc.header }) });
        if (encoding === 'identity') { res.write(text); cut(); } else {
          const z = enc.stream();
          z.on('data', (d: Buffer) => { if (!res.destroyed) res.write(d); });
          z.write(text);
          z.flush(enc.flush, cut);
        }
      } else if (mode === 'gzip-truncated' && parsed.stream !== true) {
        // a compressed JSON answer whose body ends cleanly in the middle of its compressed
        // stream (the first half of its bytes): without a length (`Connection: close`), or
        // (`x-fake-length: 1`) under a Content-Length that matches those bytes
        const enc = encoder(String(req.headers['x-fake-encoding'] ?? 'gzip'));
        const whole = enc.sync(completion(ANSWER, parsed.model));
        const cut = whole.subarray(0, whole.length >> 1);
        const withLength = req.headers['x-fake-length'] === '1';
        if (!withLength) res.useChunkedEncodingByDefault = false;
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': enc.header, ...(withLength ? { 'content-length': cut.length } : { connection: 'close' }) });
        // in two writes, so the gateway reads it across chunks
        res.write(cut.subarray(0, 10));
        setTimeout(() => res.end(cut.subarray(10)), 10);
      } else if (mode === 'gzip-truncated') {
        // a compressed stream whose body has no length (`Connection: close`) and that ends
        // cleanly in the middle of its compressed stream: after one event and half of the next
        const enc = encoder(String(req.headers['x-fake-encoding'] ?? 'gzip'));
        res.useChunkedEncodingByDefault = false;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': enc.header, connection: 'close' });
        const z = enc.stream();
        z.on('data', (d: Buffer) => { if (!res.destroyed) res.write(d); });
        z.write(chunk({ role: 'assistant', content: '<safety>x</safety>' }) + chunk({ content: ' second' }).slice(0, 40));
        z.flush(enc.flush, () => setTimeout(() => res.end(), 20));
      } else if (mode === 'gzip-flood-stall') {
        // 32 MiB of SSE events in a few KiB of gzip, then nothing more (the stream is never ended)
        void floodGzip().then((b) => {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
          res.write(b.subarray(0, b.length - 8));
        });
      } else if (mode === 'response') {
        // a Responses API answer with its own id (resp_fake_N), streamed or not, as vLLM and
        // transformers serve give one: a continuation names the id as previous_response_id
        // `x-fake-response-id` names the id (vLLM takes a client's `request_id` as it);
        // `x-fake-echo-bytes` echoes that many bytes of `instructions` after the id, as a
        // server echoes a request's instructions and tools
        const rid = String(req.headers['x-fake-response-id'] ?? `resp_fake_${requests.length}`);
        const echo = Number(req.headers['x-fake-echo-bytes'] ?? 0);
        const response = (status: string, output: unknown[]) => ({ id: rid, object: 'response', ...(echo > 0 ? { instructions: 'e'.repeat(echo) } : {}), status, model: 'fake', output, usage: status === 'completed' ? { input_tokens: 5, output_tokens: 9, total_tokens: 14 } : null });
        const message = { type: 'message', id: 'msg_fake', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: ANSWER, annotations: [] }] };
        if (parsed.stream === true) {
          const ev = (type: string, fields: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`;
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(ev('response.created', { response: response('in_progress', []) }) + ev('response.output_text.delta', { item_id: 'msg_fake', output_index: 0, content_index: 0, delta: ANSWER })
            + ev('response.completed', { response: response('completed', [message]) }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(response('completed', [message])));
        }
      } else if (mode === 'many') {
        // MANY_CHOICES choices of MANY_CONTENT, streamed (one chunk per choice) or not; usage
        // counts one token per character of them all
        const usage = { prompt_tokens: 5, completion_tokens: MANY_CHOICES * MANY_CONTENT.length, total_tokens: 5 + MANY_CHOICES * MANY_CONTENT.length };
        const indices = Array.from({ length: MANY_CHOICES }, (_, i) => i);
        if (parsed.stream === true) {
          const ck = (choices: unknown[], u: unknown = null): string => `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake', choices, usage: u })}\n\n`;
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(indices.map((index) => ck([{ index, delta: { role: 'assistant', content: MANY_CONTENT }, finish_reason: 'stop' }])).join('') + ck([], usage) + 'data: [DONE]\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion', created: 1, model: 'fake', choices: indices.map((index) => ({ index, message: { role: 'assistant', content: MANY_CONTENT }, finish_reason: 'stop' })), usage }));
        }
      } else if (mode === 'null-index') {
        // two choices, the second with "index": null (its position is its index)
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id: 'chatcmpl-fake', object: 'chat.completion', created: 1, model: 'fake',
          choices: [
            { index: 0, message: { role: 'assistant', content: '<safety>aaaa</safety> bbbb' }, finish_reason: 'stop' },
            { index: null, message: { role: 'assistant', content: 'cccccccc' }, finish_reason: 'stop' },
          ],
          usage: { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 },
        }));
      } else if (mode === 'gzip-corrupt') {
        // a gzip stream (or JSON answer) whose bytes go bad after its first event (its first
        // half), and which then ends normally
        const stream = parsed.stream === true;
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-encoding': 'gzip' });
        const z = zlib.createGzip();
        z.on('data', (d: Buffer) => { if (!res.destroyed) res.write(d); });
        const full = completion(ANSWER, parsed.model);
        z.write(stream ? chunk({ role: 'assistant', content: '<safety>x</safety>' }) : full.slice(0, full.length >> 1));
        z.flush(zlib.constants.Z_SYNC_FLUSH, () => setTimeout(() => res.end(Buffer.alloc(64, 0xff)), 20));
      } else if (mode === 'bad-usage') {
        // a usage count that is no count
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion', created: 1, model: 'fake', choices: [{ index: 0, message: { role: 'assistant', content: ANSWER }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: -3, total_tokens: 2 } }));
      } else if (mode === 'opaque-break') {
        // a stream in an encoding the gateway does not decode, reset mid-answer
        res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'zstd' });
        res.write(OPAQUE_BYTES);
        setTimeout(() => res.socket?.destroy(), 50);
      } else if (mode === 'reset-mid-event') {
        // one whole event, then half of the next, then the connection is reset
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(chunk({ role: 'assistant', content: '<safety>x</safety>' }) + chunk({ content: ' second' }).slice(0, 40));
        setTimeout(() => res.socket?.destroy(), 50);
      } else if (parsed.stream === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const parts = ['<saf', 'ety>Looks', ' benign', '.</sa', 'fety> Here', ' is', ' how.'];
        const n = mode === 'reset' ? 3 : mode === 'slow-stream' ? parts.length : parts.length;
        const gap = mode === 'slow-stream' ? 50 : 0;
        res.write(chunk({ role: 'assistant' }));
        let i = 0;
        const next = (): void => {
          if (res.destroyed) return;
          if (i < n) {
            res.write(chunk({ content: parts[i++] }));
            setTimeout(next, gap);
            return;
          }
          if (mode === 'reset') { res.socket?.destroy(); return; }
          res.write(chunk({}, { usage: { prompt_tokens: 5, completion_tokens: parts.length, total_tokens: 5 + parts.length } }));
          res.end('data: [DONE]\n\n');
        };
        next();
      } else if (req.url === '/v1/completions') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'cmpl-fake', object: 'text_completion', choices: [{ index: 0, text: 'echo:' + String(parsed.prompt) }] }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(completion(ANSWER, parsed.model));
      }
    });
  });
  await new Promise<void>((r, reject) => { server.once('error', reject); server.listen(0, host, r); });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    requests,
    get cancelled() { return state.cancelled; },
    get flooded() { return state.flooded; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
