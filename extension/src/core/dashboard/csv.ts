// CSV export of the full series: every metrics row the host holds (superseded rows of a
// resumed run included), never decimated or truncated. RFC 4180 quoting; numbers in their
// shortest round-trip form; gaps empty. Text cells that a spreadsheet would run as a formula
// (=, +, -, @ first) are prefixed with a quote.
import type { RunSeries } from './series';

const PREFERRED = ['reward', 'reward_std', 'kl', 'loss', 'completions/mean_length', 'completions/clipped_ratio',
  'safety/tokens_mean', 'safety/budget_mean', 'learning_rate', 'grad_norm'];

export function csvCell(s: string): string {
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const numCell = (v: number): string => (Number.isFinite(v) ? String(v) : '');

/** Metric columns in a stable order: the well-known keys first, then the rest sorted. */
export function csvColumns(runs: RunSeries[]): string[] {
  const all = new Set<string>();
  for (const r of runs) {
    for (const k of r.keys()) all.add(k);
    for (const a of r.archived) for (const k of a.values.keys()) all.add(k);
  }
  const known = PREFERRED.filter((k) => all.has(k));
  const rest = [...all].filter((k) => !PREFERRED.includes(k)).sort();
  return [...known, ...rest];
}

/** The CSV text and its data-row count. Rows of each run in event order (seq). */
export function toCsv(runs: RunSeries[]): { text: string; rows: number } {
  const keys = csvColumns(runs);
  const parts: string[] = [['run_id', 'seq', 'step', 'time', ...keys].map(csvCell).join(',')];
  let rows = 0;
  for (const r of runs) {
    const id = csvCell(r.runId);
    type Row = { seq: number; line: string };
    const lines: Row[] = r.archived.map((a) => ({
      seq: a.seq,
      line: [id, numCell(a.seq), numCell(a.step), numCell(a.time), ...keys.map((k) => numCell(a.values.get(k) ?? NaN))].join(','),
    }));
    const seq = r.seq;
    const step = r.step;
    const time = r.time;
    const cols = keys.map((k) => r.col(k));
    for (let i = 0; i < r.len; i++) {
      let line = `${id},${numCell(seq[i])},${numCell(step[i])},${numCell(time[i])}`;
      for (const c of cols) line += ',' + (c ? numCell(c[i]) : '');
      lines.push({ seq: seq[i], line });
    }
    if (r.archived.length) lines.sort((p, q) => p.seq - q.seq);
    for (const l of lines) parts.push(l.line);
    rows += lines.length;
  }
  return { text: parts.join('\n') + '\n', rows };
}
