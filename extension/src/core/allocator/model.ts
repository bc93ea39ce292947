// The allocator model: tokenizer.json + model.onnx + allocator.json from one folder, run with
// onnxruntime-node. Loaded lazily (onnxruntime-node is only required on first use), batched
// (rows grouped by length into chunks padded to their longest row, as Python's run_texts
// does), and it yields to the event loop between chunks so a big request never holds the
// extension host for long.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { AllocatorTokenizer, type Encoded } from './tokenizer';
import { parsePolicy, withFloatLiterals, type Policy } from './policy';
import { isUnfamiliar, parseScripts, type ScriptTable } from './unfamiliar';

/** The model's allocator.json, parsed (the recipe's `allocator:` section is Python's AllocatorConfig, a different thing). */
export interface AllocatorJson {
  version: string;
  maxLength: number;
  categories: string[];
  inputs: { inputIds: string; attentionMask: string; tokenTypeIds?: string };
  outputs: { risk: string; categories?: string; ambiguity?: string; borderline?: string };
  policy: Policy;
  /** the scripts the model learned both labels in ("scripts"; unfamiliar.ts), when it says */
  scripts?: ScriptTable;
  /** the raw allocator.json, for display */
  raw: Record<string, unknown>;
}

export interface Score {
  /** calibrated probability that the prompt is harmful, 0..1 */
  risk: number;
  /** 0..1: how unsure the allocator is, or how much the prompt looks risky but benign */
  ambiguity: number;
  /** P(looks risky but benign), when the model has that output */
  borderline?: number;
  /** per-category probabilities, in allocator.json's category order */
  categories: Record<string, number>;
  /** the prompt had more tokens than maxLength and its tail was not read */
  truncated: boolean;
  /** tokens read including [CLS]/[SEP] */
  tokens: number;
  /** written mostly in a script the model did not learn both labels in (unfamiliar.ts) */
  unfamiliar: boolean;
}

export interface ModelOptions {
  /** ORT intra-op threads (default 2) */
  threads?: number;
  /**
   * Open the onnxruntime session on first use instead of at load (a caller that scores on
   * worker threads, whose workers each load and check the model, needs only the config here).
   */
  lazySession?: boolean;
  /** largest batch run in one session.run (default 32, as Python's reference) */
  maxBatch?: number;
}

const name = (v: unknown, fallback: string): string => (typeof v === 'string' && /^[\w.:/-]+$/.test(v) ? v : fallback);

/**
 * Parses allocator.json; `file` names it in errors. With the file's `text`, a policy budget
 * written as a float (`"budget_deep": 768.0`) is refused, as Python's json and AllocatorConfig
 * refuse it (policy.ts, FloatLiteral).
 */
export function parseAllocatorJson(raw: unknown, file: string, text?: string): AllocatorJson {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file}: not a JSON object`);
  const o = raw as Record<string, unknown>;
  // allocator.json's max_length, else 128 as in Python (score.py): tokenizer.json's own
  // truncation setting is informative only (docs/allocator.md, the model folder contract)
  const maxLength = o.max_length ?? 128;
  if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 3) {
    throw new Error(`${file}: max_length must be an integer >= 3, got ${JSON.stringify(maxLength)}`);
  }
  const inputs = (o.inputs && typeof o.inputs === 'object' ? o.inputs : {}) as Record<string, unknown>;
  const outputs = (o.outputs && typeof o.outputs === 'object' ? o.outputs : {}) as Record<string, unknown>;
  const cats = Array.isArray(o.categories) ? o.categories : Array.isArray(o.labels) ? o.labels : [];
  if (!cats.every((c) => typeof c === 'string')) throw new Error(`${file}: categories must be strings`);
  return {
    version: String(o.version ?? 'unknown'),
    maxLength,
    categories: cats as string[],
    // Graph input/output names: allocator.json may map them ("inputs": {"input_ids": "<name>"});
    // values that are not plain names (descriptions) fall back to the contract's names.
    inputs: { inputIds: name(inputs.input_ids, 'input_ids'), attentionMask: name(inputs.attention_mask, 'attention_mask') },
    outputs: {
      risk: name(outputs.risk, 'risk'),
      categories: name(outputs.categories, 'categories'),
      ambiguity: name(outputs.ambiguity, 'ambiguity'),
      borderline: name(outputs.borderline, 'borderline'),
    },
    policy: parsePolicy(text === undefined ? o.policy : (withFloatLiterals(o, text, ['policy']) as Record<string, unknown>).policy, `${file}: policy`),
    scripts: parseScripts(o.scripts, file),
    raw: o,
  };
}

async function readJson(file: string): Promise<unknown> {
  return (await readJsonText(file)).value;
}

async function readJsonText(file: string): Promise<{ value: unknown; text: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return { value: JSON.parse(text), text };
  } catch (err) {
    throw new Error(`${file}: invalid JSON: ${(err as Error).message}`);
  }
}

/** Ambiguity when the model has no head for it: 1 at p = 0.5, 0 at p = 0 or 1. */
export const ambiguityFromRisk = (p: number): number => 1 - Math.abs(2 * p - 1);

export class AllocatorModel {
  private session: Promise<{ ort: typeof Ort; session: Ort.InferenceSession }> | undefined;
  /** set by dispose(): a score still running stops at its next batch instead of reopening the session */
  private disposed = false;

  private constructor(
    readonly dir: string,
    readonly config: AllocatorJson,
    readonly tokenizer: AllocatorTokenizer,
    private readonly modelFile: string,
    private readonly opts: ModelOptions,
  ) {}

  static async load(dir: string, opts: ModelOptions = {}): Promise<AllocatorModel> {
    const st = await stat(dir).catch(() => undefined);
    if (!st) throw new Error(`${dir}: no such folder (an allocator folder holds allocator.json, tokenizer.json and model.onnx)`);
    if (!st.isDirectory()) throw new Error(`${dir}: not a folder (an allocator folder holds allocator.json, tokenizer.json and model.onnx)`);
    if (!(await stat(join(dir, 'allocator.json')).catch(() => undefined))) throw new Error(`${dir}: not an allocator folder (no allocator.json)`);
    const tokFile = join(dir, 'tokenizer.json');
    const tokJson = await readJson(tokFile);
    const cfgFile = join(dir, 'allocator.json');
    const cfg = await readJsonText(cfgFile);
    const config = parseAllocatorJson(cfg.value, cfgFile, cfg.text);
    const tokCfgFile = join(dir, 'tokenizer_config.json');
    const tokCfg = await readJson(tokCfgFile).catch(() => ({}));
    let tokenizer: AllocatorTokenizer;
    try {
      tokenizer = new AllocatorTokenizer(tokJson, config.maxLength, tokCfg);
    } catch (err) {
      throw new Error(`${tokFile}: not a tokenizer this allocator can use: ${(err as Error).message}`);
    }
    const modelFile = join(dir, typeof config.raw.model === 'string' ? config.raw.model : 'model.onnx');
    if (!(await stat(modelFile).catch(() => undefined))?.isFile()) throw new Error(`no model at ${modelFile}`);
    const model = new AllocatorModel(dir, config, tokenizer, modelFile, opts);
    if (!opts.lazySession) await model.open();
    return model;
  }

  /** The onnxruntime session, opened once; checks the graph's inputs and outputs against the config. */
  private open(): Promise<{ ort: typeof Ort; session: Ort.InferenceSession }> {
    if (this.disposed) return Promise.reject(new Error(`allocator model ${this.dir} was disposed`));
    this.session ??= (async () => {
      const { config, modelFile } = this;
      const ort = await import('onnxruntime-node');
      const session = await ort.InferenceSession.create(modelFile, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: this.opts.threads ?? 2,
        interOpNumThreads: 1,
        executionMode: 'sequential',
      });
      const fail = (why: string): never => {
        void session.release();
        throw new Error(`${modelFile}: ${why}`);
      };
      for (const name of [config.inputs.inputIds, config.inputs.attentionMask]) {
        if (!session.inputNames.includes(name)) fail(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
      }
      if (!session.outputNames.includes(config.outputs.risk)) {
        fail(`model has no output '${config.outputs.risk}' (outputs: ${session.outputNames.join(', ')})`);
      }
      if (!config.inputs.tokenTypeIds && session.inputNames.includes('token_type_ids')) config.inputs.tokenTypeIds = 'token_type_ids';
      for (const k of ['categories', 'ambiguity', 'borderline'] as const) {
        if (config.outputs[k] && !session.outputNames.includes(config.outputs[k]!)) config.outputs[k] = undefined;
      }
      return { ort, session };
    })();
    this.session.catch(() => { this.session = undefined; });
    return this.session;
  }

  /**
   * Scores prompts (results in input order) in batches of up to maxBatch prompts of similar
   * length, each padded to its longest row. A row's scores do not depend on its batch (the
   * contract: masked attention and pooling, int8 scales fixed at export, never taken from the
   * batch; extension/test/allocator/parity.test.ts checks it).
   */
  async score(texts: string[]): Promise<Score[]> {
    const scores = await this.scoreEncoded(texts.map((t) => this.tokenizer.encode(t)));
    return scores.map((s, i) => ({ ...s, unfamiliar: isUnfamiliar(this.config.scripts, texts[i]!) }));
  }

  private async scoreEncoded(rows: Encoded[]): Promise<Array<Omit<Score, 'unfamiliar'>>> {
    // Batches are cut from the rows sorted by token count, so a batch pads to a length close
    // to its rows' own (a row's scores do not depend on its batch, so this changes no number).
    const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.ids.length - rows[b]!.ids.length || a - b);
    const out = new Array<Omit<Score, 'unfamiliar'>>(rows.length);
    const maxBatch = this.opts.maxBatch ?? 32;
    for (let start = 0; start < order.length; start += maxBatch) {
      const idx = order.slice(start, start + maxBatch);
      const scores = await this.runBatch(idx.map((i) => rows[i]!));
      idx.forEach((i, k) => { out[i] = scores[k]!; });
      // Let other work on the event loop run between batches.
      if (start + maxBatch < order.length) await new Promise((r) => setImmediate(r));
    }
    return out;
  }

  private async runBatch(rows: Encoded[]): Promise<Array<Omit<Score, 'unfamiliar'>>> {
    const { ort, session } = await this.open();
    const { config } = this;
    const b = this.tokenizer.batch(rows);
    const dims = [b.batchSize, b.seqLen];
    const feeds: Record<string, Ort.Tensor> = {
      [config.inputs.inputIds]: new ort.Tensor('int64', b.inputIds, dims),
      [config.inputs.attentionMask]: new ort.Tensor('int64', b.attentionMask, dims),
    };
    if (config.inputs.tokenTypeIds) feeds[config.inputs.tokenTypeIds] = new ort.Tensor('int64', b.tokenTypeIds, dims);
    const res = await session.run(feeds);
    const risk = res[config.outputs.risk]!.data as Float32Array;
    const cats = config.outputs.categories ? (res[config.outputs.categories]?.data as Float32Array | undefined) : undefined;
    const amb = config.outputs.ambiguity ? (res[config.outputs.ambiguity]?.data as Float32Array | undefined) : undefined;
    const border = config.outputs.borderline ? (res[config.outputs.borderline]?.data as Float32Array | undefined) : undefined;
    const nCat = config.categories.length;
    return rows.map((r, i) => {
      const p = risk[i]!;
      const categories: Record<string, number> = {};
      if (cats) config.categories.forEach((c, j) => { categories[c] = cats[i * nCat + j]!; });
      return {
        risk: p,
        ambiguity: amb ? amb[i]! : ambiguityFromRisk(p),
        ...(border ? { borderline: border[i]! } : {}),
        categories,
        truncated: r.truncated,
        tokens: r.ids.length,
      };
    });
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const s = await this.session?.catch(() => undefined);
    this.session = undefined;
    await s?.session.release();
  }
}
