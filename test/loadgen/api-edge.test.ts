// The REST API's edge: cross-site and DNS-rebinding requests, secrets in what
// it returns, malformed paths and oversize bodies.
import t from 'tap';
import { request } from 'node:http';
import { runCli, spawnCli } from '../helpers/sink.js';
import { closedPort } from './fixtures/loadgen.js';
import { hostAllowed } from '../../loadgen/server.js';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** node:http, not fetch: fetch will not send the Host and Origin a browser under attack would. */
function raw(port: number, method: string, path: string, headers: Record<string, string | number> = {}, body?: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const errorOf = (r: Raw): { message: string; type: string; param: string | null; code: string | null } =>
  (JSON.parse(r.body) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;

t.test('cross-site and DNS-rebinding requests cannot use the API', async (t) => {
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const port = lg.ready.port as number;
  const target = await closedPort();
  // A short run that would start if the request got through.
  const spec = JSON.stringify({ url: `http://127.0.0.1:${target}/v1`, requests: 1, workers: 1 });
  const own = `127.0.0.1:${port}`;

  const attacks: [string, Record<string, string>, number][] = [
    ['a simple cross-site POST (text/plain, no preflight)', { 'content-type': 'text/plain', origin: 'http://evil.example', host: `attacker.example:${port}` }, 403],
    ['DNS rebinding: same-origin to the browser, the attacker\'s name in Host', { 'content-type': 'application/json', origin: `http://attacker.example:${port}`, host: `attacker.example:${port}` }, 403],
    ['DNS rebinding without an Origin', { 'content-type': 'application/json', host: `attacker.example:${port}` }, 403],
    ['a cross-origin POST to our own Host', { 'content-type': 'application/json', origin: 'http://evil.example', host: own }, 403],
    ['an opaque origin (sandboxed frame, file:)', { 'content-type': 'application/json', origin: 'null', host: own }, 403],
    ['another port on loopback is another origin', { 'content-type': 'application/json', origin: `http://127.0.0.1:${port + 1}`, host: own }, 403],
    ['text/plain from our own origin', { 'content-type': 'text/plain', origin: `http://${own}`, host: own }, 415],
    ['a form post', { 'content-type': 'application/x-www-form-urlencoded', host: own }, 415],
    ['no content type', { host: own }, 415],
  ];
  for (const [what, headers, status] of attacks) {
    const r = await raw(port, 'POST', '/v1/benchmarks', headers, spec);
    t.equal(r.status, status, `${what}: ${status}`);
    const e = errorOf(r);
    t.type(e.message, 'string', 'an OpenAI-shaped error');
    t.ok('param' in e && 'code' in e && 'type' in e);
  }
  t.equal(errorOf(await raw(port, 'POST', '/v1/benchmarks', { host: own, 'content-type': 'text/plain' }, spec)).param, 'Content-Type', '415 names Content-Type');
  // The preflight a browser sends before a cross-origin JSON POST or a DELETE is never granted.
  const preflight = await raw(port, 'OPTIONS', '/v1/benchmarks', { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' });
  t.not(preflight.status, 204);
  t.not(preflight.status, 200);
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'no CORS grant');
  // Reads too: a rebound page must not list runs, or read the page.
  t.equal((await raw(port, 'GET', '/v1/benchmarks', { host: `attacker.example:${port}` })).status, 403);
  t.equal((await raw(port, 'GET', '/', { host: `attacker.example:${port}` })).status, 403);
  t.equal((await raw(port, 'GET', '/v1/benchmarks', { host: 'evil.example@127.0.0.1' })).status, 403, 'userinfo in Host');

  // Nothing started.
  const list = JSON.parse((await raw(port, 'GET', '/v1/benchmarks')).body) as { data: unknown[] };
  t.same(list.data, [], 'no run was started by any of them');

  // What is ours: IP literals, localhost, with our origin or none.
  for (const host of [own, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
    t.equal((await raw(port, 'GET', '/v1/benchmarks', { host })).status, 200, `Host ${host}`);
  }
  const ok = await raw(port, 'POST', '/v1/benchmarks', { 'content-type': 'application/json; charset=utf-8', origin: `http://localhost:${port}`, host: `localhost:${port}` }, spec);
  t.equal(ok.status, 201, 'same-origin JSON POST (what the web page sends)');
  const id = (JSON.parse(ok.body) as { id: string }).id;
  t.equal((await raw(port, 'DELETE', `/v1/benchmarks/${id}`, { origin: 'http://evil.example', host: own })).status, 403, 'a cross-origin DELETE');
});

t.test('Host: IP literals, localhost and the --host address are ours; other names are not', async (t) => {
  for (const host of ['127.0.0.1', '127.0.0.1:8090', '[::1]:8090', '10.1.2.3:80', 'localhost', 'LocalHost:1', 'bench.internal:8090']) {
    t.ok(hostAllowed(host, 'bench.internal'), host);
  }
  for (const host of ['attacker.example', 'attacker.example:8090', 'localhost.attacker.example', '127.0.0.1.nip.io', 'evil@127.0.0.1', '127.0.0.1/x', '', 'bench.internal']) {
    t.notOk(hostAllowed(host, '127.0.0.1'), JSON.stringify(host));
  }
});

t.test('secrets are masked in every view of a run; a URL with userinfo is refused', async (t) => {
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const port = lg.ready.port as number;
  const target = await closedPort();
  const json = { 'content-type': 'application/json' };
  // The key and an Authorization header exclude each other: two runs.
  const secrets = ['sk-key-SECRET1', 'Bearer SECRET2', 'SECRET3', 'SECRET4', 'sess=SECRET5', 'Basic SECRET6', 'SECRET7'];
  const specs = [
    { key: secrets[0], headers: { 'X-API-Key': secrets[2], 'api-key': secrets[3], Cookie: secrets[4], 'proxy-authorization': secrets[5], 'x-session-token': secrets[6], 'x-trace': 'visible-value' } },
    { headers: { Authorization: secrets[1], 'x-trace': 'visible-value' } },
  ];
  for (const [i, extra] of specs.entries()) {
    const spec = { url: `http://127.0.0.1:${target}/v1`, requests: 1, workers: 1, ...extra };
    const created = await raw(port, 'POST', '/v1/benchmarks', json, JSON.stringify(spec));
    t.equal(created.status, 201);
    const id = (JSON.parse(created.body) as { id: string }).id;
    let done: Raw;
    for (;;) {
      done = await raw(port, 'GET', `/v1/benchmarks/${id}`);
      if (!done.body.includes('"status":"running"')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const views: [string, Raw][] = [
      ['201 body', created],
      ['GET one', done],
      ['GET list', await raw(port, 'GET', '/v1/benchmarks')],
      ['SSE done event', await raw(port, 'GET', `/v1/benchmarks/${id}/events`)],
    ];
    for (const [what, r] of views) {
      for (const s of secrets) t.notOk(r.body.includes(s.replace(/^(Bearer|Basic) /, '')), `run ${i}, ${what}: ${s} is not shown`);
      t.ok(r.body.includes('visible-value'), `run ${i}, ${what}: other headers are shown`);
      if (i === 0) t.ok(r.body.includes('"key":"***"'), `${what}: the key is masked`);
    }
    const shown = (JSON.parse(done.body) as { spec: { headers: Record<string, string> } }).spec.headers;
    if (i === 0) t.equal(shown['X-API-Key'], '***');
    else t.equal(shown.Authorization, '***');
  }

  const withUser = await raw(port, 'POST', '/v1/benchmarks', json, JSON.stringify({ url: `http://user:PASSWORD9@127.0.0.1:${target}/v1`, requests: 1 }));
  t.equal(withUser.status, 400, 'userinfo in the URL: 400 (the workers would drop it)');
  t.equal(errorOf(withUser).param, 'url');
  t.notOk(withUser.body.includes('PASSWORD9'), 'the password is not echoed');
  const cli = await runCli(['loadgen', 'run', '--url', `http://user:PASSWORD9@127.0.0.1:${target}/v1`, '--requests', '1']);
  t.equal(cli.code, 2);
  t.match(cli.stderr, /--url/);
  t.notOk(cli.stderr.includes('PASSWORD9'));
});

t.test('a malformed %-escape is a 404; an oversize body is a 413; both OpenAI-shaped', async (t) => {
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const port = lg.ready.port as number;
  for (const [method, path] of [['GET', '/v1/benchmarks/%E0%A4%A'], ['GET', '/v1/benchmarks/%E0%A4%A/events'], ['DELETE', '/v1/benchmarks/%'], ['GET', '/v1/benchmarks/%ZZ']]) {
    const r = await raw(port, method!, path!);
    t.equal(r.status, 404, `${method} ${path}: 404`);
    t.equal(errorOf(r).type, 'not_found_error');
  }
  t.equal((await raw(port, 'GET', '/v1/benchmarks')).status, 200, 'the server is still up');

  const json = { 'content-type': 'application/json' };
  // Valid JSON, one byte over 1 MiB: a long string in an unknown field.
  const over = JSON.stringify({ url: 'http://127.0.0.1:9/v1', pad: 'x'.repeat(1024 * 1024) });
  const declared = await raw(port, 'POST', '/v1/benchmarks', json, over);
  t.equal(declared.status, 413, 'an oversize body with a Content-Length: 413');
  const e = errorOf(declared);
  t.equal(e.type, 'invalid_request_error');
  t.equal(e.code, 'request_too_large');
  const chunked = await raw(port, 'POST', '/v1/benchmarks', { ...json, 'transfer-encoding': 'chunked' }, over);
  t.equal(chunked.status, 413, 'an oversize chunked body: 413');
  t.equal(errorOf(chunked).code, 'request_too_large');
  const small = await raw(port, 'POST', '/v1/benchmarks', json, JSON.stringify({ url: 'http://127.0.0.1:9/v1', pad: 1 }));
  t.equal(small.status, 400, 'a body under the limit is read and validated');
  t.equal(errorOf(small).param, 'pad');
});

t.test('/healthz answers ok (for a supervisor or a deploy role)', async (t) => {
  const lg = await spawnCli(t, ['loadgen', 'serve', '--port', '0']);
  const r = await fetch(`http://127.0.0.1:${lg.ready.port as number}/healthz`);
  t.equal(r.status, 200);
  t.same(await r.json(), { status: 'ok' });
});
