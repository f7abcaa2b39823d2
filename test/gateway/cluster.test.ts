import t from 'tap';
import { createServer } from 'node:net';
import { mkdirSync } from 'node:fs';
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
  const up = (url: string) => ({ models: { m: { upstreams: [{ url }] } } });
  const aFile = writeConfig({});
  cases.push(
    [{}, /models: name at least one model/],
    [up('http://alice:s3cret@127.0.0.1:1/v1'), /upstreams\.0\.url: must not hold a user or password/],
    [up('http://127.0.0.1:1/v1?api-version=1'), /upstreams\.0\.url: must not have a query/],
    [up('http:///v1'), /upstreams\.0\.url: must name a host/],
    [{ ...up('http://127.0.0.1:1/v1'), shutdown: { drain_timeout_ms: 99999999999 } }, /shutdown\.drain_timeout_ms/],
    [{ ...up('http://127.0.0.1:1/v1'), timeouts: { headers_ms: 3e9 } }, /timeouts\.headers_ms/],
    [{ ...up('http://127.0.0.1:1/v1'), store: { kind: 'sqlite', path: `${aFile}/keys.db` } }, /store\.path: cannot create the directory/],
    [{ ...up('http://127.0.0.1:1/v1'), workers: 0 }, /workers: must be "auto" or an integer from 1 to 256/],
    [{ ...up('http://127.0.0.1:1/v1'), workers: 'lots' }, /workers: must be "auto" or an integer from 1 to 256/],
    [{ ...up('http://127.0.0.1:1/v1'), store: { kind: 'mongo' } }, /store\.kind: store must be \{kind: sqlite/],
    [{ ...up('http://127.0.0.1:1/v1'), store: { kind: 'redis', url: 'http://x' } }, /store.*: store must be .*redis:\/\//],
  );
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
  const emptyHost = await runCli(['gateway', '--host', '', '--upstream', 'http://127.0.0.1:9/v1']);
  t.equal(emptyHost.code, 2, '--host "": exit 2 (it listened on random ports of every interface)');
  t.match(emptyHost.stderr, /--host/);
});

t.test('workers that fail at start-up every time: the primary stops with exit 1 instead of restarting them forever', async (t) => {
  const dir = writeConfig({}) + '.d';
  mkdirSync(dir); // a directory where the SQLite file should be: the workers cannot open it
  const r = await runCli(['gateway', '--config', writeConfig({ workers: 1, models: { m: { upstreams: [{ url: 'http://127.0.0.1:9/v1' }] } }, store: { kind: 'sqlite', path: dir } })]);
  t.equal(r.code, 1);
  t.match(r.stderr + r.stdout, /workers keep failing at start-up/);
});

t.test('SIGHUP reloads instead of stopping; SIGINT drains and exits 0', async (t) => {
  const sink = await startSink(t);
  const gw = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: sink.url }] } } });
  const worker = gw.workerPids()[0];
  gw.proc.kill('SIGHUP');
  t.ok(await waitFor(() => gw.workerPids().length === 1 && gw.workerPids()[0] !== worker, 10_000), 'a new worker replaced the old one');
  t.equal(gw.proc.exitCode, null, 'the gateway is still running');
  gw.proc.kill('SIGINT');
  t.equal(await gw.exited, 0);
});

t.test('sluice keys hash prints the SHA-256 of stdin', async (t) => {
  const key = newKey();
  const r = await runCli(['keys', 'hash'], key.secret + '\n');
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), key.sha256);
  const empty = await runCli(['keys', 'hash'], '');
  t.equal(empty.code, 2);
  const padded = await runCli(['keys', 'hash'], ` ${key.secret} \n\n`);
  t.equal(padded.stdout.trim(), key.sha256, 'trimmed as the gateway trims the bearer secret');
  const nowhere = await runCli(['keys', 'list', '--store', `${writeConfig({})}.d/none.db`]);
  t.equal(nowhere.code, 2, 'keys list on a store file that does not exist: exit 2, nothing created');
  t.match(nowhere.stderr, /--store: no SQLite file/);
});
