// H1Pool response framing and request framing, against scripted raw servers.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { H1Pool, UpstreamError } from '../../gateway/proxy/h1-pool.js';
import {
  exchange,
  get,
  headerValues,
  newPool,
  okResponse,
  send,
  sleep,
  startRawServer,
  waitFor,
  writeInPieces,
} from '../helpers/h1-server.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('module exports H1Pool and UpstreamError', async (t) => {
  t.equal(typeof H1Pool, 'function');
  const e = new UpstreamError('UPSTREAM_RESET', 'x', false, 'ECONNRESET');
  t.ok(e instanceof Error);
  t.equal(e.code, 'UPSTREAM_RESET');
  t.equal(e.errno, 'ECONNRESET');
});

t.test('Content-Length response: status, headers, body, then the connection is reused', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-A: 1\r\n\r\nhello ${req.path.slice(1)}`,
    );
  });
  const pool = newPool(t, srv.origin);
  const a = await send(pool, get('/world'));
  t.same(a.violations, []);
  t.equal(a.status, 200);
  t.strictSame(a.headers, ['content-type', 'text/plain', 'content-length', '11', 'x-a', '1']);
  t.equal(a.body.toString(), 'hello world');
  t.equal(a.completed, true);
  t.equal(a.error, null);
  t.equal(a.events[0], 'headers');
  t.equal(a.events[a.events.length - 1], 'complete');
  const b = await send(pool, get('/there'));
  t.equal(b.body.toString(), 'hello there');
  t.equal(srv.conns.length, 1, 'one server connection for two requests');
  t.strictSame(pool.stats(), { open: 1, busy: 0, idle: 1, queued: 0, connects: 1 });
});

t.test('Content-Length: 0 gives headers and complete with no onData, and keeps the connection', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(req.path === '/empty' ? 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' : okResponse('next'));
  });
  const pool = newPool(t, srv.origin);
  const a = await send(pool, get('/empty'));
  t.strictSame(a.events, ['headers', 'complete']);
  t.equal(a.body.length, 0);
  const b = await send(pool, get('/next'));
  t.equal(b.body.toString(), 'next');
  t.equal(srv.conns.length, 1);
});

t.test('a 10 MB Content-Length body arrives intact', async (t) => {
  const big = randomBytes(10 * 1024 * 1024);
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`);
    for (let i = 0; i < big.length; i += 256 * 1024) await conn.write(big.subarray(i, i + 256 * 1024));
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/big'));
  t.same(o.violations, []);
  t.equal(o.completed, true);
  t.equal(o.body.length, big.length);
  t.equal(sha(o.body), sha(big));
  const again = await send(pool, get('/big'));
  t.equal(sha(again.body), sha(big));
  t.equal(srv.conns.length, 1);
});

t.test('chunked: extensions, upper/lower-case hex, leading zeros, trailers; connection reused after', async (t) => {
  const chunked =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n' +
    '5;a=b\r\nhello\r\n' +
    'A\r\n0123456789\r\n' +
    'a;x="y z";q\r\nabcdefghij\r\n' +
    '000003\r\nxyz\r\n' +
    '1F\r\n' + 'F'.repeat(31) + '\r\n' +
    '1f\r\n' + 'f'.repeat(31) + '\r\n' +
    '0;end=1\r\nX-Trailer: t\r\nServer-Timing: db;dur=53\r\n\r\n';
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(req.path === '/chunked' ? chunked : okResponse('after'));
  });
  const pool = newPool(t, srv.origin);
  const a = await send(pool, get('/chunked'));
  t.same(a.violations, []);
  t.equal(a.status, 200);
  t.strictSame(a.headers, ['transfer-encoding', 'chunked', 'x-b', '2']);
  t.equal(a.body.toString(), 'hello0123456789abcdefghijxyz' + 'F'.repeat(31) + 'f'.repeat(31));
  t.equal(a.completed, true);
  const b = await send(pool, get('/after'));
  t.same(b.violations, []);
  t.equal(b.status, 200);
  t.equal(b.body.toString(), 'after', 'the trailers were consumed entirely');
  t.equal(srv.conns.length, 1, 'connection reused after a chunked response with trailers');
  t.equal(srv.conns[0]!.garbage, '');
});

t.test('chunked with many chunks (2000, 1..300 bytes each) arrives intact', async (t) => {
  const parts: Buffer[] = [];
  const body: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const len = 1 + ((i * 7919) % 300);
    const data = randomBytes(len);
    body.push(data);
    const hex = i % 2 ? len.toString(16).toUpperCase() : len.toString(16);
    parts.push(Buffer.from(`${hex}\r\n`), data, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  const payload = Buffer.concat(parts);
  const expected = Buffer.concat(body);
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < payload.length; i += 4096) await conn.write(payload.subarray(i, i + 4096));
  });
  const pool = newPool(t, srv.origin);
  for (let round = 0; round < 2; round++) {
    const o = await send(pool, get('/many'));
    t.same(o.violations, []);
    t.equal(o.completed, true);
    t.equal(o.body.length, expected.length);
    t.ok(o.body.equals(expected), `round ${round}: body identical`);
  }
  t.equal(srv.conns.length, 1);
});

t.test('Transfer-Encoding value is case-insensitive ("Chunked")', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/'));
  t.equal(o.completed, true);
  t.equal(o.body.toString(), 'abc');
  const o2 = await send(pool, get('/'));
  t.equal(o2.body.toString(), 'abc');
  t.equal(srv.conns.length, 1);
});

// RFC 9112 6.1: a response with both "ought to be handled as an error"; the
// gateway once honoured chunked while sizing a buffer from the Content-Length.
for (const [name, head] of [
  ['chunked, longer than the Content-Length', 'Content-Length: 3\r\nTransfer-Encoding: chunked'],
  ['chunked, shorter than the Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 4000'],
] as const) {
  t.test(`Transfer-Encoding with Content-Length (${name}) is a bad response`, async (t) => {
    const srv = await startRawServer(t, (_req, conn) => {
      void conn.write(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n`);
    });
    const pool = newPool(t, srv.origin);
    const o = await send(pool, get('/'));
    t.same(o.violations, []);
    t.equal(o.completed, false);
    t.equal(o.error?.code, 'UPSTREAM_BAD_RESPONSE');
    t.match(o.error?.message ?? '', /transfer-encoding and content-length/);
    t.equal(o.body.length, 0, 'no body byte was handed on');
  });
}

t.test('close-delimited body (no length, not chunked) ends at EOF; the socket is not reused', async (t) => {
  const srv = await startRawServer(t, async (_req, conn) => {
    await writeInPieces(conn, [Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst '), Buffer.from('second '), Buffer.from('third')], 20);
    conn.socket.end();
  });
  const pool = newPool(t, srv.origin);
  const a = await send(pool, get('/a'));
  t.same(a.violations, []);
  t.equal(a.status, 200);
  t.equal(a.completed, true);
  t.equal(a.error, null);
  t.equal(a.body.toString(), 'first second third');
  const b = await send(pool, get('/b'));
  t.equal(b.completed, true);
  t.equal(b.body.toString(), 'first second third');
  t.equal(srv.conns.length, 2, 'a new connection for the second request');
  t.equal(srv.conns[0]!.requests.length, 1);
  t.equal(pool.stats().connects, 2);
  t.ok(await waitFor(() => pool.stats().open === 0), 'no socket left open');
});

t.test('HEAD, 204 and 304 carry no body even with a Content-Length; the connection stays usable', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.method === 'HEAD') void conn.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n');
    else if (req.path === '/204') void conn.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n');
    else if (req.path === '/304') void conn.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n');
    else void conn.write(okResponse(`got ${req.path}`));
  });
  const pool = newPool(t, srv.origin);
  const head = await send(pool, { method: 'HEAD', path: '/h', headers: [], body: null });
  t.same(head.violations, []);
  t.equal(head.status, 200);
  t.strictSame(head.events, ['headers', 'complete']);
  t.strictSame(headerValues(head.headers, 'content-length'), ['100']);
  t.equal((await send(pool, get('/after-head'))).body.toString(), 'got /after-head');
  const nc = await send(pool, get('/204'));
  t.equal(nc.status, 204);
  t.strictSame(nc.events, ['headers', 'complete']);
  t.equal((await send(pool, get('/after-204'))).body.toString(), 'got /after-204');
  const nm = await send(pool, get('/304'));
  t.equal(nm.status, 304);
  t.strictSame(nm.events, ['headers', 'complete']);
  t.strictSame(headerValues(nm.headers, 'etag'), ['"x"']);
  t.equal((await send(pool, get('/after-304'))).body.toString(), 'got /after-304');
  t.equal(srv.conns.length, 1, 'all six on one connection');
});

t.test('1xx interim responses (100, 103) are skipped; only the final head reaches onHeaders', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    await conn.write('HTTP/1.1 100 Continue\r\n\r\n');
    if (req.path === '/split') await sleep(20);
    await conn.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
    if (req.path === '/split') await sleep(20);
    await conn.write('HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\ndone');
  });
  const pool = newPool(t, srv.origin);
  for (const path of ['/together', '/split']) {
    const o = await send(pool, get(path));
    t.same(o.violations, []);
    t.equal(o.status, 201, `${path}: final status`);
    t.strictSame(o.headers, ['content-length', '4', 'x-final', 'yes'], `${path}: only the final headers`);
    t.equal(o.body.toString(), 'done');
    t.equal(o.events.filter((e) => e === 'headers').length, 1);
  }
  t.equal(srv.conns.length, 1);
});

t.test('HTTP/1.0 response without keep-alive: the pool closes the socket and reconnects', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'); // server leaves the socket open
  });
  const pool = newPool(t, srv.origin);
  const a = await send(pool, get('/'));
  t.equal(a.status, 200);
  t.equal(a.body.toString(), 'ok');
  t.ok(await waitFor(() => srv.conns[0]!.closed), 'the pool closed the HTTP/1.0 connection');
  const b = await send(pool, get('/'));
  t.equal(b.body.toString(), 'ok');
  t.equal(srv.conns.length, 2);
  t.equal(pool.stats().connects, 2);
});

t.test('HTTP/1.0 response with Connection: keep-alive is reused', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok');
  });
  const pool = newPool(t, srv.origin);
  for (let i = 0; i < 3; i++) t.equal((await send(pool, get('/'))).body.toString(), 'ok');
  t.equal(srv.conns.length, 1);
  t.equal(pool.stats().connects, 1);
});

t.test('HTTP/1.0 close-delimited body', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    conn.socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold school');
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/'));
  t.same(o.violations, []);
  t.equal(o.completed, true);
  t.equal(o.body.toString(), 'old school');
});

t.test('Connection: close responses: the socket is closed by the pool and not reused', async (t) => {
  let n = 0;
  const srv = await startRawServer(t, (_req, conn) => {
    const value = n++ % 2 ? 'Close' : 'close';
    void conn.write(`HTTP/1.1 200 OK\r\nConnection: ${value}\r\nContent-Length: 2\r\n\r\nok`); // server does not close
  });
  const pool = newPool(t, srv.origin);
  for (let i = 0; i < 3; i++) {
    const o = await send(pool, get('/'));
    t.equal(o.completed, true);
    t.equal(o.body.toString(), 'ok');
  }
  t.equal(srv.conns.length, 3, 'three connections for three requests');
  t.ok(await waitFor(() => srv.conns.every((c) => c.closed)), 'all closed by the pool');
  t.ok(srv.conns.every((c) => c.requests.length === 1));
  t.ok(await waitFor(() => pool.stats().open === 0));
});

t.test('response header names arrive lower-case; duplicates kept in order; values preserved', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write(
      'HTTP/1.1 200 Whatever Reason Phrase\r\n' +
        'Set-Cookie: a=1; Path=/; HttpOnly\r\n' +
        'X-Mixed-Case: VaLuE With Spaces\r\n' +
        'SET-COOKIE: b=2\r\n' +
        'X-Spaced:   a  b   \r\n' +
        'X-Tight:v\r\n' +
        'X-Empty:\r\n' +
        'X-Colon: a:b:c\r\n' +
        'content-length: 2\r\n\r\nok',
    );
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/'));
  t.same(o.violations, []);
  t.equal(o.status, 200);
  t.strictSame(o.headers, [
    'set-cookie', 'a=1; Path=/; HttpOnly',
    'x-mixed-case', 'VaLuE With Spaces',
    'set-cookie', 'b=2',
    'x-spaced', 'a  b',
    'x-tight', 'v',
    'x-empty', '',
    'x-colon', 'a:b:c',
    'content-length', '2',
  ]);
  t.strictSame(headerValues(o.headers, 'set-cookie'), ['a=1; Path=/; HttpOnly', 'b=2']);
});

t.test('status line without a reason phrase, and other status codes', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/bare') void conn.write('HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx');
    else void conn.write(`HTTP/1.1 ${req.path.slice(1)} Something\r\nContent-Length: 1\r\n\r\ny`);
  });
  const pool = newPool(t, srv.origin);
  const bare = await send(pool, get('/bare'));
  t.equal(bare.status, 200);
  t.equal(bare.body.toString(), 'x');
  for (const code of [404, 429, 500, 502, 599]) {
    const o = await send(pool, get(`/${code}`));
    t.equal(o.status, code);
    t.equal(o.completed, true, `${code} is a response, not an error`);
    t.equal(o.body.toString(), 'y');
  }
  t.equal(srv.conns.length, 1);
});

t.test('request framing seen by the server: request line, one host, content-length, headers, body (1 MB)', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => void conn.write(okResponse('ok')));
  const pool = newPool(t, srv.origin);
  const body = randomBytes(1024 * 1024);
  const headers = ['content-type', 'application/json', 'Authorization', 'Bearer sk-1', 'x-trace', 'a:b, c', 'accept', '*/*'];
  const o = await send(pool, { method: 'POST', path: '/v1/chat/completions?x=1&y=%20', headers, body });
  t.equal(o.status, 200);
  t.equal(srv.requests.length, 1);
  const r = srv.requests[0]!;
  t.equal(r.method, 'POST');
  t.equal(r.path, '/v1/chat/completions?x=1&y=%20');
  t.equal(r.version, 'HTTP/1.1');
  t.strictSame(r.header('host'), [`127.0.0.1:${srv.port}`], 'exactly one host header');
  t.strictSame(r.header('content-length'), [String(body.length)], 'exactly one content-length');
  t.strictSame(r.header('transfer-encoding'), []);
  t.strictSame(r.header('content-type'), ['application/json']);
  t.strictSame(r.header('authorization'), ['Bearer sk-1']);
  t.strictSame(r.header('x-trace'), ['a:b, c']);
  t.strictSame(r.header('accept'), ['*/*']);
  t.equal(r.body.length, body.length);
  t.ok(r.body.equals(body), 'body bytes intact');
  t.equal(r.conn.garbage, '');
});

t.test('a 10 MB request body arrives intact, and the connection is reused after it', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void conn.write(okResponse(sha(req.body))));
  const pool = newPool(t, srv.origin);
  const body = randomBytes(10 * 1024 * 1024);
  const o = await send(pool, { method: 'PUT', path: '/up', headers: ['content-type', 'application/octet-stream'], body });
  t.same(o.violations, []);
  t.equal(o.body.toString(), sha(body));
  const r = srv.requests[0]!;
  t.strictSame(r.header('content-length'), [String(body.length)]);
  t.equal(r.body.length, body.length);
  const small = await send(pool, { method: 'POST', path: '/small', headers: [], body: Buffer.from('abc') });
  t.equal(small.body.toString(), sha(Buffer.from('abc')));
  t.equal(srv.conns.length, 1);
  t.equal(srv.conns[0]!.garbage, '');
});

t.test('GET with a null body sends no body and no non-zero content-length; an empty POST body sends content-length 0', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => void conn.write(okResponse('ok')));
  const pool = newPool(t, srv.origin);
  await send(pool, get('/g', ['accept', 'application/json']));
  await send(pool, { method: 'POST', path: '/p', headers: [], body: Buffer.alloc(0) });
  await send(pool, get('/g2'));
  t.equal(srv.requests.length, 3);
  const [g, p, g2] = srv.requests;
  t.equal(g!.method, 'GET');
  t.ok(g!.header('content-length').length === 0 || (g!.header('content-length').length === 1 && g!.header('content-length')[0] === '0'), 'GET: no content-length, or 0');
  t.strictSame(g!.header('transfer-encoding'), []);
  t.equal(g!.body.length, 0);
  t.strictSame(g!.header('accept'), ['application/json']);
  t.strictSame(p!.header('content-length'), ['0'], 'POST with an empty body: content-length 0');
  t.equal(p!.body.length, 0);
  t.equal(g2!.path, '/g2', 'the next request parsed cleanly: nothing stray was written');
  t.equal(srv.conns.length, 1);
  t.equal(srv.conns[0]!.garbage, '');
});

t.test('a request issued from inside onComplete reuses the same socket', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void conn.write(okResponse(req.path)));
  const pool = newPool(t, srv.origin);
  const second = await new Promise<string>((resolve) => {
    exchange(pool, get('/first'), {
      onComplete() {
        void send(pool, get('/second')).then((o) => resolve(o.body.toString()));
      },
    });
  });
  t.equal(second, '/second');
  t.equal(srv.conns.length, 1);
  t.equal(pool.stats().connects, 1);
});

t.test('bad options are refused in the constructor with an error naming the option', async (t) => {
  const base = { connections: 4, connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, idleTimeoutMs: 1000 };
  t.throws(() => new H1Pool('ftp://127.0.0.1:1', base), /http/);
  t.throws(() => new H1Pool('not a url', base));
  t.throws(() => new H1Pool('http://127.0.0.1:1', { ...base, connections: 0 }), /connections/);
  t.throws(() => new H1Pool('http://127.0.0.1:1', { ...base, headersTimeoutMs: -1 }), /headersTimeoutMs/);
  t.throws(() => new H1Pool('http://127.0.0.1:1', { ...base, connectTimeoutMs: Number.NaN }), /connectTimeoutMs/);
  const ok = new H1Pool('http://127.0.0.1:1', { ...base, connections: null });
  ok.destroy();
});

t.test('against a real node:http server: keep-alive, JSON, echo of a 1 MB POST, a chunked stream', async (t) => {
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      if (req.url === '/echo') {
        res.setHeader('content-type', 'application/octet-stream');
        res.end(Buffer.concat(parts));
      } else if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const tick = setInterval(() => {
          res.write(`data: ${i}\n\n`);
          if (++i === 5) {
            clearInterval(tick);
            res.end('data: [DONE]\n\n');
          }
        }, 5);
      } else {
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.end(JSON.stringify({ url: req.url, host: req.headers.host }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  let connections = 0;
  server.on('connection', () => connections++);
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pool = newPool(t, origin);
  const j = await send(pool, get('/json?q=1'));
  t.equal(j.status, 200);
  t.strictSame(JSON.parse(j.body.toString()), { url: '/json?q=1', host: origin.slice('http://'.length) });
  t.strictSame(headerValues(j.headers, 'set-cookie'), ['a=1', 'b=2']);
  const body = randomBytes(1024 * 1024);
  const e = await send(pool, { method: 'POST', path: '/echo', headers: ['content-type', 'application/octet-stream'], body });
  t.ok(e.body.equals(body), 'echoed 1 MB intact');
  const s = await send(pool, get('/stream'));
  t.equal(s.body.toString(), 'data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: [DONE]\n\n');
  t.strictSame(headerValues(s.headers, 'transfer-encoding'), ['chunked']);
  for (let i = 0; i < 20; i++) await send(pool, get('/json'));
  t.equal(connections, 1, 'one connection for 23 requests');
});

t.test('request bodies around the 64 KiB single-write boundary arrive intact', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void conn.write(okResponse(sha(req.body))));
  const pool = newPool(t, srv.origin);
  for (const size of [1, 65535, 65536, 65537, 131072]) {
    const body = randomBytes(size);
    const o = await send(pool, { method: 'POST', path: `/b/${size}`, headers: ['x-note', 'naïve ✓'], body });
    t.equal(o.body.toString(), sha(body), `${size} bytes`);
    const r = srv.requests[srv.requests.length - 1]!;
    t.strictSame(r.header('content-length'), [String(size)]);
    t.equal(Buffer.from(r.header('x-note')[0]!, 'latin1').toString('utf8'), 'naïve ✓', 'a UTF-8 header value is sent as UTF-8');
  }
  t.equal(srv.conns.length, 1);
  t.equal(srv.conns[0]!.garbage, '');
});
