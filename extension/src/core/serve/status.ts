/**
 * What the editor needs to start a gateway and show it: the CLI's argv (no shell: every value
 * is its own argument) and environment, a summary of a gateway's /metrics text, and the poller
 * of the status bar.
 */
import { TIERS } from '../allocator';

export interface StartSpec {
  upstream: string;
  port: number;
  host?: string;
  allocatorDir?: string;
  /** the allocator policy overrides (setting conscience.allocator.policy) */
  policy?: Record<string, unknown>;
  observeOnly?: boolean;
}

/** Checks an upstream URL typed by a user; returns an error message or undefined. */
export function checkUpstream(url: string): string | undefined {
  let u: URL;
  try { u = new URL(url.trim()); } catch { return 'not a URL: use http://HOST:PORT (the OpenAI-compatible server, e.g. vLLM on http://127.0.0.1:8000)'; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'the upstream must be an http:// or https:// URL';
  // each request keeps its own query: one in the upstream URL would be shown but never sent
  if (u.search !== '') return 'the upstream URL has a query string (?…), which the gateway would not send to the upstream (each request keeps its own query): remove it (credentials go in user:pass@ or the clients\' Authorization)';
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
  } catch {
    return 'its user:pass@ is not valid percent-encoding (a % that does not start a %XX escape): write a literal % as %25';
  }
  return undefined;
}

/** The environment variable the CLI reads the upstream URL from when `--upstream` is not given. */
export const UPSTREAM_ENV = 'CONSCIENCE_UPSTREAM';

/**
 * An upstream URL without its `user:pass@` and its query (`?api_key=…` is as secret), for logs,
 * messages and the status bar.
 */
export function redactUpstream(url: string): string {
  try {
    const u = new URL(url.trim());
    if (!u.username && !u.password && !u.search) return url.trim();
    u.username = '';
    u.password = '';
    u.search = '';
    return u.href;
  } catch {
    return url.trim().replace(/\/\/[^/@]*@/, '//').replace(/\?[^#]*/, '');
  }
}

/**
 * How the editor starts a gateway: argv after the CLI script (`serve --port P ...`) and the
 * environment. The upstream URL travels in the environment ($CONSCIENCE_UPSTREAM), never in
 * argv: a `user:pass@` in it would otherwise be readable in any process list.
 */
export function serveLaunch(s: StartSpec): { args: string[]; env: Record<string, string> } {
  const args = ['serve', '--port', String(s.port)];
  if (s.host) args.push('--host', s.host);
  if (s.allocatorDir) args.push('--allocator', s.allocatorDir);
  for (const [k, v] of Object.entries(s.policy ?? {})) {
    if (typeof v === 'number' || typeof v === 'string') args.push('--policy', `${k}=${v}`);
  }
  if (s.observeOnly) args.push('--observe-only');
  return { args, env: { [UPSTREAM_ENV]: s.upstream.trim() } };
}

export interface MetricsSummary {
  requests: number;
  byTier: Record<string, number>;
  refused: number;
  inFlight: number;
  safetyTokens: number;
  savedTokens: number;
}

/** Sums the gateway's counters from Prometheus text (unknown lines are ignored). */
export function summarizeMetrics(text: string): MetricsSummary {
  const out: MetricsSummary = { requests: 0, byTier: Object.fromEntries(TIERS.map((t) => [t, 0])), refused: 0, inFlight: 0, safetyTokens: 0, savedTokens: 0 };
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\w+)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labels = '', raw] = m;
    const v = Number(raw);
    if (!Number.isFinite(v)) continue;
    const label = (k: string): string | undefined => new RegExp(`(?:^|,)${k}="([^"]*)"`).exec(labels)?.[1];
    switch (name) {
      case 'conscience_serve_requests_total': {
        out.requests += v;
        const tier = label('tier');
        if (tier) out.byTier[tier] = (out.byTier[tier] ?? 0) + v;
        if (label('action') === 'refused') out.refused += v;
        break;
      }
      case 'conscience_serve_in_flight_requests': out.inFlight = v; break;
      case 'conscience_serve_safety_tokens_total': out.safetyTokens += v; break;
      case 'conscience_serve_budget_saved_tokens_total': out.savedTokens += v; break;
    }
  }
  return out;
}

export interface MetricsPollerOptions {
  intervalMs: number;
  /** The gateway's summary; undefined (or a failure) while it does not answer. */
  read(url: string): Promise<MetricsSummary | undefined>;
  hide(): void;
}

/** Polls the shown gateway's /metrics (the editor's status bar). A poll still in flight when the
 * gateway is stopped or replaced shows nothing when it returns: its answer is about a gateway no
 * longer shown (a Stop during a poll left the item shown, "gateway starting…", with no gateway). */
export class MetricsPoller {
  private generation = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: MetricsPollerOptions) {}

  /** Polls `url` from now on, each answer to show (undefined first: starting), until stop() or the next start(). */
  start(url: string, show: (s: MetricsSummary | undefined) => void): void {
    this.stop();
    const generation = this.generation;
    const poll = async (): Promise<void> => {
      let s: MetricsSummary | undefined;
      try {
        s = await this.o.read(url);
      } catch {
        s = undefined;
      }
      if (generation === this.generation) show(s);
    };
    show(undefined);
    this.timer = setInterval(() => void poll(), this.o.intervalMs);
    void poll();
  }

  /** No more polls; one in flight shows nothing; the item is hidden. */
  stop(): void {
    this.generation++;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.o.hide();
  }

  dispose(): void {
    this.stop();
  }
}
