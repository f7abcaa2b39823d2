// /metrics: an optional bearer token (metrics.token_env), and a flood of
// scrapes shares aggregations instead of piling them up.
import t from 'tap';
import { runCli } from '../helpers/sink.js';
import { startEchoUpstream, startGateway, writeConfig } from '../helpers/gateway.js';

const TOKEN_ENV = 'SLUICE_TEST_METRICS_TOKEN';

t.test('with metrics.token_env, /metrics wants that bearer token', async (t) => {
  const echo = await startEchoUpstream(t);
  const token = 'metrics-token-0123456789';
  const gw = await startGateway(t, { workers: 2, models: { m: { upstreams: [{ url: echo.url }] } }, metrics: { token_env: TOKEN_ENV } }, { [TOKEN_ENV]: token });
  for (const [name, headers] of [
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer metrics-token-0123456780' }],
    ['a token that is not a bearer', { authorization: `Basic ${token}` }],
  ] as Array<[string, Record<string, string>]>) {
    const res = await fetch(`${gw.origin}/metrics`, { headers });
    t.equal(res.status, 401, `${name}: 401`);
    t.match(await res.json(), { error: { type: 'authentication_error', code: 'invalid_api_key' } }, `${name}: OpenAI-shaped`);
  }
  const ok = await fetch(`${gw.origin}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(ok.status, 200, 'the token: 200');
  const text = await ok.text();
  t.match(text, /sluice_requests_total\{model="-",status="401"\} 3/, 'the refused scrapes are counted');
  t.notMatch(text + gw.output(), token, 'the token is in neither the metrics nor the log');
  t.equal((await fetch(`${gw.origin}/healthz`)).status, 200, 'health needs no token');
});

t.test('metrics.token_env naming an unset variable: exit 2 naming the field', async (t) => {
  const path = writeConfig({ workers: 1, store: { kind: 'none' }, models: { m: { upstreams: [{ url: 'http://127.0.0.1:9/v1' }] } }, metrics: { token_env: TOKEN_ENV } });
  const r = await runCli(['gateway', '--config', path], undefined, { [TOKEN_ENV]: '' });
  t.equal(r.code, 2);
  t.match(r.stderr, `metrics.token_env: environment variable ${TOKEN_ENV} is not set`);
  const bad = await runCli(['gateway', '--config', writeConfig({ models: { m: { upstreams: [{ url: 'http://127.0.0.1:9/v1' }] } }, metrics: { token: 'x' } })]);
  t.equal(bad.code, 2, 'an unknown field under metrics: exit 2');
  t.match(bad.stderr, /metrics\.token: unknown field/);
});

t.test('concurrent scrapes share one aggregation', async (t) => {
  const echo = await startEchoUpstream(t);
  const gw = await startGateway(t, { workers: 2, models: { m: { upstreams: [{ url: echo.url }] } } });
  const scrapes = 200;
  const answers = await Promise.all(
    Array.from({ length: scrapes }, async () => {
      const res = await fetch(`${gw.origin}/metrics`);
      return { status: res.status, text: await res.text() };
    }),
  );
  t.ok(
    answers.every((a) => a.status === 200 && a.text.includes('sluice_in_flight_requests')),
    `all ${scrapes} concurrent scrapes answered with the metrics`,
  );
  const last = await (await fetch(`${gw.origin}/metrics`)).text();
  // Summed over the 2 workers: each aggregation collects both. One per scrape would be 2 x 201.
  const m = /sluice_metrics_aggregations_total (\d+)/.exec(last);
  t.ok(m, 'the aggregation count is exported');
  const aggregations = Number(m![1]) / 2;
  t.ok(aggregations < scrapes / 4, `${scrapes + 1} scrapes took ${aggregations} aggregations`);
});
