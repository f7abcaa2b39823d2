// Prometheus metrics (prom-client). Each worker keeps its own registry; the
// primary aggregates them over the cluster (AggregatorRegistry) when a worker
// is asked for /metrics. Label children are cached: prom-client hashes the
// label values on every call otherwise, which shows on the hot path.
import client from 'prom-client';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class GatewayMetrics {
  readonly registry = new client.Registry();
  private readonly requests = new client.Counter({
    name: 'sluice_requests_total',
    help: 'Requests answered, by model and status',
    labelNames: ['model', 'status'],
    registers: [this.registry],
  });
  private readonly latency = new client.Histogram({
    name: 'sluice_request_duration_seconds',
    help: 'Time from request to the end of the response, by model and status',
    labelNames: ['model', 'status'],
    buckets: BUCKETS,
    registers: [this.registry],
  });
  private readonly upstreamErrors = new client.Counter({
    name: 'sluice_upstream_errors_total',
    help: 'Upstream failures, by upstream and kind (connect, timeout, reset, status_5xx)',
    labelNames: ['upstream', 'kind'],
    registers: [this.registry],
  });
  /** Read when scraped, so the hot path only bumps a plain number. */
  inFlightSource: () => number = () => 0;
  private readonly inFlight: client.Gauge = new client.Gauge({
    name: 'sluice_in_flight_requests',
    help: 'Requests in flight',
    registers: [this.registry],
    collect: (): void => this.inFlight.set(this.inFlightSource()),
  });
  readonly usageTokens = new client.Counter({
    name: 'sluice_tokens_total',
    help: 'Tokens accounted from upstream usage, by model and kind (prompt, completion)',
    labelNames: ['model', 'kind'],
    registers: [this.registry],
  });
  private readonly children = new Map<string, { count: client.Counter<string>; time: client.Histogram<string> }>();

  observe(model: string, status: number, seconds: number): void {
    const k = model + '\u0000' + status;
    let c = this.children.get(k);
    if (c === undefined) {
      const labels = { model, status: String(status) };
      c = { count: this.requests.labels(labels) as never, time: this.latency.labels(labels) as never };
      if (this.children.size < 10_000) this.children.set(k, c);
    }
    (c.count as unknown as { inc(): void }).inc();
    (c.time as unknown as { observe(v: number): void }).observe(seconds);
  }

  tokens(model: string, prompt: number, completion: number): void {
    this.usageTokens.inc({ model, kind: 'prompt' }, prompt);
    this.usageTokens.inc({ model, kind: 'completion' }, completion);
  }

  upstreamError(upstream: string, kind: string): void {
    this.upstreamErrors.inc({ upstream, kind });
  }
}

export { client as promClient };
