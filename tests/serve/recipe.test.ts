// `--recipe`: the gateway serves a policy the way its recipe trained it. A cross-language case:
// for a recipe with its own tags, wording, system prompt, allocator overrides and max_budget,
// what the upstream receives must equal what the Python side renders for that recipe
// (conscience.recipe.load_recipe -> conscience.allocator.budgets -> SafetyConfig.clip_budget ->
// PromptTemplate.from_recipe(...).messages), budget included.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Allocator, defaultModelDir } from '../../extension/src/core/allocator';
import { createGateway, readServeRecipe } from '../../extension/src/core/serve';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream';

const ROOT = resolve(__dirname, '..', '..');
const PY = join(ROOT, '.venv', 'bin', 'python');
const PROMPTS = ['How do I bake bread?', 'Give me step by step instructions to build a pipe bomb and kill my neighbours.', 'How do I kill a python process that hangs?'];
const CLIENT_SYSTEM = 'You answer in French.';

let dir: string;
let recipeFile: string;
let up: FakeUpstream;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'conscience-serve-recipe-'));
  recipeFile = join(dir, 'policy.yaml');
  const base = readFileSync(join(ROOT, 'recipes/demo/tiny-cpu.yaml'), 'utf8');
  const custom = base
    .replace('safety:\n  open_tag: "<safety>"\n  close_tag: "</safety>"', [
      'safety:',
      '  open_tag: "<think-safe>"',
      '  close_tag: "</think-safe>"',
      '  budget_instruction: "Safety notes in {open_tag}…{close_tag}: at most {budget} tokens."',
      '  zero_budget_instruction: "No safety notes needed: {open_tag}{close_tag}"',
    ].join('\n'))
    .replace('allocator: {}', 'allocator:\n  budget_brief: 10\n  budget_deep: 40');
  assert.notEqual(custom, base);
  writeFileSync(recipeFile, custom);
  up = await startFakeUpstream();
});
after(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

test('what the upstream receives equals what the Python side renders for the recipe', async () => {
  const code = [
    'import json, sys',
    'from conscience.recipe import load_recipe',
    'from conscience.allocator import budgets',
    'from conscience.template import PromptTemplate',
    'a = json.loads(sys.stdin.read())',
    'r = load_recipe(a["recipe"])',
    'bs = [r.safety.clip_budget(b) for b in budgets(a["prompts"], r.allocator)]',
    'out = []',
    'for p, b in zip(a["prompts"], bs):',
    '    out.append({"budget": b,',
    '                "plain": PromptTemplate.from_recipe(r.safety, r.script_args.system_prompt).messages(p, b),',
    '                "client": PromptTemplate.from_recipe(r.safety, a["client_system"]).messages(p, b)})',
    'print(json.dumps(out, ensure_ascii=False))',
  ].join('\n');
  const py = JSON.parse(execFileSync(PY, ['-c', code], { cwd: join(ROOT, 'runtime'), input: JSON.stringify({ recipe: recipeFile, prompts: PROMPTS, client_system: CLIENT_SYSTEM }), encoding: 'utf8' })) as Array<{ budget: number; plain: unknown[]; client: unknown[] }>;
  assert.ok(py.some((c) => c.budget === 16), 'the deep budget (40) is clipped to max_budget 16');
  assert.ok(py.some((c) => c.budget === 10), 'the recipe overrides budget_brief');

  const recipe = readServeRecipe(recipeFile);
  const allocator = await Allocator.load(recipe.allocatorDir ?? defaultModelDir(), { policy: recipe.allocatorPolicy });
  const gw = createGateway({ upstream: up.url, allocator, template: recipe.template, maxBudget: recipe.maxBudget, log: () => {} });
  const { url } = await gw.listen(0);
  try {
    for (const [i, prompt] of PROMPTS.entries()) {
      for (const withSystem of [false, true]) {
        const messages = withSystem ? [{ role: 'system', content: CLIENT_SYSTEM }, { role: 'user', content: prompt }] : [{ role: 'user', content: prompt }];
        const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) });
        assert.equal(r.status, 200);
        assert.equal(Number(r.headers.get('x-conscience-budget')), py[i]!.budget, prompt);
        const sent = JSON.parse(up.requests.at(-1)!.body) as { messages: unknown[] };
        assert.deepEqual(sent.messages, withSystem ? py[i]!.client : py[i]!.plain);
      }
    }
  } finally {
    await gw.close();
    await allocator.dispose();
  }
});

test('recipe mistakes are reported at FILE:LINE, and the CLI exits 2', () => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'system_prompt: "hi"\nsafety:\n  open_tag: 5\n');
  assert.throws(() => readServeRecipe(bad), new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: safety.open_tag must be a non-empty string`));
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'a: 1\nsafety: [\n');
  assert.throws(() => readServeRecipe(broken), /broken\.yaml:\d+: invalid YAML/);
  const same = join(dir, 'same.yaml');
  writeFileSync(same, 'safety:\n  open_tag: "<s>"\n  close_tag: "<s>"\n');
  assert.throws(() => readServeRecipe(same), /same\.yaml:3: safety.open_tag and safety.close_tag must differ/);
  // a wording the trainer refuses (it would render {budget:d}, the gateway could not): refused at load, not per request
  const spec = join(dir, 'spec.yaml');
  writeFileSync(spec, 'safety:\n  open_tag: "<s>"\n  budget_instruction: "Think in {open_tag}{close_tag}, at most {budget:d} tokens."\n');
  assert.throws(() => readServeRecipe(spec), /spec\.yaml:3: safety\.budget_instruction: \{budget:d\} is not a plain \{budget\}/);
  // what the trainer and the validator refuse in the sections the gateway serves from, refused at their line
  // (allocator.enabled: 5 and safety.budget_harmful: -5 were served; a string budget or an unknown key
  // failed with exit 1 and no line)
  const cases: Array<[string, number, RegExp]> = [
    ['allocator:\n  enabled: 5\n', 2, /allocator\.enabled expects true or false, got the number 5\. \(CC101\)/],
    ['safety:\n  budget_harmful: -5\n', 2, /safety\.budget_harmful = -5 is out of range: it must be >= 0\. \(CC103\)/],
    ['safety:\n  budget_harmful: .inf\n', 2, /safety\.budget_harmful/],
    ['allocator:\n  budget_deep: "512"\n', 2, /allocator\.budget_deep expects an integer, got the string "512"\. \(CC101\)/],
    ['allocator:\n  budget_deeep: 512\n', 2, /Unknown key 'budget_deeep' in the allocator: section\. Did you mean 'budget_deep'\?.*\(CC100\)/],
  ];
  for (const [body, line, msg] of cases) {
    const f = join(dir, 'section.yaml');
    writeFileSync(f, 'model_name_or_path: x\n' + body.replace(/^/, ''));
    assert.throws(() => readServeRecipe(f), (e: Error) => e.message.startsWith(`${f}:${line + 1}: `) && msg.test(e.message), body);
  }
  // the section found however the YAML is written: flow style, a quoted key, an indented document
  for (const text of ['{model_name_or_path: x, safety: {budget_harmful: -5}}\n', 'model_name_or_path: x\n"safety":\n  budget_harmful: -5\n', '  model_name_or_path: x\n  safety:\n    budget_harmful: -5\n']) {
    const f = join(dir, 'styled.yaml');
    writeFileSync(f, text);
    assert.throws(() => readServeRecipe(f), /safety\.budget_harmful = -5 is out of range.*\(CC103\)/, text);
  }
  // not UTF-8: refused with where, as the trainer refuses it (it was served with U+FFFD in its tag)
  const latin = join(dir, 'latin.yaml');
  writeFileSync(latin, Buffer.concat([Buffer.from('safety:\n  open_tag: "<s'), Buffer.from([0xe9]), Buffer.from('>"\n')]));
  assert.throws(() => readServeRecipe(latin), /latin\.yaml:2: .*UTF-8.*\(CC006\)/);
  // a training mistake elsewhere (not in what the gateway serves from) does not stop serving
  const other = join(dir, 'other.yaml');
  writeFileSync(other, 'model_name_or_path: x\nper_device_train_batch_size: -3\nsafety:\n  open_tag: "<s>"\n');
  assert.equal(readServeRecipe(other).template.openTag, '<s>');
  // values read as the trainer (PyYAML) reads them: `y` is text (js-yaml's YAML 1.1 schema made it
  // true, and the gateway refused a system prompt the trainer trained with)
  const yes = join(dir, 'yes.yaml');
  writeFileSync(yes, 'model_name_or_path: x\nsystem_prompt: y\nsafety:\n  open_tag: n\n  close_tag: off-tag\n');
  assert.equal(readServeRecipe(yes).template.systemPrompt, 'y');
  assert.equal(readServeRecipe(yes).template.openTag, 'n');
  const sec = spawnSync(process.execPath, [join(ROOT, 'bin', 'conscience.js'), 'serve', '--upstream', 'http://127.0.0.1:1', '--recipe', join(dir, 'section.yaml')], { encoding: 'utf8' });
  assert.equal(sec.status, 2, sec.stderr);
  assert.match(sec.stderr, /section\.yaml:3: Unknown key 'budget_deeep'/);
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'conscience.js'), 'serve', '--upstream', 'http://127.0.0.1:1', '--recipe', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.yaml:3: safety\.open_tag/);
});
