// One upstream server: its keep-alive pool, the key injected into its
// requests, and its passive health (consecutive failures put it in cool-down).
import { H1Pool } from '../proxy/h1-pool.js';
import type { GatewayConfig, UpstreamConfig } from '../config/schema.js';

export class Upstream {
  /** The upstream URL's path without a trailing slash, e.g. "/v1". */
  readonly basePath: string;
  readonly label: string;
  /** The label as a JSON string, for log lines. */
  readonly labelJson: string;
  readonly weight: number;
  readonly model: string | undefined;
  /** "Bearer <key>" or null; never logged. */
  readonly authorization: string | null;
  inFlight = 0;
  /** Smooth weighted round robin state. */
  current = 0;
  private failures = 0;
  private downUntil = 0;

  constructor(
    cfg: UpstreamConfig,
    readonly pool: H1Pool,
    private readonly health: GatewayConfig['health'],
    env: NodeJS.ProcessEnv,
  ) {
    const u = new URL(cfg.url);
    this.basePath = u.pathname.replace(/\/+$/, '');
    this.label = `${u.origin}${this.basePath}`;
    this.labelJson = JSON.stringify(this.label);
    this.weight = cfg.weight;
    this.model = cfg.model;
    const key = cfg.api_key_env ? env[cfg.api_key_env] : undefined;
    this.authorization = key ? `Bearer ${key}` : null;
  }

  healthy(now: number): boolean {
    return this.downUntil <= now;
  }

  succeeded(): void {
    this.failures = 0;
  }

  failed(now: number): void {
    if (++this.failures >= this.health.failures) {
      this.downUntil = now + this.health.cooldown_ms;
      this.failures = 0;
    }
  }

  get coolingUntil(): number {
    return this.downUntil;
  }
}

/** One pool per upstream origin (and TLS settings), shared by every model that points at it. */
export function poolFor(pools: Map<string, H1Pool>, up: UpstreamConfig, cfg: GatewayConfig): H1Pool {
  const origin = new URL(up.url).origin;
  const id = up.tls === undefined ? origin : `${origin} ${up.tls.reject_unauthorized} ${up.tls.ca_file ?? ''}`;
  let pool = pools.get(id);
  if (pool === undefined) {
    pool = new H1Pool(origin, {
      connections: up.connections ?? null,
      connectTimeoutMs: cfg.timeouts.connect_ms,
      headersTimeoutMs: cfg.timeouts.headers_ms,
      bodyTimeoutMs: cfg.timeouts.body_ms,
      idleTimeoutMs: cfg.timeouts.idle_ms,
      tls: up.tls === undefined ? undefined : { ca: up.tls.ca, rejectUnauthorized: up.tls.reject_unauthorized },
    });
    pools.set(id, pool);
  }
  return pool;
}
