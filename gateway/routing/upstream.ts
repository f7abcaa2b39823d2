// One upstream server: its undici keep-alive pool, the key injected into its
// requests, and its passive health (consecutive failures put it in cool-down).
import { Pool } from 'undici';
import type { GatewayConfig, UpstreamConfig } from '../config/schema.js';

export class Upstream {
  readonly origin: string;
  /** The upstream URL's path without a trailing slash, e.g. "/v1". */
  readonly basePath: string;
  readonly label: string;
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
    readonly pool: Pool,
    private readonly health: GatewayConfig['health'],
    env: NodeJS.ProcessEnv,
  ) {
    const u = new URL(cfg.url);
    this.origin = u.origin;
    this.basePath = u.pathname.replace(/\/+$/, '');
    this.label = `${u.origin}${this.basePath}`;
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

/** One pool per upstream origin, shared by every model that points at it. */
export function poolFor(pools: Map<string, Pool>, origin: string, cfg: GatewayConfig, connections: number | undefined): Pool {
  let pool = pools.get(origin);
  if (pool === undefined) {
    pool = new Pool(origin, {
      connections: connections ?? null,
      pipelining: 1,
      connectTimeout: cfg.timeouts.connect_ms,
      headersTimeout: cfg.timeouts.headers_ms,
      bodyTimeout: cfg.timeouts.body_ms,
      keepAliveTimeout: cfg.timeouts.idle_ms,
      keepAliveMaxTimeout: Math.max(cfg.timeouts.idle_ms, 600_000),
    });
    pools.set(origin, pool);
  }
  return pool;
}
