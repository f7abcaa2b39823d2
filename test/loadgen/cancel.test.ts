// A cancel during the warm-up aborts the requests in flight instead of
// waiting for them (up to the request timeout each).
import t from 'tap';
import { spawn } from 'node:child_process';
import { CLI, spawnCli, startSink } from '../helpers/sink.js';
import { sleep } from './fixtures/loadgen.js';

t.test('REST: DELETE during the warm-up ends the run at once', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '20000']);
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const api = `http://127.0.0.1:${lg.ready.port as number}/v1/benchmarks`;
  const res = await fetch(api, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: sink.url, workers: 4, threads: 2, warmupS: 60, durationS: 5, timeoutS: 60 }),
  });
  t.equal(res.status, 201);
  const { id } = (await res.json()) as { id: string };
  await sleep(500);
  const canceledAt = Date.now();
  t.equal((await fetch(`${api}/${id}`, { method: 'DELETE' })).status, 200);
  let b: { status: string; result: { requests: number } | null };
  for (;;) {
    b = (await (await fetch(`${api}/${id}`)).json()) as typeof b;
    if (b.status !== 'running' || Date.now() - canceledAt > 15_000) break;
    await sleep(50);
  }
  const tookMs = Date.now() - canceledAt;
  t.equal(b.status, 'canceled');
  t.ok(tookMs < 3000, `canceled in ${tookMs} ms, not after the 20 s the sink holds each request`);
  t.equal(b.result?.requests, 0, 'nothing counted: measuring never started');
  // The next run may start.
  const next = await fetch(api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: sink.url, requests: 1 }) });
  t.equal(next.status, 201);
  await fetch(`${api}/${((await next.json()) as { id: string }).id}`, { method: 'DELETE' });
});

t.test('CLI: SIGINT during the warm-up exits 130 at once', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '20000']);
  const proc = spawn(process.execPath, [CLI, 'loadgen', 'run', '--url', sink.url, '--json', '--workers', '3', '--warmup', '60s', '--duration', '5s', '--timeout', '60s']);
  let stdout = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.resume();
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  await sleep(800);
  const at = Date.now();
  proc.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<string>((r) => (timer = setTimeout(() => r('hung'), 15_000)))]);
  clearTimeout(timer);
  const tookMs = Date.now() - at;
  t.equal(code, 130, 'exit 130: canceled');
  t.ok(tookMs < 3000, `exited ${tookMs} ms after SIGINT`);
  t.equal((JSON.parse(stdout) as { requests: number }).requests, 0);
});
