// Where a run's safety budgets came from (run_started.budgets, docs/events.md), in words. No
// imports: the dashboard's host side (core/dashboard/session.ts) uses it, and the Chromium
// tests bundle that for the browser.
/**
 * Where a run's safety budgets came from (run_started.budgets): "budgets: 40 allocator · 24 label
 * default", and whether the allocator failed so that prompts fell back to per-label defaults.
 */
export function budgetSummary(b: { source?: Record<string, number>; allocator?: string } | null | undefined): { text: string; fallback: boolean } | undefined {
  if (!b || typeof b !== 'object') return undefined;
  const names: Record<string, string> = { dataset: 'from the prompt set', allocator: 'allocator', label: 'label default' };
  const parts = Object.entries(b.source ?? {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .map(([k, n]) => `${n} ${names[k] ?? k}`);
  const status = typeof b.allocator === 'string' ? b.allocator : '';
  const fallback = /^failed/.test(status);
  const text = `budgets: ${parts.length ? parts.join(' · ') : 'none'}${fallback ? ` (allocator ${status}; per-label defaults used instead)` : status === 'disabled' ? ' (allocator disabled)' : ''}`;
  return { text, fallback };
}
