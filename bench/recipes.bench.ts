// `npm run bench recipes`: full validation (YAML tree, schema, cross-field rules, reward
// names, referenced files, the accelerate config) of the shipped Qwen recipe, against
// yaml-language-server's schema-only doValidation of the same text with the same JSON Schema,
// measured in the same run.
//   recipes.validate_ms_p50   our median per validation (ms)
//   recipes.yamlls_ms_p50     yaml-language-server's median per validation (ms)
//   recipes.vs_yamlls_ratio   yamlls / ours (higher is better for us)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { getLanguageService } from 'yaml-language-server';
import { validateText } from '../extension/src/core/recipe';
import { nodeHost } from '../extension/src/core/recipe/node-host';

const REPO = join(__dirname, '..');
const RECIPE = join(REPO, 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml');

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export default async function bench(): Promise<Record<string, number>> {
  const text = readFileSync(RECIPE, 'utf8');
  const schema = JSON.parse(readFileSync(join(REPO, 'schemas/recipe.schema.json'), 'utf8'));

  // ours
  const ours: number[] = [];
  let n = 0;
  for (let i = 0; i < 200; i++) n += validateText(text, { file: RECIPE, host: nodeHost }).length; // warm-up
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now();
    n += validateText(text, { file: RECIPE, host: nodeHost }).length;
    ours.push(performance.now() - t0);
  }

  // yaml-language-server, schema-only
  const uri = 'file:///bench/safety-grpo.yaml';
  const ls = getLanguageService({
    schemaRequestService: async () => JSON.stringify(schema),
    workspaceContext: { resolveRelativePath: (p: string) => p },
  } as Parameters<typeof getLanguageService>[0]);
  ls.configure({ validate: true, schemas: [{ uri: 'file:///schemas/recipe.schema.json', fileMatch: ['*.yaml'], schema }] });
  const yamlls: number[] = [];
  let version = 1;
  let m = 0;
  for (let i = 0; i < 50; i++) m += (await ls.doValidation(TextDocument.create(uri, 'yaml', version++, text), false)).length;
  for (let i = 0; i < 300; i++) {
    // a new version each time, as an editor would send after an edit
    const doc = TextDocument.create(uri, 'yaml', version++, text);
    const t0 = performance.now();
    m += (await ls.doValidation(doc, false)).length;
    yamlls.push(performance.now() - t0);
  }
  if (n < 0 || m < 0) throw new Error('unreachable');
  const a = p50(ours);
  const b = p50(yamlls);
  return {
    'recipes.validate_ms_p50': +a.toFixed(4),
    'recipes.yamlls_ms_p50': +b.toFixed(4),
    'recipes.vs_yamlls_ratio': +(b / a).toFixed(2),
  };
}
