// Where a run's safety budgets came from (run_started.budgets, docs/events.md), in words. No
// imports: the dashboard's host side (core/dashboard/session.ts) uses it, and the Chromium
// tests bundle that for the browser.
/**
 * Where a run's safety budgets came from (run_started.budgets): "budgets: 40 allocator · 24 label
 * default", and whether the allocator failed so that prompts fell back to per-label defaults.
 */
export function budgetSummary(b: { source?: Record<string, number>; allocator?: string; over_completion?: unknown } | null | undefined): { text: string; fallback: boolean } | undefined {
  if (!b || typeof b !== 'object') return undefined;
  const names: Record<string, string> = { dataset: 'from the prompt set', allocator: 'allocator', label: 'label default' };
  const parts = Object.entries(b.source ?? {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .map(([k, n]) => `${n} ${names[k] ?? k}`);
  const status = typeof b.allocator === 'string' ? b.allocator : '';
  const fallback = /^failed/.test(status);
  let text = `budgets: ${parts.length ? parts.join(' · ') : 'none'}${fallback ? ` (allocator ${status}; per-label defaults used instead)` : status === 'disabled' ? ' (allocator disabled)' : ''}`;
  // budgets the completion cannot hold (the trainer's warning; docs/events.md)
  const o = b.over_completion as { count?: unknown; largest?: unknown; max_completion_length?: unknown } | null | undefined;
  if (o && typeof o === 'object' && typeof o.count === 'number' && typeof o.max_completion_length === 'number' && o.count > 0) {
    text += ` · ⚠ ${o.count} at or above max_completion_length ${o.max_completion_length}${typeof o.largest === 'number' ? ` (largest ${o.largest})` : ''}: no room left for an answer`;
  }
  return { text, fallback };
}
