// Model name -> upstreams, and the choice among them: smooth weighted round
// robin (nginx's algorithm) or least in flight (per unit of weight). Upstreams
// in cool-down are skipped; when every one is cooling down we still try the
// one that recovers first rather than fail without trying.
import type { H1Pool } from '../proxy/h1-pool.js';
import type { GatewayConfig } from '../config/schema.js';
import { Upstream, poolFor } from './upstream.js';

export class ModelRoute {
  constructor(
    readonly name: string,
    readonly balance: 'round_robin' | 'least_in_flight',
    readonly upstreams: Upstream[],
  ) {}

  /** The next upstream to try, never one in `tried`; null when none is left. */
  pick(now: number, tried: readonly Upstream[] | null): Upstream | null {
    const ups = this.upstreams;
    if (ups.length === 1) {
      const only = ups[0]!;
      return tried !== null && tried.includes(only) ? null : only;
    }
    let best: Upstream | null = null;
    let fallback: Upstream | null = null;
    let total = 0;
    for (const u of ups) {
      if (tried !== null && tried.includes(u)) continue;
      if (!u.healthy(now)) {
        if (fallback === null || u.coolingUntil < fallback.coolingUntil) fallback = u;
        continue;
      }
      if (this.balance === 'round_robin') {
        u.current += u.weight;
        total += u.weight;
        if (best === null || u.current > best.current) best = u;
      } else if (best === null || u.inFlight * best.weight < best.inFlight * u.weight) {
        best = u;
      }
    }
    if (best !== null && this.balance === 'round_robin') best.current -= total;
    return best ?? fallback;
  }
}

export class Router {
  private readonly routes = new Map<string, ModelRoute>();
  private readonly wildcard: ModelRoute | undefined;
  readonly pools = new Map<string, H1Pool>();

  constructor(cfg: GatewayConfig, env: NodeJS.ProcessEnv = process.env) {
    for (const [name, m] of Object.entries(cfg.models)) {
      const ups = m.upstreams.map((u) => new Upstream(u, poolFor(this.pools, u, cfg), cfg.health, env));
      this.routes.set(name, new ModelRoute(name, m.balance, ups));
    }
    this.wildcard = this.routes.get('*');
  }

  route(model: string): ModelRoute | undefined {
    return this.routes.get(model) ?? this.wildcard;
  }

  /** The model names a client may see in /v1/models (the wildcard is not a model). */
  modelNames(): string[] {
    return [...this.routes.keys()].filter((n) => n !== '*');
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}
