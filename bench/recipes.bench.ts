// `npm run bench recipes`: full validation (YAML tree, schema, cross-field rules, reward
// names, referenced files, the accelerate config) of the shipped Qwen recipe, against
// yaml-language-server's schema-only doValidation of the same text with the same JSON Schema,
// measured interleaved in the same run (bench/run.ts `interleaved`): both warmed up, then pairs
// of one batch each (~25 ms of calls), alternating which goes first; a batch's sample is the
// lower quartile of its call times (wall time of the preempted calls moves with everyone else's
// work on the shared machine).
//   recipes.validate_ms_p50        ours: median over the pairs of the time per validation (ms)
//   recipes.yamlls_ms_p50          yaml-language-server: the same (ms)
//   recipes.vs_yamlls_ratio        median over the pairs of yamlls / ours (higher is better for us)
//   recipes.vs_yamlls_ratio_p10    10th and 90th percentile of the per-pair ratios: the spread
//   recipes.vs_yamlls_ratio_p90
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { getLanguageService } from 'yaml-language-server';
import { validateText } from '../extension/src/core/recipe';
import { nodeFiles } from '../extension/src/core/recipe/node-files';
import { batchSize, interleaved, quantile } from './run';

const REPO = join(__dirname, '..');
const RECIPE = join(REPO, 'recipes/qwen2.5-1.5b-instruct/safety-grpo.yaml');
const PAIRS = 200;
/** The quantile of a batch's call times that is its sample. */
const Q = 0.25;

export default async function bench(): Promise<Record<string, number>> {
  const text = readFileSync(RECIPE, 'utf8');
  const schema = JSON.parse(readFileSync(join(REPO, 'schemas/recipe.schema.json'), 'utf8'));
  let sink = 0;

  // ours: a batch of K validations per sample
  const one = () => { sink += validateText(text, { file: RECIPE, files: nodeFiles }).length; };
  for (let i = 0; i < 200; i++) one(); // JIT warm-up before sizing the batch
  const K = batchSize(one, 25);
  // A sample is the lower quartile of the batch's call times: on the shared cores a call is
  // either run through or preempted by someone else's work (or hit by a GC), and the preempted
  // ones sit above it.
  const ours = () => {
    const ts: number[] = [];
    for (let i = 0; i < K; i++) { const t0 = performance.now(); one(); ts.push(performance.now() - t0); }
    return quantile(ts, Q);
  };

  // yaml-language-server, schema-only: a batch of M validations, a new document version each
  // time, as an editor would send after an edit
  const uri = 'file:///bench/safety-grpo.yaml';
  const ls = getLanguageService({
    schemaRequestService: async () => JSON.stringify(schema),
    workspaceContext: { resolveRelativePath: (p: string) => p },
  } as Parameters<typeof getLanguageService>[0]);
  ls.configure({ validate: true, schemas: [{ uri: 'file:///schemas/recipe.schema.json', fileMatch: ['*.yaml'], schema }] });
  let version = 1;
  const peerOne = async () => { sink += (await ls.doValidation(TextDocument.create(uri, 'yaml', version++, text), false)).length; };
  for (let i = 0; i < 50; i++) await peerOne();
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) await peerOne();
  const M = Math.max(5, Math.round(25 / ((performance.now() - t0) / 10)));
  const peer = async () => {
    const ts: number[] = [];
    for (let i = 0; i < M; i++) { const t = performance.now(); await peerOne(); ts.push(performance.now() - t); }
    return quantile(ts, Q);
  };

  const r = await interleaved(ours, peer, { pairs: PAIRS, warmup: 3 });
  if (sink < 0) throw new Error('unreachable');
  return {
    'recipes.validate_ms_p50': +r.ours.toFixed(4),
    'recipes.yamlls_ms_p50': +r.peer.toFixed(4),
    'recipes.vs_yamlls_ratio': +r.ratio.toFixed(2),
    'recipes.vs_yamlls_ratio_p10': +r.ratioP10.toFixed(2),
    'recipes.vs_yamlls_ratio_p90': +r.ratioP90.toFixed(2),
  };
}
