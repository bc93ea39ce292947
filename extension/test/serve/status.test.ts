// What the editor starts (argv, no shell) and how it reads a gateway's /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkUpstream, redactUpstream, serveLaunch, summarizeMetrics } from '../../src/core/serve/status';
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
  assert.equal(redactUpstream(upstream), 'http://127.0.0.1:8000/v1?x=$(touch%20/tmp/pwned);`id`');
  assert.equal(redactUpstream('http://127.0.0.1:8000'), 'http://127.0.0.1:8000');
});

test('upstream URLs are checked before a terminal starts', () => {
  assert.equal(checkUpstream('http://127.0.0.1:8000'), undefined);
  assert.equal(checkUpstream(' https://vllm.internal/v1 '), undefined);
  assert.match(checkUpstream('127.0.0.1:8000') ?? '', /http/);
  assert.match(checkUpstream('ftp://x') ?? '', /http:\/\/ or https:\/\//);
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
