// Hostile input at the HTTP edge: each gets a 4xx/5xx in OpenAI's shape, and
// no worker dies, no client-chosen text grows without bound, and nothing the
// gateway refused reaches the upstream.
import t from 'tap';
import http from 'node:http';
import { startSink } from '../helpers/sink.js';
import { auth, newKey, startEchoUpstream, startGateway, type GatewayHandle } from '../helpers/gateway.js';
import { startRawServer } from '../helpers/h1-server.js';

/** A request sent exactly as given: fetch would normalise `..` and `%2e%2e` away. */
function rawRequest(gw: GatewayHandle, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** {"model":…,"a":[[[…]]]} nested `depth` deep: V8 parses it, but cannot serialise it again. */
const deep = (fields: Record<string, unknown>, depth = 100_000): string => JSON.stringify(fields).slice(0, -1) + ',"a":' + '['.repeat(depth) + ']'.repeat(depth) + '}';

t.test('hostile paths, keys and bodies get their status and never take a worker down', async (t) => {
  const echo = await startEchoUpstream(t);
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: echo.url }] }, renamed: { upstreams: [{ url: echo.url, model: 'upstream-name' }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
    limits: { max_body_bytes: 1 << 20 },
  });
  const pids = gw.workerPids();
  t.equal(pids.length, 1);
  const post = (body: string, secret = key.secret) => fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(secret), body });

  const badEscape = await fetch(`${gw.url}/models/%ZZ`, { headers: auth(key.secret) });
  t.equal(badEscape.status, 404, 'a malformed %-escape in a model id: 404');
  t.equal((await badEscape.json()).error.code, 'model_not_found');

  for (const [name, body] of [
    ['streamed (the gateway adds stream_options)', deep({ model: 'm', stream: true })],
    ['model renamed for the upstream', deep({ model: 'renamed' })],
  ]) {
    const res = await post(body!);
    t.equal(res.status, 400, `a body nested 100,000 deep, ${name}: 400`);
    t.equal((await res.json()).error.code, 'invalid_request_body');
  }

  const opts = await post('{"model":"m","stream":true,"stream_options":"abc"}');
  t.equal(opts.status, 400, 'stream_options that is not an object: 400');
  t.equal((await opts.json()).error.param, 'stream_options');
  const nullOpts = await post('{"model":"m","stream":true,"stream_options":null}');
  t.equal(nullOpts.status, 200, 'stream_options null, as OpenAI allows: forwarded');
  await nullOpts.text();
  t.equal(JSON.parse(echo.requests.at(-1)!.body.toString()).stream_options.include_usage, true, 'with include_usage asked for');

  const longKey = await post('{"model":"m"}', `sk-${'x'.repeat(300)}`);
  t.equal(longKey.status, 401, 'a 303-character key: 401, unread');
  t.equal((await longKey.json()).error.code, 'invalid_api_key');

  for (const path of ['/v1/../admin/v1/keys', '/v1/%2e%2e/%2E%2e/secret', '/v1/./chat/completions', '/v1/models/..']) {
    const res = await rawRequest(gw, 'POST', path, auth(key.secret), '{"model":"m"}');
    t.equal(res.status, 400, `${path}: 400`);
    t.equal(res.json.error.code, 'invalid_path');
  }
  const dotted = await rawRequest(gw, 'POST', '/v1/chat/completions.v2?x=../y', auth(key.secret), '{"model":"m"}');
  t.equal(dotted.status, 200, 'dots inside a segment, and in the query, are not dot segments');
  t.equal(echo.requests.length, 2, 'nothing refused reached the upstream');

  const huge = 'q'.repeat(100_000);
  const unknown = await post(JSON.stringify({ model: huge }));
  t.equal(unknown.status, 404);
  const message: string = (await unknown.json()).error.message;
  t.ok(message.length < 400, `the unknown model's name is clipped in the message (${message.length} characters)`);
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.notMatch(metrics, 'qqqqqqqq', 'an unknown model name is never a metrics label');
  t.match(metrics, /sluice_requests_total\{model="-",status="404"\} 2/, 'unknown models are counted under "-"');

  const ok = await post('{"model":"m"}');
  t.equal(ok.status, 200, 'still serving');
  t.same(gw.workerPids(), pids, 'no worker died');
});

t.test('a buffered response whose body stalls: 504; a 201 keeps its reason phrase', async (t) => {
  const upstream = await startRawServer(t, (req, conn) => {
    if (req.path.includes('stall')) void conn.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{');
    else void conn.write('HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
  });
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: `${upstream.origin}/v1` }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
    timeouts: { body_ms: 300 },
  });
  const stalled = await fetch(`${gw.url}/stall`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
  t.equal(stalled.status, 504);
  t.equal((await stalled.json()).error.code, 'upstream_timeout');
  const created = await fetch(`${gw.url}/files`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
  t.equal(created.status, 201);
  t.equal(created.statusText, 'Created');
});

t.test('an upstream status outside 100-599 is a bad response: 502', async (t) => {
  const upstream = await startRawServer(t, (_req, conn) => void conn.write('HTTP/1.1 999 Status\r\ncontent-length: 0\r\n\r\n'));
  const sink = await startSink(t);
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: `${upstream.origin}/v1` }] }, ok: { upstreams: [{ url: sink.url }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
  });
  const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
  t.equal(res.status, 502);
  t.match((await res.json()).error.message, /invalid HTTP response/);
});
