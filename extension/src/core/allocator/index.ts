// The allocator as the editor and the CLI use it: model + policy + a cache by prompt hash.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AllocatorModel, type ModelOptions, type Score } from './model';
import { decide, parsePolicy, policyRows, type Policy, type PolicyRow, type Tier } from './policy';
import { occlusion, topDrivers, type Attribution } from './attribution';
import { ThreadedScorer } from './threaded';

export { AllocatorModel, parseAllocatorJson, type Score, type AllocatorJson } from './model';
export { decide, parsePolicy, policyModel, policyRows, withFloatLiterals, FloatLiteral, DEFAULT_POLICY, TIERS, type Policy, type PolicyRow, type Tier, type Decision } from './policy';
export { occlusion, topDrivers, splitWords, type Attribution } from './attribution';

export interface Assessment extends Score {
  tier: Tier;
  budget: number;
  reason: string;
  /** the row of the decision table that matched */
  row: PolicyRow;
}

export interface Explanation extends Assessment {
  prompt: string;
  policy: Policy;
  rows: ReturnType<typeof policyRows>;
  words: Attribution[];
  drivers: Attribution[];
  /** false when the prompt had more words than were occluded */
  occludedAll: boolean;
  modelVersion: string;
}

/**
 * Where the shipped allocator lives: $CONSCIENCE_ALLOCATOR_MODEL wins (as in Python), else the
 * first models/allocator with an allocator.json above `from` (the bundle's or the source's folder).
 */
export function defaultModelDir(from: string = __dirname): string {
  const env = process.env.CONSCIENCE_ALLOCATOR_MODEL;
  if (env) return resolve(env);
  let dir = resolve(from);
  for (;;) {
    const cand = join(dir, 'models', 'allocator');
    if (existsSync(join(cand, 'allocator.json'))) return cand;
    const up = dirname(dir);
    if (up === dir) return join(resolve(from), 'models', 'allocator');
    dir = up;
  }
}

export const promptHash = (text: string): string => createHash('sha1').update(text).digest('base64url');

export interface AllocatorOptions extends ModelOptions {
  /** overrides on top of allocator.json's policy (same keys as the recipe's allocator: section) */
  policy?: unknown;
  /** where the overrides came from, for errors */
  policySource?: string;
  /** cache entries kept (default 50,000) */
  cacheSize?: number;
  /**
   * score on this many worker threads (threaded.ts), so the caller's event loop keeps running
   * while batches run, and batches run side by side: for servers (`conscience serve`).
   * Default 0: score on the calling thread.
   */
  workers?: number;
}

/** What scores prompts: the model on this thread, or a worker thread running the same model. */
interface Scorer {
  score(texts: string[]): Promise<Score[]>;
  dispose(): Promise<void>;
  /** batches that can run at once */
  readonly concurrency: number;
}

export class Allocator {
  /** model outputs by prompt hash; the policy is applied on the way out, so it can vary */
  private readonly cache = new Map<string, Score>();
  private readonly cacheSize: number;

  private readonly scorer: Scorer;

  constructor(readonly model: AllocatorModel, readonly policy: Policy, cacheSize = 50_000, scorer?: Scorer) {
    this.cacheSize = cacheSize;
    this.scorer = scorer ?? { score: (t) => model.score(t), dispose: async () => {}, concurrency: 1 };
  }

  /** How many assess() calls can score at once (worker threads; 1 on the calling thread). */
  get concurrency(): number {
    return this.scorer.concurrency;
  }

  static async load(dir: string = defaultModelDir(), opts: AllocatorOptions = {}): Promise<Allocator> {
    // With workers, each worker opens and checks the model; this thread needs only its config
    // (the session opens here only if explain() is called).
    const model = await AllocatorModel.load(dir, { ...opts, lazySession: !!opts.workers });
    const policy = parsePolicy(opts.policy, opts.policySource ?? 'policy overrides', model.config.policy);
    const scorer = opts.workers ? await ThreadedScorer.start(dir, { threads: opts.threads, maxBatch: opts.maxBatch }, opts.workers) : undefined;
    return new Allocator(model, policy, opts.cacheSize, scorer);
  }

  private withPolicy(s: Score, policy: Policy): Assessment {
    const d = decide(s.risk, s.ambiguity, policy, s.unfamiliar);
    return { ...s, tier: d.tier, budget: d.budget, reason: d.reason, row: d.row };
  }

  /**
   * Scores prompts (cached by hash; only the misses reach the model, in one call) and decides
   * with `policy` (default: the allocator's; a recipe's allocator: section may override it).
   */
  async assess(texts: string[], policy: Policy = this.policy): Promise<Assessment[]> {
    const keys = texts.map(promptHash);
    // This call's scores are kept here, not read back from the cache: storing the misses may
    // evict a hit of this same call (a full cache, more distinct prompts than it holds, or
    // another call's stores while this one awaits the model).
    const got = new Map<string, Score>();
    const first = new Map<string, string>();
    keys.forEach((k, i) => {
      const hit = this.cache.get(k);
      if (hit) got.set(k, hit);
      else if (!first.has(k)) first.set(k, texts[i]!);
    });
    if (first.size) {
      const misses = [...first.keys()];
      const scores = await this.scorer.score([...first.values()]);
      misses.forEach((k, j) => {
        got.set(k, scores[j]!);
        this.remember(k, scores[j]!);
      });
    }
    return keys.map((k) => this.withPolicy(got.get(k) ?? missingScore(), policy));
  }

  /** Scores without touching the cache (CLI streaming, benchmarks). */
  async assessUncached(texts: string[]): Promise<Assessment[]> {
    return (await this.scorer.score(texts)).map((s) => this.withPolicy(s, this.policy));
  }

  private remember(key: string, s: Score): void {
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, s);
  }

  /** Full breakdown for the inspector and hover: scores, policy table, occlusion attribution. */
  async explain(prompt: string, opts: { maxWords?: number; policy?: Policy } = {}): Promise<Explanation> {
    const policy = opts.policy ?? this.policy;
    const occ = await occlusion({ score: (t) => this.model.score(t) }, prompt, opts);
    const [base] = await this.assess([prompt], policy);
    return {
      ...base!,
      prompt,
      policy,
      rows: policyRows(policy, this.model.config.scripts !== undefined, base!.row),
      words: occ.words,
      drivers: topDrivers(occ.words),
      occludedAll: occ.occludedAll,
      modelVersion: this.model.config.version,
    };
  }

  async dispose(): Promise<void> {
    this.cache.clear();
    await this.scorer.dispose();
    await this.model.dispose();
  }
}

function missingScore(): Score {
  return { risk: NaN, ambiguity: NaN, categories: {}, truncated: false, tokens: 0, unfamiliar: false };
}
