import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startSink, runCli } from '../helpers/sink.js';
import { startRedis } from '../helpers/redis.js';
import { startGateway, waitFor, type GatewayHandle } from '../helpers/gateway.js';

const ADMIN = 'admin-token-for-tests-0123456789';

async function admin(gw: GatewayHandle, method: string, path: string, body?: unknown, token = ADMIN) {
  const res = await fetch(`${gw.origin}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** A request on a fresh connection each time, so the kernel spreads them over the workers. */
async function chat(gw: GatewayHandle, secret: string, body: Record<string, unknown> = { model: 'm' }) {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(`${gw.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: agent,
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  } finally {
    await agent.close();
  }
}

async function gatewayWith(t: Test, store: Record<string, unknown>, sinkUrl: string): Promise<GatewayHandle> {
  return startGateway(t, { models: { m: { upstreams: [{ url: sinkUrl }] } }, store, admin: { token_env: 'SLUICE_ADMIN_TOKEN' } }, { SLUICE_ADMIN_TOKEN: ADMIN });
}

for (const kind of ['sqlite', 'redis'] as const) {
  t.test(`${kind}: create, use, revoke: 401 within a second on every worker`, async (t) => {
    const sink = await startSink(t);
    const store = kind === 'sqlite' ? { kind, path: join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'k.db') } : { kind, url: (await startRedis(t)).url };
    const gw = await gatewayWith(t, store, sink.url);
    const created = await admin(gw, 'POST', '/admin/v1/keys', { name: 'alice', models: ['m'] });
    t.equal(created.status, 201);
    const secret = created.body.secret as string;
    t.match(secret, /^sk-[A-Za-z0-9_-]{43,}$/);
    const listed = await admin(gw, 'GET', '/admin/v1/keys');
    t.equal(listed.body.data.length, 1);
    t.equal(listed.body.data[0].secret, undefined, 'the secret is shown only at creation');
    for (let i = 0; i < 10; i++) t.equal((await chat(gw, secret)).status, 200, 'the new key works (and is now cached by the workers)');
    const revoked = await admin(gw, 'DELETE', `/admin/v1/keys/${created.body.id}`);
    t.equal(revoked.status, 200);
    t.type(revoked.body.revoked_at, 'number');
    const at = Date.now();
    t.ok(
      await waitFor(async () => {
        for (let i = 0; i < 8; i++) if ((await chat(gw, secret)).status !== 401) return false;
        return true;
      }, 1000),
      'every worker refuses the key within a second',
    );
    t.ok(Date.now() - at < 1500);
    t.notMatch(gw.output(), secret, 'the key never appears in the logs');
    t.notMatch(gw.output(), ADMIN, 'nor the admin token');
  });
}

t.test('the admin API rejects a missing or wrong token, and validates bodies', async (t) => {
  const sink = await startSink(t);
  const gw = await gatewayWith(t, { kind: 'sqlite', path: join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'k.db') }, sink.url);
  t.equal((await fetch(`${gw.origin}/admin/v1/keys`)).status, 401);
  const wrong = await admin(gw, 'GET', '/admin/v1/keys', undefined, 'nope');
  t.equal(wrong.status, 401);
  t.notMatch(JSON.stringify(wrong.body), ADMIN);
  const bad = await admin(gw, 'POST', '/admin/v1/keys', { name: 'x', rpm: -1 });
  t.equal(bad.status, 400);
  t.equal(bad.body.error.param, 'rpm');
  for (const [body, param] of [
    [{ name: 'x', rpm: 1e300 }, 'rpm'],
    [{ name: 'x', tpm: 9007199254740993 }, 'tpm'],
    [{ name: 'x', expires_at: 1 }, 'expires_at'],
    [{ name: 'x', expires_at: 1e20 }, 'expires_at'],
    [{ name: 'x', models: ['m', 'm'] }, 'models'],
  ] as const) {
    const r = await admin(gw, 'POST', '/admin/v1/keys', body);
    t.equal(r.status, 400, `${JSON.stringify(body)}: 400`);
    t.equal(r.body.error.param, param);
  }
  const pids = gw.workerPids();
  for (const method of ['GET', 'DELETE']) {
    const malformed = await admin(gw, method, '/admin/v1/keys/%ZZ');
    t.equal(malformed.status, 404, `${method} of a malformed %-escaped key id: 404`);
    t.equal(malformed.body.error.code, 'unknown_url');
  }
  t.same(gw.workerPids(), pids, 'no worker died');
  const off = await startGateway(t, { models: { m: { upstreams: [{ url: sink.url }] } } });
  t.equal((await fetch(`${off.origin}/admin/v1/keys`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 404, 'no token configured: admin API off');
});

/** Rate windows are calendar minutes: start a limit test early in one, so it cannot straddle two. */
async function earlyInMinute(): Promise<void> {
  const s = new Date().getSeconds();
  if (s > 45) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
}

t.test('rate limit: exactly the request past the limit gets 429 with Retry-After', async (t) => {
  const sink = await startSink(t);
  const gw = await gatewayWith(t, { kind: 'sqlite', path: join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'k.db') }, sink.url);
  const { body } = await admin(gw, 'POST', '/admin/v1/keys', { name: 'limited', rpm: 7 });
  await earlyInMinute();
  const statuses: number[] = [];
  let limited: Awaited<ReturnType<typeof chat>> | null = null;
  for (let i = 0; i < 9; i++) {
    const r = await chat(gw, body.secret);
    statuses.push(r.status);
    if (r.status === 429) limited ??= r;
  }
  t.same(statuses, [200, 200, 200, 200, 200, 200, 200, 429, 429]);
  t.ok(Number(limited?.headers['retry-after']) >= 1);
  t.equal(limited?.headers['x-ratelimit-limit-requests'], '7');
  t.equal(JSON.parse(limited!.text).error.type, 'rate_limit_error');
});

t.test('usage totals equal the sink\'s token counts, streaming and not, across a graceful restart', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '9']);
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'k.db');
  const gw = await gatewayWith(t, { kind: 'sqlite', path }, sink.url);
  const { body } = await admin(gw, 'POST', '/admin/v1/keys', { name: 'u' });
  for (let i = 0; i < 6; i++) {
    const streamed = i % 2 === 0;
    const r = await chat(gw, body.secret, { model: 'm', stream: streamed, messages: [{ role: 'user', content: 'x'.repeat(i * 100) }] });
    t.equal(r.status, 200);
    if (streamed) {
      t.notMatch(r.text, /"usage"/, 'the usage chunk we asked for is not passed to a client that did not');
      t.match(r.text, /data: \[DONE\]\n\n$/);
    }
  }
  const r = await chat(gw, body.secret, { model: 'm', stream: true, stream_options: { include_usage: true } });
  t.match(r.text, /"usage"/, 'a client that asked for usage gets it');
  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited, 0);
  const again = await gatewayWith(t, { kind: 'sqlite', path }, sink.url);
  const usage = await admin(again, 'GET', `/admin/v1/usage?key_id=${body.id}`);
  const stats = await sink.stats();
  const row = usage.body.data[0];
  t.equal(row.requests, 7);
  t.equal(row.prompt_tokens, stats.promptTokens, 'prompt tokens match the sink');
  t.equal(row.completion_tokens, stats.completionTokens, 'completion tokens match the sink');
  const cli = await runCli(['keys', 'usage', '--store', path, '--key', body.id]);
  t.equal(cli.code, 0);
  t.equal(JSON.parse(cli.stdout)[0].completionTokens, stats.completionTokens, 'sluice keys usage reads the same totals');
});

t.test('redis: two instances share keys, revocations and rate limits; Redis down: cached keys served, unknown keys 503, recovery', async (t) => {
  const sink = await startSink(t);
  const redis = await startRedis(t);
  const store = { kind: 'redis', url: redis.url };
  const a = await gatewayWith(t, store, sink.url);
  const b = await gatewayWith(t, store, sink.url);
  const shared = (await admin(a, 'POST', '/admin/v1/keys', { name: 'shared', rpm: 4 })).body;
  await earlyInMinute();
  t.equal((await chat(a, shared.secret)).status, 200);
  t.equal((await chat(b, shared.secret)).status, 200, 'a key created on one instance works on the other');
  t.equal((await chat(a, shared.secret)).status, 200);
  t.equal((await chat(b, shared.secret)).status, 200);
  const fifth = await chat(a, shared.secret);
  t.equal(fifth.status, 429, 'the limit holds across instances');

  const cached = (await admin(a, 'POST', '/admin/v1/keys', { name: 'cached' })).body;
  for (let i = 0; i < 6; i++) t.equal((await chat(b, cached.secret)).status, 200);
  await redis.stop();
  t.equal((await chat(b, cached.secret)).status, 200, 'a cached key keeps working while Redis is down');
  const unknown = await chat(b, 'sk-never-seen-before-0000000000000000000000000');
  t.equal(unknown.status, 503, 'an unknown key gets 503, not 401, while the store is down');
  await redis.restart();
  t.ok(await waitFor(async () => (await chat(b, 'sk-never-seen-before-1111111111111111111111111')).status === 401, 10000), 'recovers by itself');

  t.ok(await waitFor(async () => (await admin(a, 'GET', '/admin/v1/keys')).status === 200, 10000), 'the other instance is back too');
  const rev = (await admin(a, 'POST', '/admin/v1/keys', { name: 'rev' })).body;
  for (let i = 0; i < 4; i++) t.equal((await chat(b, rev.secret)).status, 200);
  await admin(a, 'DELETE', `/admin/v1/keys/${rev.id}`);
  t.ok(await waitFor(async () => (await chat(b, rev.secret)).status === 401, 1000), 'a revocation on one instance reaches the other within a second');
});

t.test('sluice keys create/list/revoke against a SQLite file; the file never holds the secret', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'k.db');
  const c = await runCli(['keys', 'create', '--store', path, '--name', 'cli', '--models', 'a,b', '--rpm', '10']);
  t.equal(c.code, 0);
  const created = JSON.parse(c.stdout);
  t.same(created.models, ['a', 'b']);
  const l = await runCli(['keys', 'list', '--store', path]);
  t.equal(JSON.parse(l.stdout)[0].id, created.id);
  t.notMatch(l.stdout, created.secret);
  t.notOk(readFileSync(path).includes(created.secret), 'only the hash is stored');
  const r = await runCli(['keys', 'revoke', created.id, '--store', path]);
  t.equal(r.code, 0);
  t.type(JSON.parse(r.stdout).revoked_at, 'number');
  const bad = await runCli(['keys', 'create', '--store', path]);
  t.equal(bad.code, 2, 'a missing --name exits 2');
});
