// The gateway's memory of the Responses conversations it answered (core/serve/continuations.ts):
// bounded by ids and by the turns they hold, refusals held apart, an id answered twice keeping
// the stricter conversation. Plain Node, no server.
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Continuations, type Turn } from '../../src/core/serve/continuations';

const none: Turn = { tier: 'none', budget: 0, risk: 0.01 };
const deep: Turn = { tier: 'deep', budget: 512, risk: 0.4 };
const brief: Turn = { tier: 'brief', budget: 64, risk: 0.99 };
/** the gateway's order without refused tiers: brief first, then the larger budget, then the higher risk */
const stricter = (a: Turn, b: Turn): boolean => {
  const rank = (t: Turn): number[] => [t.tier === 'brief' ? 1 : 0, t.budget, t.risk];
  const [p, q] = [rank(a), rank(b)];
  const k = p.findIndex((v, i) => v !== q[i]);
  return k >= 0 && p[k]! > q[k]!;
};

test('the least recently used id is forgotten first, by ids and by the turns held; a recall refreshes an id', () => {
  const c = new Continuations(stricter, { ids: 3, turns: 5 });
  c.remember('a', [none]);
  c.remember('b', [deep]);
  c.remember('c', [brief]);
  assert.ok(c.recall('a'), 'a is refreshed');
  c.remember('d', [none]);
  assert.equal(c.recall('b'), undefined, 'b was the least recently used');
  assert.deepEqual(c.recall('a'), [none]);
  // four turns for one id: the turns bound (5) pushes out the oldest ids until it holds
  c.remember('e', [none, deep, none, brief]);
  assert.ok(c.size.turns <= 5 && c.size.ids <= 3, JSON.stringify(c.size));
  assert.deepEqual(c.recall('e'), [none, deep, none, brief]);
  assert.equal(c.recall('c'), undefined);
});

test('only what the strictest is chosen by is kept; empty windows and empty ids are not remembered; long ids are (by their hash)', () => {
  const c = new Continuations(stricter);
  c.remember('x', [{ ...brief, categories: { weapons: 0.9 }, tokens: 12, unfamiliar: false } as Turn]);
  assert.deepEqual(c.recall('x'), [brief]);
  c.remember('empty', []);
  c.remember('', [brief]);
  assert.equal(c.recall('empty'), undefined);
  assert.equal(c.recall(''), undefined);
  const long = 'r'.repeat(100_000);
  c.remember(long, [brief]);
  assert.deepEqual(c.recall(long), [brief]);
  assert.equal(c.recall(long.slice(1)), undefined);
});

test('an id answered twice keeps the stricter window; a stricter later one replaces it', () => {
  const c = new Continuations(stricter);
  c.remember('id', [brief]);
  c.remember('id', [none]);
  assert.deepEqual(c.recall('id'), [brief]);
  c.remember('id2', [none]);
  c.remember('id2', [deep]);
  assert.deepEqual(c.recall('id2'), [deep]);
});

test('refusals are held apart: many refusals do not push out an answered id', () => {
  const c = new Continuations(stricter, { ids: 10, turns: 100, refusals: 5 });
  c.remember('upstream', [brief]);
  for (let i = 0; i < 50; i++) c.remember(`resp_conscience_${i}`, [brief], true);
  assert.deepEqual(c.recall('upstream'), [brief]);
  assert.equal(c.size.refusals, 5);
  assert.deepEqual(c.recall('resp_conscience_49'), [brief]);
  assert.equal(c.recall('resp_conscience_0'), undefined);
});

test('a short id that spells a long id\'s hash is a different id', () => {
  const c = new Continuations(stricter);
  const long = 'q'.repeat(1000);
  const hex = createHash('sha256').update(long).digest('hex');
  c.remember(long, [brief]);
  for (const short of [hex, `#${hex}`, `sha256:${hex}`, `=${hex}`]) assert.equal(c.recall(short), undefined, short);
  c.remember(`#${hex}`, [none]);
  assert.deepEqual(c.recall(long), [brief]);
});

test('stored conversations are held apart: many of them cannot push out the response ids', () => {
  const c = new Continuations((a, b) => a.budget > b.budget, { ids: 3, turns: 10, conversations: 2 });
  c.remember('resp_kept', [{ tier: 'brief', budget: 64, risk: 0.9 }]);
  for (let i = 0; i < 1000; i++) c.rememberConversation(`conv_${i}`, [{ tier: 'none', budget: 0, risk: 0.01 }]);
  assert.deepEqual(c.recall('resp_kept'), [{ tier: 'brief', budget: 64, risk: 0.9 }]);
  assert.equal(c.size.conversations, 2);
  assert.equal(c.recallConversation('conv_0'), undefined, 'the oldest conversations are forgotten');
  assert.deepEqual(c.recallConversation('conv_999'), [{ tier: 'none', budget: 0, risk: 0.01 }]);
  // a conversation and a response of the same id do not share a window
  c.rememberConversation('same', [{ tier: 'deep', budget: 512, risk: 0.5 }]);
  assert.equal(c.recall('same'), undefined);
});
