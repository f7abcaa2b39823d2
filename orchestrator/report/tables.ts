// The tables `sluice bench` prints and writes to tables.md: per scenario, the
// reference write-up's shape (rows Requests/sec, latencies; columns
// Theoretical, Baseline, then each system), plus what it did not show.
import type { LatencySummary } from '../../loadgen/result.js';
import { sinkLatencyMs, theoreticalRps } from '../matrix/default.js';
import type { Scenario } from '../matrix/types.js';
import type { CellResult, Results, SweepResult } from '../results.js';
import { capacityAt, lastServedStep } from './capacity.js';

/** Thresholds of the capacity table: added p99 over Baseline, ms. */
export const CAPACITY_BOUNDS_MS = [1, 5, 10, 50, 100];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(n: number, digits: number): string {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A cell's value over its repetitions: the median, and with several the spread (min–max). */
function cell(xs: number[], digits: number): string {
  if (xs.length === 0) return '–';
  if (xs.length === 1) return fmt(xs[0]!, digits);
  return `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`;
}

function describe(s: Scenario): string {
  const kb = s.request_bytes % 1024 === 0 ? `${s.request_bytes / 1024} KB` : `${s.request_bytes} B`;
  const load = s.rate !== undefined ? `${s.rate}/s open loop, at most ${s.workers} in flight` : `${s.workers} users`;
  const wait = s.stream
    ? `streamed, TTFT ${s.stream.ttft_ms} ms, ITL ${s.stream.itl_ms} ms, ${s.stream.output_tokens} tokens${s.wait_ms > 0 ? `, sink wait ${s.wait_ms / 1000} s` : ''}`
    : `sink wait ${s.wait_ms / 1000} s`;
  return `${load}, ${kb}, ${wait}`;
}

export interface Row {
  label: string;
  theoretical: string;
  values: string[];
}

/** The rows of one closed- or open-loop scenario's table, one value per column system. */
export function scenarioRows(results: Results, s: Scenario, systems: string[]): Row[] {
  const cellsOf = (sys: string): CellResult[] => results.cells.filter((c) => c.scenario === s.name && c.system === sys && c.result !== undefined);
  const lat = (pick: (l: LatencySummary) => number) => (sys: string) => cellsOf(sys).map((c) => pick(c.result!.latencyMs));
  const ms = sinkLatencyMs(s);
  const rows: Array<[string, string, (sys: string) => number[], number]> = [
    ['Requests/sec', fmt(theoreticalRps(s), 2), (sys) => cellsOf(sys).map((c) => c.result!.rps), 2],
    ['Avg latency (ms)', fmt(ms, 0), lat((l) => l.avg), 1],
    ['P50 latency (ms)', fmt(ms, 0), lat((l) => l.p50), 1],
    ['P90 latency (ms)', fmt(ms, 0), lat((l) => l.p90), 1],
    ['P99 latency (ms)', fmt(ms, 0), lat((l) => l.p99), 1],
    ['P99.9 latency (ms)', fmt(ms, 0), lat((l) => l.p999), 1],
    ['Errors', '0', (sys) => cellsOf(sys).map((c) => c.result!.errors), 0],
    ['CPU µs/request', '–', (sys) => cellsOf(sys).flatMap((c) => (c.cpuUsPerReq == null ? [] : [c.cpuUsPerReq])), 1],
    ['Peak RSS (MB)', '–', (sys) => cellsOf(sys).flatMap((c) => (c.peakRssMb == null ? [] : [c.peakRssMb])), 0],
  ];
  if (s.stream) {
    const ttft = s.wait_ms + s.stream.ttft_ms;
    const pickT = (k: 'p50' | 'p99', which: 'ttftMs' | 'itlMs') => (sys: string) => cellsOf(sys).flatMap((c) => (c.result![which] ? [c.result![which]![k]] : []));
    rows.push(
      ['TTFT p50 (ms)', fmt(ttft, 0), pickT('p50', 'ttftMs'), 1],
      ['TTFT p99 (ms)', fmt(ttft, 0), pickT('p99', 'ttftMs'), 1],
      ['ITL p50 (ms)', fmt(s.stream.itl_ms, 0), pickT('p50', 'itlMs'), 2],
      ['ITL p99 (ms)', fmt(s.stream.itl_ms, 0), pickT('p99', 'itlMs'), 2],
    );
  }
  return rows.map(([label, theoretical, values, digits]) => ({
    label,
    theoretical,
    values: systems.map((sys) => {
      const skipped = results.cells.find((c) => c.scenario === s.name && c.system === sys && c.skipped !== undefined);
      const v = values(sys);
      return v.length === 0 && skipped ? 'skipped' : cell(v, digits);
    }),
  }));
}

function markdownTable(head: string[], rows: string[][]): string {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** One line per system under the table: throughput as a fraction of Baseline, added p50/p99. */
function versusBaseline(results: Results, s: Scenario, systems: string[]): string[] {
  const med = (sys: string, pick: (c: CellResult) => number): number => {
    const xs = results.cells.filter((c) => c.scenario === s.name && c.system === sys && c.result !== undefined).map(pick);
    return xs.length === 0 ? NaN : median(xs);
  };
  const rps = (c: CellResult) => c.result!.rps;
  const p50 = (c: CellResult) => c.result!.latencyMs.p50;
  const p99 = (c: CellResult) => c.result!.latencyMs.p99;
  const base = { rps: med('baseline', rps), p50: med('baseline', p50), p99: med('baseline', p99) };
  const out: string[] = [];
  const signed = (n: number) => `${n >= 0 ? '+' : '−'}${fmt(Math.abs(n), 1)} ms`;
  for (const sys of systems) {
    if (sys === 'baseline') continue;
    const skipped = results.cells.find((c) => c.scenario === s.name && c.system === sys && c.skipped !== undefined);
    if (skipped && !Number.isFinite(med(sys, rps))) {
      out.push(`- ${sys}: skipped: ${skipped.skipped}`);
      continue;
    }
    if (!Number.isFinite(med(sys, rps)) || !Number.isFinite(base.rps)) {
      // The run ended (cancelled, failed, interrupted) before this system, or Baseline, was measured here.
      out.push(`- ${sys}: not measured${Number.isFinite(med(sys, rps)) ? ' against Baseline (Baseline was not measured)' : ''}`);
      continue;
    }
    let line = `- ${sys}: ${fmt(med(sys, rps) / base.rps, 3)} of Baseline throughput, ${signed(med(sys, p50) - base.p50)} at p50, ${signed(med(sys, p99) - base.p99)} at p99`;
    if (s.stream) {
      const t = (k: 'p50' | 'p99', which: 'ttftMs' | 'itlMs') => (c: CellResult) => c.result![which]?.[k] ?? NaN;
      line += `; TTFT ${signed(med(sys, t('p50', 'ttftMs')) - med('baseline', t('p50', 'ttftMs')))} at p50, ${signed(med(sys, t('p99', 'ttftMs')) - med('baseline', t('p99', 'ttftMs')))} at p99; ITL ${signed(med(sys, t('p50', 'itlMs')) - med('baseline', t('p50', 'itlMs')))} at p50`;
    }
    out.push(line);
  }
  return out;
}

/** The capacity table of a sweep: per system, the highest throughput at added p99 within each bound. */
export function capacityRows(results: Results, s: Scenario, systems: string[]): Row[] {
  const sweepOf = (sys: string): SweepResult | undefined => results.sweeps.find((w) => w.scenario === s.name && w.system === sys);
  const rows: Row[] = CAPACITY_BOUNDS_MS.map((bound) => ({
    label: `Req/s at added p99 ≤ ${bound} ms`,
    theoretical: '–',
    values: systems.map((sys) => {
      const w = sweepOf(sys);
      if (w === undefined) return '–';
      if (w.skipped) return 'skipped';
      if (sys === 'baseline') return '–';
      const rps = capacityAt(w, bound);
      return rps === null ? 'none' : fmt(rps, 0);
    }),
  }));
  rows.push({
    label: 'Highest rate kept up (req/s)',
    theoretical: fmt(s.sweep!.rates.at(-1)!, 0),
    values: systems.map((sys) => {
      const w = sweepOf(sys);
      if (w === undefined) return '–';
      if (w.skipped) return 'skipped';
      const rps = capacityAt(w);
      return rps === null ? 'none' : fmt(rps, 0);
    }),
  });
  rows.push({
    label: 'CPU µs/request (last rate kept up)',
    theoretical: '–',
    values: systems.map((sys) => {
      const w = sweepOf(sys);
      const last = w === undefined ? undefined : lastServedStep(w);
      return last?.cpuUsPerReq == null ? '–' : fmt(last.cpuUsPerReq, 1);
    }),
  });
  return rows;
}

/** Every scenario's table, in Markdown, as printed at the end of a run and saved as tables.md. */
export function formatTables(results: Results): string {
  const m = results.matrix;
  const systems = m.systems;
  const head = ['', 'Theoretical', ...systems.map((s) => (s === 'baseline' ? 'Baseline' : s))];
  const out: string[] = [];
  for (const s of m.scenarios) {
    out.push(`### ${s.name}: ${describe(s)}${s.sweep ? ` — capacity sweep, ${s.sweep.rates.join(', ')}/s, ${s.sweep.step_s} s each` : ''}`, '');
    const rows = s.sweep ? capacityRows(results, s, systems) : scenarioRows(results, s, systems);
    out.push(markdownTable(head, rows.map((r) => [r.label, r.theoretical, ...r.values])), '');
    if (s.sweep) {
      for (const sys of systems) {
        const w = results.sweeps.find((x) => x.scenario === s.name && x.system === sys);
        if (w?.skipped) out.push(`- ${sys}: skipped: ${w.skipped}`);
        else if (w?.stopped) out.push(`- ${sys}: stopped: ${w.stopped}`);
      }
    } else out.push(...versusBaseline(results, s, systems));
    out.push('');
  }
  const skippedSystems = Object.entries(results.systems).filter(([, i]) => i.skipped && !i.version);
  if (skippedSystems.length > 0) {
    out.push('Skipped systems:', ...skippedSystems.map(([n, i]) => `- ${n}: ${i.skipped}`), '');
  }
  const e = results.environment;
  out.push(
    `Measured on ${e.cpuModel}, ${e.cores} cores, ${e.memoryGiB} GiB, Linux ${e.kernel}, Node ${e.node}, provider ${e.provider}${e.hosts ? ` (${e.hosts})` : ''}; sluice ${e.sluice}. ` +
      `Systems: ${systems.map((s) => `${s} (${results.systems[s]?.version ?? 'not run'})`).join(', ')}.`,
  );
  if (results.status !== 'completed') out.push('', `This run was ${results.status}${results.error ? `: ${results.error}` : ''}; the tables hold what finished.`);
  return out.join('\n') + '\n';
}
