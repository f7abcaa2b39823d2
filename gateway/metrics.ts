// Prometheus metrics. Each worker keeps its own registry; the primary
// aggregates them over the cluster (prom-client's AggregatorRegistry) when a
// worker is asked for /metrics.
//
// The per-request series (requests, latency, tokens) are recorded as plain
// number updates and handed to prom-client only when scraped: prom-client's
// own observe() validates and hashes the label set on every call, which cost
// about 1 µs of a proxied request's budget. Rare series (upstream errors, in
// flight) use prom-client metrics directly.
import client from 'prom-client';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Distinct label sets kept per metric; beyond it, new ones are not recorded (a flood of made-up model names must not grow memory). */
const MAX_SERIES = 10_000;

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * The shape prom-client's Registry reads from a metric (duck-typed, as its own
 * metrics are), over series of type S, at most MAX_SERIES of them.
 */
abstract class RecordedMetric<S extends { labels: Record<string, string> }> {
  readonly aggregator = 'sum';
  readonly series: S[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    registry: client.Registry,
    private readonly make: (labels: Record<string, string>) => S,
  ) {
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** A new series, or null past MAX_SERIES. */
  add(labels: Record<string, string>): S | null {
    if (this.series.length >= MAX_SERIES) return null;
    const s = this.make(labels);
    this.series.push(s);
    return s;
  }

  abstract values(): MetricValue[];

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() });
  }
}

export class HistogramSeries {
  count = 0;
  sum = 0;
  /** Per bucket (not cumulative); the last one is +Inf. */
  readonly buckets = new Float64Array(BUCKETS.length + 1);
  constructor(readonly labels: Record<string, string>) {}

  observe(v: number): void {
    let i = 0;
    while (i < BUCKETS.length && v > BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.count++;
    this.sum += v;
  }
}

class RecordedHistogram extends RecordedMetric<HistogramSeries> {
  constructor(name: string, help: string, registry: client.Registry) {
    super(name, help, 'histogram', registry, (labels) => new HistogramSeries(labels));
  }

  values(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.series) {
      let acc = 0;
      BUCKETS.forEach((le, i) => {
        acc += s.buckets[i]!;
        out.push({ labels: { ...s.labels, le }, value: acc, metricName: `${this.name}_bucket` });
      });
      out.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      out.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      out.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}

export class CounterSeries {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
}

class RecordedCounter extends RecordedMetric<CounterSeries> {
  constructor(name: string, help: string, registry: client.Registry) {
    super(name, help, 'counter', registry, (labels) => new CounterSeries(labels));
  }

  values(): MetricValue[] {
    return this.series.map((s) => ({ labels: s.labels, value: s.value }));
  }
}

/** The series one (model, status) pair updates. */
interface RequestSeries {
  count: CounterSeries;
  time: HistogramSeries;
}

export class GatewayMetrics {
  readonly registry = new client.Registry();
  private readonly requests = new RecordedCounter('sluice_requests_total', 'Requests answered, by model and status', this.registry);
  private readonly latency = new RecordedHistogram(
    'sluice_request_duration_seconds',
    'Time from request to the end of the response, by model and status',
    this.registry,
  );
  private readonly usageTokens = new RecordedCounter('sluice_tokens_total', 'Tokens accounted from upstream usage, by model and kind (prompt, completion)', this.registry);
  private readonly upstreamErrors = new client.Counter({
    name: 'sluice_upstream_errors_total',
    help: 'Upstream failures, by upstream and kind (connect, timeout, reset, status_5xx)',
    labelNames: ['upstream', 'kind'],
    registers: [this.registry],
  });
  private readonly internalErrors = new client.Counter({
    name: 'sluice_internal_errors_total',
    help: "Failures inside the gateway, by kind (request: a request answered 500 internal_error; unhandled_rejection: a promise rejection nobody handled)",
    labelNames: ['kind'],
    registers: [this.registry],
  });
  /** Counted when collected: how many cluster-wide aggregations (scrapes, shared by concurrent ones) this worker answered. */
  private readonly aggregations: client.Counter = new client.Counter({
    name: 'sluice_metrics_aggregations_total',
    help: 'Cluster-wide metrics aggregations this worker took part in (concurrent scrapes share one)',
    registers: [this.registry],
    collect: (): void => {
      this.aggregations.inc();
    },
  });
  /** Read when scraped, so the hot path only bumps a plain number. */
  inFlightSource: () => number = () => 0;
  private readonly inFlight: client.Gauge = new client.Gauge({
    name: 'sluice_in_flight_requests',
    help: 'Requests in flight',
    registers: [this.registry],
    collect: (): void => this.inFlight.set(this.inFlightSource()),
  });
  /** model -> status -> series. */
  private readonly byModel = new Map<string, Map<number, RequestSeries>>();
  private readonly tokenSeries = new Map<string, [CounterSeries, CounterSeries]>();

  observe(model: string, status: number, seconds: number): void {
    let statuses = this.byModel.get(model);
    if (statuses === undefined) {
      statuses = new Map();
      if (this.byModel.size < MAX_SERIES) this.byModel.set(model, statuses);
    }
    let c = statuses.get(status);
    if (c === undefined) {
      const labels = { model, status: String(status) };
      const count = this.requests.add(labels);
      const time = this.latency.add(labels);
      if (count === null || time === null) return;
      c = { count, time };
      statuses.set(status, c);
    }
    c.count.value++;
    c.time.observe(seconds);
  }

  tokens(model: string, prompt: number, completion: number): void {
    let t = this.tokenSeries.get(model);
    if (t === undefined) {
      const p = this.usageTokens.add({ model, kind: 'prompt' });
      const c = this.usageTokens.add({ model, kind: 'completion' });
      if (p === null || c === null) return;
      t = [p, c];
      this.tokenSeries.set(model, t);
    }
    t[0].value += prompt;
    t[1].value += completion;
  }

  constructor() {
    // Zero from the start, so an alert on increase() sees the first one.
    this.internalErrors.inc({ kind: 'request' }, 0);
    this.internalErrors.inc({ kind: 'unhandled_rejection' }, 0);
  }

  internalError(kind: 'request' | 'unhandled_rejection'): void {
    this.internalErrors.inc({ kind });
  }

  upstreamError(upstream: string, kind: string): void {
    this.upstreamErrors.inc({ upstream, kind });
  }
}

export { client as promClient };
