import t from 'tap';
import { createServer } from 'node:net';
import { startSink, runCli } from '../helpers/sink.js';
import { auth, newKey, startGateway, waitFor, writeConfig } from '../helpers/gateway.js';

t.test('a worker killed with SIGKILL is replaced and the gateway keeps serving', async (t) => {
  const sink = await startSink(t);
  const key = newKey();
  const gw = await startGateway(t, { workers: 2, models: { m: { upstreams: [{ url: sink.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const before = gw.workerPids();
  t.equal(before.length, 2, 'two workers');
  process.kill(before[0]!, 'SIGKILL');
  t.ok(await waitFor(() => gw.workerPids().length === 2 && !gw.workerPids().includes(before[0]!)), 'a new worker replaced it');
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
    t.equal(res.status, 200);
    await res.arrayBuffer();
  }
});

t.test('refuses to start when another process holds the port', async (t) => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const port = (holder.address() as { port: number }).port;
  const r = await runCli(['gateway', '--port', String(port), '--upstream', 'http://127.0.0.1:9/v1']);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`port ${port} .*already in use`));
});

t.test('a bad config gets one line naming the field and exit 2', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ listen: { port: 'x' } }, /listen\.port/],
    [{ models: { m: { upstreams: [{ url: 'ftp://x' }] } } }, /models\.m\.upstreams\.0\.url/],
    [{ models: { m: { upstreams: [] } } }, /models\.m\.upstreams/],
    [{ keys: [{ name: 'a', sha256: 'short' }] }, /keys\.0\.sha256/],
    [{ bogus: 1 }, /bogus: unknown field/],
    [{ models: { m: { upstreams: [{ url: 'http://127.0.0.1:1/v1', api_key_env: 'SLUICE_TEST_UNSET_VAR' }] } } }, /api_key_env: environment variable SLUICE_TEST_UNSET_VAR is not set/],
  ];
  for (const [cfg, re] of cases) {
    const r = await runCli(['gateway', '--config', writeConfig(cfg)]);
    t.equal(r.code, 2, `${re}: exit 2`);
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  const missing = await runCli(['gateway', '--config', '/nonexistent/sluice.yaml']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--config: cannot read/);
  const badFlag = await runCli(['gateway', '--workers', 'many']);
  t.equal(badFlag.code, 2);
});

t.test('sluice keys hash prints the SHA-256 of stdin', async (t) => {
  const key = newKey();
  const r = await runCli(['keys', 'hash'], key.secret + '\n');
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), key.sha256);
  const empty = await runCli(['keys', 'hash'], '');
  t.equal(empty.code, 2);
});
