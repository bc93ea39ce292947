/**
 * The serving gateway: an OpenAI-compatible HTTP server in front of an existing one (vLLM,
 * `transformers serve`, ...). Each chat request's last user message is scored by the
 * allocator; the budget instruction goes into the system message with the one prompt template
 * (core/template.ts); the answer, streamed or not, is split into safety block and answer and
 * counted. Responses API and legacy completions requests go the same way, through their
 * adapters in routes.ts (what is scored, where the budget goes, a refusal's shape, how the
 * answer is read: answer.ts). Every other route is passed through untouched. vscode-free: the
 * CLI (`conscience serve`) and the editor both start this.
 */
import http from 'node:http';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { isUtf8 } from 'node:buffer';
import type { Allocator, Assessment, Tier } from '../allocator';
import { firstInvalidUtf8 } from '../allocator/read';
import { budgetOf } from '../allocator/policy';
import { DEFAULT_TEMPLATE, type PromptTemplateSpec } from '../template';
import { RequestError } from './messages';
import { GatewayMetrics } from './metrics';
import { checkUpstream, redactUpstream } from './status';
import { DEFAULT_REFUSAL, type GatewayPolicy } from './options';
import type { AnswerParser, AnswerStats } from './answer';
import { scoredRoute, type Continued, type RouteAdapter } from './routes';
import { Continuations, type Turn } from './continuations';

export interface LogRecord { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }

export interface GatewayOptions {
  /** the upstream server's root (a trailing /v1 is dropped: requests keep their own /v1/...) */
  upstream: string;
  allocator: Allocator;
  policy?: GatewayPolicy;
  /** the template the policy was trained with (default: template.json's) */
  template?: PromptTemplateSpec;
  /** score, count and log; forward every request byte for byte */
  observeOnly?: boolean;
  /** put prompt and completion text in the logs (off: never) */
  logPrompts?: boolean;
  /** largest request body accepted (bytes, default 16 MiB) */
  maxBodyBytes?: number;
  /** chat request bodies held in memory at once, in bytes (default 32 MiB, at least maxBodyBytes); a request past it gets 503 with Retry-After */
  maxBufferedBytes?: number;
  /** send the upstream URL's user:pass@ as Basic auth on every request, replacing the client's Authorization (default: only when the client sends none) */
  replaceAuthorization?: boolean;
  /** no byte from the upstream for this long (waiting for headers or mid-answer) aborts (default 600 s) */
  upstreamTimeoutMs?: number;
  /** connecting to the upstream (default 10 s) */
  connectTimeoutMs?: number;
  /** characters of the last user message the allocator is given (default 16,384; longer prompts are scored on their start, with a warning) */
  maxScoreChars?: number;
  /** budgets are clipped to this (a recipe's safety.max_budget, as the trainer clips them) */
  maxBudget?: number;
  /** prompts scored in one allocator call at most (default 64) */
  maxBatch?: number;
  /** structured log sink (default: one JSON line per record on stderr) */
  log?: (rec: LogRecord) => void;
  /** POST/PUT/PATCH paths forwarded unscored besides PASSED_ROUTES (`--pass-route`); any other is answered 403 */
  passRoutes?: string[];
}

export interface Gateway {
  readonly server: http.Server;
  readonly metrics: GatewayMetrics;
  listen(port?: number, host?: string): Promise<{ port: number; host: string; url: string }>;
  /** Stops accepting; requests in flight get up to `graceMs` to finish, then every connection is cut. */
  close(graceMs?: number): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'expect',
]);
const ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/models', '/health', '/metrics']);
/** the `status` label of a request whose client left before the response began (nginx's "client closed request") */
const CLIENT_CLOSED = 499;
/**
 * The POST routes forwarded unscored: the upstreams' routes that generate no text from a prompt
 * (embeddings, tokenizer, pooling, scoring, reranking, speech to text) and a response's cancel.
 * Any other POST, PUT or PATCH (vLLM's Anthropic-style /v1/messages, token-in generation,
 * transformers serve's /load_model and /reset, an admin route) is refused: forwarded, it would
 * reach the model around the scoring. `--pass-route PATH` forwards one more.
 */
export const PASSED_ROUTES: readonly string[] = [
  '/v1/embeddings', '/tokenize', '/detokenize', '/pooling', '/classify', '/score', '/v1/score', '/rerank', '/v1/rerank', '/v2/rerank',
  '/v1/audio/transcriptions', '/v1/audio/translations',
];
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** the content encodings the gateway decodes */
const DECODERS = new Set(['gzip', 'x-gzip', 'deflate', 'br']);

type Decoder = zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress;

/**
 * A strict decoder for one of DECODERS: a body cut short ends in an error ("unexpected end of
 * file"), never silently. `head`: the body's first bytes (at least two when it has them), which
 * tell a `deflate` body with its zlib header (RFC 1950) from a raw one (RFC 1951), which many
 * servers send under that name; both are read, as browsers and undici do.
 */
function createDecoder(encoding: string, head: Buffer): Decoder {
  if (encoding === 'br') return zlib.createBrotliDecompress();
  if (encoding !== 'deflate') return zlib.createGunzip();
  const zlibHeader = head.length >= 2 && (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
  return zlibHeader ? zlib.createInflate() : zlib.createInflateRaw();
}

/** The flush that puts out all a decoder can of what it was given, without ending it (a cut stream then ends without an error of its own). */
const syncFlush = (encoding: string): number => (encoding === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH);

/**
 * Holds a body's first bytes until its decoder can be chosen (a `deflate` body's first two);
 * `take` returns what to write once it can, `rest` what it holds at the body's end.
 */
class DecoderHead {
  private held: Buffer[] = [];
  private size = 0;
  constructor(private readonly encoding: string) {}
  take(c: Buffer): Buffer | null {
    this.held.push(c);
    this.size += c.length;
    if (this.encoding === 'deflate' && this.size < 2) return null;
    return this.rest();
  }
  rest(): Buffer {
    const b = Buffer.concat(this.held);
    this.held = [];
    this.size = 0;
    return b;
  }
}

/**
 * The headers of a compressed answer that describe its compressed bytes, taken off when the
 * client gets it decoded: the length and digests go, a strong ETag becomes weak (the bytes
 * differ; the representation is the same). Vary stays.
 */
function decodedHeaders(out: http.OutgoingHttpHeaders): void {
  for (const k of ['content-encoding', 'content-length', 'content-md5', 'digest', 'repr-digest', 'content-digest']) delete out[k];
  const etag = out.etag;
  if (etag === undefined) return;
  const t = String(etag).trim();
  if (/^W\//.test(t)) return;
  if (/^"[^"]*"$/.test(t)) out.etag = `W/${t}`;
  else delete out.etag;
}

/**
 * Scores prompts that arrive close together in one allocator call (the allocator caches by
 * hash), with up to `allocator.concurrency` calls running at once (one per worker thread).
 */
class MicroBatcher {
  private queue: Array<{ text: string; resolve: (a: Assessment) => void; reject: (e: unknown) => void }> = [];
  private running = 0;
  private scheduled = false;
  constructor(private readonly allocator: Allocator, private readonly max: number, private readonly onBatch: (n: number) => void = () => {}) {}

  score(text: string): Promise<Assessment> {
    return new Promise((resolve, reject) => {
      this.queue.push({ text, resolve, reject });
      if (!this.scheduled && this.running < this.allocator.concurrency) {
        this.scheduled = true;
        setImmediate(() => { this.scheduled = false; this.pump(); });
      }
    });
  }

  /** Starts batches while there is work and a free slot; each finished batch starts the next. */
  private pump(): void {
    while (this.queue.length && this.running < this.allocator.concurrency) {
      const batch = this.queue.splice(0, this.max);
      this.running++;
      this.onBatch(batch.length);
      this.allocator.assess(batch.map((b) => b.text)).then(
        (out) => batch.forEach((b, i) => b.resolve(out[i]!)),
        (err: unknown) => { for (const b of batch) b.reject(err); },
      ).finally(() => { this.running--; this.pump(); });
    }
  }
}

/**
 * A request target (origin-form, or absolute-form `http://host/path`) as its path and its query
 * (with its `?`), the fragment dropped: what an upstream routes on.
 */
function requestTarget(url: string): { path: string; query: string } {
  let t = url;
  if (!t.startsWith('/')) {
    try { const u = new URL(t); t = u.pathname + u.search; } catch { /* '*' or junk: the upstream answers it */ }
  }
  const hash = t.indexOf('#');
  if (hash >= 0) t = t.slice(0, hash);
  const q = t.indexOf('?');
  return { path: q < 0 ? t : t.slice(0, q), query: q < 0 ? '' : t.slice(q) };
}

/**
 * The path the gateway routes on: percent-decoded once, `%2F` included (uvicorn decodes a path
 * before FastAPI routes it, so `/v1/chat%2Fcompletions` and `/v1/chat/%63ompletions` are chat
 * completions to vLLM and transformers serve), duplicate slashes merged, `.` and `..` segments
 * resolved and a trailing slash dropped (as nginx or a redirecting router would take them).
 */
function canonicalPath(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

/**
 * A chat max-tokens value as the upstreams read it: a whole number, or a string of digits
 * (transformers serve calls int() on it, vLLM's pydantic coerces it in lax mode); else null.
 */
function tokenLimit(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) ? v : null;
  return typeof v === 'string' && /^\s*\+?\d{1,15}\s*$/.test(v) ? Number(v) : null;
}

function openaiError(message: string, type: string, param: string | null = null, code: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/** The upstream URL without credentials and query (status.ts's redactUpstream) and its trailing slash, for messages and /health. */
function redact(u: URL): string {
  return redactUpstream(u.href).replace(/\/$/, '');
}

/** What a request is handled by: a turn it brought (a full assessment), or one remembered from the conversation it continues. */
type Handled = Turn & Partial<Pick<Assessment, 'unfamiliar'>>;

export function createGateway(opts: GatewayOptions): Gateway {
  // the rules and words of checkUpstream (the CLI and the editor ask it first): an upstream URL
  // the gateway could not use as given (another scheme, a query it would show but never send,
  // a user:pass@ that is not percent-encoding) is refused here, not on every request
  const problem = checkUpstream(opts.upstream);
  if (problem) throw new Error(`--upstream ${JSON.stringify(redactUpstream(opts.upstream))}: ${problem}`);
  const upstream = new URL(opts.upstream.trim());
  const basePath = upstream.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  const upstreamName = redact(upstream);
  // the user:pass@ sent as Basic auth, decoded once
  const user = decodeURIComponent(upstream.username);
  const basicAuth = user ? 'Basic ' + Buffer.from(`${user}:${decodeURIComponent(upstream.password)}`).toString('base64') : undefined;
  const client = upstream.protocol === 'https:' ? https : http;
  const agent = new client.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 256 });
  const policy: GatewayPolicy = opts.policy ?? { allocator: {}, maxTokens: {}, refuse: new Set(), refusal: DEFAULT_REFUSAL };
  const template: PromptTemplateSpec = { ...(opts.template ?? DEFAULT_TEMPLATE), ...(policy.systemPrompt !== undefined ? { systemPrompt: policy.systemPrompt } : {}) };
  const maxBody = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const maxBuffered = Math.max(opts.maxBufferedBytes ?? 32 * 1024 * 1024, maxBody);
  const upstreamTimeout = opts.upstreamTimeoutMs ?? 600_000;
  const connectTimeout = opts.connectTimeoutMs ?? 10_000;
  const maxScoreChars = opts.maxScoreChars ?? 16_384;
  const fixedBudget = policy.fixedBudget ?? opts.allocator.policy.budget_deep;
  const log = opts.log ?? ((rec: LogRecord) => process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), ...rec }) + '\n'));
  const metrics = new GatewayMetrics();
  const continuations = new Continuations(stricter);
  const batcher = new MicroBatcher(opts.allocator, opts.maxBatch ?? 64, (n) => metrics.allocatorBatch.observe(n));

  const route = (path: string): string => (ROUTES.has(path) ? path : 'other');
  const passed = new Set([...PASSED_ROUTES, ...(opts.passRoutes ?? []).map(canonicalPath)]);

  /**
   * A Location under the upstream's URL (its origin and base path) as a path on the gateway (the
   * base path taken off); any other left as sent, as nginx's `proxy_redirect default` does: a
   * path on the upstream's origin outside its base path has no gateway path that reaches it
   * (the gateway would send `/other` to `<base>/other`).
   */
  const gatewayLocation = (loc: string): string => {
    let u: URL;
    try { u = new URL(loc, upstream); } catch { return loc; }
    if (u.origin !== upstream.origin) return loc;
    if (!basePath) return u.pathname + u.search + u.hash;
    if (u.pathname !== basePath && !u.pathname.startsWith(basePath + '/')) {
      // as sent when absolute; a relative one made absolute against the upstream's address
      // without the credentials --upstream may carry
      if (URL.canParse(loc)) return loc;
      u.username = '';
      u.password = '';
      return u.href;
    }
    return (u.pathname.slice(basePath.length) || '/') + u.search + u.hash;
  };

  /** bytes of chat request bodies held now (maxBuffered at most) */
  let buffered = 0;

  function send(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  /**
   * Reads the request body up to the limit; undefined when a 413 or a 503 was sent instead, or
   * the client left. Its bytes are counted in `buffered` (its declared length at once, a
   * chunked body as it arrives) and kept in `hold.bytes` until the caller gives them back. A
   * body that would take `buffered` past maxBuffered is read to its end without being kept
   * (it is at most maxBody), then answered 503 with Retry-After.
   */
  function readBody(req: http.IncomingMessage, res: http.ServerResponse, hold: { bytes: number }): Promise<Buffer | undefined> {
    const tooLarge = (): undefined => {
      send(res, 413, openaiError(`request body larger than the gateway's limit of ${maxBody} bytes`, 'invalid_request_error', null, 'request_too_large'), { connection: 'close' });
      res.once('finish', () => req.destroy());
      return undefined;
    };
    const busy = (): undefined => {
      send(res, 503, openaiError(`the gateway holds ${maxBuffered} bytes of request bodies already (--max-buffered); retry shortly`, 'server_error', null, 'gateway_busy'), { 'retry-after': '1' });
      return undefined;
    };
    /** counts `bytes` more as held; false when that would pass maxBuffered */
    const take = (bytes: number): boolean => {
      if (buffered + bytes > maxBuffered) return false;
      buffered += bytes;
      hold.bytes += bytes;
      return true;
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) { req.resume(); return Promise.resolve(tooLarge()); }
    let kept = !(Number.isFinite(declared) && declared > 0 && !take(declared));
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const give = (): void => { buffered -= hold.bytes; hold.bytes = 0; };
      req.on('data', (c: Buffer) => {
        if (done) return;
        size += c.length;
        if (size > maxBody) { done = true; chunks.length = 0; give(); resolve(tooLarge()); return; }
        if (kept && size > hold.bytes && !take(size - hold.bytes)) { kept = false; chunks.length = 0; give(); }
        if (kept) chunks.push(c);
      });
      req.on('end', () => {
        if (done) return;
        done = true;
        resolve(kept ? Buffer.concat(chunks) : busy());
      });
      // the client went away mid-body ('aborted', then 'close'): nothing to answer
      req.on('error', () => { if (!done) { done = true; resolve(undefined); } });
      req.on('close', () => { if (!done) { done = true; resolve(undefined); } });
    });
  }

  interface Forward {
    body?: Buffer;
    /** headers added to the response */
    extra?: Record<string, string>;
    /** read the answer (a scored route): its parser for a successful answer (SSE or not), and what to do once it ended */
    answer?: { stream: boolean; parser: (sse: boolean) => AnswerParser; done: (r: AnswerStats | null, info: UpstreamInfo) => void };
    route: string;
    /** the upstream path and query (after the upstream's base path) */
    path: string;
    /** called once, when the upstream's answer begins or the request ends: `body` is no longer held */
    release?: () => void;
  }
  interface UpstreamInfo { status: number; firstByteMs: number | null; totalMs: number; error?: string; aborted?: boolean; streamed?: boolean }

  function forward(req: http.IncomingMessage, res: http.ServerResponse, f: Forward, retried = false): void {
    if (res.destroyed || req.socket.destroyed) {
      // the client left while its prompt was being scored: nothing to send upstream
      metrics.clientAborts.inc();
      metrics.http.inc({ route: f.route, status: String(CLIENT_CLOSED) });
      f.release?.();
      f.answer?.done(null, { status: CLIENT_CLOSED, firstByteMs: null, totalMs: 0, aborted: true });
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    headers.host = upstream.host;
    if (f.body) headers['content-length'] = String(f.body.length);
    else if (req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length'];
    else if (req.headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = req.headers['transfer-encoding'];
    if (basicAuth !== undefined && (opts.replaceAuthorization || headers.authorization === undefined)) headers.authorization = basicAuth;
    const started = performance.now();
    let firstByteMs: number | null = null;
    let finished = false;
    /** the answer is an event stream: asked for, or sent as one (transformers serve streams a response unless told not to) */
    let streaming = !!f.answer?.stream;
    metrics.inFlight.inc();
    const finish = (info: Omit<UpstreamInfo, 'firstByteMs' | 'totalMs'>, stats: AnswerStats | null): void => {
      if (finished) return;
      finished = true;
      metrics.inFlight.dec();
      f.release?.();
      const totalMs = performance.now() - started;
      if (info.status > 0 && !info.error) metrics.upstreamSeconds.observe({ phase: 'total' }, totalMs / 1000);
      // the status the client got (a client that left mid-answer got the upstream's); one that
      // left before the response began: nginx's 499 (res.statusCode would say 200)
      const status = res.headersSent ? res.statusCode : info.aborted ? CLIENT_CLOSED : info.status;
      metrics.http.inc({ route: f.route, status: String(status || 0) });
      f.answer?.done(stats, { ...info, status, firstByteMs, totalMs, streamed: streaming });
    };

    let up: http.ClientRequest;
    try {
      up = client.request({
        protocol: upstream.protocol,
        hostname: upstream.hostname.replace(/^\[(.*)\]$/, '$1'), // an IPv6 address without its URL brackets
        port: upstream.port || undefined,
        path: basePath + f.path,
        method: req.method,
        headers,
        agent,
      });
    } catch (err) {
      // a request Node will not send (a header or path it refuses): answered 502, and what the
      // request holds (its body's bytes, the in-flight count) is let go, as for any failure
      const message = `the request could not be sent to the upstream ${upstreamName}: ${(err as Error).message}`;
      metrics.upstreamErrors.inc({ kind: 'unreachable' });
      if (!res.headersSent) send(res, 502, openaiError(message, 'upstream_error', null, 'upstream_unreachable'), f.extra);
      else res.destroy();
      finish({ status: 502, error: message }, null);
      return;
    }
    let connectTimer: NodeJS.Timeout | undefined;
    up.on('socket', (sock) => {
      if ((sock as { connecting?: boolean }).connecting) {
        connectTimer = setTimeout(() => up.destroy(Object.assign(new Error(`no connection within ${connectTimeout} ms`), { code: 'ECONNTIMEDOUT' })), connectTimeout);
        sock.once('connect', () => clearTimeout(connectTimer));
      }
    });
    up.setTimeout(upstreamTimeout, () => {
      up.destroy(Object.assign(new Error(`no data from the upstream for ${Math.round(upstreamTimeout / 1000)} s`), { code: 'ETIMEDOUT' }));
    });

    // the client went away: cancel the upstream request
    res.on('close', () => {
      decoder?.destroy();
      if (!res.writableFinished && !finished) {
        metrics.clientAborts.inc();
        up.destroy();
        // it may have left while the error event of a failed upstream was on its way
        finish({ status: 0, aborted: true, ...(failed !== null ? { error: failed } : {}) }, null);
      }
    });

    /** the last bytes of the answer written to the client (a stream's error event must start an event of its own) */
    let tail = '';
    /** the client's body is SSE text it can read on, not compressed bytes: a stream may end with an error event */
    let plainBody = true;
    /** a compressed chat stream's decoder, when the client gets it decoded */
    let decoder: Decoder | null = null;
    let decoderEncoding = '';
    /** run once all the decoder has put out so far has been written to the client */
    let onDecoded: Array<() => void> = [];
    const whenDecoded = (cb: () => void): void => {
      if (!decoder || decoder.destroyed || decoder.readableLength === 0) cb();
      else onDecoded.push(cb);
    };
    /** the error message once the upstream failed (the request is finished once the client has it) */
    let failed: string | null = null;
    const fail = (err: NodeJS.ErrnoException): void => {
      clearTimeout(connectTimer);
      if (finished || failed !== null) return;
      // a kept-alive socket the upstream closed just as it was reused: send once more on a fresh
      // one (the request body is held, or there is none)
      const replayable = f.body !== undefined || req.method === 'GET' || req.method === 'HEAD';
      if (!retried && up.reusedSocket && err.code === 'ECONNRESET' && !res.headersSent && replayable) {
        finished = true;
        metrics.inFlight.dec();
        forward(req, res, f, true);
        return;
      }
      const timeout = err.code === 'ETIMEDOUT' || err.code === 'ECONNTIMEDOUT';
      const kind = timeout ? 'timeout' : res.headersSent ? 'reset' : 'unreachable';
      metrics.upstreamErrors.inc({ kind });
      const message = res.headersSent
        ? `the upstream ${upstreamName} failed mid-answer: ${err.message}`
        : timeout
          ? `the upstream ${upstreamName} did not answer in time (${err.message})`
          : `the upstream ${upstreamName} is unreachable: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ');
      failed = message;
      const done = (): void => finish({ status: res.statusCode, error: message }, null);
      if (!res.headersSent) {
        send(res, timeout ? 504 : 502, openaiError(message, 'upstream_error', null, timeout ? 'upstream_timeout' : 'upstream_unreachable'), f.extra);
        done();
      } else if (streaming && !res.writableEnded && plainBody) {
        // the upstream may have stopped mid-event: end that event first, or the error is glued
        // onto it. The request is finished (and logged) once the client has it all: a client
        // that leaves before is a client abort
        let ended = false;
        const end = (): void => {
          if (ended || finished) return;
          ended = true;
          if (res.destroyed) return; // the client left: its 'close' finishes the request
          if (res.writableEnded) { done(); return; }
          res.end(`${tail === '' || endsEvent(tail) ? '' : '\n\n'}data: ${openaiError(message, 'upstream_error', null, 'upstream_reset')}\n\n`, done);
        };
        const d = decoder;
        if (d && !d.destroyed) {
          // what the decoder holds of a compressed stream goes out first: a sync flush, lenient
          // where its end would not be (the stream is cut), then the error event
          d.once('error', end);
          d.flush(syncFlush(decoderEncoding), () => {
            if (d.destroyed) { end(); return; }
            whenDecoded(() => { end(); d.destroy(); });
          });
        } else end();
      } else {
        res.destroy();
        done();
      }
    };
    up.on('error', fail);

    up.on('response', (ur) => {
      clearTimeout(connectTimer);
      // the body is not replayed once the answer has begun
      f.release?.();
      f.body = undefined;
      firstByteMs = performance.now() - started;
      metrics.upstreamSeconds.observe({ phase: 'first_byte' }, firstByteMs / 1000);
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ur.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
      if (ur.headers['content-length'] !== undefined) out['content-length'] = ur.headers['content-length'];
      // a redirect to the upstream itself points at the gateway (nginx's proxy_redirect default):
      // the client neither learns the upstream's address nor follows it around the gateway
      if (typeof out.location === 'string') out.location = gatewayLocation(out.location);
      const status = ur.statusCode ?? 0;
      const ok = status >= 200 && status < 300;
      const encoding = String(ur.headers['content-encoding'] ?? '').trim().toLowerCase() || 'identity';
      const sse = /text\/event-stream/i.test(String(ur.headers['content-type'] ?? ''));
      // a compressed chat stream is decoded for the client: once the upstream breaks off
      // mid-answer, a compressed stream cannot be ended with an error event (it would be glued,
      // undecodable, onto a cut stream); anything else goes to the client as it came, and the
      // parser reads a decompressed copy
      if (f.answer && ok && sse) streaming = true;
      const decodeForClient = streaming && ok && DECODERS.has(encoding);
      plainBody = encoding === 'identity' || decodeForClient;
      if (decodeForClient) decodedHeaders(out);
      Object.assign(out, f.extra);
      res.writeHead(ur.statusCode ?? 502, out);
      const parseable = encoding === 'identity' || DECODERS.has(encoding);
      const parser = f.answer && ok && parseable ? f.answer.parser(sse) : null;
      const head = new DecoderHead(encoding);
      /** a strict decoder's error: a body that ends before its compressed stream does was cut short */
      const decodeFailed = (err: NodeJS.ErrnoException): void => {
        fail(Object.assign(new Error(err.code === 'Z_BUF_ERROR'
          ? `its ${encoding} body was cut short (${err.message})`
          : `its ${encoding} body could not be decoded (${err.message})`), { code: 'EBADENCODING' }));
        up.destroy();
      };
      let paused = false;
      /** writes a piece of the answer to the client; a slow client pauses `source` (the upstream, or the decoder whose full buffer pauses the upstream) instead of filling memory */
      const toClient = (c: Buffer, source: NodeJS.ReadableStream): void => {
        if (streaming) tail = (tail + c.toString('latin1', Math.max(0, c.length - 4))).slice(-4);
        if (!res.write(c) && !paused) {
          paused = true;
          source.pause();
          res.once('drain', () => { paused = false; source.resume(); });
        }
      };
      if (decodeForClient) {
        const open = (first: Buffer): Decoder => {
          const d = decoder = createDecoder(encoding, first);
          decoderEncoding = encoding;
          d.on('data', (c: Buffer) => {
            parser?.push(c);
            toClient(c, d);
            if (onDecoded.length && d.readableLength === 0) { const cbs = onDecoded; onDecoded = []; for (const cb of cbs) cb(); }
          });
          d.on('error', decodeFailed);
          d.on('end', () => {
            if (finished || failed !== null) return;
            res.end();
            finish({ status }, parser ? parser.end() : null);
          });
          return d;
        };
        let upPaused = false;
        const feed = (chunk: Buffer): void => {
          let d = decoder;
          if (!d) {
            const first = head.take(chunk);
            if (!first) return;
            d = open(first);
            chunk = first;
          }
          if (d.destroyed || d.writableEnded) return;
          if (!d.write(chunk) && !upPaused) {
            upPaused = true;
            ur.pause();
            d.once('drain', () => { upPaused = false; ur.resume(); });
          }
        };
        ur.on('data', feed);
        ur.on('end', () => {
          if (finished || failed !== null) return;
          if (!decoder) {
            const rest = head.rest();
            // an empty body: nothing to decode
            if (rest.length === 0) { res.end(); finish({ status }, parser ? parser.end() : null); return; }
            open(rest).write(rest);
          }
          const d = decoder!;
          if (d.destroyed || d.writableEnded) return;
          // all that decodes reaches the client before the strict end, which fails a cut body
          d.flush(syncFlush(encoding), () => whenDecoded(() => { if (!d.destroyed && !d.writableEnded) d.end(); }));
        });
      } else if (parser && encoding !== 'identity') {
        // a compressed chat answer, not streamed: it goes to the client as sent while a strict
        // decoder reads a copy for the parser. Its last piece is held until that copy has
        // decoded whole, so an answer cut short (or undecodable) is failed as one broken
        // mid-body is: the connection is closed before the client has it all
        let inflate: Decoder | null = null;
        let held: Buffer | null = null;
        const open = (first: Buffer): Decoder => {
          const z = inflate = createDecoder(encoding, first);
          z.on('data', (c: Buffer) => parser.push(c));
          z.on('error', decodeFailed);
          return z;
        };
        ur.on('data', (chunk: Buffer) => {
          if (finished || failed !== null) return;
          if (!inflate) {
            const first = head.take(chunk);
            if (first) open(first).write(first);
          } else if (!inflate.destroyed) inflate.write(chunk);
          if (held) toClient(held, ur);
          held = chunk;
        });
        ur.on('end', () => {
          if (finished || failed !== null) return;
          const ended = (): void => {
            if (finished || failed !== null) return;
            if (held) res.end(held); else res.end();
            finish({ status }, parser.end());
          };
          let z = inflate as Decoder | null;
          if (!z) {
            const rest = head.rest();
            // an empty body: nothing to decode
            if (rest.length === 0) { ended(); return; }
            z = open(rest);
            z.write(rest);
          }
          if (z.destroyed) return;
          z.once('end', ended);
          z.end();
        });
      } else {
        ur.on('data', (chunk: Buffer) => {
          parser?.push(chunk);
          toClient(chunk, ur);
        });
        ur.on('end', () => {
          res.end();
          finish({ status }, parser ? parser.end() : null);
        });
      }
      const reset = (): void => fail(Object.assign(new Error('the connection was reset'), { code: 'ECONNRESET' }));
      ur.on('aborted', reset);
      ur.on('error', reset);
    });

    if (f.body) { up.end(f.body); return; }
    // a passed-through body is counted as it streams (a chunked one declares no length): past
    // the limit the upstream request is cancelled and the client gets 413, or, when the
    // upstream's answer has begun already, its connection is cut
    let size = 0;
    const count = (c: Buffer): void => {
      size += c.length;
      if (size <= maxBody || finished) return;
      req.off('data', count);
      req.unpipe(up);
      const message = `request body larger than the gateway's limit of ${maxBody} bytes`;
      if (!res.headersSent) {
        send(res, 413, openaiError(message, 'invalid_request_error', null, 'request_too_large'), { connection: 'close' });
        res.once('finish', () => req.destroy());
      } else res.destroy();
      finish({ status: 413, error: message }, null);
      up.destroy();
    };
    req.on('data', count);
    req.pipe(up);
  }

  async function scored(req: http.IncomingMessage, res: http.ServerResponse, path: string, r: RouteAdapter): Promise<void> {
    const hold = { bytes: 0 };
    const release = (): void => { buffered -= hold.bytes; hold.bytes = 0; };
    let handedOver = false;
    try {
      await scoredBody(req, res, path, r, hold, release, () => { handedOver = true; });
    } finally {
      // the body is held until forward() lets it go (its answer began, or it ended)
      if (!handedOver) release();
    }
  }

  /**
   * One prompt's assessment, or the allocator's failure. A text that compatibility
   * normalization (NFKC) changes is scored as sent and as normalized, and the stricter counts:
   * full-width letters (ｂｏｍｂ), ligatures and the like read to the model as the plain
   * letters the allocator knows. An ordinary text is scored once.
   */
  async function assess(text: string): Promise<Assessment> {
    const long = text.length > maxScoreChars;
    const head = wellFormed(long ? text.slice(0, maxScoreChars) : text);
    const folded = head.normalize('NFKC');
    const scored = await Promise.all(folded === head ? [batcher.score(head)] : [batcher.score(head), batcher.score(wellFormed(folded.slice(0, maxScoreChars)))]);
    if (scored.some((x) => !Number.isFinite(x.risk))) throw new Error('the allocator returned no score');
    const a = strictest(scored);
    return long ? { ...a, truncated: true } : a;
  }

  /**
   * The assessment a request with several texts (a completions list, a conversation's last
   * context_turns user messages) is handled by: one in a refused tier, else one in the `brief`
   * (clearly harmful) tier, else the one with the largest budget, then the highest risk.
   */
  function strictest<T extends Turn>(all: T[]): T {
    return all.reduce((best, x) => (stricter(x, best) ? x : best));
  }
  /** whether x is handled more strictly than y (the order of `strictest`) */
  function stricter(x: Turn, y: Turn): boolean {
    const rank = (t: Turn): number[] => [policy.refuse.has(t.tier) ? 1 : 0, t.tier === 'brief' ? 1 : 0, t.budget, t.risk];
    const [p, q] = [rank(x), rank(y)];
    const k = p.findIndex((v, i) => v !== q[i]);
    return k >= 0 && p[k]! > q[k]!;
  }

  async function scoredBody(req: http.IncomingMessage, res: http.ServerResponse, path: string, r: RouteAdapter, hold: { bytes: number }, release: () => void, handOver: () => void): Promise<void> {
    const id = String(req.headers['x-request-id'] ?? randomUUID());
    const buf = await readBody(req, res, hold);
    if (!buf) {
      if (res.statusCode === 413 || res.statusCode === 503) metrics.http.inc({ route: r.route, status: String(res.statusCode) });
      else {
        metrics.clientAborts.inc();
        metrics.http.inc({ route: r.route, status: String(CLIENT_CLOSED) });
        log({ level: 'info', msg: 'client left before sending its request', id });
      }
      return;
    }
    const bad = (e: RequestError, logged = e.message): void => {
      metrics.http.inc({ route: r.route, status: String(e.status) });
      log({ level: 'warn', msg: 'bad request', id, route: r.route, status: e.status, error: logged });
      send(res, e.status, openaiError(e.message, 'invalid_request_error', e.param, e.code));
    };
    // JSON is UTF-8 (RFC 8259): a body that is not is refused, never altered on its way
    const notUtf8 = isUtf8(buf) ? -1 : firstInvalidUtf8(buf);
    if (notUtf8 >= 0) {
      return bad(new RequestError(`the request body is not valid UTF-8 (JSON text must be): the byte at offset ${notUtf8} (0x${buf[notUtf8]!.toString(16).padStart(2, '0')}) starts no UTF-8 character`, null, 400, 'invalid_utf8'));
    }
    const text = buf.toString('utf8');
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new RequestError('the request body must be a JSON object');
      body = parsed as Record<string, unknown>;
    } catch (err) {
      if (err instanceof RequestError) return bad(err);
      // V8's message quotes the body: the client gets it, the log only the position (no prompt text)
      const at = /at position (\d+)/.exec((err as Error).message);
      return bad(new RequestError(`invalid JSON in the request body: ${(err as Error).message}`, null, 400, 'invalid_json'), `invalid JSON in the request body${at ? ` at position ${at[1]}` : ''}`);
    }
    const turns = policy.contextTurns ?? 1;
    let prompts: ReturnType<RouteAdapter['prompts']>;
    let continued: Continued | null;
    try {
      prompts = r.prompts(body, turns);
      continued = r.continues(body);
    } catch (err) {
      if (err instanceof RequestError) return bad(err);
      throw err;
    }
    // a continuation of a response this gateway answered: its conversation's last scored texts
    // count as earlier turns (the upstream holds them; the request carries only the new items)
    const fromResponse = continued?.response !== undefined ? continuations.recall(continued.response) : undefined;
    const fromConversation = continued?.conversation !== undefined ? continuations.recallConversation(continued.conversation) : undefined;
    const history = fromResponse && fromConversation ? [...fromConversation, ...fromResponse] : fromResponse ?? fromConversation;
    // earlier turns this gateway did not see (another replica answered them, or a restart forgot
    // them): handled at least as `unknown_context` says (default none: on what the request brings)
    const unseen = (continued?.response !== undefined && !fromResponse) || (continued?.conversation !== undefined && !fromConversation)
      || continued?.references === true;
    const assumed: Handled | undefined = unseen && policy.unknownContext !== undefined && policy.unknownContext !== 'none'
      // (no risk: nothing was scored; NaN is never the stricter of two risks)
      ? { tier: policy.unknownContext, budget: budgetOf(opts.allocator.policy, policy.unknownContext), risk: Number.NaN } : undefined;
    // nothing to score (no user message, or a last one without text: an image alone, an empty
    // string): the allocator would score the empty string. Forwarded as sent, without a budget,
    // unless it continues a conversation the gateway scored (or one it assumes a tier for)
    const unscored = history || assumed ? null : prompts.unscored;
    // a prompt of token ids cannot be read: with tiers to refuse it would pass every refusal
    if (unscored?.header === 'token-ids' && policy.refuse.size > 0 && !opts.observeOnly) {
      return bad(new RequestError(`this gateway refuses some prompts (--policy refuse=${[...policy.refuse].join(',')}) and scores prompts as text: send 'prompt' as text, not token ids or embeddings`, 'prompt', 400, 'unscorable_prompt'));
    }
    const stream = streamAsked(body.stream);

    // score
    const t0 = performance.now();
    let a: Handled | null = null;
    let all: Assessment[] = [];
    /** whether long_prompt raised a truncated prompt's tier */
    let raisedLong = false;
    /** the user turns remembered for the answer's response id: the conversation's last context_turns */
    let kept: Turn[] = [];
    if (unscored === null) {
      try {
        all = await Promise.all(prompts.texts.map(assess));
        // a prompt longer than the allocator reads was scored on its start: where the policy
        // asks, it is handled at least as long_prompt says (a request after a long preamble)
        const long = policy.longPrompt;
        if (long !== undefined && long !== 'none') {
          all = all.map((x) => {
            const floor = { tier: long, budget: budgetOf(opts.allocator.policy, long), risk: x.risk };
            if (!x.truncated || !stricter(floor, x)) return x;
            raisedLong = true;
            return { ...x, tier: long, budget: floor.budget };
          });
        }
        // the request's own user turns (already its last `turns`), after as many remembered
        // ones as the turns leave room for; system texts scored for want of a user text are
        // not turns (a client resends `instructions` with every continuation)
        const userTurns = 'fromSystems' in prompts && prompts.fromSystems ? [] : all;
        const room = Math.max(0, turns - userTurns.length);
        const earlier = history && room > 0 ? history.slice(Math.max(0, history.length - room)) : [];
        // a conversation whose only scored texts are system ones (a developer item, say: the
        // upstream replays the stored items) keeps those, so its continuation is not unknown
        kept = earlier.length + userTurns.length > 0 ? [...earlier, ...userTurns] : all.slice(-turns);
        // the assumed tier is a floor carried by the latest turn, which the next continuation's
        // window (its last turns) keeps: the stricter of the two takes its place
        if (assumed) kept = kept.length === 0 ? [assumed] : [...kept.slice(0, -1), strictest<Turn>([kept.at(-1)!, assumed])];
        a = strictest<Handled>([...earlier, ...all, ...(assumed ? [assumed] : [])]);
      } catch (err) {
        a = null;
        metrics.allocatorErrors.inc();
        // where the policy refuses tiers, an unscored request would pass every refusal: it
        // fails closed (503, the client may retry); otherwise it is forwarded unchanged
        const closed = policy.refuse.size > 0 && !opts.observeOnly;
        // the unknown_context floor needs no score: where the request is forwarded, it still holds
        if (!closed && assumed) {
          a = assumed;
          kept = [assumed];
        }
        log({ level: 'error', msg: closed ? 'allocator failed; request answered 503' : a ? 'allocator failed; request handled at the unknown_context tier' : 'allocator failed; request forwarded unchanged', id, route: r.route, error: (err as Error).message });
        if (closed) {
          metrics.http.inc({ route: r.route, status: '503' });
          send(res, 503, openaiError('the gateway could not score this request, and it refuses some prompts (--policy refuse=…): try again', 'server_error', null, 'allocator_unavailable'), { 'retry-after': '1' });
          return;
        }
      }
    }
    const allocatorMs = unscored === null ? performance.now() - t0 : 0;
    if (unscored === null) metrics.allocatorSeconds.observe(allocatorMs / 1000);
    const truncated = !!a && all.some((x) => x.truncated);
    if (truncated) {
      metrics.truncatedScores.inc();
      log({ level: 'warn', msg: 'prompt longer than the allocator reads: scored on its start', id, route: r.route, prompt_chars: Math.max(...prompts.texts.map((t) => t.length)), scored_tokens: Math.max(...all.filter((x) => x.truncated).map((x) => x.tokens)) });
    }

    const tier: Tier | 'unscored' = a ? a.tier : 'unscored';
    // a route that gives no budget instruction (completions) grants none
    const budget = a && r.givesBudget ? (opts.maxBudget !== undefined ? Math.max(0, Math.min(opts.maxBudget, a.budget)) : a.budget) : 0;
    const extra: Record<string, string> = {
      'x-conscience-tier': tier,
      ...(unscored === null ? { 'x-conscience-risk': a && Number.isFinite(a.risk) ? a.risk.toFixed(4) : 'nan' } : { 'x-conscience-unscored': unscored.header }),
      ...(r.givesBudget ? { 'x-conscience-budget': String(budget) } : {}),
    };
    if (truncated) extra['x-conscience-truncated'] = '1';
    if (a?.unfamiliar) {
      extra['x-conscience-unfamiliar'] = '1';
      metrics.unfamiliarScores.inc();
    }
    const action: 'forwarded' | 'observed' | 'refused' | 'unscored' = unscored !== null ? (opts.observeOnly ? 'observed' : 'forwarded')
      : !a ? 'unscored' : opts.observeOnly ? 'observed' : policy.refuse.has(a.tier) ? 'refused' : 'forwarded';
    let out = buf;
    if (action === 'forwarded' && a) {
      const changed: Record<string, unknown> = r.givesBudget ? r.budget(body, template, budget) : {};
      const cap = policy.maxTokens[a.tier];
      if (cap !== undefined) {
        // every limit sent is capped, a numeric string too (the upstreams coerce "4000"), and
        // one that sets no limit (0: vLLM reads `max_completion_tokens or max_tokens`, or a
        // form the gateway does not read); a limit of 1..cap is left as sent (0 too where it is
        // a limit: completions). Without one, the route's own limit is added (at most the
        // upstreams' default). The upstreams take the first of limitKeys first
        const sent = r.limitKeys.filter((k) => body[k] !== undefined && body[k] !== null);
        const limits: number[] = [];
        for (const key of sent) {
          const asked = tokenLimit(body[key]);
          if (asked !== null && asked >= (r.zeroIsALimit ? 0 : 1) && asked <= cap) limits.push(asked);
          else { changed[key] = cap; limits.push(cap); }
        }
        if (sent.length === 0) {
          const added = Math.min(cap, r.defaultLimit ?? cap);
          changed[r.limitKeys.at(-1)!] = added;
          limits.push(added);
        }
        extra['x-conscience-max-tokens'] = String(limits[0]);
      }
      if (Object.keys(changed).length > 0) {
        try {
          out = Buffer.from(withMembers(text, changed) ?? JSON.stringify({ ...body, ...changed }));
        } catch (err) {
          // JSON.stringify recurses: messages nested deeper than its stack (JSON.parse does not recurse)
          if (err instanceof RangeError) return bad(new RequestError('the request body is nested too deeply', null, 400, 'invalid_json'));
          throw err;
        }
      }
    }
    // the budget instruction goes to each choice: each may spend the budget. A refusal has the
    // n choices asked for; a forwarded request is counted by the choices that came back (a
    // server may ignore n, an error has none: at least 1), once, when its answer ends
    const n = r.choices(body);
    const countBudget = (choices: number): void => {
      if (!a || !r.givesBudget) return;
      metrics.budgetTokens.inc({ tier: a.tier }, budget * choices);
      if (action !== 'observed') metrics.savedTokens.inc({ tier: a.tier }, Math.max(0, fixedBudget - budget) * choices);
    };
    if (a || unscored !== null) metrics.requests.inc({ tier, action, route: r.route });
    const base = {
      id, tier, risk: a && Number.isFinite(a.risk) ? Number(a.risk.toFixed(4)) : null, budget, ...(n > 1 ? { n } : {}), action, ...(unscored !== null ? { unscored: unscored.reason } : {}), stream,
      ...(prompts.texts.length > 1 ? { prompts: prompts.texts.length } : {}),
      ...(continued?.response !== undefined ? { previous_response: fromResponse ? 'known' : 'unknown' } : {}),
      ...(continued?.conversation !== undefined ? { conversation: fromConversation ? 'known' : 'unknown' } : {}),
      ...(assumed && a ? { assumed: assumed.tier } : {}),
      ...(raisedLong ? { long_prompt: policy.longPrompt } : {}),
      allocator_ms: round(allocatorMs), ...(a?.unfamiliar ? { unfamiliar: true } : {}),
    };
    // the prompt is kept for the log record only when it is logged
    const logged = opts.logPrompts ? (prompts.texts.length > 1 ? prompts.texts : prompts.texts[0] ?? null) : undefined;

    if (action === 'refused') {
      extra['x-conscience-refused'] = '1';
      const answer = r.refusal(body, stream, n, policy.refusal);
      // a continuation of the refusal is refused again, without asking the upstream
      if (answer.id !== undefined) continuations.remember(answer.id, kept, true);
      // (the upstream never sees a refusal, so its conversation does not move on: not remembered)
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(200, { 'content-type': answer.contentType, ...(stream ? { 'cache-control': 'no-cache' } : { 'content-length': Buffer.byteLength(answer.body) }), ...extra });
        res.end(answer.body);
      }
      countBudget(n);
      metrics.http.inc({ route: r.route, status: '200' });
      log({ level: 'info', msg: r.logName, ...base, status: 200, ...(opts.logPrompts ? { prompt: logged, completion: policy.refusal } : {}) });
      return;
    }

    handOver();
    const keep = opts.logPrompts ? 64 * 1024 : 0;
    const forwarded: Forward = {
      body: out,
      extra,
      route: r.route,
      path,
      release,
      answer: {
        stream,
        // an answer (2xx, its response id read): the upstream stored this turn, in the
        // conversation too, whose next request is then scored with these turns; a request the
        // upstream rejected moves nothing on
        parser: (sse) => r.parser(template, sse, keep, (responseId) => {
          continuations.remember(responseId, kept);
          if (continued?.conversation !== undefined) continuations.rememberConversation(continued.conversation, kept);
        }),
        done: (stats, info) => {
          countBudget(Math.max(1, stats ? stats.choices.length + stats.dropped : 0));
          let counts: Record<string, unknown> = {};
          if (stats && a) {
            metrics.completionTokens.inc({ tier: a.tier }, stats.completionTokens);
            metrics.safetyTokens.inc({ tier: a.tier }, stats.safetyTokens);
            counts = {
              completion_tokens: stats.completionTokens,
              token_source: stats.tokenSource,
              safety_tokens: stats.safetyTokens,
              // every choice closed its safety block
              safety_closed: stats.choices.length > 0 && stats.choices.every((c) => c.split.closed),
              ...(stats.dropped > 0 ? { choices_dropped: stats.dropped } : {}),
              ...(stats.choices.length > 1
                ? { choices: stats.choices.map((c) => ({ index: c.index, completion_tokens: c.completionTokens, safety_tokens: c.safetyTokens, safety_closed: c.split.closed })) }
                : {}),
            };
          }
          const completion = !stats ? null
            : stats.choices.length > 1 ? stats.choices.map((c) => ({ index: c.index, safety: c.split.safety, answer: c.split.answer }))
              : { safety: stats.choices[0]?.split.safety ?? '', answer: stats.choices[0]?.split.answer ?? '' };
          log({
            level: info.error ? 'error' : 'info',
            msg: r.logName,
            ...base,
            stream: stream || !!info.streamed,
            status: info.status,
            upstream_first_byte_ms: info.firstByteMs === null ? null : round(info.firstByteMs),
            upstream_ms: round(info.totalMs),
            ...(info.aborted ? { client_aborted: true } : {}),
            ...(info.error ? { error: info.error } : {}),
            ...counts,
            ...(opts.logPrompts ? { prompt: logged, completion } : {}),
          });
        },
      },
    };
    // forward() lets the body go once its answer begins or the request ends; should it throw
    // instead, the body is let go here (held, it would count against --max-buffered for good)
    try {
      forward(req, res, forwarded);
    } catch (err) {
      release();
      throw err;
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // routed as the upstream would route it: /v1/chat%2Fcompletions is chat completions to uvicorn
    const target = requestTarget(req.url ?? '/');
    const path = canonicalPath(target.path);
    if (path === '/health' && req.method === 'GET') {
      send(res, 200, JSON.stringify({ status: 'ok', upstream: upstreamName, observe_only: !!opts.observeOnly, allocator: opts.allocator.model.config.version }));
      metrics.http.inc({ route: '/health', status: '200' });
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
      return;
    }
    // a scored route reaches the upstream in its one spelling: what it serves is what was scored
    const scoredAs = req.method === 'POST' ? scoredRoute(path) : undefined;
    if (scoredAs) return scored(req, res, path + target.query, scoredAs);
    if (WRITE_METHODS.has(req.method ?? '') && !passed.has(path) && !/^\/v1\/responses\/[^/]+\/cancel$/.test(path)) {
      metrics.http.inc({ route: route(path), status: '403' });
      log({ level: 'warn', msg: 'route not forwarded', method: req.method, path });
      send(res, 403, openaiError(
        `the gateway does not forward ${req.method} ${path}: it scores /v1/chat/completions, /v1/responses and /v1/completions, and forwards other ${req.method} routes only when they generate no text from a prompt (${PASSED_ROUTES.join(', ')}); \`conscience serve --pass-route ${path}\` forwards it unscored`,
        'invalid_request_error', null, 'route_not_forwarded'), { connection: 'close' });
      res.once('finish', () => req.destroy());
      return;
    }
    // everything else (/v1/models, embeddings, GET /v1/responses/{id}, ...) goes through untouched
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      metrics.http.inc({ route: route(path), status: '413' });
      send(res, 413, openaiError(`request body larger than the gateway's limit of ${maxBody} bytes`, 'invalid_request_error', null, 'request_too_large'), { connection: 'close' });
      res.once('finish', () => req.destroy());
      return;
    }
    forward(req, res, { route: route(path), path: target.path + target.query });
  }

  let active = 0;
  const server = http.createServer((req, res) => {
    active++;
    res.once('close', () => { active--; });
    handle(req, res).catch((err: Error) => {
      log({ level: 'error', msg: 'internal error', error: err.message });
      if (!res.headersSent) {
        send(res, 500, openaiError(`conscience gateway: ${err.message}`, 'internal_error'));
        metrics.http.inc({ route: route(canonicalPath(requestTarget(req.url ?? '/').path)), status: '500' });
      } else res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;

  return {
    server,
    metrics,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address() as { port: number };
          const h = host.includes(':') ? `[${host}]` : host;
          resolve({ port: addr.port, host, url: `http://${h}:${addr.port}` });
        });
      });
    },
    async close(graceMs = 0) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const end = Date.now() + graceMs;
      while (active > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        server.closeIdleConnections();
      }
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/**
 * `text` (a JSON object that parsed) with the values of the top-level members in `values`
 * replaced, and those it lacks added at its end. Every other byte stays as the client sent it:
 * re-serializing would change numbers JSON.parse cannot hold (a 64-bit seed, 1e400). null when
 * a top-level key occurs twice (the caller then re-serializes the parsed body, last key winning).
 */
function withMembers(text: string, values: Record<string, unknown>): string | null {
  const spans = new Map<string, [number, number]>();
  let depth = 0;
  let key = '';
  let inValue = false;
  let from = 0;
  let close = -1;
  for (let i = 0; i < text.length && close < 0; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i;
      do j = text.indexOf('"', j + 1); while (j > 0 && escaped(text, j));
      if (j < 0) return null;
      if (depth === 1 && !inValue) {
        key = JSON.parse(text.slice(i, j + 1)) as string;
        if (spans.has(key)) return null;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (--depth === 0) { if (inValue) spans.set(key, [from, i]); close = i; }
    } else if (depth === 1 && c === 0x3a /* : */) {
      inValue = true;
      from = i + 1;
    } else if (depth === 1 && c === 0x2c /* , */) {
      spans.set(key, [from, i]);
      inValue = false;
    }
  }
  if (close < 0) return null;
  const edits: Array<[number, number, string]> = [];
  let added = '';
  for (const [k, v] of Object.entries(values)) {
    const span = spans.get(k);
    if (span) edits.push([span[0], span[1], JSON.stringify(v)]);
    else added += `${spans.size || added ? ',' : ''}${JSON.stringify(k)}:${JSON.stringify(v)}`;
  }
  let out = text.slice(0, close) + added + text.slice(close);
  for (const [a, b, json] of edits.sort((x, y) => y[0] - x[0])) out = out.slice(0, a) + json + out.slice(b);
  return out;
}

/** Whether the quote at `j` is escaped (an odd number of backslashes before it). */
function escaped(s: string, j: number): boolean {
  let n = 0;
  while (s.charCodeAt(j - 1 - n) === 0x5c) n++;
  return n % 2 === 1;
}

/** Whether SSE text ending in `t` ends an event: a line ending, then an empty line (CR LF, LF or CR each). */
function endsEvent(t: string): boolean {
  const last = t.endsWith('\r\n') ? 2 : t.endsWith('\n') || t.endsWith('\r') ? 1 : 0;
  if (last === 0) return false;
  const rest = t.slice(0, -last);
  return rest.endsWith('\n') || rest.endsWith('\r');
}

/** `stream` as the upstreams read it: true, or what pydantic's lax mode (vLLM) coerces to true (1, "true", "yes", "on", "1", ...). */
function streamAsked(v: unknown): boolean {
  if (v === true || v === 1) return true;
  return typeof v === 'string' && /^\s*(true|t|yes|y|on|1)\s*$/i.test(v);
}

/** Lone surrogates (valid in JSON's \u escapes, not in UTF-8) become U+FFFD before scoring. */
const wellFormed = (s: string): string => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
