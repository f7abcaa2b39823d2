// The edge under hostile or broken input: a key that needs a store lookup has
// its body held back until the key is known; a request whose handling throws
// gets its own 500 and the worker goes on; and every answer the edge gives
// itself is counted and logged, without the secret.
import t from 'tap';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCli, startSink } from '../helpers/sink.js';
import { auth, newKey, startEchoUpstream, startGateway, waitFor, type GatewayHandle } from '../helpers/gateway.js';

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function storeKey(path: string, name: string): Promise<{ id: string; secret: string }> {
  const r = await runCli(['keys', 'create', '--store', path, '--name', name]);
  if (r.code !== 0) throw new Error(`keys create failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { id: string; secret: string };
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** A raw HTTP/1.1 connection: the test decides what is written when, and reads every response byte. */
class RawClient {
  readonly socket: net.Socket;
  received = '';
  closed = false;
  private readonly connected: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => (this.received += d.toString('latin1')));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }

  async write(data: string | Buffer): Promise<void> {
    await this.connected;
    await new Promise<void>((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Writes `total` bytes of `fill` in pieces, each handed to the kernel before the next. */
  async pump(total: number, piece = 256 * 1024, fill = 0x61): Promise<void> {
    const chunk = Buffer.alloc(piece, fill);
    for (let sent = 0; sent < total; sent += piece) await this.write(sent + piece <= total ? chunk : chunk.subarray(0, total - sent));
  }

  /** The number of complete responses with this status line seen so far. */
  count(statusLine: string): number {
    return this.received.split(`HTTP/1.1 ${statusLine}`).length - 1;
  }

  /** The body of the last response (Content-Length framed), once complete, else null. */
  lastBody(): string | null {
    const at = this.received.lastIndexOf('HTTP/1.1 ');
    const head = this.received.indexOf('\r\n\r\n', at);
    if (at < 0 || head < 0) return null;
    const len = Number(/content-length: (\d+)/i.exec(this.received.slice(at, head))?.[1] ?? -1);
    const body = this.received.slice(head + 4);
    return body.length >= len ? body.slice(0, len) : null;
  }

  close(): void {
    this.socket.destroy();
  }
}

const head = (secret: string, length: number, path = '/v1/chat/completions'): string =>
  `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${secret}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;

t.test('a key that needs a store lookup: its body waits until the key is known', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-edge-')), 'keys.db');
  const good = await storeKey(path, 'good');
  const small = await storeKey(path, 'small');
  const echo = await startEchoUpstream(t);
  const gw = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: echo.url }] } }, store: { kind: 'sqlite', path } });
  const [pid] = gw.workerPids();

  // Warm the worker's paths up, so the baseline below is not an empty process.
  const warm = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(`sk-unknown-${randomBytes(8).toString('hex')}`), body: '{"model":"m"}' });
  t.equal(warm.status, 401);
  await warm.text();
  const before = rssBytes(pid!);

  // Clients that announce 32 MiB, send 64 KiB, and keep sending after their 401 (as a brute-forcer would).
  const clients = Array.from({ length: 6 }, () => new RawClient(gw.port));
  await Promise.all(
    clients.map(async (c) => {
      await c.write(head(`sk-unknown-${randomBytes(8).toString('hex')}`, 32 * MiB) + '{"model":"m","pad":"');
      await c.pump(64 * 1024);
    }),
  );
  t.ok(await waitFor(() => clients.every((c) => c.count('401 Unauthorized') === 1)), 'each unknown key gets its 401 after 64 KiB of its 32 MiB');
  t.match(JSON.parse(clients[0]!.lastBody()!), { error: { code: 'invalid_api_key' } });
  await Promise.all(clients.map((c) => c.pump(20 * MiB)));
  await sleep(300);
  const grown = rssBytes(pid!) - before;
  t.ok(grown < 40 * MiB, `the worker did not keep the refused bodies: RSS grew ${(grown / MiB).toFixed(1)} MiB for 6 x 20 MiB sent`);

  // The connection is still usable once the refused body has gone by.
  const c0 = clients[0]!;
  await c0.pump(32 * MiB - 64 * 1024 - 20 * MiB - 20);
  await c0.write(`GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${good.secret}\r\n\r\n`);
  t.ok(await waitFor(() => c0.count('200 OK') === 1), 'a request after the refused body, on the same connection, is served');
  for (const c of clients) c.close();

  // A valid store key: its body, partly sent with the headers and the rest slowly after, arrives whole.
  const body = Buffer.from(JSON.stringify({ model: 'm', pad: randomBytes(6 * MiB).toString('base64') }));
  const c = new RawClient(gw.port);
  t.teardown(() => c.close());
  await c.write(Buffer.concat([Buffer.from(head(good.secret, body.length)), body.subarray(0, 1000)]));
  await sleep(100);
  for (let at = 1000; at < body.length; at += 512 * 1024) {
    await c.write(body.subarray(at, Math.min(body.length, at + 512 * 1024)));
    await sleep(5);
  }
  t.ok(await waitFor(() => c.lastBody() !== null, 10_000), 'the large body got an answer');
  t.match(c.received, /^HTTP\/1\.1 200 OK/);
  const echoed = JSON.parse(c.lastBody()!) as { bytes: number; sha256: string };
  t.equal(echoed.bytes, body.length, 'every byte reached the upstream');
  t.equal(echoed.sha256, createHash('sha256').update(body).digest('hex'), 'intact');

  // A small body sent with its headers in one write (held whole while the key was looked up).
  const s = new RawClient(gw.port);
  t.teardown(() => s.close());
  await s.write(head(small.secret, 13) + '{"model":"m"}');
  t.ok(await waitFor(() => s.lastBody() !== null));
  t.match(s.received, /^HTTP\/1\.1 200 OK/);
  t.equal((JSON.parse(s.lastBody()!) as { model: string }).model, 'm');

  // Chunked bodies (no Content-Length) on the same held path: a valid key's arrives whole, an unknown key's is refused.
  const chunked = await storeKey(path, 'chunked');
  const chunkedHead = (secret: string): string =>
    `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${secret}\r\ntransfer-encoding: chunked\r\n\r\n`;
  const cb = Buffer.from(JSON.stringify({ model: 'm', pad: 'z'.repeat(300_000) }));
  const ch = new RawClient(gw.port);
  t.teardown(() => ch.close());
  await ch.write(chunkedHead(chunked.secret) + `${(1000).toString(16)}\r\n`);
  await ch.write(Buffer.concat([cb.subarray(0, 1000), Buffer.from(`\r\n${(cb.length - 1000).toString(16)}\r\n`), cb.subarray(1000), Buffer.from('\r\n0\r\n\r\n')]));
  t.ok(await waitFor(() => ch.lastBody() !== null));
  t.match(ch.received, /^HTTP\/1\.1 200 OK/);
  t.equal((JSON.parse(ch.lastBody()!) as { sha256: string }).sha256, createHash('sha256').update(cb).digest('hex'), 'a chunked body, intact');
  const cu = new RawClient(gw.port);
  t.teardown(() => cu.close());
  await cu.write(chunkedHead(`sk-unknown-${randomBytes(8).toString('hex')}`) + '10000\r\n');
  await cu.pump(0x10000);
  t.ok(await waitFor(() => cu.count('401 Unauthorized') === 1), 'an unknown key with a chunked body: 401');

  // Over max_body_bytes by its Content-Length: 413 once the key is known, nothing read.
  const big = await storeKey(path, 'big');
  const b = new RawClient(gw.port);
  t.teardown(() => b.close());
  await b.write(head(big.secret, 64 * MiB) + '{"model":"m"');
  t.ok(await waitFor(() => b.lastBody() !== null));
  t.match(b.received, /^HTTP\/1\.1 413 /);
  // An empty body, announced (Content-Length: 0): held as empty, then refused for its missing model.
  const empty = await storeKey(path, 'empty');
  const e = new RawClient(gw.port);
  t.teardown(() => e.close());
  await e.write(head(empty.secret, 0));
  t.ok(await waitFor(() => e.lastBody() !== null));
  t.match(JSON.parse(e.lastBody()!), { error: { code: 'missing_model' } }, 'an empty body: 400 missing_model');
  const n = echo.requests.length;
  t.equal(n, 3, 'only the three valid requests reached the upstream');
  t.same(gw.workerPids(), [pid], 'no worker died');
});

t.test('a request whose handling throws gets a 500; the worker and its other requests go on', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-edge-')), 'keys.db');
  const broken = await storeKey(path, 'broken');
  const db = new Database(path);
  // A row no key-creating path writes, but a hand-edited or corrupted file can hold.
  db.prepare("UPDATE keys SET models = 'null' WHERE id = ?").run(broken.id);
  db.close();
  const sink = await startSink(t, ['--itl-ms', '100', '--output-tokens', '20']);
  const streamer = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: sink.url }] } },
    keys: [{ name: 'streamer', sha256: streamer.sha256 }],
    store: { kind: 'sqlite', path },
  });
  const pids = gw.workerPids();

  const stream = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(streamer.secret), body: JSON.stringify({ model: 'm', stream: true }) });
  t.equal(stream.status, 200);
  const reader = stream.body!.getReader();
  const first = await reader.read();
  t.notOk(first.done, 'the stream is under way');
  const rest = (async () => {
    let text = Buffer.from(first.value!).toString();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += Buffer.from(value).toString();
    }
  })();

  // The first is a store lookup (a promise continuation), the second a cached key (inside the uWS handler).
  for (const what of ['looked up', 'cached']) {
    const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(broken.secret), body: '{"model":"m"}' });
    t.equal(res.status, 500, `${what}: 500`);
    t.match(await res.json(), { error: { type: 'server_error', code: 'internal_error' } });
  }
  const models = await fetch(`${gw.url}/models`, { headers: auth(broken.secret) });
  t.equal(models.status, 500, '/v1/models for that key: 500');
  await models.text();

  t.match(await rest, /data: \[DONE\]\n\n$/, 'the concurrent stream ran to its end');
  t.same(gw.workerPids(), pids, 'the worker did not die');
  const ok = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(streamer.secret), body: '{"model":"m"}' });
  t.equal(ok.status, 200, 'still serving');
  await ok.text();
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, /sluice_internal_errors_total\{kind="request"\} 3/, 'each one counted');
  t.match(metrics, /sluice_internal_errors_total\{kind="unhandled_rejection"\} 0/, 'none slipped through');
  t.ok(await waitFor(() => gw.output().split('request failed inside the gateway').length - 1 === 3), 'and logged');
  t.notMatch(gw.output(), broken.secret, 'the secret is not in the log');
});

t.test("the edge's own answers are counted and logged, with no key and never the secret", async (t) => {
  const key = newKey();
  const echo = await startEchoUpstream(t);
  const gw: GatewayHandle = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: echo.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const N = 12;
  const secrets = Array.from({ length: N }, () => `sk-guess-${randomBytes(12).toString('hex')}`);
  for (const s of secrets) {
    const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(s), body: '{"model":"m"}' });
    t.equal(res.status, 401);
    await res.text();
  }
  let metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, new RegExp(`sluice_requests_total\\{model="-",status="401"\\} ${N}\\n`), `${N} wrong keys: ${N} 401s counted`);
  const line = /"key":null,"method":"POST","path":"\/v1\/chat\/completions","model":null,"status":401,"upstream":null,"stream":false,"ms":/g;
  t.ok(await waitFor(() => (gw.output().match(line) ?? []).length === N), `${N} request lines with status 401 and no key`);

  const long = `sk-${'y'.repeat(300)}`;
  const others: Array<[string, RequestInit, number]> = [
    [`${gw.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}' }, 401],
    [`${gw.url}/chat/completions`, { method: 'POST', headers: auth(long), body: '{"model":"m"}' }, 401],
    [`${gw.origin}/nowhere`, { method: 'GET' }, 404],
  ];
  for (const [url, init, status] of others) {
    const res = await fetch(url, init);
    t.equal(res.status, status, `${url}: ${status}`);
    await res.text();
  }
  // fetch normalises dot segments away: write this one raw.
  const raw = net.connect(gw.port, '127.0.0.1');
  raw.write(`GET /v1/../admin/v1/keys HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key.secret}\r\nconnection: close\r\n\r\n`);
  let rawText = '';
  await new Promise<void>((resolve) => {
    raw.on('data', (d: Buffer) => (rawText += d.toString()));
    raw.on('close', () => resolve());
  });
  t.match(rawText, /^HTTP\/1\.1 400 /, 'a dot segment: 400');

  metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, new RegExp(`sluice_requests_total\\{model="-",status="401"\\} ${N + 2}\\n`), 'a missing and an over-long key counted too');
  t.match(metrics, /sluice_requests_total\{model="-",status="404"\} 1\n/, 'an unknown route counted');
  t.match(metrics, /sluice_requests_total\{model="-",status="400"\} 1\n/, 'a dot segment counted');
  t.ok(await waitFor(() => /"path":"\/nowhere","model":null,"status":404/.test(gw.output()) && /"path":"\/v1\/\.\.\/admin\/v1\/keys","model":null,"status":400/.test(gw.output())));
  for (const s of [...secrets, long, key.secret]) {
    t.notOk(gw.output().includes(s) || metrics.includes(s), 'no secret in the log or the metrics');
  }
});

t.test('a request refused while draining is counted and logged', async (t) => {
  const sink = await startSink(t, ['--itl-ms', '100', '--output-tokens', '15']);
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: sink.url }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
    shutdown: { grace_ms: 2000, while_draining: 'refuse' },
  });
  const stream = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', stream: true }) });
  const done = stream.text();
  gw.proc.kill('SIGTERM');
  const draining = await waitFor(async () => {
    const r = await fetch(`${gw.origin}/readyz`);
    return (await r.text()).includes('draining');
  });
  t.ok(draining, 'the worker is draining');
  const refused = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: '{"model":"m"}' });
  t.equal(refused.status, 503, 'a request while draining: 503');
  await refused.text();
  t.match(await done, /data: \[DONE\]/, 'the stream in flight finished');
  t.equal(await gw.exited, 0);
  t.match(gw.output(), /"key":null,"method":"POST","path":"\/v1\/chat\/completions","model":null,"status":503,/, 'the 503 has its request line');
});

t.test('admin API answers are counted and logged too: an admin-token brute force is visible', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-admin-count-'));
  const gw = await startGateway(
    t,
    { workers: 1, models: { m: { upstreams: [{ url: 'http://127.0.0.1:9/v1' }] } }, store: { kind: 'sqlite', path: join(dir, 'k.db') }, admin: { token_env: 'ADMIN_T' } },
    { ADMIN_T: 'the-admin-token' },
  );
  const guesses = Array.from({ length: 7 }, () => `guess-${randomBytes(8).toString('hex')}`);
  for (const g of guesses) {
    const res = await fetch(`${gw.origin}/admin/v1/keys`, { headers: { authorization: `Bearer ${g}` } });
    t.equal(res.status, 401);
    await res.text();
  }
  const ok = await fetch(`${gw.origin}/admin/v1/keys`, { headers: { authorization: 'Bearer the-admin-token' } });
  t.equal(ok.status, 200);
  await ok.text();
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, /sluice_requests_total\{model="-",status="401"\} 7\n/, 'seven wrong admin tokens counted');
  t.match(metrics, /sluice_requests_total\{model="-",status="200"\} 1\n/, 'the right one too');
  const lines = /"key":null,"method":"GET","path":"\/admin\/v1\/keys","model":null,"status":401/g;
  t.ok(await waitFor(() => (gw.output().match(lines) ?? []).length === 7), 'and logged');
  for (const g of [...guesses, 'the-admin-token']) t.notOk(gw.output().includes(g), 'no token in the log');
});

t.test('403, 413 and 429 are counted and logged with the key id, never the secret', async (t) => {
  const echo = await startEchoUpstream(t);
  const dbPath = join(mkdtempSync(join(tmpdir(), 'sluice-edge-')), 'keys.db');
  const r = await runCli(['keys', 'create', '--store', dbPath, '--name', 'limited', '--models', 'm', '--rpm', '1']);
  t.equal(r.code, 0, r.stderr);
  const key = JSON.parse(r.stdout) as { id: string; secret: string };
  const gw = await startGateway(t, {
    workers: 1,
    store: { kind: 'sqlite', path: dbPath },
    limits: { max_body_bytes: 1024 },
    models: { m: { upstreams: [{ url: echo.url }] }, other: { upstreams: [{ url: echo.url }] } },
  });
  const send = async (body: string): Promise<number> => {
    const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body });
    await res.text();
    return res.status;
  };
  t.equal(await send('{"model":"other"}'), 403, 'a model the key may not use: 403');
  t.equal(await send(JSON.stringify({ model: 'm', pad: 'x'.repeat(2048) })), 413, 'a body over the limit: 413');
  t.equal(await send('{"model":"m"}'), 200, 'the one request a minute the key has');
  t.equal(await send('{"model":"m"}'), 429, 'the next: 429');
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, /sluice_requests_total\{model="other",status="403"\} 1\n/, '403 counted');
  t.match(metrics, /sluice_requests_total\{model="-",status="413"\} 1\n/, '413 counted');
  t.match(metrics, /sluice_requests_total\{model="m",status="429"\} 1\n/, '429 counted');
  for (const status of [403, 413, 429]) {
    t.ok(
      await waitFor(() => new RegExp(`"key":${JSON.stringify(key.id)},"method":"POST","path":"/v1/chat/completions","model":[^,]+,"status":${status},`).test(gw.output())),
      `the ${status} is logged with the key id`,
    );
  }
  t.notOk(gw.output().includes(key.secret) || metrics.includes(key.secret), 'no secret in the log or the metrics');
});
