// report.html: one file a colleague can open from a mail attachment, offline.
// uPlot, the styles, the page script and the chart data are inlined, and a
// Content-Security-Policy forbids every fetch, so the page never reaches the
// network. The tables are tables.ts's (the same rows as tables.md), rendered
// here; the charts are drawn in the page from data computed here, the latency
// curves from each cell's histogram.
import { readFileSync } from 'node:fs';
import { UPLOT_DIR } from '../../common/web-assets.js';
import { join } from 'node:path';
import { decode, mergeResults, type LatencySummary, type LoadgenResult } from '../../loadgen/result.js';
import { sinkLatencyMs, theoreticalRps } from '../matrix/default.js';
import type { Scenario } from '../matrix/types.js';
import type { CellResult, Results } from '../results.js';
import { capacityRows, scenarioRows, type Row } from './tables.js';

/** Points per decade of the percentile axis: a smooth curve up to 99.999% in about a hundred points. */
const POINTS_PER_NINE = 20;
const MAX_NINES = 5;

/** Baseline is the reference, drawn in grey; the others get Okabe–Ito colours (distinguishable with colour blindness) in table order. */
const BASELINE_COLOUR = '#5f6673';
const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#882255', '#44aa99', '#999933', '#332288'];

export interface ChartSeries {
  system: string;
  label: string;
  colour: string;
  values: Array<number | null>;
  dash?: boolean;
}

export interface ChartSpec {
  id: string;
  /** latency: by percentile; sweep-p99 / sweep-rate: against offered rate. */
  kind: 'latency' | 'sweep-p99' | 'sweep-rate';
  x: number[];
  /** One per system that ran. */
  series: ChartSeries[];
  /** A grey dashed line to read the systems against: the sweep's bound, or achieved = offered. */
  reference?: { label: string; values: Array<number | null> };
}

/** What the page script reads from <script id="report-data">. */
export interface ReportData {
  charts: ChartSpec[];
}

let assets: { uplotJs: string; uplotCss: string; js: string; css: string } | null = null;

function loadAssets(): NonNullable<typeof assets> {
  if (assets !== null) return assets;
  const uplot = UPLOT_DIR;
  const web = new URL('./web/', import.meta.url);
  assets = {
    uplotJs: readFileSync(join(uplot, 'uPlot.iife.min.js'), 'utf8'),
    uplotCss: readFileSync(join(uplot, 'uPlot.min.css'), 'utf8'),
    js: readFileSync(new URL('report.js', web), 'utf8'),
    css: readFileSync(new URL('report.css', web), 'utf8'),
  };
  return assets;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

/** JSON that cannot end its <script> element early nor break a JS parser that predates ES2019 (U+2028/2029). */
export function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Inlined code or styles: `</script` or `</style` would close the element; `<\/` means the same inside JS strings and regexes. */
function inline(text: string, tag: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${tag})`, 'gi'), '<\\/$1');
}

/** "69.4 (69.2–69.6)": the spread over repetitions set apart, so that it can be quieter and wrap on paper. */
function cellHtml(v: string): string {
  const m = /^(.*?) (\(.*\))$/.exec(v);
  return m ? `${esc(m[1]!)} <span class="range">${esc(m[2]!)}</span>` : esc(v);
}

function displayName(system: string): string {
  return system === 'baseline' ? 'Baseline' : system;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function num(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "1 KB", "512 B". */
function bytes(n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KB` : `${n} B`;
}

function ms(n: number): string {
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000} s` : `${num(n)} ms`;
}

function seconds(s: number): string {
  if (s < 90) return `${num(s)} s`;
  const m = Math.floor(s / 60);
  return m < 90 ? `${m} min ${num(s - m * 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function utc(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso || '–' : `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} UTC`;
}

/** The x values of the percentile axis: 1/(1-p), from p = 0 to 99.999%, through the tables' percentiles exactly. */
function percentileXs(): number[] {
  const xs = new Set<number>([2, 4, 20, 200, 2000]); // p50, p75, p95, p99.5, p99.95
  for (let i = 0; i <= MAX_NINES * POINTS_PER_NINE; i++) xs.add(Math.round(10 ** (i / POINTS_PER_NINE) * 1e6) / 1e6);
  return [...xs].sort((a, b) => a - b);
}

/** Latency (ms) at each x = 1/(1-p) of a histogram in µs. */
function curve(histogram: string, xs: number[]): Array<number | null> {
  const h = decode(histogram);
  if (h.totalCount === 0) return xs.map(() => null);
  return xs.map((x) => Math.round(h.getValueAtPercentile(100 - 100 / x)) / 1000);
}

class Report {
  readonly colours = new Map<string, string>();
  readonly charts: ChartSpec[] = [];
  private ids = 0;

  constructor(readonly results: Results) {
    let i = 0;
    for (const s of results.matrix.systems) this.colours.set(s, s === 'baseline' ? BASELINE_COLOUR : PALETTE[i++ % PALETTE.length]!);
  }

  colour(system: string): string {
    return this.colours.get(system) ?? BASELINE_COLOUR;
  }

  swatch(system: string): string {
    return `<i class="swatch" style="background:${this.colour(system)}"></i>`;
  }

  chart(kind: ChartSpec['kind'], x: number[], series: ChartSeries[], className: string, caption: string, reference?: ChartSpec['reference']): string {
    const id = `chart-${++this.ids}`;
    this.charts.push(reference ? { id, kind, x, series, reference } : { id, kind, x, series });
    // The page checks it when one line would flatten the others.
    const toggle = kind === 'sweep-rate' ? '' : `<label class="scale-toggle"><input type="checkbox" data-log-for="${id}"> log scale</label>`;
    return (
      `<figure class="${className}"><figcaption><span>${caption}</span>${toggle}</figcaption>` +
      `<div class="chart" id="${id}" data-chart="${kind}" data-series="${esc(JSON.stringify(series.map((s) => s.system)))}"></div></figure>`
    );
  }

  ranCells(s: Scenario, system: string): Array<CellResult & { result: LoadgenResult }> {
    return this.results.cells.filter((c): c is CellResult & { result: LoadgenResult } => c.scenario === s.name && c.system === system && c.result !== undefined);
  }

  header(): string {
    const r = this.results;
    const e = r.environment;
    const m = r.matrix;
    const took = (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000;
    const status =
      r.status === 'completed'
        ? `<p class="status completed">Completed</p>`
        : `<p class="status ${r.status}">${r.status === 'canceled' ? 'Canceled' : r.status === 'interrupted' ? 'Interrupted' : 'Failed'}${r.error ? `: ${esc(r.error)}` : ''}. The tables and charts hold what finished.</p>`;
    const env: Array<[string, string]> = [
      ['CPU', `${e.cpuModel}, ${e.cores} cores`],
      ['Memory', `${e.memoryGiB} GiB`],
      ['Kernel', `Linux ${e.kernel}`],
      ['Node', e.node],
      ['sluice', e.sluice],
      ['Provider', e.hosts ? `${e.provider} (${e.hosts})` : e.provider],
      ['Run', `${utc(r.startedAt)}${Number.isFinite(took) && took >= 0 ? `, ${seconds(took)}` : ''}`],
      ['Matrix', `${m.scenarios.length} scenario${m.scenarios.length === 1 ? '' : 's'} × ${m.systems.length} systems, ${m.repetitions} repetition${m.repetitions === 1 ? '' : 's'}, warm-up ${m.warmup_s} s, model ${m.model}`],
    ];
    const systems = m.systems
      .map((s) => {
        const info = r.systems[s] ?? {};
        const ran = info.version !== undefined;
        const note = ran ? esc(info.version!) : info.skipped !== undefined ? `<span class="skipped">skipped: ${esc(info.skipped)}</span>` : '<span class="skipped">not run</span>';
        // A system can start for one scenario and fail for another: say so beside its version.
        const also = ran && info.skipped !== undefined ? `<br><span class="skipped">skipped in some scenarios: ${esc(info.skipped)}</span>` : '';
        return `<tr${ran ? '' : ' class="not-run"'}><th scope="row">${this.swatch(s)}${esc(displayName(s))}</th><td>${note}${also}</td></tr>`;
      })
      .join('');
    return (
      `<header><p class="kicker">sluice bench</p><h1>Gateway benchmark, ${esc(utc(r.startedAt))}</h1>${status}` +
      `<div class="header-grid"><dl class="env">${env.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` +
      `<table class="systems"><thead><tr><th>System</th><th>Version</th></tr></thead><tbody>${systems}</tbody></table></div>` +
      `<nav><span>Scenarios</span>${m.scenarios.map((s, i) => `<a href="#scenario-${i}">${esc(s.name)}</a>`).join('')}</nav></header>`
    );
  }

  /** What a scenario does, as facts. */
  facts(s: Scenario): string {
    const m = this.results.matrix;
    const f: string[] = [];
    if (s.sweep) {
      f.push(`open loop, ${s.sweep.rates.map((r) => num(r)).join(', ')} req/s (${s.arrival} arrivals), ${s.sweep.step_s} s each`, `at most ${num(s.workers)} in flight`);
    } else if (s.rate !== undefined) f.push(`open loop, ${num(s.rate)} req/s (${s.arrival} arrivals)`, `at most ${num(s.workers)} in flight`);
    else f.push(`closed loop, ${num(s.workers)} users`);
    f.push(`${bytes(s.request_bytes)} requests`);
    if (s.stream) f.push(`streamed: TTFT ${ms(s.stream.ttft_ms)}, ITL ${ms(s.stream.itl_ms)}, ${s.stream.output_tokens} tokens${s.wait_ms > 0 ? `, sink wait ${ms(s.wait_ms)}` : ''}`);
    else f.push(`sink wait ${ms(s.wait_ms)}`);
    if (s.sweep) f.push(`a system stops when its p99 passes Baseline's by ${ms(s.sweep.bound_ms)}`);
    else {
      const warm = s.rate !== undefined ? 0 : (s.warmup_s ?? m.warmup_s);
      const run = s.requests !== undefined ? `${num(s.requests)} requests` : `${num(s.duration_s ?? 10)} s`;
      f.push(`${run} measured${warm > 0 ? ` after a ${warm} s warm-up` : ''}`);
      if (m.repetitions > 1) f.push(`${m.repetitions} repetitions`);
    }
    return `<p class="facts">${f.map(esc).join(' · ')}</p>`;
  }

  table(rows: Row[], systems: string[]): string {
    const head = `<tr><th></th><th>Theoretical</th>${systems.map((s) => `<th scope="col">${this.swatch(s)}${esc(displayName(s))}</th>`).join('')}</tr>`;
    const body = rows
      .map(
        (r) =>
          `<tr><th scope="row">${esc(r.label)}</th><td class="theoretical">${esc(r.theoretical)}</td>${r.values
            .map((v) => (v === 'skipped' || v === 'none' || v === '–' ? `<td class="muted">${esc(v)}</td>` : `<td>${cellHtml(v)}</td>`))
            .join('')}</tr>`,
      )
      .join('');
    return `<div class="table-wrap"><table class="results" data-systems="${esc(JSON.stringify(systems))}"><thead>${head}</thead><tbody>${body}</tbody></table></div>`;
  }

  /** Horizontal bars, one row per system: the median over repetitions, the spread as a whisker, an optional second (lighter, longer) measure behind. */
  bars(
    kind: string,
    caption: string,
    unit: string,
    rows: Array<{ system: string; values: number[]; behind?: number[] }>,
    digits: number,
    opts: { marker?: { at: number; label: string }; behindLabel?: string; frontLabel?: string; note?: string } = {},
  ): string {
    const live = rows.filter((r) => r.values.length > 0);
    if (live.length === 0) return '';
    const top = Math.max(opts.marker?.at ?? 0, ...live.flatMap((r) => [...r.values, ...(r.behind ?? [])])) * 1.06 || 1;
    const pct = (v: number): string => `${Math.max(0, Math.min(100, (v / top) * 100)).toFixed(2)}%`;
    const body = live
      .map((r) => {
        const c = this.colour(r.system);
        const front = median(r.values);
        const spread = r.values.length > 1 ? `<span class="spread" style="left:${pct(Math.min(...r.values))};width:calc(${pct(Math.max(...r.values))} - ${pct(Math.min(...r.values))})"></span>` : '';
        const behind = r.behind && r.behind.length > 0 ? median(r.behind) : null;
        const back = behind === null ? '' : `<span class="bar behind" style="width:${pct(behind)};background:${c}"></span>`;
        const marker = opts.marker ? `<span class="marker" style="left:${pct(opts.marker.at)}"></span>` : '';
        const value = behind === null ? num(front, digits) : `${num(front, digits)} / ${num(behind, digits)}`;
        return (
          `<div class="bar-row" data-system="${esc(r.system)}"><span class="bar-label">${this.swatch(r.system)}${esc(displayName(r.system))}</span>` +
          `<span class="track">${back}<span class="bar" style="width:${pct(front)};background:${c}"></span>${spread}${marker}</span>` +
          `<span class="bar-value">${value}</span></div>`
        );
      })
      .join('');
    const key: string[] = [];
    if (opts.frontLabel && opts.behindLabel) key.push(`solid ${opts.frontLabel}, light ${opts.behindLabel}`);
    if (live.some((r) => r.values.length > 1)) key.push('whisker: min–max over repetitions');
    if (opts.marker) key.push(`dashed: ${opts.marker.label}`);
    if (opts.note) key.push(opts.note);
    return (
      `<figure class="bars" data-chart="${kind}"><figcaption><span>${caption} <span class="unit">(${unit})</span></span></figcaption>${body}` +
      `${key.length > 0 ? `<p class="key">${esc(key.join('; '))}</p>` : ''}</figure>`
    );
  }

  skipNotes(s: Scenario, systems: string[]): string {
    const notes: string[] = [];
    for (const sys of systems) {
      if (s.sweep) {
        const w = this.results.sweeps.find((x) => x.scenario === s.name && x.system === sys);
        if (w?.skipped) notes.push(`<li>${this.swatch(sys)}<b>${esc(displayName(sys))}</b> skipped: ${esc(w.skipped)}</li>`);
        else if (w?.stopped) notes.push(`<li>${this.swatch(sys)}<b>${esc(displayName(sys))}</b> stopped: ${esc(w.stopped)}</li>`);
        else if (!w) notes.push(`<li>${this.swatch(sys)}<b>${esc(displayName(sys))}</b> not run</li>`);
      } else if (this.ranCells(s, sys).length === 0) {
        const skipped = this.results.cells.find((c) => c.scenario === s.name && c.system === sys && c.skipped !== undefined);
        notes.push(`<li>${this.swatch(sys)}<b>${esc(displayName(sys))}</b> ${skipped ? `skipped: ${esc(skipped.skipped!)}` : 'not run'}</li>`);
      }
    }
    return notes.length > 0 ? `<ul class="notes">${notes.join('')}</ul>` : '';
  }

  scenario(s: Scenario, index: number): string {
    const systems = this.results.matrix.systems;
    const title = `<h2><span class="kind">${s.sweep ? 'capacity sweep' : s.stream ? 'streamed' : s.rate !== undefined ? 'open loop' : 'closed loop'}</span>${esc(s.name)}</h2>`;
    const body = s.sweep ? this.sweepBody(s, systems) : this.cellBody(s, systems);
    return `<section class="scenario" id="scenario-${index}" data-scenario="${esc(s.name)}">${title}${this.facts(s)}${body}${this.skipNotes(s, systems)}</section>`;
  }

  cellBody(s: Scenario, systems: string[]): string {
    const ran = systems.filter((sys) => this.ranCells(s, sys).length > 0);
    if (ran.length === 0) return `<p class="empty">No system ran this scenario.</p>${this.table(scenarioRows(this.results, s, systems), systems)}`;
    const xs = percentileXs();
    const reps = Math.max(...ran.map((sys) => this.ranCells(s, sys).length));
    const series = ran.map((sys): ChartSeries => {
      const cells = this.ranCells(s, sys);
      const merged = cells.length === 1 ? cells[0]!.result : mergeResults(cells.map((c) => c.result));
      return { system: sys, label: displayName(sys), colour: this.colour(sys), values: curve(merged.histogram, xs), dash: sys === 'baseline' };
    });
    const latency = this.chart(
      'latency',
      xs,
      series,
      'wide',
      `Latency by percentile <span class="unit">(ms, successful requests${reps > 1 ? `, the ${reps} repetitions merged` : ''}; the sink alone takes ${num(sinkLatencyMs(s))} ms)</span>`,
    );
    const by = (pick: (c: CellResult & { result: LoadgenResult }) => number | null | undefined) =>
      ran.map((sys) => ({ system: sys, values: this.ranCells(s, sys).flatMap((c) => { const v = pick(c); return v == null ? [] : [v]; }) }));
    const ideal = theoreticalRps(s);
    // A sink that does not wait has no theoretical rate to draw.
    const rps = this.bars('throughput', 'Throughput', 'req/s, median', by((c) => c.result.rps), 1, Number.isFinite(ideal) ? { marker: { at: ideal, label: `theoretical ${num(ideal)} req/s` } } : {});
    const cpu = this.bars('cpu', 'System CPU per request', 'µs, median', by((c) => c.cpuUsPerReq), 0, {
      note: ran.includes('baseline') ? 'Baseline is the sink direct: no system process to measure' : undefined,
    });
    let stream = '';
    if (s.stream) {
      const pair = (which: 'ttftMs' | 'itlMs') =>
        ran.map((sys) => {
          const sums = this.ranCells(s, sys).flatMap((c): LatencySummary[] => (c.result[which] ? [c.result[which]!] : []));
          return { system: sys, values: sums.map((l) => l.p50), behind: sums.map((l) => l.p99) };
        });
      stream =
        this.bars('ttft', 'Time to first token', 'ms, p50 / p99', pair('ttftMs'), 1, { frontLabel: 'p50', behindLabel: 'p99', marker: { at: s.wait_ms + s.stream.ttft_ms, label: `the sink's ${num(s.wait_ms + s.stream.ttft_ms)} ms` } }) +
        this.bars('itl', 'Inter-token latency', 'ms, p50 / p99', pair('itlMs'), 2, { frontLabel: 'p50', behindLabel: 'p99', marker: { at: s.stream.itl_ms, label: `the sink's ${num(s.stream.itl_ms)} ms` } });
    }
    return `${latency}<div class="bar-grid">${rps}${cpu}${stream}</div>${this.table(scenarioRows(this.results, s, systems), systems)}`;
  }

  sweepBody(s: Scenario, systems: string[]): string {
    const rates = s.sweep!.rates;
    const ran = systems.filter((sys) => (this.results.sweeps.find((w) => w.scenario === s.name && w.system === sys)?.steps.length ?? 0) > 0);
    const table = this.table(capacityRows(this.results, s, systems), systems);
    if (ran.length === 0) return `<p class="empty">No system ran this sweep.</p>${table}`;
    const at = (sys: string, pick: (r: LoadgenResult) => number): Array<number | null> => {
      const w = this.results.sweeps.find((x) => x.scenario === s.name && x.system === sys)!;
      return rates.map((rate) => {
        const st = w.steps.find((x) => x.rate === rate);
        return st ? pick(st.result) : null;
      });
    };
    const series = (pick: (r: LoadgenResult) => number) => ran.map((sys): ChartSeries => ({ system: sys, label: displayName(sys), colour: this.colour(sys), values: at(sys, pick), dash: sys === 'baseline' }));
    const bound = s.sweep!.bound_ms;
    // Where a system stops: Baseline's p99 at the same rate plus the bound (the runner's rule).
    const limit = ran.includes('baseline') ? { label: `Baseline + ${num(bound)} ms`, values: at('baseline', (r) => r.latencyMs.p99).map((v) => (v === null ? null : Math.round((v + bound) * 1000) / 1000)) } : undefined;
    return (
      `<div class="chart-grid">` +
      this.chart('sweep-p99', rates, series((r) => r.latencyMs.p99), 'half', `p99 latency against offered rate <span class="unit">(ms${limit ? `; dashed grey: the bound, Baseline + ${num(bound)} ms` : ''})</span>`, limit) +
      this.chart('sweep-rate', rates, series((r) => r.rps), 'half', `Achieved against offered rate <span class="unit">(req/s; dashed grey: the offered rate)</span>`, { label: 'achieved = offered', values: rates }) +
      `</div>${table}`
    );
  }

  footer(): string {
    return (
      `<footer><p>Table cells are the median over repetitions, with the spread (min–max) when there are several. ` +
      `Theoretical: what a system adding nothing would do (closed loop: users ÷ the sink's latency; open loop: the offered rate). ` +
      `CPU and RSS are the system's whole process tree over the measured window. Latency curves: x is the percentile on the scale of HdrHistogram plots (1/(1−p)); ` +
      `hover a chart for values, drag to zoom, double-click to reset.</p>` +
      `<p>Written by sluice ${esc(this.results.environment.sluice)}; results.json beside this file holds every histogram.</p></footer>`
    );
  }
}

/** The whole report as one self-contained HTML document. */
export function reportHtml(results: Results): string {
  const a = loadAssets();
  const rep = new Report(results);
  const sections = results.matrix.scenarios.map((s, i) => rep.scenario(s, i)).join('\n');
  const header = rep.header();
  const data: ReportData = { charts: rep.charts };
  // No fetch of any kind: the file must read the same offline as online.
  const csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice bench, ${esc(utc(results.startedAt))}</title>
<style>${inline(a.uplotCss, 'style')}</style>
<style>${inline(a.css, 'style')}</style>
</head>
<body>
<main>
${header}
${sections}
${rep.footer()}
</main>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${inline(a.uplotJs, 'script')}</script>
<script>${inline(a.js, 'script')}</script>
</body>
</html>
`;
}
