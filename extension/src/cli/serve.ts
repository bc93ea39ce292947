// `conscience serve --upstream URL [--host 127.0.0.1] [--port 8100] [--allocator DIR]
//   [--recipe FILE] [--policy key=value ...] [--observe-only] [--log-prompts] [--max-body BYTES]
//   [--max-buffered BYTES] [--replace-auth] [--pass-route PATH ...] [--upstream-timeout SECONDS] [--grace SECONDS]`
// An OpenAI-compatible gateway in front of an existing server (docs/serve.md). Runs until
// SIGINT/SIGTERM. Exit 0 after a clean stop, 1 when it cannot start, 2 usage.
import { Allocator, defaultModelDir } from '../core/allocator';
import { createGateway, parseGatewayPolicy } from '../core/serve';
import { UPSTREAM_ENV, checkUpstream, redactUpstream } from '../core/serve/status';
import { readServeRecipe, type ServeRecipe } from '../core/serve/recipe';

const USAGE = 'usage: conscience serve --upstream URL (or $CONSCIENCE_UPSTREAM) [--host 127.0.0.1] [--port 8100] [--allocator DIR] [--recipe FILE] [--allocator-workers N] [--allocator-threads N] [--policy key=value ...] [--observe-only] [--log-prompts] [--max-body BYTES] [--max-buffered BYTES] [--replace-auth] [--pass-route PATH ...] [--upstream-timeout SECONDS] [--grace SECONDS]';

interface Args {
  upstream: string;
  host: string;
  port: number;
  allocator?: string;
  recipe?: string;
  allocatorThreads: number;
  allocatorWorkers: number;
  grace: number;
  policy: string[];
  observeOnly: boolean;
  logPrompts: boolean;
  maxBody?: number;
  maxBuffered?: number;
  replaceAuth: boolean;
  passRoutes: string[];
  upstreamTimeout?: number;
}

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Args | string {
  const a: Partial<Args> & { policy: string[]; passRoutes: string[] } = { host: '127.0.0.1', port: 8100, policy: [], passRoutes: [], observeOnly: false, logPrompts: false, replaceAuth: false, allocatorThreads: 1, allocatorWorkers: 2, grace: 20 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
      return Number(v);
    };
    try {
      switch (name) {
        case '--upstream': a.upstream = value(); break;
        case '--host': a.host = value(); break;
        case '--port': a.port = int(0); if (a.port > 65535) return '--port must be at most 65535'; break;
        case '--allocator': a.allocator = value(); break;
        case '--recipe': a.recipe = value(); break;
        case '--allocator-threads': a.allocatorThreads = int(1); break;
        case '--allocator-workers': a.allocatorWorkers = int(0); break;
        case '--grace': a.grace = int(0); break;
        case '--policy': a.policy.push(value()); break;
        case '--observe-only': a.observeOnly = true; break;
        case '--log-prompts': a.logPrompts = true; break;
        case '--max-body': a.maxBody = int(1); break;
        case '--max-buffered': a.maxBuffered = int(1); break;
        case '--replace-auth': a.replaceAuth = true; break;
        case '--pass-route': {
          const v = value();
          if (!v.startsWith('/')) return `--pass-route takes a path such as /v1/messages, got ${JSON.stringify(v)}`;
          a.passRoutes.push(v);
          break;
        }
        case '--upstream-timeout': a.upstreamTimeout = int(1); break;
        case '-h': case '--help': return '';
        default: return `unknown argument ${arg}`;
      }
    } catch (err) {
      return (err as Error).message;
    }
  }
  // $CONSCIENCE_UPSTREAM keeps a user:pass@ out of the process list (argv is readable by anyone)
  const from = a.upstream ? '--upstream' : `$${UPSTREAM_ENV}`;
  a.upstream ??= env[UPSTREAM_ENV] || undefined;
  if (!a.upstream) return `--upstream URL (or $${UPSTREAM_ENV}) is required (the OpenAI-compatible server to put the gateway in front of)`;
  const bad = checkUpstream(a.upstream);
  if (bad) return `${from} ${JSON.stringify(redactUpstream(a.upstream))}: ${bad}`;
  const maxBody = a.maxBody ?? 16 * 1024 * 1024;
  if (a.maxBuffered !== undefined && a.maxBuffered < maxBody) return `--max-buffered (${a.maxBuffered}) must be at least --max-body (${maxBody}): a body of the largest size accepted must fit`;
  if (a.replaceAuth && !new URL(a.upstream.trim()).username) return `--replace-auth sends the upstream URL's user:pass@ as Basic auth on every request, but ${from} names no user`;
  return a as Args;
}

export async function serve(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseArgs(argv, env);
  if (typeof args === 'string') {
    process.stderr.write((args ? `conscience serve: ${args}\n` : '') + USAGE + '\n');
    return args ? 2 : 0;
  }
  if (argv.some((x) => x === '--upstream' || x.startsWith('--upstream=')) && redactUpstream(args.upstream) !== args.upstream.trim()) {
    process.stderr.write(`conscience serve: the --upstream URL holds credentials, which any user can read in the process list; set $${UPSTREAM_ENV} instead\n`);
  }
  let policy;
  try {
    policy = parseGatewayPolicy(args.policy);
  } catch (err) {
    process.stderr.write(`conscience serve: ${(err as Error).message}\n`);
    return 2;
  }
  let recipe: ServeRecipe | undefined;
  try {
    recipe = args.recipe !== undefined ? readServeRecipe(args.recipe) : undefined;
  } catch (err) {
    process.stderr.write(`conscience serve: ${(err as Error).message}\n`);
    return 2;
  }
  const dir = args.allocator ?? recipe?.allocatorDir ?? defaultModelDir();
  const allocator = await Allocator.load(dir, {
    threads: args.allocatorThreads,
    workers: args.allocatorWorkers, // batches run on their own threads while the event loop keeps proxying
    policy: { ...recipe?.allocatorPolicy, ...policy.allocator },
    policySource: args.recipe ? `${args.recipe}: allocator (with --policy on top)` : '--policy',
  });
  let gateway: ReturnType<typeof createGateway>;
  try {
    gateway = createGateway({
      upstream: args.upstream,
      allocator,
      policy,
      template: recipe?.template,
      maxBudget: recipe?.maxBudget,
      observeOnly: args.observeOnly,
      logPrompts: args.logPrompts,
      maxBodyBytes: args.maxBody,
      maxBufferedBytes: args.maxBuffered,
      replaceAuthorization: args.replaceAuth,
      passRoutes: args.passRoutes,
      upstreamTimeoutMs: args.upstreamTimeout !== undefined ? args.upstreamTimeout * 1000 : undefined,
    });
  } catch (err) {
    // an upstream URL the gateway refuses (checkUpstream catches these first): a usage error
    process.stderr.write(`conscience serve: ${(err as Error).message}\n`);
    await allocator.dispose();
    return 2;
  }
  let url: string;
  try {
    ({ url } = await gateway.listen(args.port, args.host));
  } catch (err) {
    // e.g. the port is taken: the allocator's worker threads would keep the process alive
    process.stderr.write(`conscience serve: cannot listen on ${args.host}:${args.port}: ${(err as Error).message}\n`);
    await allocator.dispose();
    return 1;
  }
  process.stderr.write(JSON.stringify({
    ts: new Date().toISOString(), level: 'info', msg: 'listening', url, upstream: redactUpstream(args.upstream),
    observe_only: args.observeOnly, log_prompts: args.logPrompts, allocator: dir, ...(args.recipe ? { recipe: args.recipe } : {}),
  }) + '\n');
  await new Promise<void>((resolve) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  // finish what is in flight (a Kubernetes pod gets 30 s after SIGTERM by default)
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'stopping: finishing requests in flight', grace_s: args.grace }) + '\n');
  await gateway.close(args.grace * 1000);
  await allocator.dispose();
  return 0;
}
