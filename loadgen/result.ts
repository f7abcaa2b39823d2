// The load generator's result (the contract in DESIGN.md) and the exact merge
// of results: counters add, histograms add bucket by bucket.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** Latencies are recorded in microseconds; one hour is the largest tracked value. */
export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, bitBucketSize: 32, autoResize: true });
}

export function encode(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decode(base64: string): Histogram {
  const h = newHistogram();
  h.add(hdr.decodeFromCompressedBase64(base64, 32, false));
  return h;
}

export const ERROR_KINDS = ['refused', 'timeout', 'reset', 'dropped', '4xx', '5xx', 'other'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];
export type ErrorCounts = Record<ErrorKind, number>;

export function zeroErrors(): ErrorCounts {
  return { refused: 0, timeout: 0, reset: 0, dropped: 0, '4xx': 0, '5xx': 0, other: 0 };
}

export interface LatencySummary {
  avg: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface LoadgenResult {
  requests: number;
  ok: number;
  errors: number;
  errorsByKind: ErrorCounts;
  /** Error responses by HTTP status ("503": n). */
  errorsByStatus: Record<string, number>;
  durationS: number;
  rps: number;
  latencyMs: LatencySummary;
  ttftMs?: LatencySummary;
  itlMs?: LatencySummary;
  /** hdr-histogram-js compressed base64 of end-to-end latency in microseconds (successful requests). */
  histogram: string;
  ttftHistogram?: string;
  itlHistogram?: string;
}

export function summarise(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { avg: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  const ms = (us: number): number => Math.round(us) / 1000;
  return {
    avg: Math.round(h.mean) / 1000,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

/** The counters one worker thread (or one source) reports, before summaries. */
export interface RawCounts {
  requests: number;
  ok: number;
  errorsByKind: ErrorCounts;
  errorsByStatus: Record<string, number>;
}

export function buildResult(c: RawCounts, durationS: number, lat: Histogram, ttft: Histogram | null, itl: Histogram | null): LoadgenResult {
  const errors = ERROR_KINDS.reduce((s, k) => s + c.errorsByKind[k], 0);
  const r: LoadgenResult = {
    requests: c.requests,
    ok: c.ok,
    errors,
    errorsByKind: c.errorsByKind,
    errorsByStatus: c.errorsByStatus,
    durationS: Math.round(durationS * 1e6) / 1e6,
    rps: durationS > 0 ? Math.round((c.requests / durationS) * 100) / 100 : 0,
    latencyMs: summarise(lat),
    histogram: encode(lat),
  };
  if (ttft && itl) {
    r.ttftMs = summarise(ttft);
    r.itlMs = summarise(itl);
    r.ttftHistogram = encode(ttft);
    r.itlHistogram = encode(itl);
  }
  return r;
}

export function addCounts(into: RawCounts, c: RawCounts): void {
  into.requests += c.requests;
  into.ok += c.ok;
  for (const k of ERROR_KINDS) into.errorsByKind[k] += c.errorsByKind[k] ?? 0;
  for (const [s, n] of Object.entries(c.errorsByStatus)) into.errorsByStatus[s] = (into.errorsByStatus[s] ?? 0) + n;
}

/**
 * Merges results of sources that ran side by side: counts and histograms add,
 * the duration is the longest, and the rate is the sum of the rates.
 */
export function mergeResults(results: LoadgenResult[]): LoadgenResult {
  if (results.length === 0) throw new Error('nothing to merge');
  const counts: RawCounts = { requests: 0, ok: 0, errorsByKind: zeroErrors(), errorsByStatus: {} };
  const lat = newHistogram();
  const streamed = results.every((r) => r.ttftHistogram !== undefined && r.itlHistogram !== undefined);
  const ttft = streamed ? newHistogram() : null;
  const itl = streamed ? newHistogram() : null;
  let durationS = 0;
  let rps = 0;
  for (const r of results) {
    addCounts(counts, { requests: r.requests, ok: r.ok, errorsByKind: { ...zeroErrors(), ...r.errorsByKind }, errorsByStatus: r.errorsByStatus ?? {} });
    lat.add(decode(r.histogram));
    if (ttft && itl) {
      ttft.add(decode(r.ttftHistogram!));
      itl.add(decode(r.itlHistogram!));
    }
    durationS = Math.max(durationS, r.durationS);
    rps += r.rps;
  }
  const merged = buildResult(counts, durationS, lat, ttft, itl);
  merged.rps = Math.round(rps * 100) / 100;
  return merged;
}

/** Checks that a parsed JSON value looks like a result, naming what is missing. */
export function assertResult(v: unknown, where: string): asserts v is LoadgenResult {
  const r = v as Partial<LoadgenResult> | null;
  if (typeof r !== 'object' || r === null) throw new Error(`${where}: not a JSON object`);
  for (const f of ['requests', 'ok', 'durationS', 'rps'] as const) {
    if (typeof r[f] !== 'number') throw new Error(`${where}: '${f}' must be a number`);
  }
  if (typeof r.histogram !== 'string') throw new Error(`${where}: 'histogram' must be a base64 string`);
  if (typeof r.errorsByKind !== 'object' || r.errorsByKind === null) throw new Error(`${where}: 'errorsByKind' must be an object`);
}

/** Latency (ms) at each of these percentiles: the curve the web page draws. */
export const CURVE_PERCENTILES = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100];

export function percentileCurve(base64: string): { p: number; ms: number }[] {
  const h = decode(base64);
  if (h.totalCount === 0) return [];
  return CURVE_PERCENTILES.map((p) => ({ p, ms: (p === 100 ? h.maxValue : h.getValueAtPercentile(p)) / 1000 }));
}
