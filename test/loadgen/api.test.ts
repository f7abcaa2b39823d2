import t, { type Test } from 'tap';
import { spawnCli, startSink, type RunningProcess } from '../helpers/sink.js';
import { sleep } from './fixtures/loadgen.js';

interface Bench {
  id: string;
  status: string;
  progress: { done: number } | null;
  result: { requests: number; ok: number; latencyMs: { p50: number } } | null;
  percentiles: { p: number; ms: number }[] | null;
}

async function startLoadgenServer(t: Test): Promise<RunningProcess & { origin: string }> {
  const p = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  return { ...p, origin: `http://127.0.0.1:${p.ready.port as number}` };
}

async function json<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

t.test('REST API: validate, run, 409, progress over SSE, cancel, complete', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '20']);
  const lg = await startLoadgenServer(t);
  const api = `${lg.origin}/v1/benchmarks`;
  const post = (body: unknown): Promise<Response> => fetch(api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  // A bad spec: 400, OpenAI-shaped, naming the field.
  for (const [body, field] of [
    [{ url: sink.url, workers: 0 }, 'workers'],
    [{ workers: 2 }, 'url'],
    [{ url: sink.url, arrival: 'bursty' }, 'arrival'],
    [{ url: sink.url, speed: 3 }, 'speed'],
    [{ url: sink.url, requests: 5, durationS: 1 }, 'requests'],
    [{ url: sink.url, requestBytes: 3 }, 'requestBytes'],
    // Each thread holds its own body: 17 × 64 MiB is over 1 GiB.
    [{ url: sink.url, threads: 17, workers: 17, requestBytes: 64 * 1024 * 1024 }, 'requestBytes'],
    // Timers beyond 2^31 - 1 ms fire at once; a scheduler stepping through 1e12 arrivals a second never ends.
    [{ url: sink.url, durationS: 3_000_000 }, 'durationS'],
    [{ url: sink.url, warmupS: 3_000_000 }, 'warmupS'],
    [{ url: sink.url, timeoutS: 3_000_000 }, 'timeoutS'],
    [{ url: sink.url, rate: 1e12 }, 'rate'],
    [{ url: sink.url, requests: 3e9 }, 'requests'],
    [{ url: `${sink.url}#frag` }, 'url'],
    [{ url: sink.url, model: '' }, 'model'],
    // Headers every request would then fail on, or that would split the request.
    [{ url: sink.url, headers: { 'bad name': 'x' } }, 'headers'],
    [{ url: sink.url, headers: { 'x-a': 'b\r\nX-Injected: 1' } }, 'headers'],
    [{ url: sink.url, headers: { 'x-a': 'nul\u0000' } }, 'headers'],
    [{ url: sink.url, headers: { 'Content-Length': '5' } }, 'headers'],
    [{ url: sink.url, headers: { host: 'elsewhere' } }, 'headers'],
    [{ url: sink.url, headers: { 'Transfer-Encoding': 'chunked' } }, 'headers'],
    [{ url: sink.url, key: 'k', headers: { Authorization: 'Bearer other' } }, 'headers'],
    [{ url: sink.url, key: 'sk-bad\r\nX-Injected: 1' }, 'key'],
    [{ url: sink.url, key: 'sk-nul\u0000' }, 'key'],
  ] as const) {
    const res = await post(body);
    t.equal(res.status, 400, `${JSON.stringify(body)}: 400`);
    const e = await json<{ error: { message: string; type: string; param: string } }>(res);
    t.equal(e.error.type, 'invalid_request_error');
    t.equal(e.error.param, field, `names ${field}: ${e.error.message}`);
  }
  const notJson = await fetch(api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
  t.equal(notJson.status, 400);

  // A long run, then a second POST while it runs.
  const created = await post({ url: sink.url, workers: 4, durationS: 60 });
  t.equal(created.status, 201);
  const a = await json<Bench>(created);
  t.equal(a.status, 'running');
  const busy = await post({ url: sink.url, requests: 5 });
  t.equal(busy.status, 409, 'a second run while one runs: 409');
  t.match((await json<{ error: { code: string } }>(busy)).error.code, 'benchmark_running');

  // SSE: progress events arrive while it runs.
  const events = await fetch(`${api}/${a.id}/events`);
  t.equal(events.headers.get('content-type'), 'text/event-stream');
  const reader = events.body!.getReader();
  let text = '';
  while (!/event: progress\ndata: \{[^\n]*"done":[1-9]/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  t.match(text, /event: progress/, 'progress events over SSE');

  const mid = await json<Bench>(await fetch(`${api}/${a.id}`));
  t.equal(mid.status, 'running');
  t.ok(mid.progress && mid.progress.done > 0, 'GET shows progress');
  const list = await json<{ data: Bench[] }>(await fetch(api));
  t.equal(list.data[0]!.id, a.id, 'GET lists the run');

  // Cancel: the SSE stream ends with a done event, and the run reports what it counted.
  const del = await fetch(`${api}/${a.id}`, { method: 'DELETE' });
  t.equal(del.status, 200);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  t.match(text, /event: done\ndata: \{[^\n]*"status":"canceled"/, 'the event stream ends with the canceled run');
  const canceled = await json<Bench>(await fetch(`${api}/${a.id}`));
  t.equal(canceled.status, 'canceled');
  t.ok(canceled.result && canceled.result.requests > 0, 'a canceled run keeps its partial result');

  // The next run may start now, and completes.
  const b = await json<Bench>(await post({ url: sink.url, workers: 5, requests: 60 }));
  let done: Bench;
  for (;;) {
    done = await json<Bench>(await fetch(`${api}/${b.id}`));
    if (done.status !== 'running') break;
    await sleep(50);
  }
  t.equal(done.status, 'completed');
  t.equal(done.result!.requests, 60);
  t.equal(done.result!.ok, 60);
  t.ok(done.result!.latencyMs.p50 >= 20, 'latency is at least the sink wait');
  t.ok(done.percentiles!.length > 5, 'a percentile curve for the page');
  // Its events endpoint, after the end, answers with the final state at once.
  const after = await (await fetch(`${api}/${b.id}/events`)).text();
  t.match(after, /event: done/);

  t.equal((await fetch(`${api}/nope`)).status, 404);
  t.equal((await fetch(`${api}/nope`, { method: 'DELETE' })).status, 404);
  t.equal((await fetch(`${lg.origin}/v1/unknown`)).status, 404);
});
