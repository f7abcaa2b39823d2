// Framing robustness: the same response delivered split at every byte
// boundary, in random three-piece splits, and one byte per write, must give the
// handler exactly what one single write gives.
import t, { type Test } from 'tap';
import { newPool, send, startRawServer, writeInPieces, type Outcome } from '../helpers/h1-server.js';

const RESPONSES: Record<string, string> = {
  'content-length':
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 26\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\nabcdefghijklmnopqrstuvwxyz',
  chunked:
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: sse\r\n\r\n' +
    '5;a=b\r\nhello\r\nB\r\n, world!!!!\r\n1a\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n0\r\nX-Trailer: 1\r\n\r\n',
  interim: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nabc',
};

interface View {
  status: number | null;
  headers: string[] | null;
  body: string;
  completed: boolean;
  error: string | null;
  violations: string[];
}

const view = (o: Outcome): View => ({
  status: o.status,
  headers: o.headers,
  body: o.body.toString('latin1'),
  completed: o.completed,
  error: o.error ? `${o.error.code}: ${o.error.message}` : null,
  violations: o.violations,
});

/** A server whose next response is whatever `script` holds: pieces written `gap` ms apart. */
async function scriptedServer(t: Test) {
  const script = { pieces: [] as Buffer[], gap: 3 };
  const srv = await startRawServer(t, (_req, conn) => writeInPieces(conn, script.pieces, script.gap));
  // Short timeouts: a split the pool fails to parse shows up as an error, not a hung test.
  const pool = newPool(t, srv.origin, { headersTimeoutMs: 2000, bodyTimeoutMs: 2000, connections: 1 });
  return { srv, pool, script };
}

// A small deterministic PRNG so a failure reproduces.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

for (const [name, text] of Object.entries(RESPONSES)) {
  const whole = Buffer.from(text, 'latin1');

  t.test(`${name}: split at every byte boundary gives the same result`, async (t) => {
    const { srv, pool, script } = await scriptedServer(t);
    script.pieces = [whole];
    const reference = view(await send(pool, { method: 'GET', path: '/ref', headers: [], body: null }));
    t.equal(reference.completed, true, 'reference completes');
    t.strictSame(reference.violations, []);
    t.equal(reference.error, null);
    const mismatches: string[] = [];
    for (let k = 1; k < whole.length; k++) {
      script.pieces = [whole.subarray(0, k), whole.subarray(k)];
      const got = view(await send(pool, { method: 'GET', path: `/split/${k}`, headers: [], body: null }));
      if (JSON.stringify(got) !== JSON.stringify(reference)) mismatches.push(`split at ${k}: ${JSON.stringify(got)}`);
      if (mismatches.length >= 5) break; // enough to show the bug; each failure may cost a timeout
    }
    t.strictSame(mismatches, [], 'every split parses identically');
    t.equal(srv.conns.length, 1, 'and all on one kept-alive connection');
  });

  t.test(`${name}: 150 random three-piece splits give the same result`, async (t) => {
    const { srv, pool, script } = await scriptedServer(t);
    script.pieces = [whole];
    const reference = view(await send(pool, { method: 'GET', path: '/ref', headers: [], body: null }));
    const rand = rng(name.length * 7919);
    const mismatches: string[] = [];
    for (let n = 0; n < 150; n++) {
      let a = 1 + Math.floor(rand() * (whole.length - 2));
      let b = 1 + Math.floor(rand() * (whole.length - 2));
      if (a === b) b = a + 1;
      if (a > b) [a, b] = [b, a];
      script.pieces = [whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)];
      const got = view(await send(pool, { method: 'GET', path: `/split3/${a}/${b}`, headers: [], body: null }));
      if (JSON.stringify(got) !== JSON.stringify(reference)) mismatches.push(`split at ${a},${b}: ${JSON.stringify(got)}`);
      if (mismatches.length >= 5) break;
    }
    t.strictSame(mismatches, []);
    t.equal(srv.conns.length, 1);
  });

  t.test(`${name}: one byte per write, 2 ms apart, gives the same result`, async (t) => {
    const { srv, pool, script } = await scriptedServer(t);
    script.pieces = [whole];
    const reference = view(await send(pool, { method: 'GET', path: '/ref', headers: [], body: null }));
    for (let round = 0; round < 2; round++) {
      script.pieces = [...whole].map((byte) => Buffer.from([byte]));
      script.gap = 2;
      const got = view(await send(pool, { method: 'GET', path: '/bytes', headers: [], body: null }));
      t.strictSame(got, reference, `round ${round}`);
    }
    t.equal(srv.conns.length, 1);
  });
}
