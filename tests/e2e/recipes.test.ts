// Recipe diagnostics in a real VS Code: a recipe broken in three ways shows each mistake in
// the Problems panel at the line that holds it, and quick fixes repair the recipe.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ROOT, applyQuickFix, cleanup, extensionLog, gotoLine, launchBrowser, openFile, openWorkbench, readProblems,
  screenshot, startCodeServer, visibleLines, waitFor, waitForActivation, type CodeServer, type Problem,
} from './harness';

// The shipped demo recipe, broken three ways. Each mistake is found by its own text, so the
// expected lines follow the recipe if it changes.
const good = readFileSync(join(ROOT, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
const replace = (s: string, re: RegExp, by: string) => {
  assert.match(s, re, `the demo recipe no longer has ${re}`);
  return s.replace(re, by);
};
let broken = replace(good, /^num_generations: \d+$/m, 'num_generations: 3');
broken = replace(broken, /^learning_rate:/m, 'learnig_rate:');
broken = replace(broken, /^reward_weights: \[.*\]$/m, 'reward_weights: [1.0, 0.5]');
const lineOf = (text: string, re: RegExp) => text.split('\n').findIndex((l) => re.test(l)) + 1;
// The demo recipe asking for two machines: valid YAML and keys, but no target of the workspace
// (only `local` here) is two machines, so launching it would wait forever for the second one.
const twoMachines = replace(good, /^  num_machines: 1\b.*$/m, '  num_machines: 2');
const expected = {
  numGenerations: lineOf(broken, /^num_generations: 3$/),
  unknownKey: lineOf(broken, /^learnig_rate:/),
  rewardWeights: lineOf(broken, /^reward_weights:/),
};

describe('recipe diagnostics and quick fixes', { timeout: 240_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    server = await startCodeServer('recipes', {
      files: {
        recipes: { copyFrom: join(ROOT, 'recipes') },
        'recipes/demo/broken.yaml': broken,
        'recipes/demo/two-machines.yaml': twoMachines,
      },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server);
    await waitForActivation(server);
  });

  after(async () => {
    if (page) await screenshot(page, 'recipes-final').catch(() => undefined);
    await browser?.close();
    await server?.stop();
    cleanup(server);
  });

  const errorsIn = (ps: Problem[]) => ps.filter((p) => /CC\d+/.test(p.text));
  const at = (ps: Problem[], line: number, re: RegExp) => ps.find((p) => p.line === line && re.test(p.text));

  it('lists each mistake in the Problems panel at its line', async () => {
    await openFile(page, 'recipes/demo/broken.yaml');
    let problems: Problem[] = [];
    await waitFor('the three mistakes in the Problems panel', async () => {
      problems = await readProblems(page);
      return at(problems, expected.numGenerations, /num_generations|generations/i)
        && at(problems, expected.unknownKey, /learnig_rate/)
        && at(problems, expected.rewardWeights, /reward weights|reward_weights/i);
    }, 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\nProblems panel:\n${problems.map((p) => p.text).join('\n')}\nlog:\n${extensionLog(server!)}`);
    });
    assert.match(at(problems, expected.unknownKey, /learnig_rate/)!.text, /learning_rate/, 'the unknown key suggests learning_rate');
    assert.match(at(problems, expected.numGenerations, /generations/i)!.text, /\b2\b/, 'the valid num_generations values are listed');
    await screenshot(page, 'recipes-problems');
  });

  it('repairs num_generations and the misspelt key with quick fixes', async () => {
    await openFile(page, 'recipes/demo/broken.yaml');
    // num_generations: the fix sets a value that divides the global batch.
    await gotoLine(page, expected.numGenerations, 'num_generations: '.length + 1);
    const offered = await applyQuickFix(page, /num_generations/);
    assert.ok(offered.length > 0);
    const fixedLine = await waitFor('num_generations to change', async () => {
      const l = (await visibleLines(page)).get(expected.numGenerations);
      return l && !/num_generations: 3\b/.test(l) ? l : undefined;
    });
    const n = Number(/num_generations: (\d+)/.exec(fixedLine)?.[1]);
    assert.ok([2, 4, 8].includes(n), `num_generations set to ${n}; the global batch of 8 needs a divisor >= 2`);

    // The edited document's diagnostics are back (the num_generations one is gone) before the
    // next fix is asked for: VS Code offers code actions for the diagnostics it has.
    await waitFor('the diagnostics of the edited recipe', async () => !at(errorsIn(await readProblems(page)), expected.numGenerations, /generations/i), 30_000);

    // The unknown key: renamed to the suggestion.
    await gotoLine(page, expected.unknownKey, 3);
    await applyQuickFix(page, /learning_rate/);
    await waitFor('the key to be renamed', async () => (await visibleLines(page)).get(expected.unknownKey)?.startsWith('learning_rate:'));

    // Both problems leave the Problems panel; the reward_weights one stays until fixed.
    let problems: Problem[] = [];
    await waitFor('the fixed problems to disappear', async () => {
      problems = errorsIn(await readProblems(page));
      return !at(problems, expected.numGenerations, /generations/i) && !at(problems, expected.unknownKey, /learnig_rate/);
    }, 30_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${problems.map((p) => p.text).join('\n')}`);
    });
    assert.ok(at(problems, expected.rewardWeights, /reward weights|reward_weights/i), 'the unfixed reward_weights problem remains');
    await screenshot(page, 'recipes-fixed');
  });

  it("shows on the recipe, before any launch, that it does not fit the workspace's targets", async () => {
    await openFile(page, 'recipes/demo/two-machines.yaml');
    const line = lineOf(twoMachines, /^  num_machines: 2/);
    let problems: Problem[] = [];
    await waitFor('the topology finding at launch.num_machines', async () => {
      problems = await readProblems(page);
      return at(problems, line, /num_machines is 2, but target 'local' is one machine/);
    }, 60_000).catch((err) => {
      throw new Error(`${(err as Error).message}\nProblems panel:\n${problems.map((p) => p.text).join('\n')}\nlog:\n${extensionLog(server!)}`);
    });
    await screenshot(page, 'recipes-topology');
  });
});
