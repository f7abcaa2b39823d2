import t from 'tap';
import { startSink } from '../helpers/sink.js';
import { auth, closedPort, newKey, startGateway } from '../helpers/gateway.js';

t.test('each client error gets its documented status and an OpenAI error body', async (t) => {
  const sink = await startSink(t);
  const key = newKey();
  const limited = newKey();
  const gw = await startGateway(t, {
    models: { 'benchmark-model': { upstreams: [{ url: sink.url }] }, secret: { upstreams: [{ url: sink.url }] } },
    keys: [
      { name: 'k', sha256: key.sha256 },
      { name: 'limited', sha256: limited.sha256, models: ['benchmark-model'] },
    ],
    limits: { max_body_bytes: 4096 },
  });
  const url = `${gw.url}/chat/completions`;
  const cases: Array<[string, RequestInit, number, string, string]> = [
    ['no key', { method: 'POST', body: '{"model":"benchmark-model"}' }, 401, 'authentication_error', 'missing_api_key'],
    ['not a bearer', { method: 'POST', headers: { authorization: `Basic ${key.secret}` }, body: '{}' }, 401, 'authentication_error', 'missing_api_key'],
    ['unknown key', { method: 'POST', headers: auth('sk-nope'), body: '{"model":"benchmark-model"}' }, 401, 'authentication_error', 'invalid_api_key'],
    ['malformed JSON', { method: 'POST', headers: auth(key.secret), body: '{"model":' }, 400, 'invalid_request_error', 'invalid_json'],
    ['no model', { method: 'POST', headers: auth(key.secret), body: '{"messages":[]}' }, 400, 'invalid_request_error', 'missing_model'],
    ['stream not boolean', { method: 'POST', headers: auth(key.secret), body: '{"model":"benchmark-model","stream":"yes"}' }, 400, 'invalid_request_error', 'invalid_request_body'],
    ['oversize body', { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'benchmark-model', pad: 'x'.repeat(10000) }) }, 413, 'invalid_request_error', 'request_too_large'],
    ['unknown model', { method: 'POST', headers: auth(key.secret), body: '{"model":"nope"}' }, 404, 'not_found_error', 'model_not_found'],
    ['disallowed model', { method: 'POST', headers: auth(limited.secret), body: '{"model":"secret"}' }, 403, 'permission_error', 'model_not_allowed'],
  ];
  for (const [name, init, status, type, code] of cases) {
    const res = await fetch(url, init);
    t.equal(res.status, status, `${name}: ${status}`);
    const body = await res.json();
    t.equal(body.error.type, type, `${name}: type`);
    t.equal(body.error.code, code, `${name}: code`);
    t.equal(typeof body.error.message, 'string');
    t.notMatch(JSON.stringify(body), key.secret, `${name}: no secret in the body`);
    t.notMatch(JSON.stringify(body), /at .*\.js:\d+/, `${name}: no stack trace`);
  }
  const unknownPath = await fetch(`${gw.origin}/nope`);
  t.equal(unknownPath.status, 404);
  t.equal((await fetch(`${gw.url}/models`)).status, 401, '/v1/models needs a key too');
  t.equal((await sink.stats()).byPath['/v1/chat/completions'], 0, 'nothing bad reached the upstream');
});

t.test('upstream down: 502; upstream slow: 504', async (t) => {
  const key = newKey();
  const slow = await startSink(t, ['--wait-ms', '3000']);
  const gw = await startGateway(t, {
    models: {
      down: { upstreams: [{ url: `http://127.0.0.1:${await closedPort()}/v1` }] },
      slow: { upstreams: [{ url: slow.url }] },
    },
    keys: [{ name: 'k', sha256: key.sha256 }],
    timeouts: { headers_ms: 300 },
  });
  const down = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"down"}' });
  t.equal(down.status, 502);
  t.equal((await down.json()).error.code, 'upstream_error');
  const timedOut = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"slow"}' });
  t.equal(timedOut.status, 504);
  t.equal((await timedOut.json()).error.code, 'upstream_timeout');
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, /sluice_upstream_errors_total\{upstream="http:\/\/127\.0\.0\.1:\d+\/v1",kind="connect"\} 1/);
  t.match(metrics, /kind="timeout"\} 1/);
});

t.test('failover: a refused connection is retried on the next upstream; a failing upstream is skipped for its cool-down', async (t) => {
  const key = newKey();
  const sink = await startSink(t);
  const gw = await startGateway(t, {
    workers: 1,
    models: {
      m: {
        balance: 'round_robin',
        upstreams: [{ url: `http://127.0.0.1:${await closedPort()}/v1` }, { url: sink.url }],
      },
    },
    keys: [{ name: 'k', sha256: key.sha256 }],
    health: { failures: 2, cooldown_ms: 60000 },
  });
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
    t.equal(res.status, 200, `request ${i} succeeds through the second upstream`);
    await res.arrayBuffer();
  }
  t.equal((await sink.stats()).byPath['/v1/chat/completions'], 20);
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  const connectErrors = Number(/kind="connect"\} (\d+)/.exec(metrics)?.[1]);
  t.equal(connectErrors, 2, 'after 2 failures the dead upstream is no longer tried');
});
