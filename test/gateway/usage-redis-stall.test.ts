// `sluice gateway` on the redis store, under mixed load while redis-server is stopped for 5 s
// (SIGSTOP, then SIGCONT), then a graceful stop: the usage recorded for the key equals what the
// sink served, request for request and token for token.
import t from 'tap';
import { Agent, request } from 'undici';
import { Redis } from 'ioredis';
import { RedisKeyStore } from '../../gateway/store/index.js';
import { startSink } from '../helpers/sink.js';
import { startRedis } from '../helpers/redis.js';
import { startGateway } from '../helpers/gateway.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('usage totals equal the sink\'s counts after a Redis stall and a graceful stop', async (t) => {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))![1]);
  let stopped = false;
  t.teardown(() => {
    if (stopped) process.kill(pid, 'SIGCONT');
  });

  const sink = await startSink(t);
  const store = new RedisKeyStore(redis.url);
  t.teardown(() => store.close());
  await store.ready();
  const { key, secret } = await store.createKey({ name: 'stall', models: ['m'] });
  const gw = await startGateway(t, { models: { m: { upstreams: [{ url: sink.url }] } }, store: { kind: 'redis', url: redis.url } });

  const failures: string[] = [];
  let served = 0;
  let n = 0;
  /** One request of the mix: plain, streamed with include_usage, streamed without. */
  const one = async (agent: Agent): Promise<void> => {
    const i = n++;
    const kind = i % 3;
    const body: Record<string, unknown> = {
      model: 'm',
      max_tokens: 1 + (i % 23),
      messages: [{ role: 'user', content: 'word '.repeat(1 + (i % 31)) }],
    };
    if (kind > 0) body.stream = true;
    if (kind === 1) body.stream_options = { include_usage: true };
    const res = await request(`${gw.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: agent,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) failures.push(`${res.statusCode} ${text.slice(0, 200)}`);
    else served++;
  };

  // Every worker learns the key before the stall (new connections spread over the workers).
  for (let i = 0; i < 8; i++) {
    const a = new Agent({ pipelining: 0 });
    await one(a);
    await a.close();
  }

  let running = true;
  const loops = Array.from({ length: 6 }, async () => {
    const agent = new Agent({ connections: 1 });
    try {
      while (running) await one(agent);
    } finally {
      await agent.close();
    }
  });
  await sleep(1500);
  process.kill(pid, 'SIGSTOP');
  stopped = true;
  await sleep(5000);
  process.kill(pid, 'SIGCONT');
  stopped = false;
  await sleep(1500);
  running = false;
  await Promise.all(loops);

  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited, 0, 'the gateway stopped gracefully');
  t.same(failures, [], 'every request was served');

  const stats = await sink.stats();
  const rows = await store.usage(key.id);
  t.equal(rows.length, 1, 'one row: the key and its model');
  const row = rows[0]!;
  t.ok(stats.requests > 100, `a real load (${stats.requests} requests, ${stats.streamed} streamed)`);
  t.equal(served, stats.requests, 'the sink saw every request');
  t.equal(row.requests, stats.requests, 'requests: the store equals the sink');
  t.equal(row.promptTokens, stats.promptTokens, 'prompt tokens: the store equals the sink');
  t.equal(row.completionTokens, stats.completionTokens, 'completion tokens: the store equals the sink');
  t.equal(row.estimatedRequests, 0, 'nothing estimated: the sink reported usage for every response');
  t.notMatch(gw.output(), /usage not written/, 'nothing given up at shutdown');
});
