// Closed-loop workers start spread over one cycle (the warm-up's mean latency),
// so they reach the server as a steady stream, not in bursts of all of them.
import t from 'tap';
import { createServer } from 'node:http';
import { loadgen } from './fixtures/loadgen.js';

t.test('after a warm-up, closed-loop workers arrive spread out, not in waves', async (t) => {
  const arrivals: number[] = [];
  const server = createServer((req, res) => {
    arrivals.push(performance.now());
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end('{"id":"x","object":"chat.completion","choices":[]}');
      }, 100);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;

  const workers = 10;
  const r = await loadgen(`http://127.0.0.1:${port}/v1`, ['--workers', String(workers), '--threads', '2', '--warmup', '300ms', '--duration', '1.5s']);
  t.equal(r.errors, 0);
  // Each worker can finish at most one request per 100 ms, and the spread start
  // does not count against the rate.
  t.ok(r.rps <= workers * 10 + 0.5, `rps ${r.rps} <= ${workers * 10}`);
  t.ok(r.rps >= workers * 10 * 0.85, `rps ${r.rps} close to ${workers * 10}`);

  // Steady state: the last second but the final cycle. Started together, all
  // 10 would arrive within a few ms of each other every 100 ms; spread, ~10 ms apart.
  const end = arrivals[arrivals.length - 1]!;
  const steady = arrivals.filter((a) => a >= end - 900 && a <= end - 100);
  t.ok(steady.length >= 5 * workers, `${steady.length} arrivals in the steady window`);
  let most = 0;
  for (let i = 0, j = 0; i < steady.length; i++) {
    while (steady[i]! - steady[j]! > 5) j++;
    most = Math.max(most, i - j + 1);
  }
  t.ok(most <= workers / 2, `at most ${most} of ${workers} workers arrived within any 5 ms (together: all ${workers})`);
});
