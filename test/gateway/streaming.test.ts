import t from 'tap';
import { request } from 'undici';
import { startSink } from '../helpers/sink.js';
import { auth, newKey, startGateway, waitFor } from '../helpers/gateway.js';
import { startRawServer, writeInPieces } from '../helpers/h1-server.js';

t.test('streamed chunks pass through incrementally', async (t) => {
  const sink = await startSink(t, ['--ttft-ms', '100', '--itl-ms', '80', '--output-tokens', '6']);
  const key = newKey();
  const gw = await startGateway(t, { models: { m: { upstreams: [{ url: sink.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const res = await request(`${gw.url}/chat/completions`, {
    method: 'POST',
    headers: auth(key.secret),
    body: JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true } }),
  });
  t.equal(res.statusCode, 200);
  t.match(String(res.headers['content-type']), /text\/event-stream/);
  const arrivals: number[] = [];
  let text = '';
  for await (const chunk of res.body) {
    arrivals.push(performance.now());
    text += chunk.toString();
  }
  const events = text.split('\n\n').filter(Boolean);
  t.equal(events.at(-1), 'data: [DONE]');
  t.equal(events.length, 1 + 6 + 1 + 1 + 1, 'role, 6 tokens, finish, usage, [DONE]');
  t.ok(arrivals.length >= 4, `the body arrived in ${arrivals.length} pieces, not one`);
  t.ok(arrivals.at(-1)! - arrivals[0]! >= 250, `spread over ${(arrivals.at(-1)! - arrivals[0]!).toFixed(0)} ms (5 × itl 80)`);
});

t.test('a client that disconnects mid-stream cancels the upstream request', async (t) => {
  const sink = await startSink(t, ['--itl-ms', '100', '--output-tokens', '100']);
  const key = newKey();
  const gw = await startGateway(t, { models: { m: { upstreams: [{ url: sink.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const ac = new AbortController();
  const res = await request(`${gw.url}/chat/completions`, {
    method: 'POST',
    headers: auth(key.secret),
    body: JSON.stringify({ model: 'm', stream: true }),
    signal: ac.signal,
  });
  let pieces = 0;
  await t.rejects(
    (async () => {
      for await (const _ of res.body) {
        if (++pieces === 3) ac.abort();
      }
    })(),
  );
  t.ok(await waitFor(async () => (await sink.stats()).aborted === 1, 3000), 'the sink saw its connection close');
  const stats = await sink.stats();
  t.equal(stats.inFlight, 0, 'nothing left in flight at the sink');
});

t.test('graceful shutdown finishes an in-flight stream, then exits 0', async (t) => {
  const sink = await startSink(t, ['--itl-ms', '100', '--output-tokens', '10']);
  const key = newKey();
  const gw = await startGateway(t, { models: { m: { upstreams: [{ url: sink.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const res = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', stream: true }) });
  const body = (async () => {
    let s = '';
    for await (const c of res.body) s += c.toString();
    return s;
  })();
  await new Promise((r) => setTimeout(r, 200));
  gw.proc.kill('SIGTERM');
  const text = await body;
  t.match(text, /data: \[DONE\]\n\n$/, 'the stream ran to its end');
  t.equal((text.match(/"content":"/g) ?? []).length, 1 + 10, 'every token arrived');
  t.equal(await gw.exited, 0, 'the gateway exited 0');
});

// Events end in a blank line, whatever the line ending (LF or CRLF).
for (const [ending, eol] of [['LF', '\n'], ['CRLF', '\r\n']] as const) {
t.test(`SSE events (${ending}) split across reads reach the client intact and as they come, while the usage event is stripped`, async (t) => {
  const { createServer } = await import('node:net');
  // A raw upstream: every event is written in two halves 15 ms apart (so the
  // gateway reads them separately), each half with a different filler, so a
  // kept view of a reused read buffer would show as corrupted text.
  const events = Array.from({ length: 12 }, (_, i) =>
    `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${String.fromCharCode(97 + i).repeat(40 + i)}"}}]}${eol}${eol}`,
  );
  const usage = `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":12,"total_tokens":17}}${eol}${eol}`;
  const done = `data: [DONE]${eol}${eol}`;
  const all = [...events, usage, done];
  let lastWriteAt = 0;
  let sawIncludeUsage = false;
  const server = createServer((sock) => {
    let req = '';
    sock.on('data', async (d: Buffer) => {
      req += d.toString('latin1');
      const headEnd = req.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(req)?.[1] ?? 0);
      if (req.length - headEnd - 4 < len) return;
      sawIncludeUsage = req.includes('"include_usage":true');
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      for (const ev of all) {
        const half = Math.floor(ev.length / 2);
        for (const part of [ev.slice(0, half), ev.slice(half)]) {
          sock.write(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
          await new Promise((r) => setTimeout(r, 15));
        }
      }
      lastWriteAt = performance.now();
      sock.end('0\r\n\r\n');
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const key = newKey();
  const gw = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: `http://127.0.0.1:${port}/v1` }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const res = await request(`${gw.url}/chat/completions`, {
    method: 'POST',
    headers: auth(key.secret),
    body: JSON.stringify({ model: 'm', stream: true }),
  });
  t.equal(res.statusCode, 200);
  let text = '';
  let firstAt = 0;
  for await (const c of res.body) {
    firstAt ||= performance.now();
    text += (c as Buffer).toString();
  }
  t.ok(sawIncludeUsage, 'the gateway asked the upstream for usage');
  t.ok(firstAt < lastWriteAt, 'the first event reached the client before the upstream wrote its last');
  t.equal(text, [...events, done].join(''), 'every event byte for byte, without the usage event the client did not ask for');
});
}

t.test('an event stream with no event boundary is passed on once 64 KiB are held, not kept to the end', async (t) => {
  // 400 KiB of one never-ending line, in 8 KiB pieces: the gateway stops looking for events and streams it.
  const piece = Buffer.alloc(8192, 'x');
  let lastWriteAt = 0;
  const upstream = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 409600\r\n\r\n');
    await writeInPieces(conn, Array.from({ length: 50 }, () => piece), 10);
    lastWriteAt = performance.now();
  });
  const key = newKey();
  const gw = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: `${upstream.origin}/v1` }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const res = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', stream: true }) });
  let bytes = 0;
  let firstAt = 0;
  for await (const c of res.body) {
    firstAt ||= performance.now();
    bytes += (c as Buffer).length;
  }
  t.equal(bytes, 409600, 'every byte arrives');
  t.ok(firstAt < lastWriteAt, 'the client got data before the upstream finished');
});
