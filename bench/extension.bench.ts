// `npm run bench extension`: the extension in a real VS Code (code-server 4.99, as in the e2e
// suite). Figures:
//   extension.activate_ms            VS Code's own activation time of the extension (Developer:
//                                    Show Running Extensions: module load + activate()), median
//   extension.activate_log_ms        what activate() itself logs ("activated in N ms"), median
//   extension.peer_json_activate_ms  the same VS Code measure for the built-in JSON Language
//                                    Features extension (a language-server extension) in the same run
//   extension.activate_vs_json_ratio median over the runs of (ours / JSON's) in the same window,
//                                    with _p10 / _p90 (both activate in each fresh code-server)
//   extension.vsix_mb                size of the linux-x64 .vsix `npm run package` builds
//   extension.vsix_native_mb         of which onnxruntime-node's native binaries (uncompressed)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, cleanup, launchBrowser, openFile, openWorkbench, runningExtensionTimes, startCodeServer, waitFor, waitForActivation,
} from '../tests/e2e/harness';
import { quantile } from './run';

const RUNS = Number(process.env.BENCH_EXTENSION_RUNS ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function activation(): Promise<{ ours: number; log: number; json: number }> {
  const server = await startCodeServer('bench', {
    files: { 'recipes/demo/tiny-cpu.yaml': { copyFrom: join(ROOT, 'recipes/demo/tiny-cpu.yaml') }, 'data.json': '{ "a": 1 }\n' },
  });
  const browser = await launchBrowser();
  try {
    const page = await openWorkbench(browser, server);
    const { ms: log } = await waitForActivation(server);
    await openFile(page, 'data.json'); // activates the peer (JSON Language Features)
    const times = await waitFor('both activation times', async () => {
      const t = await runningExtensionTimes(page);
      return t.has('Chain of Conscience') && t.has('JSON Language Features') ? t : undefined;
    }, 60_000);
    return { ours: times.get('Chain of Conscience')!, log, json: times.get('JSON Language Features')! };
  } finally {
    await browser.close();
    await server.stop();
    cleanup(server);
  }
}

function vsix(): { mb: number; nativeMb: number } {
  const out = mkdtempSync(join(tmpdir(), 'cc-vsix-'));
  try {
    const file = join(out, 'ext.vsix');
    execFileSync('node', ['esbuild.mjs', '--production'], { cwd: ROOT, stdio: 'ignore' });
    execFileSync(process.execPath, ['scripts/package.mjs', '--skip-license', '-o', file], { cwd: ROOT, stdio: 'ignore' });
    const native = join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64');
    const nativeBytes = readdirSync(native).reduce((s, f) => s + statSync(join(native, f)).size, 0);
    return { mb: statSync(file).size / 2 ** 20, nativeMb: nativeBytes / 2 ** 20 };
  } finally {
    rmSync(out, { recursive: true, force: true });
    // Back to the development build (source maps) the tests and the demo use.
    execFileSync('node', ['esbuild.mjs'], { cwd: ROOT, stdio: 'ignore' });
  }
}

export default async function bench(): Promise<Record<string, number>> {
  const runs: Array<{ ours: number; log: number; json: number }> = [];
  for (let i = 0; i < RUNS; i++) runs.push(await activation());
  const ours = median(runs.map((r) => r.ours));
  const json = median(runs.map((r) => r.json));
  // per-window ratios: both extensions activate in the same fresh window, so each ratio sees
  // one state of the machine (a ratio of two medians mixes windows)
  const ratios = runs.map((r) => r.ours / r.json);
  const v = vsix();
  return {
    'extension.activate_ms': ours,
    'extension.activate_log_ms': median(runs.map((r) => r.log)),
    'extension.peer_json_activate_ms': json,
    'extension.activate_vs_json_ratio': +median(ratios).toFixed(3),
    'extension.activate_vs_json_ratio_p10': +quantile(ratios, 0.1).toFixed(3),
    'extension.activate_vs_json_ratio_p90': +quantile(ratios, 0.9).toFixed(3),
    'extension.vsix_mb': +v.mb.toFixed(2),
    'extension.vsix_native_mb': +v.nativeMb.toFixed(2),
  };
}
