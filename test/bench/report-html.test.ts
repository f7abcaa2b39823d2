// report.html in a real Chromium, opened from file:// with every other request
// refused. The fixture is the results.json of a real run of
// fixtures/report-matrix.yaml (every scenario kind, two repetitions, a system
// that cannot start); to make it again:
//   node dist/cli.js bench --matrix test/bench/fixtures/report-matrix.yaml --out /tmp/r --peers-dir <peers>
//   cp /tmp/r/*/results.json test/bench/fixtures/report-results.json
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/chromium.js';
import type { Environment } from '../../orchestrator/environment.js';
import type { CellResult, Results, SweepResult, SweepStep, SystemInfo } from '../../orchestrator/results.js';
import { RESULTS_VERSION } from '../../orchestrator/results.js';
import { checkResults } from '../../orchestrator/results-schema.js';
import type { Matrix, Scenario, StreamSpec, SweepSpec } from '../../orchestrator/matrix/types.js';
import type { ErrorCounts, LatencySummary, LoadgenResult } from '../../loadgen/result.js';
import { decode } from '../../loadgen/result.js';
import { reportHtml, type ReportData } from '../../orchestrator/report/html.js';
import { capacityRows, scenarioRows } from '../../orchestrator/report/tables.js';

const FIXTURE = new URL('./fixtures/report-results.json', import.meta.url);
const fixture = (): Results => {
  const v: unknown = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  checkResults(v);
  return v;
};

// Each key of every type the fixture holds, true when required. The compiler
// checks these lists against the types (a field added to Results fails the type
// check here: make the fixture again); the test checks the fixture against them.
type Keys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? false : true };
const RESULTS: Keys<Results> = { object: true, version: true, startedAt: true, finishedAt: true, status: true, error: false, matrix: true, environment: true, systems: true, cells: true, sweeps: true };
const ENVIRONMENT: Keys<Environment> = { cpuModel: true, cores: true, memoryGiB: true, kernel: true, node: true, sluice: true, provider: true, hosts: false };
const MATRIX: Keys<Matrix> = { scenarios: true, systems: true, custom: true, repetitions: true, warmup_s: true, model: true, gcp: false };
const SCENARIO: Keys<Scenario> = { name: true, workers: true, requests: false, duration_s: false, request_bytes: true, wait_ms: true, stream: false, rate: false, arrival: true, warmup_s: false, sweep: false };
const STREAM: Keys<StreamSpec> = { ttft_ms: true, itl_ms: true, output_tokens: true };
const SWEEP_SPEC: Keys<SweepSpec> = { rates: true, step_s: true, bound_ms: true };
const SYSTEM: Keys<SystemInfo> = { version: false, skipped: false };
const CELL: Keys<CellResult> = { scenario: true, system: true, repetition: true, result: false, cpuUsPerReq: false, peakRssMb: false, skipped: false };
const SWEEP: Keys<SweepResult> = { scenario: true, system: true, steps: true, stopped: false, skipped: false };
const STEP: Keys<SweepStep> = { rate: true, result: true, cpuUsPerReq: true, peakRssMb: true, addedP99Ms: true };
const RESULT: Keys<LoadgenResult> = {
  requests: true, ok: true, errors: true, errorsByKind: true, errorsByStatus: true, durationS: true, rps: true, latencyMs: true,
  ttftMs: false, itlMs: false, histogram: true, ttftHistogram: false, itlHistogram: false,
};
const LATENCY: Keys<LatencySummary> = { avg: true, p50: true, p90: true, p99: true, p999: true, max: true };
const ERRORS: Keys<ErrorCounts> = { refused: true, timeout: true, reset: true, dropped: true, '4xx': true, '5xx': true, other: true };

function keysFit(t: Test, v: object, keys: Record<string, boolean>, where: string): void {
  const extra = Object.keys(v).filter((k) => !(k in keys));
  const missing = Object.entries(keys).filter(([k, req]) => req && !(k in v)).map(([k]) => k);
  if (extra.length > 0 || missing.length > 0) t.fail(`${where}: keys not in the type: [${extra}], required keys missing: [${missing}]`);
}

t.test('the fixture has the shape the runner writes today', async (t) => {
  const r = fixture();
  t.equal(r.version, RESULTS_VERSION);
  let checked = 0;
  const fit = (v: object, keys: Record<string, boolean>, where: string): void => {
    keysFit(t, v, keys, where);
    checked++;
  };
  const result = (res: LoadgenResult, where: string): void => {
    fit(res, RESULT, where);
    fit(res.latencyMs, LATENCY, `${where}.latencyMs`);
    fit(res.errorsByKind, ERRORS, `${where}.errorsByKind`);
    if (res.ttftMs) fit(res.ttftMs, LATENCY, `${where}.ttftMs`);
    if (res.itlMs) fit(res.itlMs, LATENCY, `${where}.itlMs`);
  };
  fit(r, RESULTS, 'results');
  fit(r.environment, ENVIRONMENT, 'environment');
  fit(r.matrix, MATRIX, 'matrix');
  for (const s of r.matrix.scenarios) {
    fit(s, SCENARIO, `scenario ${s.name}`);
    if (s.stream) fit(s.stream, STREAM, `scenario ${s.name}.stream`);
    if (s.sweep) fit(s.sweep, SWEEP_SPEC, `scenario ${s.name}.sweep`);
  }
  for (const [n, i] of Object.entries(r.systems)) fit(i, SYSTEM, `systems.${n}`);
  for (const c of r.cells) {
    fit(c, CELL, `cell ${c.scenario}/${c.system}`);
    if (c.result) result(c.result, `cell ${c.scenario}/${c.system}.result`);
  }
  for (const w of r.sweeps) {
    fit(w, SWEEP, `sweep ${w.system}`);
    for (const st of w.steps) {
      fit(st, STEP, `sweep ${w.system} step ${st.rate}`);
      result(st.result, `sweep ${w.system} step ${st.rate}.result`);
    }
  }
  // What the report is tested on: every kind of scenario, repetitions to merge, a skipped system.
  const kinds = r.matrix.scenarios.map((s) => (s.sweep ? 'sweep' : s.stream ? 'stream' : s.rate !== undefined ? 'open' : 'closed'));
  t.same([...new Set(kinds)].sort(), ['closed', 'open', 'stream', 'sweep']);
  t.ok(r.matrix.repetitions > 1, 'cells have several repetitions');
  t.ok(Object.values(r.systems).some((i) => i.skipped !== undefined && i.version === undefined), 'a system was skipped');
  t.ok(checked > 50, `${checked} objects checked`);
});

/** The systems with at least one measured cell (or sweep step) in a scenario, in table order. */
function ran(r: Results, s: Scenario): string[] {
  return r.matrix.systems.filter((sys) =>
    s.sweep
      ? (r.sweeps.find((w) => w.scenario === s.name && w.system === sys)?.steps.length ?? 0) > 0
      : r.cells.some((c) => c.scenario === s.name && c.system === sys && c.result !== undefined),
  );
}

const label = (sys: string): string => (sys === 'baseline' ? 'Baseline' : sys);

function chartData(html: string): ReportData {
  const m = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html);
  if (!m) throw new Error('no report-data script');
  return JSON.parse(m[1]!) as ReportData;
}

t.test('the latency curves come from the histograms: x = 1/(1-p), ms, the repetitions merged', async (t) => {
  const r = fixture();
  const data = chartData(reportHtml(r));
  const cellScenarios = r.matrix.scenarios.filter((s) => !s.sweep);
  const latency = data.charts.filter((c) => c.kind === 'latency');
  t.equal(latency.length, cellScenarios.length, 'one latency chart per closed- or open-loop scenario');
  latency.forEach((chart, i) => {
    const s = cellScenarios[i]!;
    t.same(chart.series.map((x) => x.system), ran(r, s), `${s.name}: one series per system that ran`);
    t.equal(chart.x[0], 1, 'from p = 0');
    t.equal(chart.x.at(-1), 1e5, 'to p = 99.999%');
    for (const series of chart.series) {
      const cells = r.cells.filter((c) => c.scenario === s.name && c.system === series.system && c.result !== undefined).map((c) => c.result!);
      const at = (x: number): number => series.values[chart.x.indexOf(x)]!;
      // The percentile of merged histograms lies between the repetitions' own.
      for (const [x, key] of [[2, 'p50'], [10, 'p90'], [100, 'p99'], [1000, 'p999']] as const) {
        const own = cells.map((c) => c.latencyMs[key]);
        const v = at(x);
        if (!(v >= Math.min(...own) - 0.01 && v <= Math.max(...own) + 0.01)) t.fail(`${s.name}/${series.system}: ${key} ${v} ms outside the repetitions' ${own.join(', ')}`);
      }
      const total = cells.reduce((n, c) => n + decode(c.histogram).totalCount, 0);
      t.ok(total > 0, `${s.name}/${series.system}: ${total} requests in its curve`);
      t.ok(series.values.every((v, j) => j === 0 || v! >= series.values[j - 1]!), `${s.name}/${series.system}: the curve never falls`);
      t.ok(at(1e5) <= Math.max(...cells.map((c) => c.latencyMs.max)) + 0.01, 'the last point is at most the slowest request');
    }
  });
  const sweeps = r.matrix.scenarios.filter((s) => s.sweep);
  const p99 = data.charts.filter((c) => c.kind === 'sweep-p99');
  t.equal(p99.length, sweeps.length, 'one p99 chart per sweep');
  p99.forEach((chart, i) => {
    const s = sweeps[i]!;
    t.same(chart.x, s.sweep!.rates, 'x: the offered rates');
    for (const series of chart.series) {
      const w = r.sweeps.find((x) => x.scenario === s.name && x.system === series.system)!;
      t.same(series.values, s.sweep!.rates.map((rate) => w.steps.find((st) => st.rate === rate)?.result.latencyMs.p99 ?? null), `${series.system}: its p99 at each rate it ran`);
    }
    // The runner's stop rule, drawn: a system's addedP99Ms is its distance from Baseline's p99 at the same rate.
    for (const w of r.sweeps.filter((x) => x.scenario === s.name && x.system !== 'baseline')) {
      for (const st of w.steps) {
        const i = s.sweep!.rates.indexOf(st.rate);
        t.equal(Math.round((st.result.latencyMs.p99 - (chart.reference!.values[i]! - s.sweep!.bound_ms)) * 1000) / 1000, st.addedP99Ms, `${w.system} at ${st.rate}/s: the bound line is Baseline's p99 + ${s.sweep!.bound_ms} ms`);
      }
    }
  });
});

t.test('a sink that does not wait: no theoretical rate, bars still to scale', async (t) => {
  const r = fixture();
  r.matrix.scenarios[0]!.wait_ms = 0;
  const html = reportHtml(r);
  const figure = /<figure class="bars" data-chart="throughput">.*?<\/figure>/.exec(html)![0];
  const widths = [...figure.matchAll(/class="bar" style="width:([^%;]+)%/g)].map((m) => Number(m[1]));
  t.equal(widths.length, ran(r, r.matrix.scenarios[0]!).length);
  t.ok(widths.every((w) => w > 10 && w <= 100), `widths ${widths.join(', ')}%`);
  t.notMatch(figure, /class="marker"|NaN|Infinity/);
});

t.test('the report in Chromium from file://, offline', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-report-'));
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(async () => {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a report with every request but file:// refused; returns the page and what went wrong in it. */
  const open = async (name: string, r: Results): Promise<{ page: Page; problems: string[]; remote: string[] }> => {
    const file = join(dir, name);
    writeFileSync(file, reportHtml(r));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const remote: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (q) => {
      if (!q.url().startsWith('file:')) remote.push(q.url());
    });
    await page.route('**', (q) => (q.request().url().startsWith('file:') ? q.continue() : q.abort()));
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('html[data-charts]', { timeout: 10_000 });
    return { page, problems, remote };
  };

  t.test('the fixture', async (t) => {
    const r = fixture();
    const { page, problems, remote } = await open('report.html', r);
    t.same(problems, [], 'no console errors, no page errors');
    t.same(remote, [], 'nothing asked of the network');
    t.equal(await page.evaluate(() => typeof (window as unknown as { uPlot?: unknown }).uPlot), 'function', 'uPlot is inlined');
    t.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 1280, 'nothing wider than 1280 px');

    const header = (await page.textContent('header'))!;
    for (const v of [r.environment.cpuModel, `${r.environment.cores} cores`, r.environment.kernel, r.environment.node, r.environment.sluice, r.environment.provider, 'Completed']) {
      t.ok(header.includes(v), `the header shows ${v}`);
    }
    for (const [sys, info] of Object.entries(r.systems)) t.ok(header.includes(info.version ?? info.skipped!), `the header shows ${sys}'s ${info.version ? 'version' : 'skip reason'}`);

    const systems = r.matrix.systems;
    for (const s of r.matrix.scenarios) {
      const section = page.locator(`section[data-scenario="${s.name}"]`);
      const expected = ran(r, s);
      t.ok(expected.length >= 2, `${s.name}: at least two systems ran`);
      const kind = s.sweep ? 'sweep-p99' : 'latency';
      const charts = section.locator(`.chart[data-chart="${kind}"]`);
      t.equal(await charts.count(), 1, `${s.name}: one ${kind} chart`);
      t.same(JSON.parse((await charts.getAttribute('data-series'))!), expected, `${s.name}: its series are the systems that ran`);
      // uPlot's own legend: the x series, one per system, then a sweep's bound.
      const legend = await charts.locator('.u-legend .u-series .u-label').allTextContents();
      t.same(legend.slice(1), [...expected.map(label), ...(s.sweep ? [`Baseline + ${s.sweep.bound_ms} ms`] : [])], `${s.name}: uPlot drew a series per system that ran`);
      const box = await charts.locator('canvas').boundingBox();
      t.ok(box && box.width > 400 && box.height > 200, `${s.name}: the chart has a size (${box?.width}×${box?.height})`);

      // The table: the systems as columns, tables.ts's rows.
      const table = section.locator('table.results');
      t.equal(await table.count(), 1, `${s.name}: one table`);
      t.same(await table.locator('thead th').allTextContents(), ['', 'Theoretical', ...systems.map(label)], `${s.name}: the systems are the columns`);
      const rows = s.sweep ? capacityRows(r, s, systems) : scenarioRows(r, s, systems);
      const shown = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => (c.textContent ?? '').trim())));
      t.same(shown, rows.map((row) => [row.label, row.theoretical, ...row.values]), `${s.name}: the same cells as tables.md`);

      if (!s.sweep) {
        t.same(await section.locator('[data-chart="throughput"] .bar-row').evaluateAll((e) => e.map((x) => x.getAttribute('data-system'))), expected, `${s.name}: a throughput bar per system that ran`);
        t.same(
          await section.locator('[data-chart="cpu"] .bar-row').evaluateAll((e) => e.map((x) => x.getAttribute('data-system'))),
          expected.filter((sys) => sys !== 'baseline'),
          `${s.name}: a CPU bar per system with a process`,
        );
      } else {
        t.equal(await section.locator('.chart[data-chart="sweep-rate"]').count(), 1, `${s.name}: an achieved-rate chart`);
      }
      const stream = section.locator('[data-chart="ttft"], [data-chart="itl"]');
      t.equal(await stream.count(), s.stream ? 2 : 0, `${s.name}: TTFT and ITL ${s.stream ? 'shown' : 'only when streamed'}`);
      if (s.stream) {
        t.same(await section.locator('[data-chart="ttft"] .bar-row').evaluateAll((e) => e.map((x) => x.getAttribute('data-system'))), expected);
        t.match(await section.locator('[data-chart="ttft"]').textContent(), /p50 \/ p99/);
      }
    }
    const skippedOnly = Object.entries(r.systems).filter(([, i]) => i.version === undefined);
    for (const [sys, info] of skippedOnly) {
      t.ok((await page.locator('ul.notes').first().textContent())!.includes(`${sys} skipped: ${info.skipped}`), `the skip reason of ${sys} is under the first table`);
    }
    // The lead and whoever changes the page look at this.
    await page.screenshot({ path: '/tmp/report.png', fullPage: true });
  });

  t.test('text from the run cannot end the data script nor add markup; a failed run says so', async (t) => {
    const r = fixture();
    r.status = 'failed';
    r.error = '</script><script>document.title = "injected"</script> <!-- \u2028 \u2029 & "quotes"';
    r.environment.cpuModel = '<b class="injected">CPU</b>';
    r.systems.portkey!.version = '</SCRIPT><img src=x onerror="document.title=1">';
    // A system name reaches the chart data too (a results file is read as it is, whatever wrote it).
    const evil = '</script><script>document.title="injected"</script>\u2028<!--';
    const rename = (sys: string): string => (sys === 'sluice' ? evil : sys);
    r.matrix.systems = r.matrix.systems.map(rename);
    r.systems = Object.fromEntries(Object.entries(r.systems).map(([k, v]) => [rename(k), v]));
    for (const c of [...r.cells, ...r.sweeps]) c.system = rename(c.system);
    const { page, problems, remote } = await open('hostile.html', r);
    t.same(problems, [], 'no console errors, no page errors');
    t.same(remote, [], 'nothing asked of the network');
    t.notOk((await page.title()).includes('injected'));
    t.equal(await page.locator('.injected, img').count(), 0, 'no markup from the results');
    t.equal(await page.getAttribute('html', 'data-charts'), String(chartData(reportHtml(fixture())).charts.length), 'every chart was drawn');
    t.ok((await page.textContent('.status.failed'))!.includes(r.error), 'the error, verbatim');
    t.ok((await page.textContent('header'))!.includes(r.environment.cpuModel), 'the CPU model, verbatim');
    const latency = page.locator('.chart[data-chart="latency"]').first();
    t.ok(JSON.parse((await latency.getAttribute('data-series'))!).includes(evil), 'the system keeps its name in the chart');
    t.ok((await latency.locator('.u-legend .u-series .u-label').allTextContents()).includes(evil), 'and in its legend');
  });

  t.test('a run canceled before its last scenarios', async (t) => {
    const r = fixture();
    const first = r.matrix.scenarios[0]!.name;
    r.status = 'canceled';
    r.cells = r.cells.filter((c) => c.scenario === first);
    r.sweeps = [];
    const { page, problems } = await open('canceled.html', r);
    t.same(problems, []);
    t.match(await page.textContent('.status.canceled'), /Canceled/);
    t.equal(await page.locator('.chart[data-chart="latency"]').count(), 1, 'the scenario that finished has its chart');
    t.equal(await page.locator('p.empty').count(), r.matrix.scenarios.length - 1, 'the others say no system ran them');
    t.equal(await page.locator('table.results').count(), r.matrix.scenarios.length, 'every scenario keeps its table');
  });
});
