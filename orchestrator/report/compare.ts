// Two runs side by side (`sluice bench --compare BASE`): cell by cell, each
// metric's median in the base and the head run, the change, and whether the
// change is larger than the noise — the spread between repetitions and a
// floor — so that a rerun on the same code does not report regressions.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Scenario } from '../matrix/types.js';
import { decode } from '../../loadgen/result.js';
import { checkResults } from '../results-schema.js';
import { RESULTS_VERSION, type CellResult, type Results, type SweepResult } from '../results.js';
import { capacityAt, lastServedStep } from './capacity.js';
import { CAPACITY_BOUNDS_MS } from './tables.js';

/** A results file that cannot be read, is not JSON, or is not a results file of this version. */
export class ResultsFileError extends Error {
  override name = 'ResultsFileError';
}

/**
 * The smallest change that counts, whatever the spread between repetitions:
 * with one repetition there is no spread, and two runs of the same code on
 * the same machine still differ. Measured with reruns of unchanged systems on
 * this project's shared two-core machine (1–2 s cells, 2–8 repetitions):
 * - `throughput` (5%) and `median` (p50, TTFT p50, ITL p50: max(5%, 1 ms)):
 *   reruns moved them by under 1% on a quiet machine and a few percent on a
 *   busy one. The 1 ms is the timer and scheduling resolution (a setTimeout
 *   fires up to ~1 ms late), under which 5% of a short ITL would flag the
 *   scheduler.
 * - `tail` (p99, p99.9, TTFT p99, ITL p99: max(20%, 2 ms)): a stall of the
 *   machine (a neighbour's burst, a GC pause) delays every request in flight
 *   at once, and a 1% tail of a short cell is a handful of requests, so one
 *   stall sets it: unchanged reruns moved p99 by 8–10%, and by 40–50% when
 *   one run caught a stall in both repetitions (the spread absorbs a stall
 *   in one). 20% keeps a rerun quiet; a tail regression under it shows in
 *   the table, unmarked.
 * - `minBeyond` (1): a percentile with less than one sample beyond it (p99.9
 *   of fewer than 1,000 requests, p99 of fewer than 100) is the slowest
 *   sample: compared, never judged.
 * - `cpu` (max(30%, 2 ticks over the requests)): /proc counts CPU time in
 *   ticks of 1/100 s (common/procs.ts), read at both ends of the measured
 *   window, so a cell's CPU µs/request is only known to within 2 ticks over
 *   its requests; and the same Node proxy's CPU per request moved by 4–12%
 *   between reruns, and by 26% when a neighbour kept the other core busy
 *   (the two vCPUs share caches, perhaps a physical core) — steady within a
 *   run, so its repetitions agreed and the spread did not absorb it.
 * - `errorPoints` (0.1 percentage points): errors are compared as a share of
 *   requests (runs of different lengths count different numbers); the odd
 *   failed request of a long run is not a regression, more than one in a
 *   thousand is.
 */
export const NOISE_FLOORS = {
  throughput: 0.05,
  median: { relative: 0.05, ms: 1 },
  tail: { relative: 0.2, ms: 2 },
  minBeyond: 1,
  cpu: { relative: 0.3, ticks: 2 },
  errorPoints: 0.1,
} as const;

/** One /proc tick (USER_HZ = 100) in microseconds. */
const CPU_TICK_US = 10_000;

export type Better = 'higher' | 'lower';
/** How a metric's floor is chosen: latency is a p50, tail a p99 or p99.9 (NOISE_FLOORS). */
export type MetricKind = 'throughput' | 'capacity' | 'latency' | 'tail' | 'errors' | 'cpu';

export interface ComparisonRow {
  scenario: string;
  system: string;
  /** Stable key: rps, p50, p99, p999, ttft_p50, ttft_p99, itl_p50, itl_p99, errors, cpu, capacity_<bound>, capacity, sweep_cpu. */
  metric: string;
  label: string;
  kind: MetricKind;
  better: Better;
  /** Medians over the repetitions (a sweep has one). A capacity of 0 is "none". */
  base: number;
  head: number;
  /** head − base. */
  change: number;
  /** change over |base|, in %; null when base is 0. */
  changePct: number | null;
  /** max − min over the repetitions of either run, the larger. */
  spread: number;
  /** The smallest change that counts for this row (NOISE_FLOORS). */
  floor: number;
  /**
   * Percentiles: the fewest samples beyond the percentile in any repetition
   * of either run (count × (1 − q)); under NOISE_FLOORS.minBeyond the row is
   * not judged. null for other metrics.
   */
  beyond: number | null;
  /** Percentiles: the fewest samples behind the percentile in a repetition (its histogram's count). */
  samples: number | null;
  /** |change| exceeds both the spread and the floor (and the percentile has samples beyond it). */
  significant: boolean;
  /** A significant change in the worse direction is a regression, in the better one an improvement. */
  mark: 'regression' | 'improvement' | null;
  repetitions: { base: number; head: number };
}

/** A scenario, or a scenario's system, measured in at most one of the two runs. */
export interface Unmatched {
  scenario: string;
  /** null: the whole scenario. */
  system: string | null;
  /** The run that measured it, or null for neither. */
  measuredIn: 'base' | 'head' | null;
  /** What happened in the other run(s). */
  reason: string;
}

export interface RunSummary {
  startedAt: string;
  status: Results['status'];
  sluice: string;
}

export interface Comparison {
  base: RunSummary;
  head: RunSummary;
  /** Scenarios in the head's order (then those only in the base); per scenario, metric × system. */
  scenarios: string[];
  rows: ComparisonRow[];
  unmatched: Unmatched[];
  /** What a reader should know before trusting the numbers (different machines, changed scenarios, unfinished runs). */
  notes: string[];
  regressions: number;
  improvements: number;
}

// ---------------------------------------------------------------------------
// Loading

/**
 * Reads a run's results: a results folder (results/<UTC timestamp>/) or its
 * results.json. Throws ResultsFileError, one line naming the file and what
 * is wrong with it.
 */
export function loadResults(path: string): Results {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'results.json');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ResultsFileError(`${path}: ${code === 'ENOENT' ? 'no such file or folder' : `cannot read (${code ?? String(err)})`}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ResultsFileError(
      code === 'ENOENT' && file !== path ? `${path}: has no results.json (expected a results/<UTC timestamp>/ folder of sluice bench)` : `${file}: cannot read (${code ?? String(err)})`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ResultsFileError(`${file}: not JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o) || o.object !== 'sluice.bench.results') {
    const object = typeof o === 'object' && o !== null && !Array.isArray(o) && 'object' in o ? `its "object" is ${JSON.stringify(o.object)}` : 'it has no "object": "sluice.bench.results"';
    throw new ResultsFileError(`${file}: not a sluice bench results file (${object})`);
  }
  if (o.version !== RESULTS_VERSION) {
    throw new ResultsFileError(`${file}: results version ${JSON.stringify(o.version)}; this sluice reads version ${RESULTS_VERSION}`);
  }
  try {
    checkResults(o);
  } catch (err) {
    throw new ResultsFileError(`${file}: not a valid results file: ${(err as Error).message.replace(/^results: /, '')}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// Comparing

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const range = (xs: number[]): number => (xs.length < 2 ? 0 : Math.max(...xs) - Math.min(...xs));

interface CellMetric {
  metric: string;
  label: string;
  kind: MetricKind;
  pick: (c: CellResult) => number | undefined;
  /** Percentiles: q (0.5, 0.99, 0.999) and the histogram the percentile was read from. */
  q?: number;
  histogram?: (c: CellResult) => string | undefined;
}

const latency = (c: CellResult) => c.result!.histogram;
const ttft = (c: CellResult) => c.result!.ttftHistogram;
const itl = (c: CellResult) => c.result!.itlHistogram;

const CELL_METRICS: CellMetric[] = [
  { metric: 'rps', label: 'Requests/sec', kind: 'throughput', pick: (c) => c.result!.rps },
  { metric: 'p50', label: 'P50 latency (ms)', kind: 'latency', pick: (c) => c.result!.latencyMs.p50, q: 0.5, histogram: latency },
  { metric: 'p99', label: 'P99 latency (ms)', kind: 'tail', pick: (c) => c.result!.latencyMs.p99, q: 0.99, histogram: latency },
  { metric: 'p999', label: 'P99.9 latency (ms)', kind: 'tail', pick: (c) => c.result!.latencyMs.p999, q: 0.999, histogram: latency },
  { metric: 'ttft_p50', label: 'TTFT p50 (ms)', kind: 'latency', pick: (c) => c.result!.ttftMs?.p50, q: 0.5, histogram: ttft },
  { metric: 'ttft_p99', label: 'TTFT p99 (ms)', kind: 'tail', pick: (c) => c.result!.ttftMs?.p99, q: 0.99, histogram: ttft },
  { metric: 'itl_p50', label: 'ITL p50 (ms)', kind: 'latency', pick: (c) => c.result!.itlMs?.p50, q: 0.5, histogram: itl },
  { metric: 'itl_p99', label: 'ITL p99 (ms)', kind: 'tail', pick: (c) => c.result!.itlMs?.p99, q: 0.99, histogram: itl },
  {
    metric: 'errors',
    label: 'Errors (% of requests)',
    kind: 'errors',
    pick: (c) => (c.result!.requests > 0 ? (c.result!.errors / c.result!.requests) * 100 : c.result!.errors > 0 ? 100 : 0),
  },
  { metric: 'cpu', label: 'CPU µs/request', kind: 'cpu', pick: (c) => c.cpuUsPerReq ?? undefined },
];

const betterOf = (kind: MetricKind): Better => (kind === 'throughput' || kind === 'capacity' ? 'higher' : 'lower');

/** The floor of a row (NOISE_FLOORS); `requests` is the fewest requests behind a CPU value. */
function floorOf(kind: MetricKind, base: number, requests: number): number {
  const of = (rel: number) => rel * Math.abs(base);
  switch (kind) {
    case 'throughput':
    case 'capacity':
      return of(NOISE_FLOORS.throughput);
    case 'latency':
      return Math.max(of(NOISE_FLOORS.median.relative), NOISE_FLOORS.median.ms);
    case 'tail':
      return Math.max(of(NOISE_FLOORS.tail.relative), NOISE_FLOORS.tail.ms);
    case 'errors':
      return NOISE_FLOORS.errorPoints;
    case 'cpu':
      return Math.max(of(NOISE_FLOORS.cpu.relative), requests > 0 ? (NOISE_FLOORS.cpu.ticks * CPU_TICK_US) / requests : Infinity);
  }
}

/** Histogram counts by encoding, for one comparison: p50, p99 and p99.9 read the same histogram. */
type Counts = Map<string, number>;

/** Samples in a histogram (its total count); a histogram that does not decode counts the requests that succeeded. */
function samplesIn(counts: Counts, base64: string | undefined, ok: number): number {
  if (base64 === undefined) return ok;
  let n = counts.get(base64);
  if (n === undefined) {
    try {
      n = decode(base64).totalCount;
    } catch {
      n = ok;
    }
    counts.set(base64, n);
  }
  return n;
}

function row(
  scenario: string,
  system: string,
  m: { metric: string; label: string; kind: MetricKind },
  baseXs: number[],
  headXs: number[],
  requests: number,
  percentile: { q: number; samples: number } | null = null,
): ComparisonRow {
  const base = median(baseXs);
  const head = median(headXs);
  const change = head - base;
  const spread = Math.max(range(baseXs), range(headXs));
  const floor = floorOf(m.kind, base, requests);
  const better = betterOf(m.kind);
  const beyond = percentile === null ? null : percentile.samples * (1 - percentile.q);
  const judged = beyond === null || beyond >= NOISE_FLOORS.minBeyond;
  const significant = judged && Math.abs(change) > spread && Math.abs(change) > floor;
  const worse = better === 'higher' ? change < 0 : change > 0;
  return {
    scenario,
    system,
    metric: m.metric,
    label: m.label,
    kind: m.kind,
    better,
    base,
    head,
    change,
    changePct: base === 0 ? null : (change / Math.abs(base)) * 100,
    spread,
    floor,
    beyond,
    samples: percentile?.samples ?? null,
    significant,
    mark: significant ? (worse ? 'regression' : 'improvement') : null,
    repetitions: { base: baseXs.length, head: headXs.length },
  };
}

type Measured<T> = { measured: T } | { reason: string };

function cellsOf(r: Results, scenario: string, system: string): Measured<CellResult[]> {
  const all = r.cells.filter((c) => c.scenario === scenario && c.system === system);
  const ran = all.filter((c) => c.result !== undefined);
  if (ran.length > 0) return { measured: ran };
  const skipped = all.find((c) => c.skipped !== undefined)?.skipped;
  if (skipped !== undefined) return { reason: `skipped: ${skipped}` };
  return { reason: r.matrix.systems.includes(system) ? 'not measured (the run ended before it)' : 'not in its systems' };
}

function sweepOf(r: Results, scenario: string, system: string): Measured<SweepResult> {
  const w = r.sweeps.find((x) => x.scenario === scenario && x.system === system);
  if (w !== undefined && w.skipped === undefined && w.steps.length > 0) return { measured: w };
  if (w?.skipped !== undefined) return { reason: `skipped: ${w.skipped}` };
  return { reason: r.matrix.systems.includes(system) ? 'not measured (the run ended before it)' : 'not in its systems' };
}

function cellRows(base: Results, head: Results, scenario: string, systems: string[], unmatched: Unmatched[], counts: Counts): ComparisonRow[] {
  const pairs: Array<[string, CellResult[], CellResult[]]> = [];
  for (const sys of systems) {
    const b = cellsOf(base, scenario, sys);
    const h = cellsOf(head, scenario, sys);
    if ('measured' in b && 'measured' in h) pairs.push([sys, b.measured, h.measured]);
    else unmatched.push(unmatchedOf(scenario, sys, b, h));
  }
  const rows: ComparisonRow[] = [];
  for (const m of CELL_METRICS) {
    for (const [sys, bc, hc] of pairs) {
      const has = (c: CellResult) => {
        const v = m.pick(c);
        return v !== undefined && Number.isFinite(v);
      };
      const bs = bc.filter(has);
      const hs = hc.filter(has);
      // A metric one run lacks (CPU of Baseline, TTFT of an unstreamed run) is not compared.
      if (bs.length === 0 || hs.length === 0) continue;
      const both = [...bs, ...hs];
      const requests = Math.min(...both.map((c) => c.result!.requests));
      const percentile = m.q === undefined ? null : { q: m.q, samples: Math.min(...both.map((c) => samplesIn(counts, m.histogram!(c), c.result!.ok))) };
      rows.push(row(scenario, sys, m, bs.map((c) => m.pick(c)!), hs.map((c) => m.pick(c)!), requests, percentile));
    }
  }
  return rows;
}

function sweepRows(base: Results, head: Results, scenario: string, systems: string[], unmatched: Unmatched[]): ComparisonRow[] {
  const pairs: Array<[string, SweepResult, SweepResult]> = [];
  for (const sys of systems) {
    const b = sweepOf(base, scenario, sys);
    const h = sweepOf(head, scenario, sys);
    if ('measured' in b && 'measured' in h) pairs.push([sys, b.measured, h.measured]);
    else unmatched.push(unmatchedOf(scenario, sys, b, h));
  }
  const metrics: Array<{ metric: string; label: string; kind: MetricKind; baseline: boolean; value: (w: SweepResult) => [number, number] | null }> = [
    // Baseline has no added p99 over itself: its capacity rows are empty in the tables too.
    ...CAPACITY_BOUNDS_MS.map((bound) => ({
      metric: `capacity_${bound}`,
      label: `Req/s at added p99 ≤ ${bound} ms`,
      kind: 'capacity' as const,
      baseline: false,
      value: (w: SweepResult): [number, number] => [capacityAt(w, bound) ?? 0, 0],
    })),
    { metric: 'capacity', label: 'Highest rate kept up (req/s)', kind: 'capacity', baseline: true, value: (w) => [capacityAt(w) ?? 0, 0] },
    {
      metric: 'sweep_cpu',
      label: 'CPU µs/request (last rate kept up)',
      kind: 'cpu',
      baseline: true,
      value: (w) => {
        const st = lastServedStep(w);
        return st?.cpuUsPerReq == null ? null : [st.cpuUsPerReq, st.result.requests];
      },
    },
  ];
  const rows: ComparisonRow[] = [];
  for (const m of metrics) {
    for (const [sys, bw, hw] of pairs) {
      if (sys === 'baseline' && !m.baseline) continue;
      const b = m.value(bw);
      const h = m.value(hw);
      if (b === null || h === null) continue;
      rows.push(row(scenario, sys, m, [b[0]], [h[0]], Math.min(b[1], h[1])));
    }
  }
  return rows;
}

function unmatchedOf(scenario: string, system: string, b: Measured<unknown>, h: Measured<unknown>): Unmatched {
  if ('measured' in b) return { scenario, system, measuredIn: 'base', reason: `head: ${(h as { reason: string }).reason}` };
  if ('measured' in h) return { scenario, system, measuredIn: 'head', reason: `base: ${b.reason}` };
  return { scenario, system, measuredIn: null, reason: b.reason === h.reason ? `both runs: ${b.reason}` : `base: ${b.reason}; head: ${h.reason}` };
}

/** The scenario's fields that differ between the runs, as "field a → b". */
function scenarioChanges(b: Scenario, h: Scenario): string[] {
  const keys = [...new Set([...Object.keys(b), ...Object.keys(h)])] as Array<keyof Scenario>;
  const out: string[] = [];
  for (const k of keys) {
    const bv = JSON.stringify(b[k]);
    const hv = JSON.stringify(h[k]);
    if (bv !== hv) out.push(`${k} ${bv ?? 'unset'} → ${hv ?? 'unset'}`);
  }
  return out;
}

function summaryOf(r: Results): RunSummary {
  return { startedAt: r.startedAt, status: r.status, sluice: r.environment?.sluice ?? 'unknown' };
}

/** Compares two runs cell by cell: scenarios × systems measured in both. */
export function compareResults(base: Results, head: Results): Comparison {
  const rows: ComparisonRow[] = [];
  const unmatched: Unmatched[] = [];
  const notes: string[] = [];
  const counts: Counts = new Map();
  for (const [which, r] of [['base', base], ['head', head]] as const) {
    if (r.status !== 'completed') notes.push(`The ${which} run was ${r.status}${r.error ? ` (${r.error})` : ''}: only what it finished is compared.`);
  }
  const be = base.environment;
  const he = head.environment;
  if (be && he) {
    const differs = (['cpuModel', 'cores', 'memoryGiB', 'kernel', 'node', 'provider'] as const).filter((k) => be[k] !== he[k]).map((k) => `${k} ${be[k]} → ${he[k]}`);
    if (differs.length > 0) notes.push(`The runs were measured in different environments (${differs.join(', ')}): differences may be the machine's, not the code's.`);
  }
  const headNames = head.matrix.scenarios.map((s) => s.name);
  const scenarios = [...headNames, ...base.matrix.scenarios.map((s) => s.name).filter((n) => !headNames.includes(n))];
  const systems = [...head.matrix.systems, ...base.matrix.systems.filter((s) => !head.matrix.systems.includes(s))];
  for (const name of scenarios) {
    const bs = base.matrix.scenarios.find((s) => s.name === name);
    const hs = head.matrix.scenarios.find((s) => s.name === name);
    if (bs === undefined || hs === undefined) {
      unmatched.push({ scenario: name, system: null, measuredIn: bs === undefined ? 'head' : 'base', reason: `not a scenario of the ${bs === undefined ? 'base' : 'head'} run` });
      continue;
    }
    const changed = scenarioChanges(bs, hs);
    if ((bs.sweep === undefined) !== (hs.sweep === undefined)) {
      unmatched.push({ scenario: name, system: null, measuredIn: null, reason: 'a capacity sweep in one run and not in the other: not compared' });
      continue;
    }
    if (changed.length > 0) notes.push(`${name}: the scenario differs between the runs (${changed.join(', ')}).`);
    rows.push(...(hs.sweep ? sweepRows(base, head, name, systems, unmatched) : cellRows(base, head, name, systems, unmatched, counts)));
  }
  return {
    base: summaryOf(base),
    head: summaryOf(head),
    scenarios,
    rows,
    unmatched,
    notes,
    regressions: rows.filter((r) => r.mark === 'regression').length,
    improvements: rows.filter((r) => r.mark === 'improvement').length,
  };
}

// ---------------------------------------------------------------------------
// Formatting

function fmt(n: number, digits: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Digits a row's values are shown with: as in the tables. */
function digitsOf(r: ComparisonRow): number {
  if (r.kind === 'capacity') return 0;
  if (r.kind === 'throughput' || r.kind === 'errors') return 2;
  return r.metric.startsWith('itl_') ? 2 : 1;
}

function value(r: ComparisonRow, v: number): string {
  return r.kind === 'capacity' && v === 0 ? 'none' : fmt(v, digitsOf(r));
}

function signed(n: number, digits: number, suffix = ''): string {
  const s = fmt(Math.abs(n), digits);
  if (Number(s.replace(/,/g, '')) === 0) return `±${s}${suffix}`;
  return `${n > 0 ? '+' : '−'}${s}${suffix}`;
}

const pct = (f: number): string => `${Math.round(f * 100)}%`;

/** How the marks were decided, with the constants of NOISE_FLOORS. */
function noiseLine(): string {
  const f = NOISE_FLOORS;
  return (
    `A change is marked when it exceeds both the spread between repetitions (max − min, the larger of the two runs) and a floor: ` +
    `${pct(f.throughput)} for throughput, max(${pct(f.median.relative)}, ${f.median.ms} ms) for p50s, max(${pct(f.tail.relative)}, ${f.tail.ms} ms) for p99s and p99.9s, ` +
    `max(${pct(f.cpu.relative)}, ${f.cpu.ticks} /proc ticks over the requests) for CPU, ${f.errorPoints} points for the error rate; ` +
    `a percentile with no sample beyond it is the slowest sample and is not judged.`
  );
}

const MARK = { regression: '▲ regression', improvement: '▼ improvement' } as const;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The summary line under the tables. */
export function summaryLine(c: Comparison): string {
  return `${plural(c.regressions, 'regression')}, ${plural(c.improvements, 'improvement')} (changes within the spread between repetitions or under the floor are not marked)`;
}

/** The comparison in Markdown: per scenario a table (metric × system; base, head, change, noise, mark), then the summary line. */
export function formatComparison(c: Comparison): string {
  const name = (sys: string) => (sys === 'baseline' ? 'Baseline' : sys);
  const run = (r: RunSummary) => `${r.startedAt} (sluice ${r.sluice}${r.status === 'completed' ? '' : `, ${r.status}`})`;
  const out: string[] = ['## Compared with the base run', '', `Base: ${run(c.base)}; head: ${run(c.head)}.`, ''];
  // A skip reason or a run's error may hold a process's output: one line each.
  const line = (text: string) => text.replace(/\s+/g, ' ').trim();
  for (const n of c.notes) out.push(`- ${line(n)}`);
  if (c.notes.length > 0) out.push('');
  for (const scenario of c.scenarios) {
    const rows = c.rows.filter((r) => r.scenario === scenario);
    const unmatched = c.unmatched.filter((u) => u.scenario === scenario);
    out.push(`### ${scenario}`, '');
    if (rows.length > 0) {
      out.push('| Metric | System | Base | Head | Change | Noise | |', '|---|---|---:|---:|---:|---:|---|');
      for (const r of rows) {
        const d = digitsOf(r);
        const relative = r.changePct === null ? '' : ` (${signed(r.changePct, 1, '%')})`;
        const mark = r.mark ? MARK[r.mark] : r.beyond !== null && r.beyond < NOISE_FLOORS.minBeyond ? `not judged: the slowest of ${fmt(r.samples!, 0)}` : '';
        out.push(`| ${r.label} | ${name(r.system)} | ${value(r, r.base)} | ${value(r, r.head)} | ${signed(r.change, d)}${relative} | ±${fmt(Math.max(r.spread, r.floor), d)} | ${mark} |`);
      }
      out.push('');
    }
    for (const u of unmatched) {
      const what = u.system === null ? 'the scenario' : name(u.system);
      const where = u.measuredIn === null ? 'not compared' : `only in the ${u.measuredIn} run`;
      out.push(`- ${what}: ${where} (${line(u.reason)})`);
    }
    if (unmatched.length > 0) out.push('');
  }
  out.push(noiseLine(), '', summaryLine(c));
  return out.join('\n') + '\n';
}
