// H1Pool failures and abort(): each failure ends the exchange with exactly one
// onError carrying the documented code, nothing follows it, and the pool keeps
// working for the next request.
import t, { type Test } from 'tap';
import { UpstreamError } from '../../gateway/proxy/h1-pool.js';
import {
  closedPort,
  exchange,
  get,
  newPool,
  okResponse,
  send,
  sleep,
  startRawServer,
  waitFor,
  type Outcome,
  type RawServer,
  type ReceivedRequest,
} from '../helpers/h1-server.js';

/** Waits a little for stray callbacks, then checks the outcome is one clean onError. */
async function expectError(t: Test, o: Outcome, code: string, notSent: boolean, events: string[]): Promise<void> {
  await sleep(100);
  t.strictSame(o.violations, [], 'no callback after the end');
  t.ok(o.error instanceof UpstreamError, 'an UpstreamError');
  t.equal(o.error?.code, code);
  t.equal(o.error?.notSent, notSent, `notSent ${notSent}`);
  t.equal(typeof o.error?.message, 'string');
  t.ok((o.error?.message.length ?? 0) > 0, 'has a message');
  t.strictSame(o.events, events);
}

/** The pool still serves a request after a failure. */
async function stillWorks(t: Test, pool: ReturnType<typeof newPool>, srv: RawServer): Promise<void> {
  const before = srv.requests.length;
  const o = await send(pool, get('/ok'));
  t.equal(o.status, 200, 'the pool works after the failure');
  t.equal(o.body.toString(), 'fine');
  t.equal(srv.requests.length, before + 1);
}

const fine = (conn: { write(d: string | Buffer): Promise<void> }): void => void conn.write(okResponse('fine'));

t.test('connection refused: UPSTREAM_CONNECT_FAILED, notSent, errno ECONNREFUSED; the pool recovers once the server is up', async (t) => {
  const port = await closedPort();
  const pool = newPool(t, `http://127.0.0.1:${port}`);
  const o = await send(pool, get('/'));
  await expectError(t, o, 'UPSTREAM_CONNECT_FAILED', true, ['error']);
  t.equal(o.error?.errno, 'ECONNREFUSED');
  t.strictSame(pool.stats(), { open: 0, busy: 0, idle: 0, queued: 0, connects: 0 });
  let srv: RawServer;
  try {
    srv = await startRawServer(t, (_r, conn) => fine(conn), port);
  } catch {
    t.comment('port taken meanwhile; recovery part skipped');
    return;
  }
  await stillWorks(t, pool, srv);
});

t.test('connection refused with a queue: every queued request fails once, none hangs', async (t) => {
  const port = await closedPort();
  const pool = newPool(t, `http://127.0.0.1:${port}`, { connections: 2 });
  const outcomes = await Promise.all(Array.from({ length: 6 }, () => send(pool, get('/'))));
  await sleep(100);
  t.strictSame(outcomes.map((o) => o.error?.code), Array(6).fill('UPSTREAM_CONNECT_FAILED'));
  t.strictSame(outcomes.map((o) => o.error?.notSent), Array(6).fill(true));
  t.strictSame(outcomes.flatMap((o) => o.violations), []);
  t.strictSame(pool.stats(), { open: 0, busy: 0, idle: 0, queued: 0, connects: 0 });
});

t.test('server accepts and never answers: UPSTREAM_HEADERS_TIMEOUT after headersTimeoutMs', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path !== '/hang') fine(conn);
  });
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 300 });
  const start = performance.now();
  const o = await send(pool, get('/hang'));
  const took = o.endedAt - start;
  await expectError(t, o, 'UPSTREAM_HEADERS_TIMEOUT', false, ['error']);
  t.ok(took >= 250, `not before the timeout (${took.toFixed(0)} ms)`);
  t.ok(took < 5000, `within 5 s (${took.toFixed(0)} ms)`);
  t.ok(await waitFor(() => srv.conns[0]!.closed), 'the pool closed the socket');
  await stillWorks(t, pool, srv);
});

t.test('headers timeout is a deadline: a head trickled in byte by byte still times out', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/trickle') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\n');
    while (!conn.closed) {
      await conn.write('x');
      await sleep(30);
    }
  });
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 400 });
  const start = performance.now();
  const o = await send(pool, get('/trickle'));
  const took = o.endedAt - start;
  await expectError(t, o, 'UPSTREAM_HEADERS_TIMEOUT', false, ['error']);
  t.ok(took >= 350 && took < 5000, `fired after ${took.toFixed(0)} ms`);
  await stillWorks(t, pool, srv);
});

t.test('a 100 Continue then silence: UPSTREAM_HEADERS_TIMEOUT (interim responses do not count)', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/interim') void conn.write('HTTP/1.1 100 Continue\r\n\r\n');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 300 });
  const o = await send(pool, get('/interim'));
  await expectError(t, o, 'UPSTREAM_HEADERS_TIMEOUT', false, ['error']);
  await stillWorks(t, pool, srv);
});

t.test('server sends the head then stalls the body: UPSTREAM_BODY_TIMEOUT after bodyTimeoutMs', async (t) => {
  let headAt = 0;
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/stall') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    headAt = performance.now();
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 300, headersTimeoutMs: 10_000 });
  const o = await send(pool, get('/stall'));
  const took = o.endedAt - headAt;
  await expectError(t, o, 'UPSTREAM_BODY_TIMEOUT', false, ['headers', 'data', 'error']);
  t.equal(o.status, 200);
  t.equal(o.body.toString(), '0123456789');
  t.ok(took >= 250 && took < 5000, `fired ${took.toFixed(0)} ms after the last byte`);
  t.ok(await waitFor(() => srv.conns[0]!.closed), 'the pool closed the socket');
  await stillWorks(t, pool, srv);
});

t.test('body timeout counts silence, not total time: a slow steady body completes', async (t) => {
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 30; i++) {
      await conn.write('1\r\nx\r\n');
      await sleep(50);
    }
    await conn.write('0\r\n\r\n');
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 1000 });
  const o = await send(pool, get('/'));
  t.equal(o.error, null, 'no timeout over ~1.5 s of steady trickle with a 1 s body timeout');
  t.equal(o.body.toString(), 'x'.repeat(30));
});

t.test('server closes mid-body (Content-Length not reached): UPSTREAM_RESET, notSent false', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/cut') conn.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/cut'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['headers', 'data', 'error']);
  t.equal(o.body.toString(), '0123456789');
  await stillWorks(t, pool, srv);
  t.equal(srv.requests.filter((r) => r.path === '/cut').length, 1, 'not retried');
});

t.test('server closes mid-chunk (chunked not finished): UPSTREAM_RESET', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/cut') conn.socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/cut'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['headers', 'data', 'data', 'error']);
  t.equal(o.body.toString(), 'helloabc');
  await stillWorks(t, pool, srv);
});

t.test('server closes after the last chunk but before the terminating 0-chunk: UPSTREAM_RESET', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/cut') conn.socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/cut'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['headers', 'data', 'error']);
  await stillWorks(t, pool, srv);
});

t.test('server closes in the middle of the head: UPSTREAM_RESET, notSent false', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/cut') conn.socket.end('HTTP/1.1 200 OK\r\nContent-Le');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/cut'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['error']);
  await stillWorks(t, pool, srv);
});

t.test('server closes a fresh connection after reading the request, without a byte: UPSTREAM_RESET, notSent false, not retried', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/drop') conn.socket.destroy();
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/drop'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['error']);
  t.equal(srv.requests.filter((r) => r.path === '/drop').length, 1);
  await stillWorks(t, pool, srv);
});

t.test('server resets (RST) mid-body: UPSTREAM_RESET with errno ECONNRESET', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/rst') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    await sleep(50);
    conn.socket.resetAndDestroy();
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/rst'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['headers', 'data', 'error']);
  t.equal(o.error?.errno, 'ECONNRESET');
  await stillWorks(t, pool, srv);
});

t.test('close-delimited body ended by RST instead of FIN: UPSTREAM_RESET, not a complete response', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/rst') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\n\r\npartial');
    await sleep(50);
    conn.socket.resetAndDestroy();
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/rst'));
  await expectError(t, o, 'UPSTREAM_RESET', false, ['headers', 'data', 'error']);
  await stillWorks(t, pool, srv);
});

const BAD: Array<[string, string, string[]]> = [
  ['garbage status line', 'FOO BAR BAZ\r\n\r\n', ['error']],
  ['non-numeric status', 'HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['HTTP/2 status line', 'HTTP/2 200\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['status above 599', 'HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['status 999', 'HTTP/1.1 999 Status\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['not HTTP at all', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', ['error']],
  ['NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['NUL in a header name', 'HTTP/1.1 200 OK\r\nX-\x00A: ab\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['space inside a header name', 'HTTP/1.1 200 OK\r\nX A: ab\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['header line without a colon', 'HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n', ['error']],
  ['non-numeric content-length', 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n', ['error']],
  ['negative content-length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', ['error']],
  ['two different content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', ['error']],
  ['invalid chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', ['headers', 'error']],
  ['empty chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n', ['headers', 'error']],
  ['chunk longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n', ['headers', 'data', 'error']],
  ['chunk size overflowing 64 bits', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n', ['headers', 'error']],
];

t.test('malformed responses: UPSTREAM_BAD_RESPONSE, the socket is closed, the pool recovers', async (t) => {
  let script = '';
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/bad') void conn.write(Buffer.from(script, 'latin1'));
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  for (const [name, text, events] of BAD) {
    await t.test(name, async (t) => {
      script = text;
      const connsBefore = srv.conns.length;
      const o = await send(pool, get('/bad'));
      await expectError(t, o, 'UPSTREAM_BAD_RESPONSE', false, events);
      const badConn = srv.requests.filter((r) => r.path === '/bad').pop()!.conn;
      t.ok(await waitFor(() => badConn.closed), 'the pool closed the socket');
      await stillWorks(t, pool, srv);
      t.ok(srv.conns.length > connsBefore || connsBefore === 0, 'a new connection after the bad one');
    });
  }
});

t.test('maxHeaderBytes: a larger head is UPSTREAM_BAD_RESPONSE; a smaller one is fine', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    const size = Number(req.path.slice(1));
    if (Number.isFinite(size)) void conn.write(`HTTP/1.1 200 OK\r\nX-Pad: ${'p'.repeat(size)}\r\nContent-Length: 2\r\n\r\nok`);
    else fine(conn);
  });
  const pool = newPool(t, srv.origin, { maxHeaderBytes: 1024 });
  const small = await send(pool, get('/800'));
  t.equal(small.status, 200);
  t.equal(headerLength(small), 800);
  const big = await send(pool, get('/2048'));
  await expectError(t, big, 'UPSTREAM_BAD_RESPONSE', false, ['error']);
  await stillWorks(t, pool, srv);
});

function headerLength(o: Outcome): number {
  const i = o.headers?.indexOf('x-pad') ?? -1;
  return i < 0 ? -1 : o.headers![i + 1]!.length;
}

t.test('default maxHeaderBytes is 64 KiB: a 60 KB head passes, a 70 KB head fails', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    const size = Number(req.path.slice(1));
    if (!Number.isFinite(size)) return fine(conn);
    const head = Buffer.from(`HTTP/1.1 200 OK\r\nX-Pad: ${'p'.repeat(size)}\r\nContent-Length: 2\r\n\r\nok`);
    // In 8 KB pieces, so the head spans many reads.
    for (let i = 0; i < head.length; i += 8192) {
      await conn.write(head.subarray(i, i + 8192));
      await sleep(2);
    }
  });
  const pool = newPool(t, srv.origin);
  const ok = await send(pool, get(`/${60 * 1000}`));
  t.equal(ok.status, 200);
  t.equal(headerLength(ok), 60_000);
  t.equal(ok.body.toString(), 'ok');
  const bad = await send(pool, get(`/${70 * 1024}`));
  await expectError(t, bad, 'UPSTREAM_BAD_RESPONSE', false, ['error']);
  await stillWorks(t, pool, srv);
});

t.test('an endless head (no blank line, 1 MB of header bytes) fails with UPSTREAM_BAD_RESPONSE instead of buffering', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/endless') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\n');
    for (let i = 0; i < 1024 && !conn.closed; i++) await conn.write(`X-${i}: ${'v'.repeat(1000)}\r\n`);
  });
  const pool = newPool(t, srv.origin, { maxHeaderBytes: 16 * 1024 });
  const o = await send(pool, get('/endless'));
  await expectError(t, o, 'UPSTREAM_BAD_RESPONSE', false, ['error']);
  await stillWorks(t, pool, srv);
});

t.test('a 101 Switching Protocols answer to a plain request is UPSTREAM_BAD_RESPONSE', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/up') void conn.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const o = await send(pool, get('/up'));
  await expectError(t, o, 'UPSTREAM_BAD_RESPONSE', false, ['error']);
  await stillWorks(t, pool, srv);
});

// ---- abort() ----

t.test('abort() mid-body: the socket closes, no further callback, the pool works after', async (t) => {
  const srv = await startRawServer(t, async (req, conn) => {
    if (req.path !== '/stream') return fine(conn);
    await conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    while (!conn.closed) {
      await conn.write('400\r\n' + 'z'.repeat(1024) + '\r\n');
      await sleep(10);
    }
  });
  const pool = newPool(t, srv.origin);
  const ex = exchange(pool, get('/stream'), {
    onData: () => {
      ex.abort();
    },
  });
  t.ok(await waitFor(() => srv.conns[0]?.closed === true), 'the server sees the socket close');
  await sleep(200);
  t.strictSame(ex.outcome.events, ['headers', 'data'], 'nothing after the abort');
  t.strictSame(ex.outcome.violations, []);
  t.equal(pool.stats().open, 0);
  ex.call.abort();
  ex.call.resume();
  t.pass('abort() and resume() after abort() do not throw');
  await stillWorks(t, pool, srv);
});

t.test('abort() from onHeaders: no onData, no onComplete, the socket closes', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/x') void conn.write(okResponse('a body that must not arrive'));
    else fine(conn);
  });
  const pool = newPool(t, srv.origin);
  const ex = exchange(pool, get('/x'), { onHeaders: () => ex.abort() });
  t.ok(await waitFor(() => srv.conns[0]?.closed === true), 'the socket with an unread body is not reused');
  await sleep(100);
  t.strictSame(ex.outcome.events, ['headers']);
  t.strictSame(ex.outcome.violations, []);
  await stillWorks(t, pool, srv);
});

t.test('abort() while waiting for the response head: socket closed, no timeout callback later', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path !== '/hang') fine(conn);
  });
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 200 });
  const ex = exchange(pool, get('/hang'));
  t.ok(await waitFor(() => srv.requests.length === 1));
  ex.abort();
  t.ok(await waitFor(() => srv.conns[0]!.closed), 'the server sees the socket close');
  await sleep(600);
  t.strictSame(ex.outcome.events, []);
  t.strictSame(ex.outcome.violations, []);
  await stillWorks(t, pool, srv);
});

t.test('abort() before the connection is established: no callback, no request reaches the server', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => fine(conn));
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 200, connectTimeoutMs: 200 });
  const ex = exchange(pool, get('/never'));
  ex.abort();
  await sleep(500);
  t.strictSame(ex.outcome.events, []);
  t.strictSame(ex.outcome.violations, []);
  t.equal(srv.requests.length, 0);
  t.equal(pool.stats().busy, 0);
  t.equal(pool.stats().queued, 0);
  await stillWorks(t, pool, srv);
});

t.test('abort() while queued for a socket: it is never sent, the queue moves on', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/1') held.push(req);
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { connections: 1 });
  const first = exchange(pool, get('/1'));
  const second = exchange(pool, get('/2'));
  const third = exchange(pool, get('/3'));
  t.ok(await waitFor(() => held.length === 1));
  t.equal(pool.stats().queued, 2);
  second.abort();
  t.equal(pool.stats().queued, 1, 'the aborted request left the queue');
  void held[0]!.conn.write(okResponse('/1'));
  t.equal((await first.done).body.toString(), '/1');
  t.equal((await third.done).body.toString(), '/3');
  await sleep(100);
  t.strictSame(srv.requests.map((r) => r.path), ['/1', '/3']);
  t.strictSame(second.outcome.events, []);
  t.strictSame(second.outcome.violations, []);
  t.equal(srv.conns.length, 1);
});

t.test('abort() after onComplete is a no-op: no callback, the socket stays in the pool', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => fine(conn));
  const pool = newPool(t, srv.origin);
  const ex = exchange(pool, get('/'));
  const o = await ex.done;
  t.equal(o.completed, true);
  ex.call.abort();
  await sleep(50);
  t.strictSame(o.events, ['headers', 'data', 'complete']);
  t.strictSame(pool.stats(), { open: 1, busy: 0, idle: 1, queued: 0, connects: 1 });
  await stillWorks(t, pool, srv);
  t.equal(srv.conns.length, 1, 'reused');
  t.equal(srv.conns[0]!.closed, false);
});

t.test('abort() after onError is a no-op', async (t) => {
  const port = await closedPort();
  const pool = newPool(t, `http://127.0.0.1:${port}`);
  const ex = exchange(pool, get('/'));
  await ex.done;
  ex.call.abort();
  await sleep(50);
  t.strictSame(ex.outcome.events, ['error']);
});

t.test('request header values with CR/LF are never written raw (no header injection)', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => fine(conn));
  const pool = newPool(t, srv.origin);
  let threw = false;
  let o: Outcome | null = null;
  try {
    o = await send(pool, get('/', ['x-a', 'v\r\nx-injected: 1']));
  } catch {
    threw = true;
  }
  await sleep(100);
  const injected = srv.requests.some((r) => r.header('x-injected').length > 0);
  t.equal(injected, false, 'the server never saw an injected header');
  t.ok(threw || o?.error !== null, 'the request was refused (throw or onError)');
});

t.test('headersTimeoutMs runs from the request written: a server slow to read a 32 MB upload is not timed out while it reads', async (t) => {
  const net = await import('node:net');
  const body = Buffer.alloc(32 * 1024 * 1024, 7);
  const sockets = new Set<import('node:net').Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.pause(); // reads nothing for 800 ms: the client's write blocks
    let got = 0;
    let headEnd = -1;
    const head: Buffer[] = [];
    setTimeout(() => {
      sock.on('data', (d: Buffer) => {
        if (headEnd < 0) {
          head.push(d);
          const all = Buffer.concat(head);
          headEnd = all.indexOf('\r\n\r\n');
          if (headEnd >= 0) got = all.length - headEnd - 4;
        } else got += d.length;
        if (headEnd >= 0 && got >= body.length) sock.write(okResponse(`read ${got}`));
      });
      sock.resume();
    }, 800);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const pool = newPool(t, `http://127.0.0.1:${port}`, { headersTimeoutMs: 500 });
  const o = await send(pool, { method: 'POST', path: '/upload', headers: [], body });
  t.equal(o.error?.code ?? null, null, 'no UPSTREAM_HEADERS_TIMEOUT while the body was still being written');
  t.equal(o.body.toString(), `read ${body.length}`);
});
