// H1Pool over TLS: a self-signed certificate made with the openssl CLI for
// 127.0.0.1, a node:https server on loopback, trust via `tls.ca`.
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { exchange, get, newPool, send, sleep, startRawServer, waitFor } from '../helpers/h1-server.js';
import { makeCert } from '../helpers/tls-cert.js';

const warnings: Error[] = [];
process.on('warning', (w) => warnings.push(w));

const good = makeCert('IP:127.0.0.1,DNS:localhost');
const wrongName = makeCert('DNS:other.invalid');

interface TlsServer {
  origin: string;
  tlsConnections: number;
  tcpConnections: number;
  sockets: Set<net.Socket>;
  server: https.Server;
}

/** An https server answering JSON {method, path, host, bodyLength}; `/big` answers a 5 MB chunked body. */
async function startTls(t: Test, pair = good, keepAliveTimeout = 5000): Promise<TlsServer> {
  const server = https.createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    let len = 0;
    req.on('data', (d: Buffer) => (len += d.length));
    req.on('end', () => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const piece = Buffer.alloc(1000, 120);
        for (let i = 0; i < 5 * 1024; i++) res.write(piece);
        res.end();
        return;
      }
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('0123456789');
        setTimeout(() => req.socket.destroy(), 20);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, path: req.url, host: req.headers.host, bodyLength: len }));
    });
  });
  server.keepAliveTimeout = keepAliveTimeout;
  const s: TlsServer = { origin: '', tlsConnections: 0, tcpConnections: 0, sockets: new Set(), server };
  server.on('connection', (sock: net.Socket) => {
    s.tcpConnections++;
    s.sockets.add(sock);
    sock.on('close', () => s.sockets.delete(sock));
  });
  server.on('secureConnection', () => s.tlsConnections++);
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.origin = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const sock of s.sockets) sock.destroy();
        server.close(() => r());
      }),
  );
  return s;
}

t.test('https with tls.ca: works, and the TLS connection is kept alive and reused', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert } });
  for (let i = 0; i < 5; i++) {
    const o = await send(pool, { method: 'POST', path: `/v1/x?i=${i}`, headers: ['content-type', 'application/json'], body: Buffer.from('{"a":1}') });
    t.same(o.violations, []);
    t.equal(o.status, 200);
    t.strictSame(JSON.parse(o.body.toString()), { method: 'POST', path: `/v1/x?i=${i}`, host: srv.origin.slice('https://'.length), bodyLength: 7 });
  }
  t.equal(srv.tlsConnections, 1, 'one TLS handshake for five requests');
  t.equal(pool.stats().connects, 1);
});

t.test('https with tls.ca as a string works too', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert.toString() } });
  t.equal((await send(pool, get('/s'))).status, 200);
});

t.test('https without the CA: UPSTREAM_CONNECT_FAILED, notSent true, nothing reaches the server', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/'));
  await sleep(50);
  t.same(o.violations, []);
  t.strictSame(o.events, ['error']);
  t.equal(o.error?.code, 'UPSTREAM_CONNECT_FAILED');
  t.equal(o.error?.notSent, true);
  t.equal(o.error?.errno, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'errno carries the TLS error code');
  t.equal(srv.tlsConnections, 0);
  t.strictSame(pool.stats(), { open: 0, busy: 0, idle: 0, queued: 0, connects: 0 });
});

t.test('https with rejectUnauthorized: false works without the CA', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { rejectUnauthorized: false } });
  const o = await send(pool, get('/insecure'));
  t.equal(o.status, 200);
  t.equal(JSON.parse(o.body.toString()).path, '/insecure');
});

t.test('https: a trusted certificate for another name fails the identity check', async (t) => {
  const srv = await startTls(t, wrongName);
  const pool = newPool(t, srv.origin, { tls: { ca: wrongName.cert } });
  const o = await send(pool, get('/'));
  t.equal(o.error?.code, 'UPSTREAM_CONNECT_FAILED');
  t.equal(o.error?.notSent, true);
  t.equal(o.error?.errno, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

t.test('https: the TLS handshake counts toward connectTimeoutMs (server never answers the ClientHello)', async (t) => {
  const srv = await startRawServer(t); // plain TCP: accepts, reads, never answers
  const pool = newPool(t, `https://127.0.0.1:${srv.port}`, { connectTimeoutMs: 300, tls: { ca: good.cert } });
  const start = performance.now();
  const o = await send(pool, get('/'));
  const took = o.endedAt - start;
  await sleep(50);
  t.same(o.violations, []);
  t.equal(o.error?.code, 'UPSTREAM_CONNECT_TIMEOUT');
  t.equal(o.error?.notSent, true);
  t.ok(took >= 250 && took < 5000, `fired after ${took.toFixed(0)} ms`);
  t.ok(await waitFor(() => srv.conns[0]?.closed === true), 'the pool closed the socket');
  t.equal(pool.stats().open, 0);
});

t.test('https: a 5 MB chunked body with a handler that pauses on every chunk arrives intact; the socket is reused after', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert }, bodyTimeoutMs: 5000, headersTimeoutMs: 3000 });
  let paused = false;
  let whilePaused = 0;
  const o = await send(pool, get('/big'), {
    onData(call) {
      if (paused) whilePaused++;
      paused = true;
      setImmediate(() => {
        paused = false;
        call.resume();
      });
      return false;
    },
  });
  t.equal(o.completed, true);
  t.equal(o.body.length, 5 * 1024 * 1000);
  t.ok(o.body.every((b) => b === 120), 'content intact');
  t.equal(whilePaused, 0, 'no onData while paused');
  const next = await send(pool, get('/after'));
  t.equal(next.error?.code ?? null, null, 'the next request is answered (no timeout)');
  t.equal(next.status, 200);
  t.equal(srv.tlsConnections, 1);
});

t.test('https: the server cuts a body short: UPSTREAM_RESET; the pool recovers', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert } });
  const o = await send(pool, get('/cut'));
  await sleep(50);
  t.same(o.violations, []);
  t.equal(o.error?.code, 'UPSTREAM_RESET');
  t.equal(o.error?.notSent, false);
  t.equal((await send(pool, get('/ok'))).status, 200);
});

t.test('https: abort() mid-body destroys the TLS socket, no further callback', async (t) => {
  const srv = await startTls(t);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert } });
  const ex = exchange(pool, get('/big'), { onData: () => void ex.abort() });
  t.ok(await waitFor(() => ex.outcome.dataCalls > 0));
  t.ok(await waitFor(() => srv.sockets.size === 0), 'the server sees the socket close');
  await sleep(100);
  t.strictSame(ex.outcome.events, ['headers', 'data']);
  t.equal((await send(pool, get('/ok'))).status, 200);
});

t.test('https: a Node server closing idle keep-alive sockets (keepAliveTimeout 200 ms): the next request still succeeds', async (t) => {
  const srv = await startTls(t, good, 200);
  const pool = newPool(t, srv.origin, { tls: { ca: good.cert } });
  t.equal((await send(pool, get('/1'))).status, 200);
  t.ok(await waitFor(() => srv.sockets.size === 0), 'the server closed the idle socket');
  await sleep(50);
  const o = await send(pool, get('/2'));
  t.equal(o.error, null);
  t.equal(o.status, 200);
  t.equal(srv.tlsConnections, 2);
});

t.test('https: a close-delimited body over TLS ends at EOF', async (t) => {
  const server = tls.createServer({ key: good.key, cert: good.cert }, (sock) => {
    sock.on('error', () => {});
    sock.once('data', () => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ');
      setTimeout(() => sock.end('over tls'), 20);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const pool = newPool(t, `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { tls: { ca: good.cert } });
  const o = await send(pool, get('/'));
  t.same(o.violations, []);
  t.equal(o.completed, true);
  t.equal(o.body.toString(), 'hello over tls');
});

t.test('no process warnings (e.g. DEP0123, SNI set to an IP address) from TLS connections to an IP', async (t) => {
  await sleep(10);
  t.strictSame(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
  );
});
