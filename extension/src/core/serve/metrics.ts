/** The gateway's Prometheus metrics (prom-client), one registry per gateway. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'tier' | 'action'>;
  readonly http: Counter<'route' | 'status'>;
  readonly safetyTokens: Counter<'tier'>;
  readonly completionTokens: Counter<'tier'>;
  readonly budgetTokens: Counter<'tier'>;
  readonly savedTokens: Counter<'tier'>;
  readonly truncatedScores: Counter<string>;
  readonly unfamiliarScores: Counter<string>;
  readonly allocatorErrors: Counter<string>;
  readonly upstreamErrors: Counter<'kind'>;
  readonly clientAborts: Counter<string>;
  readonly inFlight: Gauge<string>;
  readonly allocatorSeconds: Histogram<string>;
  readonly allocatorBatch: Histogram<string>;
  readonly upstreamSeconds: Histogram<'phase'>;

  constructor() {
    const registers = [this.registry];
    const p = 'conscience_serve_';
    this.requests = new Counter({ name: `${p}requests_total`, help: 'Scored requests (chat completions, responses, completions) by route, allocator tier (unscored: nothing to score, forwarded as sent) and what the gateway did (forwarded, observed, refused)', labelNames: ['tier', 'action', 'route'], registers });
    this.http = new Counter({ name: `${p}http_responses_total`, help: 'HTTP responses by route and status code', labelNames: ['route', 'status'], registers });
    this.safetyTokens = new Counter({ name: `${p}safety_tokens_total`, help: 'Safety-block tokens the upstream spent (estimated: completion tokens shared by characters)', labelNames: ['tier'], registers });
    this.completionTokens = new Counter({ name: `${p}completion_tokens_total`, help: 'Completion tokens of answered scored requests, every route (usage, else stream deltas, else chars/4)', labelNames: ['tier'], registers });
    this.budgetTokens = new Counter({ name: `${p}budget_tokens_total`, help: 'Safety budget granted to scored requests (chat and responses: completions get none)', labelNames: ['tier'], registers });
    this.savedTokens = new Counter({ name: `${p}budget_saved_tokens_total`, help: 'Safety budget saved against one fixed budget for every request (fixed_budget minus the granted budget)', labelNames: ['tier'], registers });
    this.truncatedScores = new Counter({ name: `${p}truncated_scores_total`, help: 'Prompts longer than the allocator reads (scored on their start)', registers });
    this.unfamiliarScores = new Counter({ name: `${p}unfamiliar_scores_total`, help: 'Prompts written mostly in a script the allocator did not learn (given at least the standard tier)', registers });
    this.allocatorErrors = new Counter({ name: `${p}allocator_errors_total`, help: 'Requests the allocator failed to score (forwarded unchanged, or answered 503 where the policy refuses tiers)', registers });
    this.upstreamErrors = new Counter({ name: `${p}upstream_errors_total`, help: 'Upstream failures by kind (unreachable, timeout, reset)', labelNames: ['kind'], registers });
    this.clientAborts = new Counter({ name: `${p}client_aborts_total`, help: 'Requests whose client went away before the answer ended (upstream request cancelled)', registers });
    this.inFlight = new Gauge({ name: `${p}in_flight_requests`, help: 'Requests being answered now', registers });
    this.allocatorSeconds = new Histogram({
      name: `${p}allocator_seconds`,
      help: 'Time to score a request with the allocator, every scored route (queueing in the micro-batch included)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.allocatorBatch = new Histogram({
      name: `${p}allocator_batch_size`,
      help: 'Prompts per allocator call (concurrent requests are scored together)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: `${p}upstream_seconds`,
      help: 'Upstream latency: to its response headers (first_byte) and to the end of its body (total)',
      labelNames: ['phase'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
  }
}
