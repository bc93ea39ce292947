// The budget allocator in the editor: every prompt of a JSONL prompt set shows an inline hint
// (risk, tier, budget), and "Inspect prompt budget" on a selection opens the inspector with
// the same decision and the words that drive the score.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ROOT, cleanup, launchBrowser, openFile, openWorkbench, runCommand, screenshot, selectRange,
  startCodeServer, visibleLines, waitFor, waitForActivation, webviewFrame, extensionLog, type CodeServer,
} from './harness';

const SAMPLE = join(ROOT, 'demo/prompts/sample.jsonl');
const rows = readFileSync(SAMPLE, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; prompt: string; label: string });
const HINT = /risk (\d+)% · (none|brief|standard|deep) · (\d+) tok/;

describe('allocator in the editor', { timeout: 240_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const hints = new Map<number, RegExpExecArray>();

  before(async () => {
    server = await startCodeServer('allocator', {
      files: { 'prompts/sample.jsonl': { copyFrom: SAMPLE } },
      // As in the demo workspace: prompt sets wrap so the hint at the end of a line stays in view.
      workspaceSettings: { '[jsonl]': { 'editor.wordWrap': 'on' } },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'allocator-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  it('shows a risk · tier · budget hint on every prompt of a JSONL prompt set', async () => {
    await openFile(page, 'prompts/sample.jsonl');
    await waitFor(
      `inline budget hints on all ${rows.length} prompts`,
      async () => {
        const lines = await visibleLines(page);
        hints.clear();
        for (const [n, text] of lines) {
          const m = HINT.exec(text);
          if (m) hints.set(n, m);
        }
        return hints.size === rows.length;
      },
      90_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nhints seen on lines ${[...hints.keys()].join(', ')}\nlog:\n${extensionLog(server!)}`);
    });
    await screenshot(page, 'allocator-hints');
    for (const [n, m] of hints) {
      const risk = Number(m[1]);
      assert.ok(risk >= 0 && risk <= 100, `line ${n}: risk ${risk}%`);
      if (m[2] === 'none') assert.equal(Number(m[3]), 0, `line ${n}: tier none must have a 0-token budget`);
      else assert.ok(Number(m[3]) > 0, `line ${n}: tier ${m[2]} must have a positive budget`);
    }
    // An ordinary request is scored as less risky than a request for a phishing email.
    const haiku = rows.findIndex((r) => r.prompt.startsWith('Write a haiku')) + 1;
    const phishing = rows.findIndex((r) => r.prompt.includes('phishing')) + 1;
    assert.ok(Number(hints.get(haiku)![1]) < Number(hints.get(phishing)![1]),
      `haiku risk ${hints.get(haiku)![1]}% should be below phishing risk ${hints.get(phishing)![1]}%`);
  });

  it('opens the inspector for a selected prompt with the same decision as its hint', async () => {
    const lineNo = rows.findIndex((r) => r.prompt.includes('phishing')) + 1;
    const line = readFileSync(SAMPLE, 'utf8').split('\n')[lineNo - 1]!;
    const prompt = rows[lineNo - 1]!.prompt;
    await selectRange(page, lineNo, line.indexOf(prompt) + 1, prompt.length);
    await runCommand(page, 'Chain of Conscience: Inspect prompt budget');
    const frame = webviewFrame(page);
    const tier = frame.locator('[data-testid=tier]');
    await tier.waitFor({ state: 'visible', timeout: 60_000 });
    const hint = hints.get(lineNo)!;
    assert.equal((await tier.innerText()).trim(), hint[2]);
    assert.equal((await frame.locator('[data-testid=budget]').innerText()).trim(), hint[3]);
    // The words that drive the score are listed, and they come from the selected prompt.
    const drivers = await frame.locator('[data-testid=drivers] li').allInnerTexts();
    assert.ok(drivers.length > 0, 'the inspector lists the words that drive the score');
    const words = new Set(prompt.toLowerCase().match(/[\p{L}\p{N}']+/gu));
    assert.ok(drivers.some((d) => [...words].some((w) => d.toLowerCase().includes(w))),
      `driver words ${JSON.stringify(drivers)} should come from the prompt`);
    await screenshot(page, 'allocator-inspector');
  });
});
