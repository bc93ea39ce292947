// The benchmark's naive peer: uPlot fed every raw point (no decimation, no host), with the
// same charts as the dashboard. Bundled for the browser by bench/dashboard.bench.ts.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { MetricsEvent } from '../../../extension/src/core/runs/events';
import { bigRun } from '../../../extension/test/dashboard/fixtures/grpo';

const GROUPS: string[][] = [
  ['reward', 'reward-std', 'reward+std'],
  ['rewards/safety_format_reward/mean', 'rewards/safety_budget_reward/mean', 'rewards/refusal_reward/mean'],
  ['kl'], ['loss'], ['completions/clipped_ratio'], ['learning_rate'], ['grad_norm'],
];
const COLOURS = ['#3794ff', '#d18616', '#89d185'];

const peer = {
  plots: [] as uPlot[],
  draws: [] as number[],
  /** The same data as the dashboard benchmark: raw columns of bigRun(steps, keys). */
  columns(steps: number, keys: number): { cols: Record<string, number[]>; steps: number[] } {
    const ev = bigRun('peer', steps, keys) as MetricsEvent[];
    const cols: Record<string, number[]> = {};
    for (const k of Object.keys(ev[0].values)) cols[k] = ev.map((e) => e.values[k] as number);
    return { cols, steps: ev.map((e) => e.step) };
  },
  data: [] as number[][][],
  /** Builds raw arrays (number[]) from metrics values, then draws every chart; returns ms spent drawing. */
  render(cols: Record<string, number[]>, steps: number[]): number {
    const std = cols.reward_std;
    cols['reward-std'] = cols.reward.map((v, i) => v - std[i]);
    cols['reward+std'] = cols.reward.map((v, i) => v + std[i]);
    const t0 = performance.now();
    for (const g of GROUPS) {
      const div = document.createElement('div');
      document.body.append(div);
      const data = [steps.slice(), ...g.map((k) => cols[k].slice())];
      this.data.push(data);
      this.plots.push(new uPlot({
        width: 600, height: 220,
        series: [{}, ...g.map((k, i) => ({ label: k, stroke: COLOURS[i % 3], width: 1 }))],
        scales: { x: { time: false } },
        hooks: { draw: [() => { this.draws.push(performance.now()); }] },
      }, data as uPlot.AlignedData, div));
    }
    return performance.now() - t0;
  },
  /** Appends one row to every series and redraws every chart. */
  append(step: number, values: number[]): void {
    this.data.forEach((d, j) => {
      d[0].push(step);
      for (let i = 1; i < d.length; i++) d[i].push(values[(j + i) % values.length]);
      this.plots[j].setData(d as uPlot.AlignedData);
    });
  },
};
(window as unknown as { __peer: typeof peer }).__peer = peer;
