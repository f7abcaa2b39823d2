import t from 'tap';
import { Agent } from 'undici';
import { startSink } from '../helpers/sink.js';

t.test('SIGTERM: stops listening, finishes the in-flight request, exits 0', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '800']);
  const inflight = fetch(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}' });
  // Let the request reach the sink before the signal.
  while ((await sink.stats()).inFlight < 1) await new Promise((r) => setTimeout(r, 20));
  sink.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  const fresh = new Agent();
  t.teardown(() => fresh.close());
  await t.rejects(
    fetch(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}', signal: AbortSignal.timeout(2000), dispatcher: fresh } as RequestInit),
    'new connections are refused once stopping',
  );
  const res = await inflight;
  t.equal(res.status, 200, 'the in-flight request completes');
  t.equal((await res.json()).object, 'chat.completion');
  t.equal(await sink.exited, 0, 'exit code 0');
  t.match(sink.output(), /"msg":"sink stopped","drained":true/);
});

t.test('SIGINT also stops it gracefully', async (t) => {
  const sink = await startSink(t);
  sink.proc.kill('SIGINT');
  t.equal(await sink.exited, 0);
});
