// What the editor starts (argv, no shell) and how it reads a gateway's /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkUpstream, MetricsPoller, redactUpstream, serveLaunch, summarizeMetrics, type MetricsSummary } from '../../src/core/serve/status';
import { GatewayMetrics } from '../../src/core/serve/metrics';

test('the gateway command line keeps every value one argument, and the upstream travels in the environment', () => {
  const upstream = 'http://user:s3cret@127.0.0.1:8000/v1?x=$(touch /tmp/pwned);`id`';
  const { args, env } = serveLaunch({ upstream, port: 8100, allocatorDir: '/models/my allocator', policy: { budget_brief: 32, refusal: "No; rm -rf '/'" }, observeOnly: true });
  assert.deepEqual(args, [
    'serve', '--port', '8100', '--allocator', '/models/my allocator',
    '--policy', 'budget_brief=32', '--policy', "refusal=No; rm -rf '/'", '--observe-only',
  ]);
  assert.ok(!args.join(' ').includes('s3cret'), 'a password in argv is readable in the process list');
  assert.deepEqual(env, { CONSCIENCE_UPSTREAM: upstream });
  assert.equal(redactUpstream(upstream), 'http://127.0.0.1:8000/v1');
  assert.equal(redactUpstream('http://127.0.0.1:8000'), 'http://127.0.0.1:8000');
});

test('upstream URLs are checked before a terminal starts', () => {
  assert.equal(checkUpstream('http://127.0.0.1:8000'), undefined);
  assert.equal(checkUpstream(' https://vllm.internal/v1 '), undefined);
  assert.match(checkUpstream('127.0.0.1:8000') ?? '', /http/);
  assert.match(checkUpstream('ftp://x') ?? '', /http:\/\/ or https:\/\//);
});

test('an upstream URL with a query (never forwarded) or a bad %-escape in user:pass@ is refused, and its query is never shown', () => {
  assert.match(checkUpstream('http://vllm:8000/?api_key=SECRET') ?? '', /query string/);
  assert.ok(!(checkUpstream('http://vllm:8000/?api_key=SECRET') ?? '').includes('SECRET'));
  assert.match(checkUpstream('http://svc:p%ss@vllm:8000') ?? '', /not valid percent-encoding.*%25/);
  assert.equal(checkUpstream('http://svc:p%25ss@vllm:8000'), undefined);
  assert.equal(redactUpstream('http://svc:pw@vllm:8000/v1?api_key=SECRET'), 'http://vllm:8000/v1');
  assert.equal(redactUpstream('http://vllm:8000/?api_key=SECRET'), 'http://vllm:8000/');
});

test("the summary adds up a real registry's counters", async () => {
  const m = new GatewayMetrics();
  m.requests.inc({ tier: 'none', action: 'forwarded' }, 5);
  m.requests.inc({ tier: 'brief', action: 'refused' }, 2);
  m.requests.inc({ tier: 'deep', action: 'forwarded' });
  m.inFlight.inc(3);
  m.safetyTokens.inc({ tier: 'deep' }, 40);
  m.savedTokens.inc({ tier: 'none' }, 512 * 5);
  const s = summarizeMetrics(await m.registry.metrics());
  assert.equal(s.requests, 8);
  assert.deepEqual(s.byTier, { none: 5, brief: 2, standard: 0, deep: 1 });
  assert.equal(s.refused, 2);
  assert.equal(s.inFlight, 3);
  assert.equal(s.safetyTokens, 40);
  assert.equal(s.savedTokens, 2560);
  assert.equal(summarizeMetrics('garbage\n{}\n').requests, 0);
});

test('a poll in flight when the gateway is stopped or replaced shows nothing: the status bar item stays hidden', async () => {
  const answers: Array<(s: MetricsSummary | undefined) => void> = [];
  const log: string[] = [];
  const poller = new MetricsPoller({
    intervalMs: 60_000,
    read: (url) => new Promise((r) => answers.push((s) => { log.push(`answer ${url}`); r(s); })),
    hide: () => log.push('hide'),
  });
  const summary = (requests: number) => ({ ...summarizeMetrics(''), requests });
  const settle = () => new Promise((r) => setImmediate(r));
  try {
    poller.start('http://127.0.0.1:8100', (s) => log.push(`show 8100 ${s ? s.requests : 'starting'}`));
    assert.deepEqual(log, ['hide', 'show 8100 starting']);
    answers.shift()!(summary(3));
    await settle();
    assert.deepEqual(log.slice(2), ['answer http://127.0.0.1:8100', 'show 8100 3']);
    // Stop while the gateway's /metrics is being read (up to 1.5 s): the answer shows nothing
    // (the interval is long: only the first poll of each start runs here)
    poller.start('http://127.0.0.1:8100', (s) => log.push(`show 8100 ${s ? s.requests : 'starting'}`));
    log.length = 0;
    poller.stop();
    answers.shift()!(summary(4));
    await settle();
    assert.deepEqual(log, ['hide', 'answer http://127.0.0.1:8100'], 'hidden, and not shown again');
    // a new gateway on another port: the old one's late answer is not shown for it
    log.length = 0;
    poller.start('http://127.0.0.1:8100', (s) => log.push(`show 8100 ${s ? s.requests : 'starting'}`));
    poller.start('http://127.0.0.1:8200', (s) => log.push(`show 8200 ${s ? s.requests : 'starting'}`));
    answers.shift()!(summary(5));
    answers.shift()!(undefined);
    await settle();
    assert.deepEqual(log, ['hide', 'show 8100 starting', 'hide', 'show 8200 starting', 'answer http://127.0.0.1:8100', 'answer http://127.0.0.1:8200', 'show 8200 starting']);
  } finally {
    poller.dispose();
  }
});
