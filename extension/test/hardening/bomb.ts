// Inputs that expand: shared by the hardening tests.
/** `levels` anchors, each a list of `fanout` aliases of the one before: fanout^levels paths over levels*fanout aliases. */
export function aliasBomb(levels = 9, fanout = 10, keyPrefix = 'x_bomb'): string {
  const out = [`${keyPrefix}0: &a0 [runtime, lol]`];
  for (let i = 1; i <= levels; i++) out.push(`${keyPrefix}${i}: &a${i} [${Array(fanout).fill(`*a${i - 1}`).join(', ')}]`);
  return out.join('\n') + '\n';
}
