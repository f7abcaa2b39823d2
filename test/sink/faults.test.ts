import t from 'tap';
import { startSink, type SinkHandle } from '../helpers/sink.js';
import { Agent, request } from 'undici';

const N = 400;

async function run(sink: SinkHandle): Promise<{ ok: number; injected: number; dropped: number; sequence: string }> {
  // One connection at a time, so the seeded sequence maps to requests in order.
  const agent = new Agent({ connections: 1, pipelining: 1 });
  let ok = 0;
  let injected = 0;
  let dropped = 0;
  let sequence = '';
  try {
    for (let i = 0; i < N; i++) {
      try {
        const res = await request(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}', dispatcher: agent });
        const body = (await res.body.json()) as { error?: { code: string } };
        if (res.statusCode === 200) {
          ok++;
          sequence += '.';
        } else if (res.statusCode === 503 && body.error?.code === 'injected_error') {
          injected++;
          sequence += 'E';
        }
      } catch {
        dropped++;
        sequence += 'D';
      }
    }
  } finally {
    await agent.close();
  }
  return { ok, injected, dropped, sequence };
}

t.test('error and drop rates are honoured over a few hundred requests and repeat with the seed', async (t) => {
  const args = ['--error-rate', '0.2', '--error-status', '503', '--drop-rate', '0.1', '--seed', '42'];
  const a = await startSink(t, args);
  const r1 = await run(a);
  t.equal(r1.ok + r1.injected + r1.dropped, N, 'every request is accounted for');
  // Binomial(400, 0.2): mean 80, sd 8. Binomial(400, 0.1): mean 40, sd 6. Bounds at ~4 sd.
  t.ok(r1.injected >= 48 && r1.injected <= 112, `injected errors: ${r1.injected}`);
  t.ok(r1.dropped >= 16 && r1.dropped <= 64, `dropped connections: ${r1.dropped}`);
  const stats = await a.stats();
  t.equal(stats.errorsInjected, r1.injected);
  t.equal(stats.dropsInjected, r1.dropped);

  const b = await startSink(t, args);
  const r2 = await run(b);
  t.equal(r2.sequence, r1.sequence, 'the same seed gives the same fault sequence');

  const c = await startSink(t, [...args.slice(0, -1), '7']);
  const r3 = await run(c);
  t.not(r3.sequence, r1.sequence, 'another seed gives another sequence');
});
