// H1Pool body flow: backpressure (onData returning false, resume()), paused
// bodies and the body timeout, and streamed (SSE) bodies arriving incrementally.
import { createHash } from 'node:crypto';
import t from 'tap';
import type { H1Call } from '../../gateway/proxy/h1-pool.js';
import { exchange, get, newPool, okResponse, send, sleep, startRawServer, waitFor, type ServerConn } from '../helpers/h1-server.js';

/** Deterministic body bytes: byte i is (i * 31 + 7) & 255. */
function pattern(from: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = ((from + i) * 31 + 7) & 255;
  return b;
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes `chunks` as fast as the socket takes them (respecting the server's own backpressure); returns bytes flushed so far via `progress`. */
async function pump(conn: ServerConn, chunks: Buffer[], progress: { flushed: number }): Promise<void> {
  for (const c of chunks) {
    if (conn.closed) return;
    const ok = conn.socket.write(c, () => (progress.flushed += c.length));
    if (!ok) await new Promise<void>((r) => conn.socket.once('drain', r).once('close', r));
  }
}

/** A handler that pauses on every onData and resumes `resumeMs` later (0: next turn); counts onData calls that arrive while paused. */
function pausingHooks(resumeMs: number, resumeTwice = false) {
  const state = { paused: false, whilePaused: 0, maxWhilePaused: 0, runWhilePaused: 0, pauses: 0 };
  return {
    state,
    hooks: {
      onData(call: H1Call) {
        if (state.paused) {
          state.whilePaused++;
          state.runWhilePaused++;
          state.maxWhilePaused = Math.max(state.maxWhilePaused, state.runWhilePaused);
        }
        if (!state.paused) {
          state.paused = true;
          state.runWhilePaused = 0;
          state.pauses++;
          const later = (): void => {
            state.paused = false;
            call.resume();
            if (resumeTwice) call.resume();
          };
          if (resumeMs === 0) setImmediate(later);
          else setTimeout(later, resumeMs);
        }
        return false;
      },
    },
  };
}

for (const framing of ['content-length', 'chunked'] as const) {
  t.test(`backpressure (${framing}): 5 MB written fast, onData returning false holds the data until resume()`, async (t) => {
    const total = 5 * 1024 * 1024;
    const body = pattern(0, total);
    const srv = await startRawServer(t, async (_req, conn) => {
      const progress = { flushed: 0 };
      if (framing === 'content-length') {
        await pump(conn, [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`), ...split(body, 64 * 1024)], progress);
      } else {
        // 1000-byte chunks: one read holds many of them, so a pause lands mid-read.
        const framed = split(body, 1000).flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]);
        await pump(conn, [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), Buffer.concat([...framed, Buffer.from('0\r\n\r\n')])], progress);
      }
    });
    const pool = newPool(t, srv.origin, { bodyTimeoutMs: 5000, headersTimeoutMs: 2000 });
    const { state, hooks } = pausingHooks(0);
    const o = await send(pool, get('/'), hooks);
    t.same(o.violations, []);
    t.equal(o.error, null);
    t.equal(o.completed, true);
    t.equal(o.body.length, total, 'every byte arrived');
    t.equal(sha(o.body), sha(body), 'in order and intact');
    t.ok(state.pauses > 10, `paused many times (${state.pauses})`);
    t.comment(`onData calls while paused: ${state.whilePaused} in all, at most ${state.maxWhilePaused} in a row`);
    t.ok(state.maxWhilePaused <= 1, `at most one onData after a false before resume (saw ${state.maxWhilePaused})`);
    // A second request on the same socket after a paused body: nothing left over.
    srv.onRequest = (_req, conn) => void conn.write(okResponse('next'));
    const start = performance.now();
    const next = await send(pool, get('/next'));
    t.equal(next.error?.code ?? null, null, 'the next request on the same socket gets no error');
    t.equal(next.body.toString(), 'next');
    t.ok(performance.now() - start < 3000, `and is answered without waiting for a timeout (${(performance.now() - start).toFixed(0)} ms)`);
  });
}

t.test('resume() called twice resumes once: after the next false, no data arrives without a new resume()', async (t) => {
  const total = 2 * 1024 * 1024;
  const body = pattern(0, total);
  const framed = split(body, 1000).flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]);
  const srv = await startRawServer(t, async (_req, conn) => {
    await pump(conn, [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), Buffer.concat([...framed, Buffer.from('0\r\n\r\n')])], { flushed: 0 });
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 5000 });
  const { state, hooks } = pausingHooks(0, true);
  const o = await send(pool, get('/'), hooks);
  t.equal(o.completed, true);
  t.equal(sha(o.body), sha(body));
  t.equal(state.whilePaused, 0, `onData calls while paused (saw ${state.whilePaused} over ${state.pauses} pauses)`);
});

t.test('backpressure reaches TCP: while the handler is paused the server cannot push a 64 MB body', async (t) => {
  const total = 64 * 1024 * 1024;
  const piece = pattern(0, 1024 * 1024);
  const progress = { flushed: 0 };
  let serverDone = false;
  const srv = await startRawServer(t, async (_req, conn) => {
    await pump(conn, [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`), ...Array(64).fill(piece)], progress);
    serverDone = true;
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 10_000 });
  let received = 0;
  const hash = createHash('sha256');
  let call: H1Call | null = null;
  let pausedOnce = false;
  const ex = exchange(pool, get('/'), {
    onData(c, chunk) {
      call = c;
      received += chunk.length;
      hash.update(chunk);
      if (!pausedOnce) {
        pausedOnce = true;
        return false;
      }
      return true;
    },
  });
  t.ok(await waitFor(() => pausedOnce));
  await sleep(1000);
  const receivedWhilePaused = received;
  await sleep(300);
  t.equal(received, receivedWhilePaused, 'no onData while paused');
  t.equal(serverDone, false, 'the server is still blocked');
  t.ok(progress.flushed < 32 * 1024 * 1024, `the server got at most kernel buffers' worth out (${(progress.flushed / 1048576).toFixed(1)} MB of 64)`);
  call!.resume();
  const o = await ex.done;
  t.equal(o.completed, true);
  t.equal(received, total);
  const expected = createHash('sha256');
  for (let i = 0; i < 64; i++) expected.update(piece);
  t.equal(hash.digest('hex'), expected.digest('hex'));
});

t.test('the body timeout does not run while the handler is paused', async (t) => {
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 * 1024}\r\n\r\n`);
    await conn.write(pattern(0, 1024 * 1024));
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 300 });
  let paused = false;
  const ex = exchange(pool, get('/'), {
    onData(call) {
      if (paused) return true;
      paused = true;
      setTimeout(() => call.resume(), 1000);
      return false;
    },
  });
  const o = await ex.done;
  t.equal(o.error, null, 'no UPSTREAM_BODY_TIMEOUT for a pause three times the body timeout');
  t.equal(o.completed, true);
  t.equal(sha(o.body), sha(pattern(0, 1024 * 1024)));
});

t.test('the body timeout runs again after resume()', async (t) => {
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    // then silence
  });
  const pool = newPool(t, srv.origin, { bodyTimeoutMs: 300 });
  let resumedAt = 0;
  const ex = exchange(pool, get('/'), {
    onData(call) {
      setTimeout(() => {
        resumedAt = performance.now();
        call.resume();
      }, 600);
      return false;
    },
  });
  const o = await ex.done;
  t.equal(o.error?.code, 'UPSTREAM_BODY_TIMEOUT');
  const after = o.endedAt - resumedAt;
  t.ok(resumedAt > 0 && after >= 250 && after < 5000, `fired ${after.toFixed(0)} ms after resume()`);
});

t.test('a paused close-delimited body does not complete before resume(), and then arrives whole', async (t) => {
  const body = pattern(0, 200 * 1024);
  const srv = await startRawServer(t, (_req, conn) => {
    conn.socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), body]));
  });
  const pool = newPool(t, srv.origin);
  let first = true;
  let resumed = false;
  const ex = exchange(pool, get('/'), {
    onData(call) {
      if (!first) return true;
      first = false;
      setTimeout(() => {
        resumed = true;
        call.resume();
      }, 300);
      return false;
    },
  });
  const o = await ex.done;
  t.equal(resumed, true, 'completed only after resume()');
  t.equal(o.completed, true);
  t.equal(o.body.length, body.length);
  t.equal(sha(o.body), sha(body));
});

t.test('resume() from inside onData on the next turn; pausing on the final chunk still completes', async (t) => {
  const srv = await startRawServer(t, (_req, conn) => void conn.write(okResponse('single')));
  const pool = newPool(t, srv.origin);
  const ex = exchange(pool, get('/'), {
    onData(call) {
      setImmediate(() => call.resume());
      return false;
    },
  });
  const o = await Promise.race([ex.done, sleep(3000).then(() => null)]);
  t.not(o, null, 'completes');
  t.equal(o?.body.toString(), 'single');
  t.equal((await send(pool, get('/'))).body.toString(), 'single');
  t.equal(srv.conns.length, 1);
});

t.test('a response finished from bytes held during a pause leaves its socket reading: the next request on it is answered', async (t) => {
  const srv = await startRawServer(t, (req, conn) => {
    // Two chunks and the terminator in one write: a pause after the first leaves the rest held.
    if (req.path === '/two') void conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n');
    else void conn.write(okResponse(req.path));
  });
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 1500 });
  let first = true;
  const o = await send(pool, get('/two'), {
    onData(call) {
      if (!first) return true;
      first = false;
      setTimeout(() => call.resume(), 50);
      return false;
    },
  });
  t.equal(o.completed, true);
  t.equal(o.body.toString(), 'abcdef');
  t.strictSame(pool.stats(), { open: 1, busy: 0, idle: 1, queued: 0, connects: 1 });
  const next = await send(pool, get('/next'));
  t.equal(next.error?.code ?? null, null, 'no error (UPSTREAM_HEADERS_TIMEOUT would mean the socket was left paused)');
  t.equal(next.body.toString(), '/next');
  t.equal(srv.conns.length, 1);
});

t.test('SSE stream: events written 100 ms apart reach onData incrementally', async (t) => {
  const events = Array.from({ length: 5 }, (_, i) => `data: {"i":${i}}\n\n`);
  let written = 0;
  const srv = await startRawServer(t, async (_req, conn) => {
    await conn.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (const e of events) {
      await sleep(100);
      await conn.write(`${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`);
      written++;
    }
    await conn.write('0\r\n\r\n');
  });
  const pool = newPool(t, srv.origin);
  const writtenAtData: number[] = [];
  let headersAt = -1;
  const o = await send(pool, get('/stream'), {
    onHeaders: () => (headersAt = written),
    onData: () => void writtenAtData.push(written),
  });
  t.equal(o.completed, true);
  t.equal(o.body.toString(), events.join(''));
  t.equal(headersAt, 0, 'onHeaders before the first event was written');
  t.ok(writtenAtData.length >= 5, `one onData per event at least (${writtenAtData.length})`);
  t.ok(writtenAtData[0]! < events.length, `the first onData came before the last event was written (after ${writtenAtData[0]} of 5)`);
  t.ok(writtenAtData[0]! <= 1, `the first event was delivered on its own (after ${writtenAtData[0]} written)`);
  t.strictSame([...writtenAtData].sort((a, b) => a - b), writtenAtData, 'in order');
});

function split(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}
