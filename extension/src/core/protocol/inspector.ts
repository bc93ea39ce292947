// The prompt-budget inspector webview's message protocol: one discriminated union each way,
// shared by the extension host (editor/allocator.ts) and the webview bundle
// (webview/src/inspector). Both sides validate every message on receipt.
import { arr, bool, int, literal, num, obj, parseWith, str, union, type Check, type Parsed } from './validate';

export type TierName = 'none' | 'brief' | 'standard' | 'deep';
const tier = literal('none', 'brief', 'standard', 'deep');

export interface InspectorWord {
  word: string;
  start: number;
  end: number;
  /** risk with the word minus risk without it */
  delta: number;
  /** the same in log-odds, which still separates words when the risk is near 0 or 1 */
  logitDelta: number;
}

export interface InspectorView {
  prompt: string;
  risk: number;
  ambiguity: number;
  tier: TierName;
  budget: number;
  reason: string;
  truncated: boolean;
  tokens: number;
  maxTokens: number;
  categories: Array<{ name: string; p: number }>;
  /** the policy's thresholds (same keys as the recipe's allocator: section) */
  thresholds: { risk_harmful: number; ambiguity_deep: number; risk_standard: number; ambiguity_standard: number };
  /** the decision table in match order */
  rows: Array<{ tier: TierName; budget: number; rule: string }>;
  words: InspectorWord[];
  occludedAll: boolean;
  modelVersion: string;
  /** where the model was loaded from */
  modelDir: string;
}

export type ToWebview =
  | { type: 'loading'; prompt: string }
  | { type: 'show'; view: InspectorView }
  | { type: 'error'; message: string };

export type ToHost =
  | { type: 'ready' }
  /** the user edited the prompt in the inspector and asked to score it again */
  | { type: 'rescore'; prompt: string };

const MAX_PROMPT = 2_000_000;
const unit = num(0, 1);

const viewCheck: Check = obj({
  prompt: str(MAX_PROMPT),
  risk: unit,
  ambiguity: unit,
  tier,
  budget: int(0),
  reason: str(2000),
  truncated: bool,
  tokens: int(0),
  maxTokens: int(0),
  categories: arr(obj({ name: str(200), p: unit }), 1000),
  thresholds: obj({ risk_harmful: unit, ambiguity_deep: unit, risk_standard: unit, ambiguity_standard: unit }),
  rows: arr(obj({ tier, budget: int(0), rule: str(500) }), 16),
  words: arr(obj({ word: str(MAX_PROMPT), start: int(0), end: int(0), delta: num(-1, 1), logitDelta: num(-40, 40) }), 10_000),
  occludedAll: bool,
  modelVersion: str(200),
  modelDir: str(4096),
});

const toWebview: Check = union('type', {
  loading: obj({ type: literal('loading'), prompt: str(MAX_PROMPT) }),
  show: obj({ type: literal('show'), view: viewCheck }),
  error: obj({ type: literal('error'), message: str(10_000) }),
});

const toHost: Check = union('type', {
  ready: obj({ type: literal('ready') }),
  rescore: obj({ type: literal('rescore'), prompt: str(MAX_PROMPT) }),
});

export const parseToWebview = (msg: unknown): Parsed<ToWebview> => parseWith<ToWebview>(toWebview, msg, 'message');
export const parseToHost = (msg: unknown): Parsed<ToHost> => parseWith<ToHost>(toHost, msg, 'message');
