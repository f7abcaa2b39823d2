// The comparison of two runs (orchestrator/report/compare.ts) on real
// results: fixtures/compare-base.json and compare-head.json were written by
// `sluice bench` (a closed-loop, a streamed and a sweep scenario; Baseline
// and a custom system, the delay proxy of fixtures/delay-proxy.mjs, run with
// --delay-ms 0 for the base and 30 for the head). Variations are built from
// their cells; the histograms are the load generator's.
import t from 'tap';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode } from '../../loadgen/result.js';
import { capacityAt, lastServedStep } from '../../orchestrator/report/capacity.js';
import {
  NOISE_FLOORS,
  ResultsFileError,
  compareResults,
  formatComparison,
  loadResults,
  summaryLine,
  type Comparison,
  type ComparisonRow,
} from '../../orchestrator/report/compare.js';
import { CAPACITY_BOUNDS_MS, capacityRows } from '../../orchestrator/report/tables.js';
import type { CellResult, Results } from '../../orchestrator/results.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const BASE_FILE = join(FIXTURES, 'compare-base.json');
const HEAD_FILE = join(FIXTURES, 'compare-head.json');
const base = (): Results => loadResults(BASE_FILE);
const head = (): Results => loadResults(HEAD_FILE);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const cellsOf = (r: Results, scenario: string, system: string): CellResult[] => r.cells.filter((c) => c.scenario === scenario && c.system === system);
const rowOf = (c: Comparison, scenario: string, system: string, metric: string): ComparisonRow => {
  const row = c.rows.find((r) => r.scenario === scenario && r.system === system && r.metric === metric);
  if (row === undefined) throw new Error(`no row ${scenario}/${system}/${metric}`);
  return row;
};
/** The results with only the given repetition of every cell. */
const onlyRepetition = (r: Results, rep: number): Results => ({ ...r, cells: r.cells.filter((c) => c.repetition === rep) });

t.test('loadResults: a results folder or its results.json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-compare-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = join(dir, '2026-12-01T20-07-10Z');
  mkdirSync(run);
  writeFileSync(join(run, 'results.json'), readFileSync(BASE_FILE));
  const fromDir = loadResults(run);
  t.same(fromDir, loadResults(join(run, 'results.json')), 'the folder and its file read the same');
  t.equal(fromDir.object, 'sluice.bench.results');
  t.equal(fromDir.cells.length, 8);
});

t.test('loadResults: a missing, unreadable or foreign file is one line naming the file and what is wrong', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-compare-bad-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = JSON.parse(readFileSync(BASE_FILE, 'utf8')) as Record<string, unknown>;
  const file = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  const noP99 = structuredClone(good) as unknown as Results;
  delete (noP99.cells[2]!.result!.latencyMs as unknown as Partial<Record<string, number>>).p99;
  mkdirSync(join(dir, 'empty-run'));
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'nope'), /nope: no such file or folder$/],
    [join(dir, 'empty-run'), /empty-run: has no results\.json \(expected a results\/<UTC timestamp>\/ folder of sluice bench\)$/],
    [file('truncated.json', JSON.stringify(good).slice(0, 500)), /truncated\.json: not JSON \(/],
    [file('array.json', '[1, 2]'), /array\.json: not a sluice bench results file \(it has no "object": "sluice\.bench\.results"\)$/],
    [file('loadgen.json', JSON.stringify(good.cells && (good.cells as CellResult[])[0]!.result)), /loadgen\.json: not a sluice bench results file \(it has no "object"/],
    [file('other.json', JSON.stringify({ ...good, object: 'sluice.loadgen.result' })), /other\.json: not a sluice bench results file \(its "object" is "sluice\.loadgen\.result"\)$/],
    [file('v2.json', JSON.stringify({ ...good, version: 2 })), /v2\.json: results version 2; this sluice reads version 1$/],
    [file('no-p99.json', JSON.stringify(noP99)), /no-p99\.json: not a valid results file: cells\.2\.result\.latencyMs\.p99: is required$/],
  ];
  for (const [path, message] of cases) {
    let err: unknown;
    try {
      loadResults(path);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ResultsFileError, `${path}: a ResultsFileError`);
    const m = (err as Error | undefined)?.message ?? '';
    t.match(m, message, m);
    t.equal(m.split('\n').length, 1, 'one line');
    t.ok(m.startsWith(path), 'it starts with the path given (or the file in the folder)');
  }
});

t.test('a run against itself: every cell and metric compared, nothing changed or marked', async (t) => {
  const r = base();
  const c = compareResults(r, base());
  t.equal(c.regressions, 0);
  t.equal(c.improvements, 0);
  t.same(c.unmatched, []);
  t.same(c.notes, []);
  t.same(c.scenarios, ['closed', 'stream', 'cap']);
  t.ok(c.rows.every((row) => row.change === 0 && row.mark === null && !row.significant));
  const metrics = (scenario: string, system: string) => c.rows.filter((row) => row.scenario === scenario && row.system === system).map((row) => row.metric);
  t.same(metrics('closed', 'baseline'), ['rps', 'p50', 'p99', 'p999', 'errors'], 'Baseline has no CPU');
  t.same(metrics('closed', 'delay'), ['rps', 'p50', 'p99', 'p999', 'errors', 'cpu']);
  t.same(metrics('stream', 'delay'), ['rps', 'p50', 'p99', 'p999', 'ttft_p50', 'ttft_p99', 'itl_p50', 'itl_p99', 'errors', 'cpu'], 'a streamed scenario adds TTFT and ITL');
  t.same(metrics('cap', 'baseline'), ['capacity'], 'Baseline has no added p99 over itself and no CPU');
  t.same(metrics('cap', 'delay'), [...CAPACITY_BOUNDS_MS.map((b) => `capacity_${b}`), 'capacity', 'sweep_cpu']);
  // Rows are metric by metric, then system by system.
  t.same(
    c.rows.filter((row) => row.scenario === 'closed').map((row) => `${row.metric}/${row.system}`).slice(0, 4),
    ['rps/baseline', 'rps/delay', 'p50/baseline', 'p50/delay'],
  );

  const cells = cellsOf(r, 'closed', 'delay');
  const p50s = cells.map((x) => x.result!.latencyMs.p50);
  const p50 = rowOf(c, 'closed', 'delay', 'p50');
  t.equal(p50.base, median(p50s), 'the median over repetitions');
  t.equal(p50.spread, Math.max(...p50s) - Math.min(...p50s), 'the spread is max − min');
  t.same(p50.repetitions, { base: 2, head: 2 });
  t.equal(p50.better, 'lower');
  t.equal(rowOf(c, 'closed', 'delay', 'rps').better, 'higher');
  t.equal(p50.samples, Math.min(...cells.map((x) => decode(x.result!.histogram).totalCount)), "a percentile's samples are its histogram's count");
  const itl = rowOf(c, 'stream', 'delay', 'itl_p99');
  t.equal(itl.samples, Math.min(...cellsOf(r, 'stream', 'delay').map((x) => decode(x.result!.itlHistogram!).totalCount)), 'ITL counts token gaps');
  t.ok(itl.samples! > 500, `ITL has a sample per token gap (${itl.samples})`);
});

t.test('the delay proxy with 30 ms: its p50, TTFT and throughput regress, Baseline does not', async (t) => {
  const c = compareResults(base(), head());
  for (const [scenario, metric] of [
    ['closed', 'p50'],
    ['closed', 'rps'],
    ['stream', 'p50'],
    ['stream', 'ttft_p50'],
    ['stream', 'rps'],
  ] as const) {
    const row = rowOf(c, scenario, 'delay', metric);
    t.equal(row.mark, 'regression', `${scenario} ${metric}: ${row.base} → ${row.head}`);
    t.ok(Math.abs(row.change) > row.spread && Math.abs(row.change) > row.floor, 'over the spread and the floor');
  }
  const p50 = rowOf(c, 'closed', 'delay', 'p50');
  t.ok(p50.change > 25 && p50.change < 40, `about the 30 ms injected (${p50.change})`);
  t.equal(p50.changePct, (p50.change / p50.base) * 100);
  for (const scenario of ['closed', 'stream']) {
    for (const metric of ['rps', 'p50', 'p99', 'errors']) t.not(rowOf(c, scenario, 'baseline', metric).mark, 'regression', `Baseline ${scenario} ${metric}`);
  }
  t.equal(rowOf(c, 'stream', 'delay', 'itl_p50').mark, null, 'the delay is before the first token: ITL is unchanged');
  t.equal(c.regressions, c.rows.filter((r) => r.mark === 'regression').length);
  t.equal(c.improvements, c.rows.filter((r) => r.mark === 'improvement').length);

  // The other way round, the same changes are improvements.
  const back = compareResults(head(), base());
  for (const row of c.rows.filter((r) => r.mark === 'regression' && r.kind !== 'capacity')) {
    t.equal(rowOf(back, row.scenario, row.system, row.metric).mark, 'improvement', `${row.scenario} ${row.metric} back: an improvement`);
  }
});

t.test('a change within the spread between repetitions is not marked', async (t) => {
  // The head's delay cells: one repetition without the delay, one with it.
  const b = base();
  const mixed = base();
  const slow = cellsOf(head(), 'closed', 'delay')[1]!;
  mixed.cells = mixed.cells.map((c) => (c.scenario === 'closed' && c.system === 'delay' && c.repetition === 1 ? { ...slow, repetition: 1 } : c));
  const c = compareResults(b, mixed);
  const row = rowOf(c, 'closed', 'delay', 'p50');
  const headP50s = cellsOf(mixed, 'closed', 'delay').map((x) => x.result!.latencyMs.p50);
  t.equal(row.head, median(headP50s));
  t.equal(row.spread, Math.max(...headP50s) - Math.min(...headP50s), "the head's spread, the larger");
  t.ok(Math.abs(row.change) > row.floor, `over the floor (${row.change} > ${row.floor})`);
  t.ok(Math.abs(row.change) < row.spread, `within the spread (${row.change} < ${row.spread})`);
  t.equal(row.mark, null);
  t.equal(row.significant, false);
});

t.test('one repetition: the floors decide (NOISE_FLOORS)', async (t) => {
  const b = onlyRepetition(base(), 0);
  const scaled = (scenario: string, system: string, edit: (c: CellResult) => void): Results => {
    const h = structuredClone(b);
    for (const c of cellsOf(h, scenario, system)) edit(c);
    return h;
  };
  const markOf = (h: Results, scenario: string, system: string, metric: string) => rowOf(compareResults(b, h), scenario, system, metric);

  // Throughput: 5%.
  t.equal(markOf(scaled('closed', 'baseline', (c) => (c.result!.rps *= 1.04)), 'closed', 'baseline', 'rps').mark, null, '+4% throughput: noise');
  t.equal(markOf(scaled('closed', 'baseline', (c) => (c.result!.rps *= 1.06)), 'closed', 'baseline', 'rps').mark, 'improvement', '+6% throughput');
  t.equal(markOf(scaled('closed', 'baseline', (c) => (c.result!.rps *= 0.94)), 'closed', 'baseline', 'rps').mark, 'regression', '−6% throughput');
  const rps = markOf(scaled('closed', 'baseline', (c) => (c.result!.rps *= 0.94)), 'closed', 'baseline', 'rps');
  t.equal(rps.spread, 0, 'one repetition has no spread');
  t.equal(rps.floor, NOISE_FLOORS.throughput * rps.base);

  // p50: max(5%, 1 ms). Closed-loop p50 is ~20 ms (5% is ~1 ms); ITL p50 is ~5.5 ms, where the 1 ms decides.
  const p50 = cellsOf(b, 'closed', 'baseline')[0]!.result!.latencyMs.p50;
  const withP50 = (f: number) => markOf(scaled('closed', 'baseline', (c) => (c.result!.latencyMs.p50 *= f)), 'closed', 'baseline', 'p50');
  t.equal(withP50(1.045).mark, null, `+4.5% of ${p50} ms: noise`);
  t.equal(withP50(1.1).mark, 'regression', '+10%');
  const itl = cellsOf(b, 'stream', 'baseline')[0]!.result!.itlMs!.p50;
  t.ok(itl * NOISE_FLOORS.median.relative < NOISE_FLOORS.median.ms, `5% of the ITL (${itl} ms) is under 1 ms`);
  const withItl = (add: number) => markOf(scaled('stream', 'baseline', (c) => (c.result!.itlMs!.p50 += add)), 'stream', 'baseline', 'itl_p50');
  t.equal(withItl(0.9).floor, NOISE_FLOORS.median.ms);
  t.equal(withItl(0.9).mark, null, `+0.9 ms on ${itl} ms (+${((0.9 / itl) * 100).toFixed(0)}%): under the 1 ms floor`);
  t.equal(withItl(1.1).mark, 'regression', '+1.1 ms');

  // Tails: max(20%, 2 ms), judged only with a sample beyond them.
  const withP99 = (f: number) => markOf(scaled('closed', 'baseline', (c) => (c.result!.latencyMs.p99 *= f)), 'closed', 'baseline', 'p99');
  t.ok(withP99(1).beyond! >= 10, `closed-loop p99 has samples beyond it (${withP99(1).beyond})`);
  t.equal(withP99(1.15).mark, null, '+15% at p99: noise');
  t.equal(withP99(1.3).mark, 'regression', '+30% at p99');
  const closedP999 = markOf(scaled('closed', 'baseline', (c) => (c.result!.latencyMs.p999 *= 2)), 'closed', 'baseline', 'p999');
  t.ok(closedP999.samples! >= 1000, `${closedP999.samples} requests: p99.9 is judged`);
  t.equal(closedP999.mark, 'regression');
  const streamP999 = markOf(scaled('stream', 'baseline', (c) => (c.result!.latencyMs.p999 *= 3)), 'stream', 'baseline', 'p999');
  t.ok(streamP999.samples! < 1000 && streamP999.beyond! < NOISE_FLOORS.minBeyond, `${streamP999.samples} requests: p99.9 is the slowest request`);
  t.equal(streamP999.mark, null, 'tripled, but not judged');
  t.match(formatComparison(compareResults(b, scaled('stream', 'baseline', (c) => (c.result!.latencyMs.p999 *= 3)))), `| P99.9 latency (ms) | Baseline |`);
  t.match(
    formatComparison(compareResults(b, scaled('stream', 'baseline', (c) => (c.result!.latencyMs.p999 *= 3)))),
    new RegExp(`\\| P99\\.9 latency \\(ms\\) \\| Baseline \\| [\\d.]+ \\| [\\d.]+ \\| \\+[\\d.]+ \\(\\+[\\d.]+%\\) \\| ±[\\d.]+ \\| not judged: the slowest of ${streamP999.samples} \\|`),
  );

  // Errors: their share of requests, 0.1 points.
  const requests = cellsOf(b, 'closed', 'baseline')[0]!.result!.requests;
  t.ok(requests > 1000, `${requests} requests`);
  const withErrors = (n: number) => markOf(scaled('closed', 'baseline', (c) => (c.result!.errors = n)), 'closed', 'baseline', 'errors');
  t.equal(withErrors(1).mark, null, `1 error in ${requests}: noise`);
  t.equal(withErrors(Math.ceil(requests * 0.002)).mark, 'regression', '0.2% of requests failed');
  t.equal(withErrors(Math.ceil(requests * 0.002)).head, (Math.ceil(requests * 0.002) / requests) * 100);

  // CPU: max(30%, 2 ticks over the requests).
  const cpu = cellsOf(b, 'closed', 'delay')[0]!.cpuUsPerReq!;
  const withCpu = (f: number) => markOf(scaled('closed', 'delay', (c) => (c.cpuUsPerReq! *= f)), 'closed', 'delay', 'cpu');
  t.equal(withCpu(1.25).mark, null, `+25% of ${cpu} µs: noise`);
  t.equal(withCpu(1.35).mark, 'regression', '+35%');
  const streamRequests = cellsOf(b, 'stream', 'delay')[0]!.result!.requests;
  const tick = (NOISE_FLOORS.cpu.ticks * 10_000) / streamRequests;
  const small = structuredClone(b);
  for (const c of cellsOf(small, 'stream', 'delay')) c.cpuUsPerReq = 100;
  const bigger = structuredClone(small);
  for (const c of cellsOf(bigger, 'stream', 'delay')) c.cpuUsPerReq = 100 + tick * 0.9;
  const row = rowOf(compareResults(small, bigger), 'stream', 'delay', 'cpu');
  t.equal(row.floor, tick, `2 ticks over ${streamRequests} requests`);
  t.equal(row.mark, null, `+${(tick * 0.9).toFixed(0)}% of 100 µs, under two /proc ticks: not marked`);
});

t.test('cells in one run only are listed, never compared, never a crash', async (t) => {
  const h = head();
  // The delay system could not start for the stream scenario, never ran the sweep, and there is a new scenario.
  h.cells = h.cells.map((c) => (c.scenario === 'stream' && c.system === 'delay' ? { scenario: c.scenario, system: c.system, repetition: c.repetition, skipped: 'could not start: port in use\n(EADDRINUSE)' } : c));
  h.sweeps = h.sweeps.filter((w) => w.system !== 'delay');
  h.matrix = { ...h.matrix, scenarios: [...h.matrix.scenarios, { ...h.matrix.scenarios[0]!, name: 'new-one' }] };
  h.cells.push(...cellsOf(h, 'closed', 'baseline').map((c) => ({ ...c, scenario: 'new-one' })));
  const b = base();
  b.matrix = { ...b.matrix, systems: [...b.matrix.systems, 'gone'] };
  const c = compareResults(b, h);
  t.same(
    c.unmatched.map((u) => [u.scenario, u.system, u.measuredIn, u.reason]),
    [
      ['closed', 'gone', null, 'base: not measured (the run ended before it); head: not in its systems'],
      ['stream', 'delay', 'base', 'head: skipped: could not start: port in use\n(EADDRINUSE)'],
      ['stream', 'gone', null, 'base: not measured (the run ended before it); head: not in its systems'],
      ['cap', 'delay', 'base', 'head: not measured (the run ended before it)'],
      ['cap', 'gone', null, 'base: not measured (the run ended before it); head: not in its systems'],
      ['new-one', null, 'head', 'not a scenario of the base run'],
    ],
    'each listed with what happened',
  );
  t.ok(c.rows.some((r) => r.scenario === 'stream' && r.system === 'baseline'), 'Baseline of that scenario is still compared');
  t.notOk(c.rows.some((r) => r.scenario === 'stream' && r.system === 'delay'));
  const md = formatComparison(c);
  t.match(md, '- delay: only in the base run (head: skipped: could not start: port in use (EADDRINUSE))', 'on one line');
  t.match(md, '- the scenario: only in the head run (not a scenario of the base run)');
  t.match(md, '### new-one');

  // Nothing in common at all.
  const empty = compareResults(b, { ...h, matrix: { ...h.matrix, scenarios: [{ ...h.matrix.scenarios[0]!, name: 'elsewhere' }] }, cells: [], sweeps: [] });
  t.equal(empty.rows.length, 0);
  t.match(formatComparison(empty), /^0 regressions, 0 improvements \(changes within the spread between repetitions or under the floor are not marked\)$/m);
});

t.test('what a reader should know first: changed scenarios, machines, unfinished runs', async (t) => {
  const h = head();
  h.matrix = { ...h.matrix, scenarios: h.matrix.scenarios.map((s) => (s.name === 'closed' ? { ...s, wait_ms: 30 } : s)) };
  h.environment = { ...h.environment, cores: 4 };
  h.status = 'canceled';
  const c = compareResults(base(), h);
  t.same(c.notes, [
    'The head run was canceled: only what it finished is compared.',
    'The runs were measured in different environments (cores 2 → 4): differences may be the machine\'s, not the code\'s.',
    'closed: the scenario differs between the runs (wait_ms 20 → 30).',
  ]);
  const md = formatComparison(c);
  t.match(md, '- closed: the scenario differs between the runs (wait_ms 20 → 30).');
  t.match(md, /; head: [^\n]*, canceled\)\./);
});

t.test('sweeps: the capacity at each added-p99 bound, read as the tables read it', async (t) => {
  const b = base();
  const c = compareResults(b, b);
  const w = b.sweeps.find((x) => x.system === 'delay')!;
  for (const bound of CAPACITY_BOUNDS_MS) t.equal(rowOf(c, 'cap', 'delay', `capacity_${bound}`).base, capacityAt(w, bound) ?? 0);
  t.equal(rowOf(c, 'cap', 'delay', 'capacity').base, capacityAt(w));
  t.equal(rowOf(c, 'cap', 'delay', 'sweep_cpu').base, lastServedStep(w)!.cpuUsPerReq);
  // The tables' capacity rows show the same numbers.
  const scenario = b.matrix.scenarios.find((s) => s.name === 'cap')!;
  const table = capacityRows(b, scenario, b.matrix.systems);
  const col = b.matrix.systems.indexOf('delay');
  CAPACITY_BOUNDS_MS.forEach((bound, i) => {
    const v = capacityAt(w, bound);
    t.equal(table[i]!.values[col], v === null ? 'none' : Math.round(v).toLocaleString('en-US'), `≤ ${bound} ms: the table and the comparison agree`);
  });

  // The head adds 8 ms at p99 at every rate: the capacity within 1 and 5 ms is gone.
  const h = structuredClone(b);
  for (const st of h.sweeps.find((x) => x.system === 'delay')!.steps) st.addedP99Ms = 8;
  const worse = compareResults(b, h);
  for (const bound of [1, 5]) {
    const row = rowOf(worse, 'cap', 'delay', `capacity_${bound}`);
    t.equal(row.head, 0);
    t.equal(row.mark, 'regression', `≤ ${bound} ms: ${row.base} → none`);
  }
  t.equal(rowOf(worse, 'cap', 'delay', 'capacity_10').mark, null, 'within 10 ms it still keeps up');
  t.match(formatComparison(worse), /\| Req\/s at added p99 ≤ 1 ms \| delay \| [\d,]+ \| none \| −[\d,]+ \(−100\.0%\) \| ±[\d,]+ \| ▲ regression \|/);
});

t.test('formatComparison: a table per scenario, the marks, the summary line', async (t) => {
  const c = compareResults(base(), head());
  const md = formatComparison(c);
  t.match(md, /^## Compared with the base run\n\nBase: 2026-12-01T20:07:10\.694Z \(sluice [^)]+\)\); head: 2026-12-01T20:07:47\.733Z/);
  for (const s of ['closed', 'stream', 'cap']) t.match(md, `\n### ${s}\n\n| Metric | System | Base | Head | Change | Noise | |\n|---|---|---:|---:|---:|---:|---|\n`);
  const p50 = rowOf(c, 'closed', 'delay', 'p50');
  const f1 = (n: number) => n.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  t.match(md, `| P50 latency (ms) | delay | ${f1(p50.base)} | ${f1(p50.head)} | +${f1(p50.change)} (+${f1(p50.changePct!)}%) | ±${f1(Math.max(p50.spread, p50.floor))} | ▲ regression |`);
  t.match(md, /\| P50 latency \(ms\) \| Baseline \| [\d.]+ \| [\d.]+ \| [+−±][\d.]+ \([+−±][\d.]+%\) \| ±[\d.]+ \| {2}\|/, 'an unmarked row');
  t.match(md, /\| Errors \(% of requests\) \| Baseline \| 0\.00 \| 0\.00 \| ±0\.00 \| ±0\.10 \| {2}\|/, 'no percentage of a zero');
  t.match(md, /max\(5%, 1 ms\) for p50s, max\(20%, 2 ms\) for p99s and p99\.9s/, 'the rule is printed with its constants');
  t.ok(md.endsWith(`\n${summaryLine(c)}\n`));
  t.equal(summaryLine(c), `${c.regressions} regressions, ${c.improvements} improvement${c.improvements === 1 ? '' : 's'} (changes within the spread between repetitions or under the floor are not marked)`);
  t.equal(summaryLine({ ...c, regressions: 1, improvements: 1 }), '1 regression, 1 improvement (changes within the spread between repetitions or under the floor are not marked)');
});
