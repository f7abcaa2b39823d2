// The sink's wait is counted from the request's arrival (its headers), not
// from when its body has been read: deterministic properties, with margins of
// hundreds of ms, so a loaded machine does not make them flaky.
import t from 'tap';
import { connect } from 'node:net';
import { startSink } from '../helpers/sink.js';

const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(200) }] });

/**
 * Sends the headers of a chat completion at once and its body in `pieces`
 * chunks spread over `trickleMs`; resolves with the ms from the headers to the
 * first byte of the response, and the status line.
 */
function trickle(port: number, waitMs: number, trickleMs: number, pieces = 4): Promise<{ ms: number; status: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const timers: NodeJS.Timeout[] = [];
    let sentAt = 0;
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.setNoDelay(true);
      sock.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
          `x-sluice-wait-ms: ${waitMs}\r\ncontent-length: ${Buffer.byteLength(BODY)}\r\n\r\n`,
      );
      sentAt = performance.now();
      const step = Math.ceil(BODY.length / pieces);
      for (let i = 0; i < pieces; i++) {
        // The first piece goes after one interval too: nothing of the body arrives with the headers.
        timers.push(setTimeout(() => sock.write(BODY.slice(i * step, (i + 1) * step)), ((i + 1) * trickleMs) / pieces));
      }
    });
    sock.once('data', (d: Buffer) => {
      const ms = performance.now() - sentAt;
      for (const tm of timers) clearTimeout(tm);
      sock.destroy();
      resolve({ ms, status: d.toString('latin1').split('\r\n')[0]! });
    });
  });
}

t.test('a body that trickles in does not add to the wait', async (t) => {
  const sink = await startSink(t);
  // Wait 500, body over 300 ms: answered ~500 ms after the headers arrived
  // (the old sink started its timer after the body: ~800 ms).
  const slow = await trickle(sink.port, 500, 300);
  t.match(slow.status, /^HTTP\/1\.1 200/);
  t.ok(slow.ms >= 500 - 2 - 1, `answered ${slow.ms.toFixed(1)} ms after the headers, not before the wait (less the <= 2 ms timer compensation)`);
  t.ok(slow.ms < 700, `answered ${slow.ms.toFixed(1)} ms after the headers: the wait counts from arrival, not from the end of the body (~800)`);

  // A body slower than the wait is answered as soon as it has been read:
  // wait 100, body over 400 ms: ~400 ms, not 500.
  const slower = await trickle(sink.port, 100, 400);
  t.match(slower.status, /^HTTP\/1\.1 200/);
  t.ok(slower.ms >= 390, `answered ${slower.ms.toFixed(1)} ms after the headers, once the body was in`);
  t.ok(slower.ms < 480, `answered ${slower.ms.toFixed(1)} ms after the headers, without another wait after the body`);
});

t.test('/sink/stats reports how close waited responses came to arrival + wait', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '20']);
  const before = await sink.stats();
  t.same(before.wait, { responses: 0, meanLateUs: 0, minLateUs: 0, maxLateUs: 0, compensationUs: 0 });
  const n = 20;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 7));
      await (await fetch(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}' })).json();
    }),
  );
  // wait 0 (header) answers at once, with no timer and no measurement.
  await (await fetch(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}', headers: { 'x-sluice-wait-ms': '0' } })).json();
  const { wait } = await sink.stats();
  t.equal(wait.responses, n, 'one measurement per waited response');
  // Never earlier than arrival + wait - L, with L bounded to 2 ms.
  t.ok(wait.minLateUs >= -2000, `earliest ${wait.minLateUs} µs`);
  t.ok(wait.compensationUs >= 0 && wait.compensationUs <= 2000, `compensation ${wait.compensationUs} µs within [0, 2000]`);
  t.ok(wait.minLateUs <= wait.meanLateUs && wait.meanLateUs <= wait.maxLateUs, 'min <= mean <= max');
});
