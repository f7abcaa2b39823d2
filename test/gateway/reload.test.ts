// SIGHUP reloads the config with zero failed requests; SIGTERM keeps answering
// (/readyz 503) for the grace period before it stops accepting.
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { connect } from 'node:net';
import { createServer } from 'node:http';
import { request } from 'undici';
import { stringify } from 'yaml';
import { startSink } from '../helpers/sink.js';
import { auth, newKey, startGateway, waitFor, type GatewayHandle } from '../helpers/gateway.js';
import { loadgenBackground } from '../loadgen/fixtures/loadgen.js';
import { SqliteKeyStore } from '../../gateway/store/sqlite.js';

/** Log lines of the primary (JSON on stdout) with this message. */
function lines(gw: GatewayHandle, msg: string): Array<Record<string, unknown>> {
  return gw
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((m) => m.msg === msg);
}

async function reload(t: Test, gw: GatewayHandle, config: unknown, expect: 'config reloaded' | 'reload refused; the running config stays'): Promise<void> {
  const before = lines(gw, expect).length;
  writeFileSync(gw.configPath, typeof config === 'string' ? config : stringify(config));
  gw.proc.kill('SIGHUP');
  t.ok(await waitFor(() => lines(gw, expect).length > before, 20_000), `SIGHUP: ${expect}`);
}

/** Whether /readyz (asked on a new connection each time) answers 503 within 5 s: the gateway is draining. */
const readyz503 = (gw: GatewayHandle): Promise<boolean> =>
  waitFor(async () => {
    const r = await request(`${gw.origin}/readyz`);
    await r.body.text();
    return r.statusCode === 503;
  });

const chat = (gw: GatewayHandle, secret: string, model: string): ReturnType<typeof request> =>
  request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(secret), body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });

t.test('three reloads under a closed loop of 100 users: no request fails, the new model routes, usage equals the sink', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '20']);
  const key = newKey();
  const dbPath = join(mkdtempSync(join(tmpdir(), 'sluice-reload-')), 'sluice.db');
  // Port 0 in the file: a reload keeps the port the gateway claimed at start.
  const first = {
    listen: { host: '127.0.0.1', port: 0 },
    workers: 2,
    keys: [{ name: 'k', sha256: key.sha256 }],
    store: { kind: 'sqlite', path: dbPath },
    shutdown: { grace_ms: 0 },
    log: { level: 'info', requests: false },
    models: { 'benchmark-model': { upstreams: [{ url: sink.url }] } },
  };
  const gw = await startGateway(t, first);
  const primaryPid = gw.proc.pid;
  const workersBefore = gw.workerPids();

  // A number of requests, not a duration: a run that ends on time cuts the requests in flight, which the sink counts.
  let loadDone = false;
  const load = loadgenBackground(gw.url, ['--key', key.secret, '--workers', '100', '--requests', '30000']).finally(() => (loadDone = true));
  await new Promise((r) => setTimeout(r, 1500));
  // 1: a model added.
  const second = { ...first, models: { ...first.models, 'new-model': { upstreams: [{ url: sink.url }] } } };
  await reload(t, gw, second, 'config reloaded');
  await new Promise((r) => setTimeout(r, 1000));
  // 2: an upstream's weight changed (a second entry for the same sink, weighted 3).
  const third = { ...second, models: { ...second.models, 'benchmark-model': { upstreams: [{ url: sink.url, weight: 1 }, { url: `${sink.url}`, weight: 3 }] } } };
  await reload(t, gw, third, 'config reloaded');
  await new Promise((r) => setTimeout(r, 1000));
  // 3: an invalid file: one line naming the field, the running workers keep serving.
  await reload(t, gw, { ...third, models: { 'benchmark-model': { upstreams: [{ url: sink.url, weight: 0 }] } } }, 'reload refused; the running config stays');
  t.notOk(loadDone, 'the three reloads happened under load');
  const refused = lines(gw, 'reload refused; the running config stays').at(-1)!;
  t.match(refused.error, /models\.benchmark-model\.upstreams\.0\.weight/, 'the log line names the field');

  const result = await load;
  t.equal(result.requests, 30000, 'the load ran');
  t.equal(result.errors, 0, `no request failed (${JSON.stringify(result.errorsByKind)})`);
  t.equal(gw.proc.pid, primaryPid, 'the primary stayed');
  const workersAfter = gw.workerPids();
  t.equal(workersAfter.length, 2, 'two workers serve');
  t.notOk(
    workersAfter.some((p) => workersBefore.includes(p)),
    'the workers of the first config are gone',
  );
  const routed = await chat(gw, key.secret, 'new-model');
  t.equal(routed.statusCode, 200, 'the model added by a reload is routable');
  await routed.body.text();

  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited, 0);
  const store = new SqliteKeyStore(dbPath);
  t.teardown(() => store.close());
  const rows = await store.usage();
  const total = rows.reduce((a, r) => ({ requests: a.requests + r.requests, prompt: a.prompt + r.promptTokens, completion: a.completion + r.completionTokens }), { requests: 0, prompt: 0, completion: 0 });
  const s = await sink.stats();
  t.equal(total.requests, s.requests, 'usage: every request the sink answered is counted once');
  t.equal(total.prompt, s.promptTokens, 'prompt tokens equal the sink\'s');
  t.equal(total.completion, s.completionTokens, 'completion tokens equal the sink\'s');
});

t.test('a reload during a long stream lets the stream finish', async (t) => {
  const sink = await startSink(t, ['--ttft-ms', '100', '--itl-ms', '40', '--output-tokens', '50']);
  const key = newKey();
  const cfg = { listen: { host: '127.0.0.1', port: 0 }, workers: 1, store: { kind: 'none' }, keys: [{ name: 'k', sha256: key.sha256 }], models: { m: { upstreams: [{ url: sink.url }] } }, shutdown: { grace_ms: 0 } };
  const gw = await startGateway(t, cfg);
  const res = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  t.equal(res.statusCode, 200);
  let text = '';
  const done = (async () => {
    for await (const piece of res.body) text += piece.toString();
  })();
  await new Promise((r) => setTimeout(r, 500));
  const worker = gw.workerPids()[0];
  await reload(t, gw, { ...cfg, models: { m: { upstreams: [{ url: sink.url }] }, n: { upstreams: [{ url: sink.url }] } } }, 'config reloaded');
  await done;
  t.equal((text.match(/"content":"[^"]/g) ?? []).length, 50, 'every token arrived');
  t.match(text, /data: \[DONE\]/, 'the stream ended normally');
  t.ok(await waitFor(() => !gw.workerPids().includes(worker!), 5000), 'the old worker exited once its stream was done');
  const after = await chat(gw, key.secret, 'n');
  t.equal(after.statusCode, 200, 'the new config serves');
  await after.body.text();
});

t.test('a reload whose workers cannot start leaves the running ones serving; a reload cannot move the port', async (t) => {
  const sink = await startSink(t);
  const key = newKey();
  const cfg = { listen: { host: '127.0.0.1', port: 0 }, workers: 1, store: { kind: 'none' }, keys: [{ name: 'k', sha256: key.sha256 }], models: { m: { upstreams: [{ url: sink.url }] } }, shutdown: { grace_ms: 0 } };
  const gw = await startGateway(t, cfg);
  const worker = gw.workerPids()[0];
  // Valid to the schema, fatal to a worker: the SQLite path is a directory.
  writeFileSync(gw.configPath, stringify({ ...cfg, store: { kind: 'sqlite', path: dirname(gw.configPath) } }));
  gw.proc.kill('SIGHUP');
  t.ok(await waitFor(() => lines(gw, 'reload failed; the running workers keep serving').length === 1, 10_000), 'the reload is given up');
  t.same(gw.workerPids(), [worker], 'the old worker is still the one serving');
  const r = await chat(gw, key.secret, 'm');
  t.equal(r.statusCode, 200);
  await r.body.text();
  await reload(t, gw, { ...cfg, listen: { host: '127.0.0.1', port: gw.port + 1 } }, 'reload refused; the running config stays');
  t.match(lines(gw, 'reload refused; the running config stays')[0]!.error, /^config: listen: cannot change on reload/);
  t.same(gw.workerPids(), [worker], 'nothing restarted');
});

t.test('SIGTERM: /readyz answers 503 during the grace period, requests are served with Connection: close, then the port closes', async (t) => {
  const sink = await startSink(t);
  const key = newKey();
  const gw = await startGateway(t, { workers: 1, keys: [{ name: 'k', sha256: key.sha256 }], models: { m: { upstreams: [{ url: sink.url }] } }, shutdown: { grace_ms: 1500 } });
  const ready = await request(`${gw.origin}/readyz`);
  t.equal(ready.statusCode, 200);
  await ready.body.text();
  const started = Date.now();
  gw.proc.kill('SIGTERM');
  t.ok(
    await readyz503(gw),
    'a probe on a new connection gets 503, not "connection refused"',
  );
  const served = await chat(gw, key.secret, 'm');
  t.equal(served.statusCode, 200, 'a new request during the grace period is served');
  t.equal(served.headers.connection, 'close', 'with Connection: close');
  await served.body.text();
  t.ok(Date.now() - started < 1500, 'all within the grace period');
  t.ok(
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = connect(gw.port, '127.0.0.1');
          s.once('connect', () => (s.destroy(), resolve(false)));
          s.once('error', () => resolve(true));
        }),
      5000,
    ),
    'after the grace period the port is closed',
  );
  t.equal(await gw.exited, 0);
});

t.test('SIGTERM with while_draining: refuse: new requests get 503 with Connection: close', async (t) => {
  const sink = await startSink(t);
  const key = newKey();
  const gw = await startGateway(t, { workers: 1, keys: [{ name: 'k', sha256: key.sha256 }], models: { m: { upstreams: [{ url: sink.url }] } }, shutdown: { grace_ms: 1500, while_draining: 'refuse' } });
  gw.proc.kill('SIGTERM');
  t.ok(
    await readyz503(gw),
  );
  const refused = await chat(gw, key.secret, 'm');
  t.equal(refused.statusCode, 503);
  t.equal(refused.headers.connection, 'close');
  t.match(await refused.body.text(), /shutting_down/);
  t.equal(await gw.exited, 0);
});

t.test('204 and 304 from the upstream pass through, and carry Connection: close while draining', async (t) => {
  const up = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = req.url?.endsWith('/not-modified') ? 304 : 204;
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => up.close(() => r())));
  const key = newKey();
  const url = `http://127.0.0.1:${(up.address() as { port: number }).port}/v1`;
  const gw = await startGateway(t, { workers: 1, keys: [{ name: 'k', sha256: key.sha256 }], models: { m: { upstreams: [{ url }] } }, shutdown: { grace_ms: 3000 } });
  const send = (path: string) => request(`${gw.url}${path}`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
  for (const [path, status] of [['/chat/completions', 204], ['/not-modified', 304], ['/chat/completions', 204]] as const) {
    const r = await send(path);
    t.equal(r.statusCode, status, `${path}: ${status}, and the worker is still there`);
    t.equal(await r.body.text(), '');
    t.equal(r.headers.connection, undefined, 'kept alive');
  }
  gw.proc.kill('SIGTERM');
  t.ok(
    await readyz503(gw),
  );
  const closing = await send('/chat/completions');
  t.equal(closing.statusCode, 204);
  t.equal(closing.headers.connection, 'close', 'while draining: Connection: close');
  await closing.body.text();
  t.equal(await gw.exited, 0, 'the worker never died');
});
