// H1Pool connection management: keep-alive reuse, the connection limit and its
// FIFO queue, idle expiry, stale kept-alive sockets, close() and destroy().
import t from 'tap';
import { UpstreamError } from '../../gateway/proxy/h1-pool.js';
import {
  exchange,
  get,
  newPool,
  okResponse,
  send,
  sleep,
  startRawServer,
  waitFor,
  type ReceivedRequest,
} from '../helpers/h1-server.js';

t.test('50 sequential requests use one connection', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void conn.write(okResponse(req.path)));
  const pool = newPool(t, srv.origin);
  for (let i = 0; i < 50; i++) {
    const o = await send(pool, get(`/r/${i}`));
    if (o.body.toString() !== `/r/${i}`) t.fail(`request ${i}: got ${o.body.toString()}`);
  }
  t.equal(srv.requests.length, 50);
  t.equal(srv.conns.length, 1, 'the server saw one connection');
  t.equal(srv.conns[0]!.requests.length, 50);
  t.strictSame(pool.stats(), { open: 1, busy: 0, idle: 1, queued: 0, connects: 1 });
});

t.test('connections: 4 — 20 concurrent requests open exactly 4 sockets, queue the rest and serve them FIFO', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req) => void held.push(req));
  const pool = newPool(t, srv.origin, { connections: 4 });
  const exchanges = Array.from({ length: 20 }, (_, i) => exchange(pool, get(`/q/${i}`)));
  t.ok(await waitFor(() => held.length === 4), 'four requests reach the server');
  await sleep(50);
  t.equal(held.length, 4, 'and no more while those are unanswered');
  t.strictSame(pool.stats(), { open: 4, busy: 4, idle: 0, queued: 16, connects: 4 });
  t.strictSame(held.map((r) => r.path).sort(), ['/q/0', '/q/1', '/q/2', '/q/3']);
  // Answer one held request at a time: exactly the next queued request must follow.
  const arrivalOrder: string[] = [];
  for (let next = 4; next < 20; next++) {
    const answer = held.shift()!;
    void answer.conn.write(okResponse(answer.path));
    if (!(await waitFor(() => held.length === 4))) {
      t.fail(`request /q/${next} never reached the server`);
      break;
    }
    arrivalOrder.push(held[3]!.path);
  }
  t.strictSame(arrivalOrder, Array.from({ length: 16 }, (_, i) => `/q/${i + 4}`), 'queued requests were sent in FIFO order');
  for (const r of held.splice(0)) void r.conn.write(okResponse(r.path));
  const results = await Promise.all(exchanges.map((e) => e.done));
  results.forEach((o, i) => {
    if (o.body.toString() !== `/q/${i}` || o.violations.length) t.fail(`request ${i}: ${o.body.toString()} ${o.violations}`);
  });
  t.equal(results.filter((o) => o.completed).length, 20, 'all 20 complete');
  t.equal(srv.conns.length, 4, 'the server saw 4 connections in all');
  t.strictSame(pool.stats(), { open: 4, busy: 0, idle: 4, queued: 0, connects: 4 });
});

t.test('connections: 1 — ten concurrent requests go out one by one in the order they were made', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void setTimeout(() => void conn.write(okResponse(req.path)), 5));
  const pool = newPool(t, srv.origin, { connections: 1 });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => send(pool, get(`/s/${i}`))));
  t.strictSame(srv.requests.map((r) => r.path), Array.from({ length: 10 }, (_, i) => `/s/${i}`));
  t.strictSame(results.map((o) => o.body.toString()), Array.from({ length: 10 }, (_, i) => `/s/${i}`));
  t.equal(srv.conns.length, 1);
});

t.test('connections: null — concurrent requests each open their own socket', async (t) => {
  const held: ReceivedRequest[] = [];
  let hold = true;
  const srv = await startRawServer(t, (req, conn) => {
    if (hold) held.push(req);
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { connections: null });
  const exchanges = Array.from({ length: 12 }, (_, i) => exchange(pool, get(`/n/${i}`)));
  t.ok(await waitFor(() => held.length === 12), 'all 12 reach the server without any answer');
  t.equal(srv.conns.length, 12);
  t.equal(pool.stats().open, 12);
  t.equal(pool.stats().queued, 0);
  for (const r of held) void r.conn.write(okResponse(r.path));
  const results = await Promise.all(exchanges.map((e) => e.done));
  t.strictSame(results.map((o) => o.body.toString()), Array.from({ length: 12 }, (_, i) => `/n/${i}`));
  t.strictSame(pool.stats(), { open: 12, busy: 0, idle: 12, queued: 0, connects: 12 });
  // Idle sockets are reused before new ones are opened.
  hold = false;
  const again = await Promise.all(Array.from({ length: 12 }, (_, i) => send(pool, get(`/again/${i}`))));
  t.strictSame(again.map((o) => o.body.toString()), Array.from({ length: 12 }, (_, i) => `/again/${i}`));
  t.equal(srv.conns.length, 12, 'the second wave reused the 12 idle sockets');
});

t.test('idleTimeoutMs: an idle socket is closed after it; stats follow', async (t) => {
  const srv = await startRawServer(t, (req, conn) => void conn.write(okResponse('ok')));
  const pool = newPool(t, srv.origin, { idleTimeoutMs: 200 });
  await send(pool, get('/'));
  t.strictSame(pool.stats(), { open: 1, busy: 0, idle: 1, queued: 0, connects: 1 });
  const idleSince = performance.now();
  t.ok(await waitFor(() => srv.conns[0]!.closed, 5000), 'the server sees the idle socket close');
  const after = performance.now() - idleSince;
  t.ok(after >= 150, `not before the idle timeout (closed after ${after.toFixed(0)} ms)`);
  t.ok(await waitFor(() => pool.stats().idle === 0 && pool.stats().open === 0));
  t.strictSame(pool.stats(), { open: 0, busy: 0, idle: 0, queued: 0, connects: 1 });
  const o = await send(pool, get('/'));
  t.equal(o.body.toString(), 'ok', 'a later request opens a new connection');
  t.equal(srv.conns.length, 2);
});

t.test('a socket in use is not closed by the idle timeout', async (t) => {
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab');
    await sleep(300);
    await conn.write('cd');
    await sleep(300);
    await conn.write('ef');
  });
  const pool = newPool(t, srv.origin, { idleTimeoutMs: 100, bodyTimeoutMs: 5000 });
  const o = await send(pool, get('/'));
  t.equal(o.completed, true);
  t.equal(o.body.toString(), 'abcdef');
});

t.test('a server Keep-Alive: timeout=1 header makes the pool drop the socket well before idleTimeoutMs', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\nContent-Length: 2\r\n\r\nok');
  });
  const pool = newPool(t, srv.origin, { idleTimeoutMs: 60_000 });
  const o = await send(pool, get('/'));
  t.equal(o.body.toString(), 'ok');
  t.ok(await waitFor(() => srv.conns[0]!.closed, 5000), 'closed within 5 s although idleTimeoutMs is 60 s');
  t.ok(await waitFor(() => pool.stats().open === 0));
  t.equal((await send(pool, get('/'))).body.toString(), 'ok');
});

t.test('a server Keep-Alive: timeout=3 still allows reuse soon after, then closes well before idleTimeoutMs', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => {
    void conn.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=3\r\nContent-Length: 2\r\n\r\nok');
  });
  const pool = newPool(t, srv.origin, { idleTimeoutMs: 60_000 });
  await send(pool, get('/'));
  await sleep(50);
  await send(pool, get('/'));
  t.equal(srv.conns.length, 1, 'reused 50 ms later');
  t.ok(await waitFor(() => srv.conns[0]!.closed, 6000), 'closed within 6 s although idleTimeoutMs is 60 s');
});

t.test('stale keep-alive: the server closes an idle socket; the next request succeeds on a new connection', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(okResponse(req.path));
    if (req.path === '/first') setTimeout(() => conn.socket.end(), 30);
  });
  const pool = newPool(t, srv.origin);
  t.equal((await send(pool, get('/first'))).body.toString(), '/first');
  await sleep(150);
  const o = await send(pool, get('/second'));
  t.same(o.violations, []);
  t.equal(o.error, null);
  t.equal(o.body.toString(), '/second');
  t.equal(srv.conns.length, 2);
  t.equal(srv.conns[1]!.requests[0]!.path, '/second');
});

t.test('stale keep-alive: response and FIN in one write, next request sent at once from onComplete', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/first') conn.socket.end(okResponse(req.path));
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin);
  const second = await new Promise<Awaited<ReturnType<typeof send>>>((resolve) => {
    exchange(pool, get('/first'), { onComplete: () => void send(pool, get('/second')).then(resolve) });
  });
  t.equal(second.error, null, 'no error for the second request');
  t.equal(second.body.toString(), '/second');
});

t.test('a kept-alive socket closed by the server after reading a GET, without answering: the GET is retried once on a new connection', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/drop' && req.conn.requests.length > 1) conn.socket.destroy();
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin);
  await send(pool, get('/warm'));
  const o = await send(pool, get('/drop'));
  t.equal(o.error, null);
  t.equal(o.body.toString(), '/drop');
  t.strictSame(srv.requests.map((r) => r.path), ['/warm', '/drop', '/drop']);
});

t.test('a kept-alive socket closed by the server after reading a POST: not re-sent (non-idempotent); UPSTREAM_RESET, notSent false', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/charge') conn.socket.destroy();
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin);
  await send(pool, get('/warm'));
  const o = await send(pool, { method: 'POST', path: '/charge', headers: ['content-type', 'application/json'], body: Buffer.from('{"n":1}') });
  t.same(o.violations, []);
  t.equal(srv.requests.filter((r) => r.path === '/charge').length, 1, 'the POST reached the server exactly once');
  t.ok(o.error instanceof UpstreamError);
  t.equal(o.error?.code, 'UPSTREAM_RESET');
  t.equal(o.error?.notSent, false, 'the server had the request: not safe to send elsewhere');
  t.equal((await send(pool, get('/after'))).body.toString(), '/after', 'the pool still works');
});

t.test('unsolicited bytes on an idle socket: that socket is dropped, the next request is answered correctly', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(okResponse(req.path));
    if (req.path === '/first') setTimeout(() => void conn.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE'), 20);
  });
  const pool = newPool(t, srv.origin);
  await send(pool, get('/first'));
  t.ok(await waitFor(() => srv.conns[0]!.closed), 'the pool closed the socket that sent unsolicited bytes');
  const o = await send(pool, get('/second'));
  t.equal(o.body.toString(), '/second');
  t.equal(srv.conns.length, 2);
});

t.test('extra bytes after a complete response: the socket is not reused', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(Buffer.concat([okResponse(req.path), Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE')]));
  });
  const pool = newPool(t, srv.origin);
  t.equal((await send(pool, get('/a'))).body.toString(), '/a');
  const b = await send(pool, get('/b'));
  t.equal(b.body.toString(), '/b', 'never the stale response');
  t.equal(srv.conns.length, 2);
});

t.test('close(): the in-flight request completes, then its socket closes; later requests fail with UPSTREAM_POOL_CLOSED', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path === '/slow') held.push(req);
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { connections: 4 });
  // Three sockets: two will be busy, one idle.
  await Promise.all([send(pool, get('/idle')), send(pool, get('/idle')), send(pool, get('/idle'))]);
  t.equal(srv.conns.length, 3);
  const inflight = exchange(pool, get('/slow'));
  const other = exchange(pool, get('/slow'));
  t.ok(await waitFor(() => held.length === 2));
  t.equal(srv.conns.length, 3, 'the slow requests reuse idle sockets');
  let closeResolved = false;
  const closing = pool.close().then(() => (closeResolved = true));
  const idleConn = srv.conns.find((c) => !held.some((h) => h.conn === c))!;
  t.ok(await waitFor(() => idleConn.closed), 'the idle socket closes at once');
  const late = await send(pool, get('/late'));
  t.equal(late.error?.code, 'UPSTREAM_POOL_CLOSED');
  t.equal(late.error?.notSent, true);
  t.strictSame(late.events, ['error']);
  t.equal(srv.requests.filter((r) => r.path === '/late').length, 0);
  await sleep(100);
  t.equal(closeResolved, false, 'close() waits for the in-flight requests');
  void held[0]!.conn.write(okResponse('slow-1'));
  const a = await inflight.done;
  t.equal(a.completed, true);
  t.equal(a.body.toString(), 'slow-1');
  t.ok(await waitFor(() => held[0]!.conn.closed), 'its socket closes after the response');
  t.equal(closeResolved, false, 'still one in flight');
  void held[1]!.conn.write(okResponse('slow-2'));
  t.equal((await other.done).body.toString(), 'slow-2');
  await closing;
  t.equal(closeResolved, true);
  t.ok(await waitFor(() => srv.openConns() === 0), 'no socket left');
  t.strictSame(pool.stats(), { open: 0, busy: 0, idle: 0, queued: 0, connects: 3 });
  t.same([a.violations, late.violations], [[], []]);
});

t.test('close() with nothing in flight resolves and closes idle sockets; calling it twice is fine', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => void conn.write(okResponse('ok')));
  const pool = newPool(t, srv.origin);
  await Promise.all([send(pool, get('/')), send(pool, get('/'))]);
  t.equal(srv.conns.length, 2);
  await Promise.all([pool.close(), pool.close()]);
  t.ok(await waitFor(() => srv.openConns() === 0));
  t.equal(pool.stats().open, 0);
});

t.test('close(): queued requests end with exactly one callback, and close() resolves after all of them', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req) => void held.push(req));
  const pool = newPool(t, srv.origin, { connections: 1 });
  const first = exchange(pool, get('/1'));
  const queued = exchange(pool, get('/2'));
  t.ok(await waitFor(() => held.length === 1));
  const closing = pool.close();
  void held[0]!.conn.write(okResponse('one'));
  await closing;
  t.equal((await first.done).body.toString(), 'one');
  const q = await Promise.race([queued.done, sleep(2000).then(() => null)]);
  t.not(q, null, 'the queued request got its callback by the time close() resolved');
  if (q) {
    t.same(q.violations, []);
    t.ok(q.completed || q.error?.code === 'UPSTREAM_POOL_CLOSED', `queued: completed or UPSTREAM_POOL_CLOSED (got ${q.error?.code ?? 'completed'})`);
    if (q.error) t.equal(q.error.notSent, true, 'a queued request was never sent');
  }
});

t.test('close() resolves only after every in-flight request ended (also one being retried after a stale socket)', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req, conn) => {
    // /b on the kept-alive socket is held (then dropped); /b re-sent on a fresh socket is answered.
    if (req.path === '/b' && conn.requests.length > 1) held.push(req);
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin);
  await send(pool, get('/a'));
  const b = exchange(pool, get('/b'));
  t.ok(await waitFor(() => held.length === 1));
  let endedWhenClosed: boolean | null = null;
  let openWhenClosed = -1;
  const closing = pool.close().then(() => {
    endedWhenClosed = b.outcome.completed || b.outcome.error !== null;
    openWhenClosed = pool.stats().open;
  });
  // The server drops the kept-alive socket without answering.
  held[0]!.conn.socket.destroy();
  const res = await Promise.race([closing.then(() => 'closed'), sleep(3000).then(() => 'timeout')]);
  await Promise.race([b.done, sleep(2000)]);
  t.equal(res, 'closed', 'close() resolved');
  t.equal(endedWhenClosed, true, 'the in-flight request had its final callback before close() resolved');
  t.equal(openWhenClosed, 0, 'no socket open (or opening) when close() resolved');
  t.ok(b.outcome.completed || b.outcome.error !== null, 'the request ended one way or the other');
  t.same(b.outcome.violations, []);
});

t.test('destroy(): in-flight requests end with one onError, sockets close, later requests fail', async (t) => {
  const held: ReceivedRequest[] = [];
  const srv = await startRawServer(t, (req) => void held.push(req));
  const pool = newPool(t, srv.origin, { connections: 1 });
  const a = exchange(pool, get('/a'));
  const queued = exchange(pool, get('/b'));
  t.ok(await waitFor(() => held.length === 1));
  pool.destroy();
  const [oa, ob] = await Promise.all([a.done, queued.done]);
  t.equal(oa.error?.code, 'UPSTREAM_POOL_CLOSED');
  t.equal(ob.error?.code, 'UPSTREAM_POOL_CLOSED');
  t.equal(ob.error?.notSent, true);
  t.ok(await waitFor(() => held[0]!.conn.closed), 'the server sees the socket close');
  const late = await send(pool, get('/c'));
  t.equal(late.error?.code, 'UPSTREAM_POOL_CLOSED');
  await sleep(50);
  t.same([oa.violations, ob.violations, late.violations], [[], [], []]);
  t.equal(pool.stats().open, 0);
});

t.test('8 large responses streamed at once over 8 sockets do not mix (shared read buffers)', async (t) => {
  const size = 1024 * 1024;
  const bodyFor = (i: number): Buffer => {
    const b = Buffer.allocUnsafe(size);
    for (let j = 0; j < size; j++) b[j] = (j * (i + 3) + i) & 255;
    return b;
  };
  const bodies = Array.from({ length: 8 }, (_, i) => bodyFor(i));
  const srv = await startRawServer(t, async (req, conn) => {
    const body = bodies[Number(req.path.slice(1))]!;
    const chunked = Number(req.path.slice(1)) % 2 === 1;
    await conn.write(chunked ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' : `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
    for (let i = 0; i < size; i += 7777) {
      const piece = body.subarray(i, i + 7777);
      await conn.write(chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
    }
    if (chunked) await conn.write('0\r\n\r\n');
  });
  const pool = newPool(t, srv.origin, { connections: 8 });
  const results = await Promise.all(bodies.map((_, i) => send(pool, get(`/${i}`))));
  results.forEach((o, i) => {
    t.equal(o.completed, true, `${i} completed`);
    t.ok(o.body.equals(bodies[i]!), `${i} intact`);
  });
  t.equal(srv.conns.length, 8);
});

t.test('connections: 1 with Connection: close answers: queued requests each get a new connection and all complete', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    setTimeout(() => void conn.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${req.path.length}\r\n\r\n${req.path}`), 5);
  });
  const pool = newPool(t, srv.origin, { connections: 1 });
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => send(pool, get(`/c${i}`))));
  t.strictSame(results.map((o) => o.body.toString()), ['/c0', '/c1', '/c2', '/c3', '/c4']);
  t.equal(srv.conns.length, 5);
  t.ok(srv.conns.every((c) => c.requests.length === 1));
});

t.test('connections: 1 and a headers timeout: the queued request goes out on a new connection and succeeds', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path !== '/hang') void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { connections: 1, headersTimeoutMs: 300 });
  const hang = exchange(pool, get('/hang'));
  const queued = exchange(pool, get('/next'));
  t.equal((await hang.done).error?.code, 'UPSTREAM_HEADERS_TIMEOUT');
  const o = await queued.done;
  t.equal(o.error, null);
  t.equal(o.body.toString(), '/next');
  t.equal(srv.conns.length, 2);
});

t.test('a request made from inside onError on the same pool is served', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    if (req.path !== '/hang') void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { connections: 1, headersTimeoutMs: 300 });
  const retried = await new Promise<Awaited<ReturnType<typeof send>>>((resolve) => {
    exchange(pool, get('/hang'), { onError: () => void send(pool, get('/retry')).then(resolve) });
  });
  t.equal(retried.error, null);
  t.equal(retried.body.toString(), '/retry');
});

t.test('stress: 300 requests, 8 connections, mixed framings, 1xx, Connection: close and close-delimited answers, random delays', async (t) => {
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const srv = await startRawServer(t, async (req, conn) => {
    const body = `${req.path}|${'x'.repeat(Number(req.path.split('/')[2]) % 3000)}`;
    const kind = Number(req.path.split('/')[2]) % 5;
    await sleep(Math.floor(rand() * 4));
    if (kind === 0) await conn.write(okResponse(body));
    else if (kind === 1) {
      const mid = Math.floor(body.length / 2);
      const a = body.slice(0, mid);
      const b = body.slice(mid);
      await conn.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${a.length.toString(16)}\r\n${a}\r\n`);
      await sleep(1);
      await conn.write(`${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`);
    } else if (kind === 2) await conn.write(Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'), okResponse(body)]));
    else if (kind === 3) await conn.write(okResponse(body, 'Connection: close\r\n'));
    else conn.socket.end(`HTTP/1.1 200 OK\r\n\r\n${body}`);
  });
  const pool = newPool(t, srv.origin, { connections: 8, headersTimeoutMs: 5000, bodyTimeoutMs: 5000 });
  const results = await Promise.all(
    Array.from({ length: 300 }, async (_, i) => {
      await sleep(Math.floor(i / 10));
      return send(pool, get(`/r/${i * 7}`));
    }),
  );
  const wrong: string[] = [];
  results.forEach((o, i) => {
    const expected = `/r/${i * 7}|${'x'.repeat((i * 7) % 3000)}`;
    if (o.error || o.body.toString() !== expected || o.violations.length) wrong.push(`${i}: ${o.error?.code ?? ''} ${o.violations} ${o.body.toString().slice(0, 40)}`);
  });
  t.strictSame(wrong, []);
  t.ok(await waitFor(() => pool.stats().busy === 0 && pool.stats().queued === 0));
  t.ok(pool.stats().open <= 8, `at most 8 open (${pool.stats().open})`);
  t.ok(srv.conns.filter((c) => !c.closed).length <= 8);
  t.strictSame(srv.conns.filter((c) => c.garbage !== '').map((c) => c.garbage), []);
});

t.test('a server that closes every kept-alive socket shortly after answering: sequential GETs never fail', async (t) => {
  let seed = 99;
  const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const srv = await startRawServer(t, (req, conn) => {
    void conn.write(okResponse(req.path));
    setTimeout(() => conn.socket.end(), Math.floor(rand() * 4));
  });
  const pool = newPool(t, srv.origin);
  const failures: string[] = [];
  for (let i = 0; i < 100; i++) {
    const o = await send(pool, get(`/g/${i}`));
    if (o.error || o.body.toString() !== `/g/${i}`) failures.push(`${i}: ${o.error?.code} ${o.error?.message}`);
    await sleep(Math.floor(rand() * 4));
  }
  t.strictSame(failures, []);
});

t.test('destroy() after close(): the close() promise resolves', async (t) => {
  const srv = await startRawServer(t, () => {});
  const pool = newPool(t, srv.origin);
  const ex = exchange(pool, get('/hang'));
  t.ok(await waitFor(() => srv.requests.length === 1));
  const closing = pool.close();
  pool.destroy();
  pool.destroy();
  const r = await Promise.race([closing.then(() => 'resolved'), sleep(2000).then(() => 'pending')]);
  t.equal(r, 'resolved');
  const o = await ex.done;
  t.equal(o.error?.code, 'UPSTREAM_POOL_CLOSED');
});
