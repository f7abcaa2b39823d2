import t from 'tap';
import { startSink, type SinkHandle } from '../helpers/sink.js';
import { loadgen, loadgenBackground, sleep } from './fixtures/loadgen.js';

// Stalls the sink process for a second (SIGSTOP/SIGCONT) once it has served some requests.
async function stallOnce(sink: SinkHandle): Promise<void> {
  while ((await sink.stats()).requests < 20) await sleep(20);
  sink.proc.kill('SIGSTOP');
  await sleep(1000);
  sink.proc.kill('SIGCONT');
}

t.test('a one-second stall shows in the open-loop p99 and hides in the closed-loop p99', async (t) => {
  const closedSink = await startSink(t);
  const closedRun = loadgenBackground(closedSink.url, ['--workers', '4', '--duration', '4s']);
  await stallOnce(closedSink);
  const closed = await closedRun;

  const openSink = await startSink(t);
  const openRun = loadgenBackground(openSink.url, ['--workers', '400', '--rate', '200', '--duration', '4s']);
  await stallOnce(openSink);
  const open = await openRun;

  t.ok(closed.latencyMs.max >= 800, `closed loop: the stalled requests took ${closed.latencyMs.max} ms`);
  t.ok(closed.latencyMs.p99 < 500, `closed loop hides the stall: p99 ${closed.latencyMs.p99} ms (${closed.requests} requests)`);
  t.ok(open.latencyMs.p99 >= 500, `open loop shows it: p99 ${open.latencyMs.p99} ms (${open.requests} requests)`);
  t.ok(open.latencyMs.p90 >= 100, `and a quarter of the arrivals waited: p90 ${open.latencyMs.p90} ms`);
  t.equal(open.errorsByKind.dropped, 0, 'every arrival found a free worker');
  // 200/s for 4 s; the arrival schedule does not slow down while the sink stalls.
  t.ok(open.requests >= 700 && open.requests <= 801, `open loop sent ${open.requests} of 800 scheduled arrivals`);
});

t.test('open loop: arrivals that find no free worker are dropped', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '200']);
  const r = await loadgen(sink.url, ['--workers', '2', '--rate', '100', '--requests', '100']);
  t.equal(r.requests, 100, 'every arrival is counted');
  t.ok(r.errorsByKind.dropped > 50, `${r.errorsByKind.dropped} dropped`);
  t.equal(r.ok + r.errorsByKind.dropped, 100);
  const stats = await sink.stats();
  t.equal(stats.requests, r.ok, 'dropped arrivals never reach the sink');
});

t.test('poisson arrivals average the rate', async (t) => {
  const sink = await startSink(t);
  const r = await loadgen(sink.url, ['--workers', '100', '--rate', '400', '--arrival', 'poisson', '--requests', '200', '--threads', '2']);
  t.equal(r.requests, 200);
  // A burst may still find every worker busy on a loaded machine; those are dropped, not lost.
  t.equal(r.ok + r.errorsByKind.dropped, 200);
  t.ok(r.ok >= 150, `${r.ok} sent`);
  // 200 arrivals at 400/s take about 0.5 s; a Poisson sum of 200 gaps is above 0.3 s with overwhelming odds (the arrivals cannot come sooner).
  t.ok(r.durationS > 0.3 && r.durationS < 3, `durationS ${r.durationS}`);
});
