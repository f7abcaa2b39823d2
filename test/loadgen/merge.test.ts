import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { runCli, startSink } from '../helpers/sink.js';
import { loadgen, type Result } from './fixtures/loadgen.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-merge-'));

function hist(values: number[]): hdr.Histogram {
  const h = hdr.build();
  for (const v of values) h.recordValue(v);
  return h;
}

// Without WebAssembly initialised, hdr-histogram-js decodes into its JS implementation.
const decode = (b64: string): hdr.JsHistogram => hdr.decodeFromCompressedBase64(b64) as hdr.JsHistogram;

async function merge(...results: unknown[]): Promise<Result> {
  const files = results.map((r, i) => {
    const f = join(dir, `r${Math.random().toString(36).slice(2)}-${i}.json`);
    writeFileSync(f, JSON.stringify(r));
    return f;
  });
  const out = await runCli(['loadgen', 'merge', ...files]);
  if (out.code !== 0) throw new Error(`merge exited ${out.code}: ${out.stderr}`);
  return JSON.parse(out.stdout) as Result;
}

function fakeResult(values: number[], extra: Partial<Result> = {}): Result {
  return {
    requests: values.length,
    ok: values.length,
    errors: 0,
    errorsByKind: { refused: 0, timeout: 0, reset: 0, dropped: 0, '4xx': 0, '5xx': 0, other: 0 },
    errorsByStatus: {},
    durationS: 1,
    rps: values.length,
    latencyMs: { avg: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 },
    histogram: hdr.encodeIntoCompressedBase64(hist(values)),
    ...extra,
  };
}

t.test('merging two results equals one histogram over both', async (t) => {
  // Two skewed, disjoint distributions (µs): their merge is not an average of percentiles.
  const a = Array.from({ length: 900 }, (_, i) => 1000 + i);
  const b = Array.from({ length: 100 }, (_, i) => 250_000 + i * 1000);
  const m = await merge(fakeResult(a), fakeResult(b, { errors: 3, errorsByKind: { refused: 1, timeout: 0, reset: 0, dropped: 0, '4xx': 0, '5xx': 2, other: 0 }, errorsByStatus: { '502': 2 }, requests: 103 }));
  // As recorded by one source over both (and, like any result, encoded once).
  const both = decode(hdr.encodeIntoCompressedBase64(hist([...a, ...b])));
  const merged = decode(m.histogram);
  t.equal(merged.totalCount, 1000);
  for (const p of [50, 90, 95, 99, 99.9]) {
    t.equal(merged.getValueAtPercentile(p), both.getValueAtPercentile(p), `p${p} equals the single histogram's`);
  }
  t.equal(m.latencyMs.p50, both.getValueAtPercentile(50) / 1000, 'summaries come from the merged histogram (ms)');
  t.equal(m.latencyMs.p99, both.getValueAtPercentile(99) / 1000);
  t.equal(merged.lowestEquivalentValue(merged.maxValue), both.lowestEquivalentValue(both.maxValue), 'the same max, to the bucket');
  t.equal(m.requests, 1003);
  t.equal(m.ok, 1000);
  t.equal(m.errors, 3);
  t.equal(m.errorsByKind.refused, 1);
  t.same(m.errorsByStatus, { '502': 2 });
  t.equal(m.rps, 1000, 'rates of side-by-side sources add');
});

t.test('merging real runs', async (t) => {
  const fast = await startSink(t, ['--wait-ms', '5']);
  const slow = await startSink(t, ['--wait-ms', '50']);
  const [a, b] = await Promise.all([
    loadgen(fast.url, ['--requests', '100', '--workers', '5']),
    loadgen(slow.url, ['--requests', '50', '--workers', '5']),
  ]);
  const m = await merge(a, b);
  t.equal(m.requests, 150);
  t.equal(m.ok, 150);
  const both = decode(a.histogram);
  both.add(decode(b.histogram));
  t.equal(decode(m.histogram).totalCount, 150);
  t.equal(m.latencyMs.p50, both.getValueAtPercentile(50) / 1000);
  t.equal(m.latencyMs.p90, both.getValueAtPercentile(90) / 1000);
  t.ok(m.latencyMs.p90 >= 50, `p90 ${m.latencyMs.p90} comes from the slow run's third`);
  t.equal(m.durationS, Math.max(a.durationS, b.durationS));

  const table = await runCli(['loadgen', 'merge', '--table', join(dir, 'nothing.json')]);
  t.equal(table.code, 2, 'a missing file is bad input: exit 2');
  t.match(table.stderr, /nothing\.json/);
});

t.test('a file that is not a mergeable result: one line naming it, exit 2', async (t) => {
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify(fakeResult([1000, 2000])));
  const cases: [string, string][] = [
    ['bad-histogram.json', JSON.stringify(fakeResult([1000], { histogram: 'bm90IGEgaGlzdG9ncmFt' }))],
    ['corrupt-histogram.json', JSON.stringify(fakeResult([1000], { histogram: fakeResult([1000]).histogram.slice(0, -8) + 'AAAAAAA=' }))],
    ['bad-ttft.json', JSON.stringify({ ...fakeResult([1000]), ttftHistogram: 'garbage', itlHistogram: fakeResult([1]).histogram })],
    ['not-json.json', '{nope'],
    ['not-a-result.json', JSON.stringify({ requests: 'many' })],
  ];
  for (const [name, text] of cases) {
    const f = join(dir, name);
    writeFileSync(f, text);
    const r = await runCli(['loadgen', 'merge', good, f]);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
    t.match(r.stderr, name, 'names the file');
    t.equal(r.stdout, '', 'prints no result');
  }
});
