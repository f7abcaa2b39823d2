import t from 'tap';
import { startSink } from '../helpers/sink.js';
import { loadgen } from './fixtures/loadgen.js';

t.test('exactly --requests N reach the sink, whatever the split over workers and threads', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '1']);
  let expected = 0;
  for (const [n, workers, threads] of [
    [1, 1, 1],
    [97, 7, 3],
    [250, 13, 2],
    [64, 100, 4], // more workers than requests
    [33, 2, 2],
  ] as const) {
    const r = await loadgen(sink.url, ['--requests', String(n), '--workers', String(workers), '--threads', String(threads), '--request-bytes', '300']);
    expected += n;
    t.equal(r.requests, n, `${n} requests over ${workers} workers x ${threads} threads: result counts ${n}`);
    t.equal(r.ok, n);
    t.equal(r.errors, 0);
    const stats = await sink.stats();
    t.equal(stats.byPath['/v1/chat/completions'], expected, `the sink saw ${expected} in total`);
    t.equal((stats as unknown as { bodyBytes: number }).bodyBytes, expected * 300, 'every body is exactly --request-bytes long');
  }
});

t.test('--request-bytes sizes the body exactly, streaming or not', async (t) => {
  const sink = await startSink(t);
  await loadgen(sink.url, ['--requests', '10', '--workers', '3', '--request-bytes', '4097']);
  await loadgen(sink.url, ['--requests', '10', '--workers', '3', '--request-bytes', '123', '--stream']);
  const stats = (await sink.stats()) as unknown as { bodyBytes: number; streamed: number; requests: number };
  t.equal(stats.requests, 20);
  t.equal(stats.bodyBytes, 10 * 4097 + 10 * 123);
  t.equal(stats.streamed, 10, '--stream asks for streamed responses');
});

t.test('percentiles follow the sink wait', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '40']);
  const r = await loadgen(sink.url, ['--requests', '200', '--workers', '10']);
  t.equal(r.ok, 200);
  const l = r.latencyMs;
  t.ok(l.p50 >= 40 && l.p50 < 140, `p50 ${l.p50} is about the 40 ms wait`);
  t.ok(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, 'percentiles are ordered');
  t.ok(l.avg >= 40, `avg ${l.avg} >= the wait`);
  t.ok(r.durationS >= (200 / 10) * 0.04, 'the run lasts at least requests/workers x wait');
  t.type(r.histogram, 'string');
  t.notOk(r.ttftMs, 'no streaming figures without --stream');
});

t.test('streaming reports time to first token and inter-token latency', async (t) => {
  const sink = await startSink(t, ['--ttft-ms', '60', '--itl-ms', '15', '--output-tokens', '6']);
  const r = await loadgen(sink.url, ['--requests', '20', '--workers', '5', '--stream']);
  t.equal(r.ok, 20);
  t.ok(r.ttftMs && r.itlMs, 'ttftMs and itlMs are present');
  t.ok(r.ttftMs!.p50 >= 60 && r.ttftMs!.p50 < 200, `ttft p50 ${r.ttftMs!.p50} is about 60 ms`);
  t.ok(r.itlMs!.p50 >= 10 && r.itlMs!.p50 < 100, `itl p50 ${r.itlMs!.p50} is about 15 ms`);
  // 60 ms to the first token, then 5 more at 15 ms apart.
  t.ok(r.latencyMs.p50 >= 60 + 5 * 15, `end-to-end p50 ${r.latencyMs.p50} covers the whole stream`);
});

t.test('--duration runs for about that long', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '5']);
  const r = await loadgen(sink.url, ['--duration', '1s', '--workers', '4', '--warmup', '200ms']);
  t.ok(r.requests > 0 && r.ok === r.requests);
  t.ok(Math.abs(r.durationS - 1) < 0.05, `durationS ${r.durationS}`);
  const stats = await sink.stats();
  t.ok(stats.requests >= r.requests, 'the sink saw the counted requests (and the warm-up)');
});

t.test('--header is sent with every request', async (t) => {
  // The sink honours x-sluice-wait-ms per request.
  const sink = await startSink(t);
  const r = await loadgen(sink.url, ['--requests', '20', '--workers', '4', '--header', 'x-sluice-wait-ms: 50', '--key', 'sk-test']);
  t.equal(r.ok, 20);
  t.ok(r.latencyMs.p50 >= 50, `p50 ${r.latencyMs.p50} reflects the header's 50 ms wait`);
});
