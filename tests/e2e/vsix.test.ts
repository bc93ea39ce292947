// The .vsix a desktop user installs: packaged with vsce from this repository (the
// .vscodeignore allow-list), installed with `code-server --install-extension`, it activates
// and its native parts work: the allocator (onnxruntime-node from the package's own
// node_modules) puts budget hints on a prompt set, and the walkthrough's pages are there.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  EXTENSION_ID, ROOT, cleanup, extensionLog, launchBrowser, openFile, openWorkbench, requirePrerequisites, screenshot,
  startCodeServer, visibleLines, waitFor, waitForActivation, type CodeServer,
} from './harness';

describe('the packaged .vsix', { timeout: 300_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let out: string;
  let vsix: string;

  before(async () => {
    requirePrerequisites();
    out = mkdtempSync(join(tmpdir(), 'cc-vsix-'));
    vsix = join(out, 'chain-of-conscience.vsix');
    // What `npm run package` runs, on the current bundles (the production rebuild is left out
    // so that tests running beside this one keep their dist/).
    execFileSync(process.execPath, ['scripts/package.mjs', '-o', vsix], { cwd: ROOT, stdio: 'pipe', timeout: 180_000 });
    server = await startCodeServer('vsix', {
      vsix,
      files: { 'prompts/sample.jsonl': { copyFrom: join(ROOT, 'demo/prompts/sample.jsonl') } },
      workspaceSettings: { '[jsonl]': { 'editor.wordWrap': 'on' } },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
  });

  after(async () => {
    if (page) await screenshot(page, 'vsix-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('installs as a real folder with the runtime, the model and only linux-x64 binaries', () => {
    const extDir = join(server!.dir, 'extensions');
    const installed = readdirSync(extDir).find((d) => d.startsWith(`${EXTENSION_ID}-`));
    assert.ok(installed, `installed folder in ${readdirSync(extDir).join(', ')}`);
    const root = join(extDir, installed);
    assert.ok(!statSync(root).isSymbolicLink());
    for (const f of ['dist/extension.js', 'dist/rooms.js', 'runtime/conscience/train.py', 'models/allocator/allocator.json', 'recipes/demo/tiny-cpu.yaml',
      'media/walkthrough/target.md', 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node', 'node_modules/ssh2/lib/index.js']) {
      assert.ok(existsSync(join(root, f)), `${f} is in the package`);
    }
    for (const f of ['node_modules/onnxruntime-node/bin/napi-v6/win32', 'node_modules/typescript', 'extension/src', 'tests', '.venv', 'dist/extension.js.map', 'dist/rooms.js.map']) {
      assert.ok(!existsSync(join(root, f)), `${f} is left out of the package`);
    }
    const mb = statSync(vsix).size / 2 ** 20;
    assert.ok(mb < 100, `the .vsix is ${mb.toFixed(1)} MB`);
  });

  it('activates and scores prompts with the bundled allocator', async () => {
    await waitForActivation(server!);
    await openFile(page, 'prompts/sample.jsonl');
    await waitFor('budget hints from the packaged allocator', async () => {
      const lines = await visibleLines(page);
      // the hint names the score that drove the tier: "risk 99% → brief · 64 tok", "ambiguity 98% → deep · 512 tok"
      return [...lines.values()].filter((t) => /(?:risk|ambiguity) \d+%(?:, ambiguity \d+%)? → (?:none|brief|standard|deep) · \d+ tok/.test(t)).length === 10;
    }, 90_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${extensionLog(server!)}`);
    });
    await screenshot(page, 'vsix-hints');
  });
});
