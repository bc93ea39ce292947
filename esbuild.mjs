// Bundles the extension host (node, cjs), the CLI, and the webviews (browser).
// `vscode` and native modules stay external: they are resolved at run time.
import * as esbuild from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
const external = ['vscode', 'onnxruntime-node', 'ssh2', 'cpu-features'];

const common = {
  bundle: true,
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
  legalComments: 'none',
};

/** One browser bundle per folder under webview/src that has a main.ts (dashboard, inspector, ...). */
const webviewEntries = readdirSync('webview/src', { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(`webview/src/${d.name}/main.ts`))
  .map((d) => ({ in: `webview/src/${d.name}/main.ts`, out: d.name }));

const builds = [
  {
    ...common,
    // extension: what activation runs; rooms: every room's code, required by extension.ts the
    // first time a room is needed (activation neither parses nor runs it); allocator-worker: the
    // allocator's scoring thread (core/allocator/threaded.ts looks for it beside the bundle that
    // starts it)
    entryPoints: {
      extension: 'extension/src/extension.ts', rooms: 'extension/src/rooms.ts', cli: 'extension/src/cli/main.ts',
      'allocator-worker': 'extension/src/core/allocator/worker.ts',
    },
    outdir: 'dist',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external,
    // jsonc-parser's "main" is a UMD build whose require('./impl/format') esbuild cannot see,
    // so the bundle failed at run time ("Cannot find module './impl/format'"): use its ESM build.
    alias: { 'jsonc-parser': './node_modules/jsonc-parser/lib/esm/main.js' },
  },
  {
    ...common,
    entryPoints: webviewEntries,
    outdir: 'dist/webview',
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    loader: { '.css': 'css' },
    // test hooks (window.__dashboard) exist only in the bundle the Chromium tests build
    define: { __TEST_HOOKS__: 'false' },
    minifySyntax: true, // drops the `if (false)` test-hook branches from every build, not only --production
  },
];

if (watch) {
  for (const b of builds) (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
