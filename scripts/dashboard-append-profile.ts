// Where a dashboard append spends its time: 3 fresh pages, each with a 100,000-step run of 10
// series drawn, then 150 appends (one metrics event each, 30 ms apart) under Chromium's
// sampling profiler. Prints the appends' p50 and p95 (ingest to every chart drawn), the page's
// busy time per append, and the functions with the most self time.
//   node --import tsx scripts/dashboard-append-profile.ts
// To compare two commits, run it at each (e.g. in a `git worktree` of the older one),
// alternating. A tree whose harness has no `deliverAsync` (before b2997b0) delivers the first
// render's messages inside the host's call; the appends are delivered that way in both.
import { launch, openDashboard } from '../tests/webview/helpers';
(async () => {
  const browser = await launch();
  const self = new Map<string, number>();
  let total = 0;
  const times: number[] = [];
  const PAGES = 3, N = 150;
  for (let k = 0; k < PAGES; k++) {
    const { page } = await openDashboard(browser, { width: 1280, height: 900 });
    await page.evaluate(async ([steps, keys]) => {
      const w = window as any; const h = w.__harness; const d = w.__dashboard.debug;
      h.prepare([{ id: 'big', label: 'big run' }], { throttleMs: 0 });
      h.ingest('big', h.bigRun('big', steps, keys));
      h.deliverAsync?.(true); h.connect();
      const plots = w.__dashboard.plots;
      while (!(plots.size >= 7 && d.renders.length >= plots.size)) await new Promise((r) => setTimeout(r, 0));
      await new Promise((r) => setTimeout(r, 100));
      h.deliverAsync?.(false);
    }, [100000, 10] as const);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
    await cdp.send('Profiler.start');
    const ts = await page.evaluate(async ([steps, keys, n]) => {
      const w = window as any; const d = w.__dashboard.debug; const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const ev = w.__harness.bigRun('big', 1, keys, steps + 1 + i, steps + i);
        d.renders.length = 0;
        const t = performance.now();
        w.__harness.ingest('big', ev);
        await new Promise((r) => setTimeout(r, 0));
        out.push(Math.max(...d.renders) - t);
        await new Promise((r) => setTimeout(r, 30));
      }
      return out;
    }, [100000, 10, N] as const);
    times.push(...ts);
    const { profile } = await cdp.send('Profiler.stop') as any;
    const byId = new Map<number, any>(profile.nodes.map((n: any) => [n.id, n]));
    const dt: number[] = profile.timeDeltas;
    profile.samples.forEach((id: number, i: number) => {
      const n = byId.get(id); const f = n.callFrame; const key = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber}`;
      if (key.startsWith('(idle)') || key.startsWith('(program)')) return;
      self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000); total += (dt[i] ?? 0) / 1000;
    });
    await page.close();
  }
  times.sort((a, b) => a - b);
  console.log('append p50', times[Math.floor(times.length / 2)].toFixed(2), 'p95', times[Math.floor(times.length * 0.95)].toFixed(2));
  console.log('busy ms per append', (total / PAGES / N).toFixed(3));
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((v / PAGES / N * 1000).toFixed(1), 'us', k);
  await browser.close();
})();
